//! The `sd_notify` protocol, spoken directly: one datagram per notification,
//! sent to the `AF_UNIX` socket named by `$NOTIFY_SOCKET` (a path, or a name
//! in the abstract namespace when it starts with `@`), carrying
//! newline-separated `KEY=value` lines such as `READY=1` or `STATUS=...`.
//!
//! The service manager sets `$NOTIFY_SOCKET` for `Type=notify` services.
//! `$WATCHDOG_USEC` (with `$WATCHDOG_PID`, when set, naming this process)
//! asks for `WATCHDOG=1` pings more often than that many microseconds;
//! [`Notifier::watchdog_interval`] is half of it, as systemd recommends.
//!
//! Without `$NOTIFY_SOCKET` a [`Notifier`] is disabled and every method does
//! nothing, so callers never check. Sending never blocks (the socket is
//! non-blocking) and a failed send is logged, not returned: a broker that
//! cannot reach its service manager keeps serving its clients.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

/// Where notifications go; cheap to clone. [`Notifier::default`] is disabled.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    target: Option<Arc<Target>>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    address: SocketAddr,
    /// How often to send `WATCHDOG=1`, when the manager asked for it.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`. Disabled
    /// when `$NOTIFY_SOCKET` is unset; a value it cannot use is logged as a
    /// warning and also leaves it disabled (the broker still serves, but a
    /// `Type=notify` unit will time out waiting for readiness, and the
    /// warning says why).
    pub fn from_env() -> Self {
        let Some(socket_var) = std::env::var_os("NOTIFY_SOCKET") else {
            return Self::disabled();
        };
        let address = match parse_address(&socket_var) {
            Ok(address) => address,
            Err(reason) => {
                warn!("ignoring NOTIFY_SOCKET={socket_var:?}: {reason}; no readiness or watchdog notifications");
                return Self::disabled();
            }
        };
        let watchdog = match watchdog_interval(
            std::env::var_os("WATCHDOG_USEC").as_deref(),
            std::env::var_os("WATCHDOG_PID").as_deref(),
            std::process::id(),
        ) {
            Ok(interval) => interval,
            Err(reason) => {
                warn!("ignoring the watchdog: {reason}");
                None
            }
        };
        match Self::new(address, watchdog) {
            Ok(notifier) => notifier,
            Err(error) => {
                warn!(%error, "cannot create a socket for notifications to NOTIFY_SOCKET={socket_var:?}");
                Self::disabled()
            }
        }
    }

    /// A notifier sending to `address`, pinging the watchdog every
    /// `watchdog` when given.
    pub fn new(address: SocketAddr, watchdog: Option<Duration>) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            target: Some(Arc::new(Target {
                socket,
                address,
                watchdog,
            })),
        })
    }

    /// Whether notifications go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1` (half of `$WATCHDOG_USEC`), when the
    /// service manager asked for pings.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.target.as_ref().and_then(|target| target.watchdog)
    }

    /// Sends `state` (newline-separated `KEY=value` lines) as one datagram.
    /// `Ok` without sending when disabled.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        match &self.target {
            Some(target) => target
                .socket
                .send_to_addr(state.as_bytes(), &target.address)
                .map(drop),
            None => Ok(()),
        }
    }

    /// `READY=1`: the broker accepts connections. `status` describes it.
    pub fn ready(&self, status: &str) {
        self.send_logged(&format!("READY=1\nSTATUS={}", one_line(status)), true);
    }

    /// `STATUS=...`: one line shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send_logged(&format!("STATUS={}", one_line(status)), false);
    }

    /// `STOPPING=1`: the broker is shutting down. `status` says how far.
    pub fn stopping(&self, status: &str) {
        self.send_logged(&format!("STOPPING=1\nSTATUS={}", one_line(status)), true);
    }

    /// `WATCHDOG=1`: the broker is alive.
    pub fn watchdog(&self) {
        self.send_logged("WATCHDOG=1", false);
    }

    fn send_logged(&self, state: &str, important: bool) {
        if let Err(error) = self.notify(state) {
            let what = state.lines().next().unwrap_or_default();
            if important {
                warn!(%error, "cannot notify the service manager of {what}");
            } else {
                debug!(%error, "cannot notify the service manager of {what}");
            }
        }
    }
}

/// A status line may not contain a newline: it would end the `STATUS=` field.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// The socket address in `$NOTIFY_SOCKET`: an absolute path, or `@name` for
/// the abstract namespace.
pub fn parse_address(value: &OsStr) -> Result<SocketAddr, String> {
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(value).map_err(|error| error.to_string()),
        Some(b'@') => abstract_address(&bytes[1..]),
        Some(_) => Err("only absolute paths and @abstract names are supported".to_owned()),
        None => Err("it is empty".to_owned()),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> Result<SocketAddr, String> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name).map_err(|error| error.to_string())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_name: &[u8]) -> Result<SocketAddr, String> {
    Err("abstract socket names exist only on Linux".to_owned())
}

/// How often to ping the watchdog, from `$WATCHDOG_USEC` and `$WATCHDOG_PID`:
/// half the timeout, `None` when there is no watchdog or it is meant for
/// another process (`$WATCHDOG_PID` set and not `own_pid`).
pub fn watchdog_interval(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    own_pid: u32,
) -> Result<Option<Duration>, String> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    if let Some(pid) = pid {
        let pid: u32 =
            parse_number(pid).ok_or_else(|| format!("WATCHDOG_PID={pid:?} is not a process id"))?;
        if pid != own_pid {
            return Ok(None);
        }
    }
    let usec: u64 = parse_number(usec)
        .ok_or_else(|| format!("WATCHDOG_USEC={usec:?} is not a number of microseconds"))?;
    if usec == 0 {
        return Ok(None);
    }
    // tokio's intervals refuse a zero period.
    Ok(Some(
        Duration::from_micros(usec / 2).max(Duration::from_millis(1)),
    ))
}

fn parse_number<T: std::str::FromStr>(value: &OsStr) -> Option<T> {
    value.to_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(text: &str) -> Option<&OsStr> {
        Some(OsStr::new(text))
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        let path = parse_address(OsStr::new("/run/systemd/notify")).expect("path");
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let name =
                parse_address(OsStr::new("@/org/freedesktop/systemd1/notify")).expect("abstract");
            assert_eq!(
                name.as_abstract_name(),
                Some(&b"/org/freedesktop/systemd1/notify"[..])
            );
        }
        assert!(parse_address(OsStr::new("")).is_err());
        assert!(parse_address(OsStr::new("relative/notify")).is_err());
        assert!(parse_address(OsStr::new("vsock:2:1234")).is_err());
    }

    #[test]
    fn the_watchdog_is_pinged_at_half_its_timeout_when_meant_for_us() {
        assert_eq!(
            watchdog_interval(os("30000000"), None, 7),
            Ok(Some(Duration::from_secs(15)))
        );
        assert_eq!(
            watchdog_interval(os("30000000"), os("7"), 7),
            Ok(Some(Duration::from_secs(15)))
        );
        assert_eq!(watchdog_interval(os("30000000"), os("8"), 7), Ok(None));
        assert_eq!(watchdog_interval(None, os("7"), 7), Ok(None));
        assert_eq!(watchdog_interval(os("0"), None, 7), Ok(None));
        assert_eq!(
            watchdog_interval(os("1"), None, 7),
            Ok(Some(Duration::from_millis(1)))
        );
        assert!(watchdog_interval(os("soon"), None, 7).is_err());
        assert!(watchdog_interval(os("100"), os("me"), 7).is_err());
    }

    #[test]
    fn a_disabled_notifier_sends_nothing_and_succeeds() {
        let notifier = Notifier::disabled();
        assert!(!notifier.is_enabled());
        assert_eq!(notifier.watchdog_interval(), None);
        notifier.notify("READY=1").expect("no-op");
    }

    #[test]
    fn notifications_are_one_datagram_each_and_status_stays_one_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let address = SocketAddr::from_pathname(&path).expect("address");
        let notifier = Notifier::new(address, None).expect("notifier");
        notifier.ready("0 connections\nsecond line");
        notifier.watchdog();
        let mut buffer = [0u8; 256];
        let length = listener.recv(&mut buffer).expect("recv");
        assert_eq!(
            &buffer[..length],
            b"READY=1\nSTATUS=0 connections second line"
        );
        let length = listener.recv(&mut buffer).expect("recv");
        assert_eq!(&buffer[..length], b"WATCHDOG=1");
    }
}
