//! A broker that stopped answering (SIGSTOP), end to end: `mailboxctl`'s
//! timed commands and the library give up on it instead of hanging, before
//! the handshake, after it, and when its listen backlog is full.

use std::path::Path;
use std::time::{Duration, Instant};

use mailbox_client::{ConnectOptions, Error};
use mailbox_tests::{exit_code, signal, stderr, Broker};

// ---------------------------------------------------------------------------
// 13. Hangs.

/// A broker stopped with SIGSTOP until dropped (then SIGCONT, so that it can
/// be killed cleanly).
struct Stopped<'a>(&'a Broker);

impl<'a> Stopped<'a> {
    fn new(broker: &'a Broker) -> Self {
        signal(broker.pid(), libc::SIGSTOP);
        Self(broker)
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        signal(self.0.pid(), libc::SIGCONT);
    }
}

#[test]
fn a_timed_command_returns_from_a_stopped_broker() {
    let broker = Broker::start();
    broker.ok(&["create", "q"]);
    let _stopped = Stopped::new(&broker);
    // The broker is stopped before the command connects (the handshake
    // hangs) and for every form of waiting the command has.
    for args in [
        &["recv", "q", "--timeout", "500ms"][..],
        &["recv", "q", "--nonblock"],
        &["send", "q", "hello", "--timeout", "500ms"],
        &["call", "q", "hello", "--timeout", "500ms"],
    ] {
        let child = broker.spawn(args);
        // Deadline 0.5 s plus the 2 s grace; generous for a loaded machine.
        let output = child.finish_within(Duration::from_secs(15), &format!("{args:?}"));
        assert_eq!(exit_code(&output), 69, "{args:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("did not answer"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn the_library_gives_up_on_a_broker_stopped_after_the_handshake() {
    let broker = Broker::start();
    broker.ok(&["create", "q"]);
    let mut blocking = mailbox_client::blocking::Client::connect(broker.socket()).expect("connect");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = runtime
        .block_on(mailbox_client::Client::connect(broker.socket()))
        .expect("connect");
    let stopped = Stopped::new(&broker);

    let started = Instant::now();
    let error = blocking
        .receive_timeout("q", Duration::from_millis(300))
        .expect_err("no answer");
    assert!(matches!(error, Error::NoAnswer { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // The connection is closed for good.
    let again = blocking.try_receive("q").expect_err("closed");
    assert!(matches!(again, Error::NoAnswer { .. }), "{again}");

    let started = Instant::now();
    let error = runtime
        .block_on(client.receive_timeout("q", Duration::from_millis(300)))
        .expect_err("no answer");
    assert!(matches!(error, Error::NoAnswer { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(15));

    // Connecting with a timeout to the stopped broker gives up too.
    let options = ConnectOptions::new().timeout(Duration::from_millis(300));
    let error = mailbox_client::blocking::Client::connect_with(broker.socket(), &options)
        .expect_err("no welcome");
    assert!(matches!(error, Error::NoAnswer { .. }), "{error}");
    let error = runtime
        .block_on(mailbox_client::Client::connect_with(
            broker.socket(),
            &options,
        ))
        .expect_err("no welcome");
    assert!(matches!(error, Error::NoAnswer { .. }), "{error}");

    // Resumed, the async connection still works.
    drop(stopped);
    runtime
        .block_on(client.send("q", "after"))
        .expect("works again");
}

/// Fills the listen backlog of a stopped broker with connections nobody
/// accepts, until a non-blocking connect says EAGAIN; returns them (to keep
/// them open) or `None` if the backlog did not fill within `most`.
fn fill_backlog(socket: &Path, most: usize) -> Option<Vec<std::os::fd::OwnedFd>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_os_str().as_bytes();
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (to, from) in address.sun_path.iter_mut().zip(bytes) {
        *to = *from as libc::c_char;
    }
    let mut held = Vec::new();
    while held.len() < most {
        // SAFETY: plain system calls; the fd is owned at once.
        let socket = unsafe {
            OwnedFd::from_raw_fd(libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            ))
        };
        // SAFETY: `address` is a valid sockaddr_un of the size given.
        let rc = unsafe {
            libc::connect(
                socket.as_raw_fd(),
                (&address as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            assert_eq!(error.raw_os_error(), Some(libc::EAGAIN), "{error}");
            return Some(held);
        }
        held.push(socket);
    }
    None
}

#[test]
fn a_full_backlog_of_a_stopped_broker_does_not_hang_a_timed_command() {
    let broker = Broker::start();
    broker.ok(&["create", "q"]);
    let _stopped = Stopped::new(&broker);
    let Some(_held) = fill_backlog(broker.socket(), 10_000) else {
        eprintln!("skipped: the listen backlog did not fill with 10,000 connections");
        return;
    };
    let child = broker.spawn(&["recv", "q", "--timeout", "500ms"]);
    let output = child.finish_within(Duration::from_secs(15), "recv");
    assert_eq!(exit_code(&output), 69, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("did not answer"),
        "{}",
        stderr(&output)
    );
}
