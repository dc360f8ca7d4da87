//! mailboxd under systemd, without systemd as PID 1: the notification
//! protocol against a test listener on `$NOTIFY_SOCKET`, socket activation
//! through `systemd-socket-activate` and through a descriptor the test
//! passes itself, journal-format logging, and the unit files in `systemd/`
//! checked offline by `systemd-analyze`, `systemd-sysusers` and
//! `systemd-tmpfiles` (the `systemd` package; `.ci/run` installs it).

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mailbox_tests::{binary, require_tool, wait_until, Broker, PATIENCE};

const INSTALL_SYSTEMD: &str = "apt-get install -y systemd";

// ---------------------------------------------------------------------------
// A stand-in for the service manager's notification socket.

/// Receives what mailboxd sends to `$NOTIFY_SOCKET`, keeping every message.
struct NotifyListener {
    socket: UnixDatagram,
    /// The value for `$NOTIFY_SOCKET`.
    address: OsString,
    seen: Vec<String>,
}

impl NotifyListener {
    /// Listens on a socket file in `dir`.
    fn at_path(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        Self::new(socket, path.into_os_string())
    }

    /// Listens on a name in the abstract namespace (`@name`).
    fn abstract_name() -> Self {
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
    fn receive(&mut self) -> Option<String> {
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
    fn wait_for_line(&mut self, line: &str) -> String {
        self.wait_for(line, |message| message.lines().any(|l| l == line))
    }

    /// Waits for a message satisfying `matches`; returns it.
    fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
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
    fn count(&self, line: &str) -> usize {
        self.seen
            .iter()
            .filter(|message| message.lines().any(|l| l == line))
            .count()
    }
}

/// A `mailboxd --socket <dir>/run/mailboxd.sock` notifying `notify`, with
/// `WATCHDOG_USEC`/`WATCHDOG_PID` as given; stderr captured.
fn spawn_notifying(
    dir: &Path,
    notify: &NotifyListener,
    watchdog_usec: Option<&str>,
    watchdog_pid: Option<&str>,
) -> (Child, PathBuf) {
    let socket = dir.join("run").join("mailboxd.sock");
    let mut command = Command::new(binary("mailboxd"));
    command
        .arg("--socket")
        .arg(&socket)
        .args(["--log-level", "warn"])
        .env("NOTIFY_SOCKET", &notify.address)
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(usec) = watchdog_usec {
        command.env("WATCHDOG_USEC", usec);
    }
    if let Some(pid) = watchdog_pid {
        command.env("WATCHDOG_PID", pid);
    }
    (command.spawn().expect("spawn mailboxd"), socket)
}

#[test]
fn notify_reports_ready_status_watchdog_pings_and_stopping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut notify = NotifyListener::at_path(dir.path());
    // Pings every 100 ms.
    let (child, socket) = spawn_notifying(dir.path(), &notify, Some("200000"), None);

    let ready = notify.wait_for_line("READY=1");
    assert_eq!(
        notify.seen.first(),
        Some(&ready),
        "READY=1 comes first: {:?}",
        notify.seen
    );
    // Ready means accepting: no retry needed.
    UnixStream::connect(&socket).expect("mailboxd accepts connections once it said READY=1");
    assert!(
        ready
            .lines()
            .any(|l| l == "STATUS=0 connections, 0 mailboxes"),
        "{ready:?}"
    );

    let broker = Broker::adopt(child, socket, dir);
    broker.ok(&["create", "jobs"]);
    let waiting = broker.spawn(&["recv", "jobs"]);
    notify.wait_for_line("STATUS=1 connection, 1 mailbox");

    while notify.count("WATCHDOG=1") < 3 {
        notify.wait_for_line("WATCHDOG=1");
    }

    let (status, log) = broker.terminate();
    assert!(status.success(), "exit 0 after SIGTERM: {status:?} {log}");
    let stopping = notify.wait_for_line("STOPPING=1");
    assert!(stopping.contains("STATUS=shutting down"), "{stopping:?}");
    assert_eq!(waiting.finish().status.code(), Some(69));
}

#[test]
fn notify_reaches_a_socket_in_the_abstract_namespace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut notify = NotifyListener::abstract_name();
    let (child, socket) = spawn_notifying(dir.path(), &notify, None, None);
    notify.wait_for_line("READY=1");
    let broker = Broker::adopt(child, socket, dir);
    let (status, _log) = broker.terminate();
    assert!(status.success());
    notify.wait_for_line("STOPPING=1");
}

#[test]
fn a_watchdog_meant_for_another_process_is_not_pinged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut notify = NotifyListener::at_path(dir.path());
    // Would ping every 50 ms, but pid 1 is not this mailboxd.
    let (child, socket) = spawn_notifying(dir.path(), &notify, Some("100000"), Some("1"));
    notify.wait_for_line("READY=1");
    let broker = Broker::adopt(child, socket, dir);
    broker.ok(&["create", "jobs"]);
    // The status is checked once a second: by the time it changes, twenty
    // pings would have arrived.
    notify.wait_for_line("STATUS=0 connections, 1 mailbox");
    let (status, _log) = broker.terminate();
    assert!(status.success());
    notify.wait_for_line("STOPPING=1");
    assert_eq!(notify.count("WATCHDOG=1"), 0, "{:?}", notify.seen);
}

// ---------------------------------------------------------------------------
// Logging to the journal.

/// Runs a broker with stderr in a file and `JOURNAL_STREAM` set by
/// `journal_stream` from the file's (device, inode); returns the log.
fn log_with_journal_stream(journal_stream: impl FnOnce(u64, u64) -> String) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("stderr.log");
    let log = File::create(&log_path).expect("log file");
    let metadata = log.metadata().expect("stat log");
    let stream = journal_stream(metadata.dev(), metadata.ino());
    let broker = Broker::start_configured(&[], |command| {
        command
            .env("RUST_LOG", "info")
            .env("JOURNAL_STREAM", &stream)
            .stderr(log);
    });
    broker.ok(&["status"]);
    let (status, _) = broker.terminate();
    assert!(status.success());
    std::fs::read_to_string(&log_path).expect("read log")
}

#[test]
fn with_stderr_on_the_journal_stream_every_line_carries_a_syslog_priority() {
    let log = log_with_journal_stream(|device, inode| format!("{device}:{inode}"));
    assert!(!log.contains('\x1b'), "no colour: {log:?}");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        let priority = line
            .strip_prefix('<')
            .and_then(|rest| rest.split_once('>'))
            .map(|(n, _)| n);
        assert!(
            matches!(priority, Some("3" | "4" | "6" | "7")),
            "every line starts with <N>: {line:?}"
        );
        // journald stamps entries itself.
        assert!(
            !line.chars().nth(3).is_some_and(|c| c.is_ascii_digit()),
            "no timestamp: {line:?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("mailboxd listening")),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("SIGTERM received")),
        "{log}"
    );
}

#[test]
fn with_stderr_elsewhere_the_log_keeps_its_usual_format() {
    // Another stream's device:inode: stderr is not the journal.
    let log = log_with_journal_stream(|device, inode| format!("{device}:{}", inode + 1));
    let listening = log
        .lines()
        .find(|l| l.contains("mailboxd listening"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(!listening.starts_with('<'), "{listening:?}");
    assert!(listening.contains("INFO"), "{listening:?}");
    // The usual format starts with a timestamp like 2025-01-31T12:00:00Z.
    let plain = strip_colour(listening);
    let stamp = plain.as_bytes();
    assert!(
        stamp.len() > 10 && stamp[..4].iter().all(u8::is_ascii_digit) && stamp[4] == b'-',
        "{plain:?}"
    );
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn strip_colour(text: &str) -> String {
    let mut plain = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('\x1b') {
        plain.push_str(&rest[..start]);
        rest = rest[start..].split_once('m').map_or("", |(_, after)| after);
    }
    plain.push_str(rest);
    plain
}

// ---------------------------------------------------------------------------
// Socket activation.

/// What `LISTEN_PID` says.
#[derive(Clone, Copy)]
enum ListenPid {
    /// The started process itself (the protocol).
    Own,
    /// Some other process.
    Other(u32),
}

/// Starts `mailboxd ARGS` with `fd` as its descriptor 3 and `LISTEN_FDS`,
/// `LISTEN_PID` set as a service manager would. The environment is edited
/// in the child after `fork` because only it knows its pid, so the command
/// must not have environment changes of its own (they would replace it).
fn spawn_with_fd3(fd: RawFd, listen_fds: &'static str, pid: ListenPid, args: &[&str]) -> Child {
    let mut command = Command::new(binary("mailboxd"));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let listen_fds = std::ffi::CString::new(listen_fds).expect("no NUL");
    // SAFETY: between fork and exec the closure only calls dup2, fcntl,
    // getpid, setenv and unsetenv on memory prepared before the fork (glibc
    // keeps its allocator usable in the child; std holds the environment
    // lock across fork, so no thread of this process is changing it).
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(fd, 3) == -1 || libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            let pid = match pid {
                ListenPid::Own => libc::getpid() as u32,
                ListenPid::Other(pid) => pid,
            };
            let mut digits = [0u8; 16];
            let text = decimal(pid, &mut digits);
            libc::setenv(c"LISTEN_PID".as_ptr(), text.as_ptr().cast(), 1);
            libc::setenv(c"LISTEN_FDS".as_ptr(), listen_fds.as_ptr(), 1);
            for name in [
                c"LISTEN_FDNAMES",
                c"NOTIFY_SOCKET",
                c"WATCHDOG_USEC",
                c"WATCHDOG_PID",
                c"JOURNAL_STREAM",
            ] {
                libc::unsetenv(name.as_ptr());
            }
            Ok(())
        });
    }
    command.spawn().expect("spawn mailboxd")
}

/// `value` in decimal, NUL-terminated, in `buffer` (no allocation: it runs
/// between fork and exec).
fn decimal(mut value: u32, buffer: &mut [u8; 16]) -> &[u8] {
    let mut start = buffer.len() - 1;
    buffer[start] = 0;
    loop {
        start -= 1;
        buffer[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buffer[start..];
        }
    }
}

fn stderr_of(child: Child) -> Output {
    let mut child = child;
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(start.elapsed() < PATIENCE, "mailboxd did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Create, send, receive through `broker`'s socket.
fn round_trip(broker: &Broker) {
    broker.ok(&["create", "activated"]);
    broker.ok(&["send", "activated", "through the passed socket"]);
    assert_eq!(
        broker.ok(&["recv", "activated"]).trim_end(),
        "through the passed socket"
    );
}

#[test]
fn a_listening_socket_passed_as_fd_3_is_served_and_left_in_place() {
    // Kept apart from the broker's own temporary directory, which goes when
    // the broker does: the socket must still be there after that.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mailboxd.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let socket_arg = path.to_str().expect("utf-8 path");
    let child = spawn_with_fd3(
        listener.as_raw_fd(),
        "1",
        ListenPid::Own,
        &["--socket", socket_arg, "--log-level", "info"],
    );
    // Only mailboxd holds the socket now: if it did not take it, connecting
    // is refused rather than left waiting.
    drop(listener);
    let broker = Broker::adopt(child, path.clone(), tempfile::tempdir().expect("temp dir"));
    round_trip(&broker);
    let (status, log) = broker.terminate();
    assert!(status.success(), "{status:?} {log}");
    assert!(log.contains("socket activation"), "{log}");
    assert!(!log.contains("ignoring --socket"), "{log}");
    assert!(
        is_socket(&path),
        "a passed socket belongs to the service manager and stays"
    );
}

#[test]
fn a_passed_descriptor_that_is_not_a_listening_stream_socket_is_refused() {
    let datagram = UnixDatagram::unbound().expect("datagram");
    let output = stderr_of(spawn_with_fd3(
        datagram.as_raw_fd(),
        "1",
        ListenPid::Own,
        &["--socket", "/nonexistent/unused.sock"],
    ));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("file descriptor 3") && stderr.contains("datagram"),
        "{stderr}"
    );

    let (connected, _peer) = UnixStream::pair().expect("pair");
    let output = stderr_of(spawn_with_fd3(
        connected.as_raw_fd(),
        "1",
        ListenPid::Own,
        &["--socket", "/nonexistent/unused.sock"],
    ));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not listening"), "{stderr}");
}

#[test]
fn more_than_one_passed_socket_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = UnixListener::bind(dir.path().join("a.sock")).expect("bind");
    let output = stderr_of(spawn_with_fd3(
        listener.as_raw_fd(),
        "2",
        ListenPid::Own,
        &["--socket", "/nonexistent/unused.sock"],
    ));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("exactly one socket"), "{stderr}");
}

#[test]
fn descriptors_meant_for_another_process_are_ignored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("own.sock");
    // Not even a stream socket: it must not be looked at.
    let datagram = UnixDatagram::unbound().expect("datagram");
    let child = spawn_with_fd3(
        datagram.as_raw_fd(),
        "1",
        ListenPid::Other(1),
        &["--socket", path.to_str().expect("utf-8 path")],
    );
    let broker = Broker::adopt(child, path.clone(), tempfile::tempdir().expect("temp dir"));
    round_trip(&broker);
    let (status, _log) = broker.terminate();
    assert!(status.success());
    assert!(!path.exists(), "a socket mailboxd bound itself is removed");
}

#[test]
fn systemd_socket_activate_starts_mailboxd_on_its_socket() {
    let activate = require_tool("systemd-socket-activate", INSTALL_SYSTEMD);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mailboxd.sock");
    // Where mailboxd would bind if it ignored the passed socket.
    let fallback = dir.path().join("fallback.sock");
    let child = Command::new(activate)
        .arg("--listen")
        .arg(&path)
        .arg(format!("--setenv=MAILBOX_SOCKET={}", fallback.display()))
        .arg("--")
        .arg(binary("mailboxd"))
        .args(["--log-level", "info"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn systemd-socket-activate");
    wait_until("systemd-socket-activate listens", || is_socket(&path));
    let pid = child.id();
    // The first connection makes systemd-socket-activate exec mailboxd
    // (same pid) with the socket as fd 3.
    let broker = Broker::adopt(child, path.clone(), tempfile::tempdir().expect("temp dir"));
    round_trip(&broker);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    let mailboxd = binary("mailboxd").canonicalize().expect("mailboxd path");
    assert_eq!(exe, mailboxd, "mailboxd runs as pid {pid}");
    broker.ok(&["status"]);
    let (status, log) = broker.terminate();
    assert!(status.success(), "{status:?} {log}");
    assert!(log.contains("socket activation"), "{log}");
    assert!(
        is_socket(&path),
        "mailboxd leaves the activated socket in place"
    );
    assert!(!fallback.exists(), "mailboxd did not bind a socket itself");
}

// ---------------------------------------------------------------------------
// The unit files.

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn read_unit(relative: &str) -> String {
    std::fs::read_to_string(repository().join("systemd").join(relative))
        .unwrap_or_else(|error| panic!("systemd/{relative}: {error}"))
}

/// Every `(section, key, value)` of a unit file, in order.
fn settings(unit: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, value)) = line.split_once('=') {
            out.push((
                section.clone(),
                key.trim().to_owned(),
                value.trim().to_owned(),
            ));
        }
    }
    out
}

fn setting(unit: &str, section: &str, key: &str) -> Option<String> {
    settings(unit)
        .into_iter()
        .rev()
        .find(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v)
}

/// The units with the installed binary path replaced by the one just built,
/// copied to `<dir>/system` and `<dir>/user`.
fn copy_units(dir: &Path) -> (PathBuf, PathBuf) {
    let mailboxd = binary("mailboxd");
    let mut copied = (dir.join("system"), dir.join("user"));
    for (name, target) in [
        ("mailboxd.service", &copied.0),
        ("mailboxd.socket", &copied.0),
        ("user/mailboxd.service", &copied.1),
        ("user/mailboxd.socket", &copied.1),
    ] {
        std::fs::create_dir_all(target).expect("mkdir");
        let text = read_unit(name).replace(
            "/usr/local/bin/mailboxd",
            mailboxd.to_str().expect("utf-8 path"),
        );
        let file_name = Path::new(name).file_name().expect("file name");
        std::fs::write(target.join(file_name), text).expect("write unit");
    }
    copied.0 = copied.0.canonicalize().expect("canonical");
    copied.1 = copied.1.canonicalize().expect("canonical");
    copied
}

/// `systemd-analyze [--user] verify` on the socket and service in `dir`.
fn verify(analyze: &Path, dir: &Path, user: bool, runtime_dir: &Path) -> Output {
    let mut command = Command::new(analyze);
    if user {
        command.arg("--user");
    }
    command
        .args(["verify", "--man=no"])
        .arg(dir.join("mailboxd.socket"))
        .arg(dir.join("mailboxd.service"))
        .current_dir(dir)
        // What %t expands to in user units.
        .env("XDG_RUNTIME_DIR", runtime_dir)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze")
}

#[test]
fn systemd_analyze_verify_finds_nothing_to_complain_about() {
    let analyze = require_tool("systemd-analyze", INSTALL_SYSTEMD);
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime_dir = dir.path().join("runtime");
    std::fs::create_dir_all(&runtime_dir).expect("mkdir");
    let (system, user) = copy_units(dir.path());
    for (units, is_user) in [(&system, false), (&user, true)] {
        let output = verify(&analyze, units, is_user, &runtime_dir);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && said.trim().is_empty(),
            "systemd-analyze {}verify on {}: {:?}\n{said}",
            if is_user { "--user " } else { "" },
            units.display(),
            output.status
        );
    }

    // The check has teeth: the same verify reports a misspelt key, which
    // systemd otherwise only logs and ignores (exit status 0).
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    for name in ["mailboxd.socket", "mailboxd.service"] {
        let text = std::fs::read_to_string(system.join(name)).expect("read");
        std::fs::write(
            broken.join(name),
            text.replace("NotifyAccess=", "NotifyAcess="),
        )
        .expect("write");
    }
    let output = verify(&analyze, &broken, false, &runtime_dir);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("NotifyAcess"), "{said}");
}

#[test]
fn the_system_service_is_sandboxed() {
    let analyze = require_tool("systemd-analyze", INSTALL_SYSTEMD);
    let dir = tempfile::tempdir().expect("temp dir");
    let (system, _user) = copy_units(dir.path());
    // Exposure 0.0 (best) to 10.0; --threshold is in tenths. At most 1.0:
    // "SAFE".
    let output = Command::new(analyze)
        .args(["security", "--offline=yes", "--threshold=10", "--no-pager"])
        .arg(system.join("mailboxd.service"))
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze security");
    assert!(
        output.status.success(),
        "exposure above 1.0: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_units_agree_with_mailboxd_and_each_other() {
    let service = read_unit("mailboxd.service");
    let socket = read_unit("mailboxd.socket");
    let user_service = read_unit("user/mailboxd.service");
    let user_socket = read_unit("user/mailboxd.socket");
    for (unit, name) in [(&service, "system"), (&user_service, "user")] {
        let get = |key: &str| setting(unit, "Service", key);
        assert_eq!(get("Type").as_deref(), Some("notify"), "{name}");
        assert_eq!(get("NotifyAccess").as_deref(), Some("main"), "{name}");
        assert_eq!(get("Restart").as_deref(), Some("on-failure"), "{name}");
        assert!(get("WatchdogSec").is_some(), "{name}");
        assert_eq!(
            get("RuntimeDirectory").as_deref(),
            Some("mailbox"),
            "{name}"
        );
        // Stopping the service must not delete the socket unit's socket.
        assert_eq!(
            get("RuntimeDirectoryPreserve").as_deref(),
            Some("yes"),
            "{name}"
        );
    }
    assert_eq!(
        setting(&service, "Service", "User").as_deref(),
        Some("mailbox")
    );
    assert_eq!(
        setting(&service, "Service", "Group").as_deref(),
        Some("mailbox")
    );
    for (unit, path, mode) in [
        (&socket, "/run/mailbox/mailboxd.sock", "0660"),
        (&user_socket, "%t/mailbox/mailboxd.sock", "0600"),
    ] {
        assert_eq!(
            setting(unit, "Socket", "ListenStream").as_deref(),
            Some(path)
        );
        assert_eq!(setting(unit, "Socket", "SocketMode").as_deref(), Some(mode));
        assert_eq!(
            setting(unit, "Socket", "Service").as_deref(),
            Some("mailboxd.service")
        );
    }
    assert_eq!(
        setting(&socket, "Socket", "SocketGroup").as_deref(),
        Some("mailbox")
    );
    // Started without its socket unit, each service binds the same path.
    assert_eq!(
        setting(&service, "Service", "ExecStart").as_deref(),
        Some("/usr/local/bin/mailboxd --socket /run/mailbox/mailboxd.sock")
    );
    assert_eq!(
        setting(&user_service, "Service", "ExecStart").as_deref(),
        Some("/usr/local/bin/mailboxd --socket %t/mailbox/mailboxd.sock")
    );
}

/// The service's `ExecStart=` as a command for the built mailboxd, with
/// `%t` and `/run` moved into `runtime`.
fn exec_start(unit: &str, runtime: &Path) -> Command {
    let line = setting(unit, "Service", "ExecStart").expect("ExecStart=");
    let runtime = runtime.to_str().expect("utf-8 path");
    let line = line
        .replace("%t/", &format!("{runtime}/"))
        .replace("/run/", &format!("{runtime}/"));
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/mailboxd"));
    let mut command = Command::new(binary("mailboxd"));
    command.args(words);
    command
}

#[test]
fn each_services_command_line_starts_this_mailboxd() {
    for name in ["mailboxd.service", "user/mailboxd.service"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut notify = NotifyListener::at_path(dir.path());
        let runtime = dir.path().join("runtime");
        let socket = runtime.join("mailbox").join("mailboxd.sock");
        let child = exec_start(&read_unit(name), &runtime)
            .env("NOTIFY_SOCKET", &notify.address)
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mailboxd");
        notify.wait_for_line("READY=1");
        assert!(is_socket(&socket), "{name}: listening on {socket:?}");
        let broker = Broker::adopt(
            child,
            socket.clone(),
            tempfile::tempdir().expect("temp dir"),
        );
        broker.ok(&["status"]);
        let (status, log) = broker.terminate();
        assert!(status.success(), "{name}: {status:?} {log}");
        assert!(!socket.exists(), "{name}: its own socket is removed");
    }
}

#[test]
fn sysusers_and_tmpfiles_create_the_user_and_the_socket_directory() {
    let sysusers = require_tool("systemd-sysusers", INSTALL_SYSTEMD);
    let tmpfiles = require_tool("systemd-tmpfiles", INSTALL_SYSTEMD);
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(root.path().join("etc")).expect("mkdir");
    let config = repository().join("systemd");

    let output = Command::new(sysusers)
        .arg(format!("--root={}", root.path().display()))
        .arg(config.join("mailbox.sysusers"))
        .output()
        .expect("run systemd-sysusers");
    assert!(output.status.success(), "{output:?}");
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).expect("passwd");
    let group = std::fs::read_to_string(root.path().join("etc/group")).expect("group");
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("mailbox:"))
        .unwrap_or_else(|| panic!("no mailbox user: {passwd}"))
        .split(':')
        .collect();
    let gid = group
        .lines()
        .find(|l| l.starts_with("mailbox:"))
        .unwrap_or_else(|| panic!("no mailbox group: {group}"))
        .split(':')
        .nth(2)
        .expect("gid");
    assert_eq!(user[3], gid, "the user's primary group is mailbox");
    assert!(user[6].ends_with("nologin"), "{user:?}");
    let uid: u32 = user[2].parse().expect("uid");
    assert!(uid < 1000, "a system user: {uid}");

    let output = Command::new(tmpfiles)
        .arg(format!("--root={}", root.path().display()))
        .arg("--create")
        .arg(config.join("mailbox.tmpfiles"))
        .output()
        .expect("run systemd-tmpfiles");
    let metadata = std::fs::metadata(root.path().join("run/mailbox")).expect("/run/mailbox");
    assert!(metadata.is_dir());
    assert_eq!(metadata.permissions().mode() & 0o7777, 0o755);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(output.status.success(), "{output:?}");
        // Owned by the user sysusers created (in the same root).
        assert_eq!(metadata.uid(), uid);
        assert_eq!(metadata.gid().to_string(), gid);
    } else {
        // Only root may give the directory away; everything else must work.
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr
                .lines()
                .all(|l| l.contains("Operation not permitted")),
            "{stderr}"
        );
        eprintln!("not root: /run/mailbox's owner is checked only when run as root (as CI does)");
    }
}

#[test]
fn the_unit_files_are_where_the_readme_says() {
    let readme = std::fs::read_to_string(repository().join("README.md")).expect("README");
    for name in [
        "systemd/mailboxd.service",
        "systemd/mailboxd.socket",
        "systemd/mailbox.sysusers",
        "systemd/mailbox.tmpfiles",
        "systemd/user/mailboxd.service",
        "systemd/user/mailboxd.socket",
    ] {
        assert!(repository().join(name).is_file(), "{name}");
        assert!(readme.contains(name), "README.md mentions {name}");
    }
}
