//! A stand-in for the service manager, for the tests of mailboxd under
//! systemd without systemd as PID 1: a listener on `$NOTIFY_SOCKET` that
//! keeps what mailboxd notifies.

use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::PATIENCE;

/// How to install the `systemd` tools the tests run (`systemd-analyze`,
/// `systemd-socket-activate`, `systemd-sysusers`, `systemd-tmpfiles`).
pub const INSTALL_SYSTEMD: &str = "apt-get install -y systemd";

/// Receives what mailboxd sends to `$NOTIFY_SOCKET`, keeping every message.
pub struct NotifyListener {
    socket: UnixDatagram,
    /// The value for `$NOTIFY_SOCKET`.
    pub address: OsString,
    /// Every message received so far, in order.
    pub seen: Vec<String>,
}

impl NotifyListener {
    /// Listens on a socket file in `dir`.
    pub fn at_path(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        Self::new(socket, path.into_os_string())
    }

    /// Listens on a name in the abstract namespace (`@name`).
    pub fn abstract_name() -> Self {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "mailbox-test-notify-{}-{:?}",
            std::process::id(),
            Instant::now()
        );
        let address =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
        let socket = UnixDatagram::bind_addr(&address).expect("bind the abstract notify socket");
        Self::new(socket, format!("@{name}").into())
    }

    fn new(socket: UnixDatagram, address: OsString) -> Self {
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        Self {
            socket,
            address,
            seen: Vec::new(),
        }
    }

    /// Reads one message if one arrives within the read timeout.
    pub fn receive(&mut self) -> Option<String> {
        let mut buffer = [0u8; 4096];
        match self.socket.recv(&mut buffer) {
            Ok(length) => {
                let message = String::from_utf8(buffer[..length].to_vec()).expect("utf-8");
                self.seen.push(message.clone());
                Some(message)
            }
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(error) => panic!("notify socket: {error}"),
        }
    }

    /// Waits for a message with the line `line`; returns that message.
    pub fn wait_for_line(&mut self, line: &str) -> String {
        self.wait_for(line, |message| message.lines().any(|l| l == line))
    }

    /// Waits for a message satisfying `matches`; returns it.
    pub fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if let Some(message) = self.receive() {
                if matches(&message) {
                    return message;
                }
            }
        }
        let last = &self.seen[self.seen.len().saturating_sub(10)..];
        panic!(
            "no {what} on the notify socket; got {} messages, the last {last:?}",
            self.seen.len()
        );
    }

    /// How many messages so far had the line `line`.
    pub fn count(&self, line: &str) -> usize {
        self.seen
            .iter()
            .filter(|message| message.lines().any(|l| l == line))
            .count()
    }
}
