//! mailboxd's notifications to systemd, without systemd as PID 1: the
//! notification protocol (ready, status, watchdog pings, stopping) against a
//! test listener on `$NOTIFY_SOCKET`, at a path or in the abstract namespace.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mailbox_tests::service_manager::NotifyListener;
use mailbox_tests::{binary, Broker};

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
