//! Which broker a client trusts, end to end: `mailboxctl` and the library
//! check who answers on the socket (root's broker, their own user's, or the
//! one named by `MAILBOX_BROKER_UID`/`--broker-uid`) before trusting it,
//! and a socket they may not open is reported as a permission problem
//! rather than a stopped broker.
//!
//! These tests run processes under `setpriv --reuid 65534` (util-linux);
//! they need root, and run as anyone else they say so and do nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use mailbox_client::{ConnectOptions, Error};
use mailbox_tests::configured_broker::{ConfiguredBroker, OPEN_SOCKET};
use mailbox_tests::other_users::{as_uid, root, shared_temp_dir, OTHER};
use mailbox_tests::{binary, exit_code, stderr, Broker};

/// A broker running as uid `OTHER`, its socket in a directory it owns.
fn broker_as_other() -> Broker {
    let dir = shared_temp_dir("mailbox-other-broker-");
    let run = dir.path().join("run");
    std::fs::create_dir(&run).expect("socket dir");
    std::os::unix::fs::chown(&run, Some(OTHER), Some(OTHER)).expect("chown socket dir");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = run.join("mailboxd.sock");
    let child = as_uid(OTHER, &binary("mailboxd"))
        .arg("--socket")
        .arg(&socket)
        .args(["--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailboxd as another user");
    Broker::adopt(child, socket, dir)
}

/// `mailboxctl --socket SOCKET list` as uid:gid `OTHER`, trusting whom it
/// trusts by default (no `MAILBOX_BROKER_UID`).
fn list_as_other(socket: &Path) -> Output {
    as_uid(OTHER, &binary("mailboxctl"))
        .arg("--socket")
        .arg(socket)
        .arg("list")
        .env_remove("MAILBOX_BROKER_UID")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv mailboxctl")
}

fn ctl(socket: &Path) -> Command {
    let mut command = Command::new(binary("mailboxctl"));
    command
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .env_remove("MAILBOX_BROKER_UID");
    command
}

// ---------------------------------------------------------------------------
// 12. Clients trust whoever answers.

#[test]
fn a_broker_of_another_user_is_refused_unless_named() {
    if !root() {
        return;
    }
    let broker = broker_as_other();
    let socket = broker.socket().to_owned();

    // Root does not trust a broker run by nobody: exit 78, nothing sent.
    let refused = ctl(&socket).arg("list").output().expect("mailboxctl");
    assert_eq!(exit_code(&refused), 78, "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(said.contains("runs as uid 65534"), "{said}");
    assert!(said.contains("MAILBOX_BROKER_UID=65534"), "{said}");
    // (The test process has no MAILBOX_BROKER_UID.)
    let refused = mailbox_client::blocking::Client::connect(&socket).expect_err("refused");
    assert!(
        matches!(refused, Error::UntrustedBroker { uid: OTHER, .. }),
        "{refused}"
    );

    // Named by the environment variable, by name or number, or the flag:
    // accepted.
    for (variable, flag) in [
        (Some("65534"), None),
        (Some("nobody"), None),
        (None, Some("nobody")),
    ] {
        let mut command = ctl(&socket);
        if let Some(value) = variable {
            command.env("MAILBOX_BROKER_UID", value);
        }
        if let Some(value) = flag {
            command.args(["--broker-uid", value]);
        }
        let accepted = command.arg("list").output().expect("mailboxctl");
        assert_eq!(exit_code(&accepted), 0, "{}", stderr(&accepted));
    }
    let options = ConnectOptions::new().broker_user(OTHER.to_string());
    mailbox_client::blocking::Client::connect_with(&socket, &options).expect("named: accepted");

    // Its own user trusts it by default.
    let own = list_as_other(&socket);
    assert_eq!(exit_code(&own), 0, "{}", stderr(&own));
}

#[test]
fn a_root_broker_is_trusted_by_everyone() {
    if !root() {
        return;
    }
    // The socket in a directory everyone may enter, open to everyone.
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    let output = list_as_other(setup.broker.socket());
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
}

// ---------------------------------------------------------------------------
// 19. A socket the user may not open.

#[test]
fn a_socket_behind_a_closed_directory_is_a_permission_problem() {
    if !root() {
        return;
    }
    // The socket in a directory of root's, mode 0700, in one everyone may
    // enter.
    let dir = shared_temp_dir("mailbox-closed-");
    let private = dir.path().join("private");
    std::fs::create_dir(&private).expect("private dir");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let socket = private.join("mailboxd.sock");
    let child = Command::new(binary("mailboxd"))
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailboxd");
    let broker = Broker::adopt(child, socket, dir);
    let output = list_as_other(broker.socket());
    assert_eq!(exit_code(&output), 69, "{}", stderr(&output));
    let said = stderr(&output);
    assert!(said.contains("permission problem"), "{said}");
    assert!(!said.contains("is the broker running"), "{said}");
    assert!(
        said.contains(&format!("directory {}", private.display())),
        "{said}"
    );
    assert!(said.contains("mode 0700"), "{said}");
}
