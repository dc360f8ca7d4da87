//! Trusting the socket's place: `mailboxd` refuses a socket directory that
//! someone else could change (another user's, or writable by others without
//! the sticky bit), and at exit removes only the socket file it bound, never
//! one another broker put at the same path since.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use mailbox_tests::{binary, wait_until};

/// Runs `mailboxd --socket DIR/mailboxd.sock` and expects it to refuse to
/// start (it would otherwise keep running: killed after a while).
fn refused_start(dir: &Path) -> Output {
    mailbox_tests::failed_start(
        Command::new(binary("mailboxd"))
            .arg("--socket")
            .arg(dir.join("mailboxd.sock")),
    )
}

fn assert_refused(output: &Output, dir: &Path, says: &str) {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = format!("refusing the socket directory {}", dir.display());
    assert!(stderr.contains(&line) && stderr.contains(says), "{stderr}");
    assert!(
        !dir.join("mailboxd.sock").exists(),
        "no socket was left in the refused directory"
    );
}

#[test]
fn a_socket_directory_writable_by_others_is_refused() {
    let base = tempfile::tempdir().expect("temp dir");
    let dir = base.path().join("open");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    assert_refused(&refused_start(&dir), &dir, "mode 0777");

    // Group-writable is as bad.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).expect("chmod");
    assert_refused(&refused_start(&dir), &dir, "mode 0775");
}

#[test]
fn a_sticky_directory_like_tmp_is_accepted() {
    let base = tempfile::tempdir().expect("temp dir");
    let dir = base.path().join("sticky");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let mut child = Command::new(binary("mailboxd"))
        .arg("--socket")
        .arg(dir.join("mailboxd.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailboxd");
    let socket = dir.join("mailboxd.sock");
    wait_until("the broker answers", || {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "mailboxd refused a sticky directory"
        );
        UnixStream::connect(&socket).is_ok()
    });
    mailbox_tests::signal(child.id(), libc::SIGTERM);
    assert!(child.wait().expect("wait").success());
    assert!(!socket.exists(), "it removed its own socket");
}

#[test]
fn a_socket_directory_owned_by_another_user_is_refused() {
    // We are root in the tests: a directory of nobody (65534) is one whose
    // owner could swap the socket of a root broker.
    let base = tempfile::tempdir().expect("temp dir");
    let dir = base.path().join("nobodys");
    std::fs::create_dir(&dir).expect("mkdir");
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown to nobody");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_refused(&refused_start(&dir), &dir, "belongs to uid 65534");
}

#[test]
fn a_broker_leaves_another_brokers_socket_at_its_path_on_exit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("mailboxd.sock");
    let start = |stderr: Stdio| {
        let child = Command::new(binary("mailboxd"))
            .arg("--socket")
            .arg(&socket)
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn mailboxd");
        wait_until("the broker answers", || {
            UnixStream::connect(&socket).is_ok()
        });
        child
    };
    let first = start(Stdio::piped());
    // Its socket file goes (deleted by hand, say), and a second broker
    // binds the same path.
    std::fs::remove_file(&socket).expect("remove the first socket");
    let mut second = start(Stdio::null());

    mailbox_tests::signal(first.id(), libc::SIGTERM);
    let output = first.wait_with_output().expect("the first broker exits");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {log}", output.status);
    assert!(log.contains("left the socket path alone"), "{log}");
    assert!(socket.exists(), "the second broker's socket is still there");
    UnixStream::connect(&socket).expect("the second broker still answers");

    mailbox_tests::signal(second.id(), libc::SIGTERM);
    assert!(second.wait().expect("wait").success());
    assert!(!socket.exists(), "the second broker removed its own socket");
}
