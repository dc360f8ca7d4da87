//! Socket activation, without systemd as PID 1: a listening socket passed
//! as descriptor 3 with `LISTEN_FDS`/`LISTEN_PID` (by the test itself, or
//! by `systemd-socket-activate` from the `systemd` package; `.ci/run`
//! installs it), descriptors that are refused or meant for another process.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};

use mailbox_tests::service_manager::INSTALL_SYSTEMD;
use mailbox_tests::{binary, is_socket, require_tool, wait_until, Broker, Running};

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
    Running::from_child(child).finish()
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
