//! Opening a mailbox by name (`Client::open`), end to end: the side that
//! does not own a mailbox's settings learns them without restating them,
//! with the rights of `info`: its owner may, a stranger with a right on it
//! may, a stranger without one is refused, and a mailbox that does not exist
//! is `NoSuchMailbox`. Opening changes nothing.
//!
//! The library runs in `mailbox-peer open`; strangers run it under `setpriv
//! --reuid 65534 --regid 65534 --clear-groups` (util-linux), which needs
//! root: run as anyone else those tests say so and do nothing.

use std::process::{Command, Stdio};

use mailbox_tests::{binary, exit_code, require_tool, Broker};

/// The uid and gid of a stranger (nobody, nogroup).
const STRANGER: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// What `mailbox-peer open` says about `mailbox`, run as this test's uid or,
/// given `Some(uid)`, as that uid and gid.
fn open(broker: &Broker, mailbox: &str, as_uid: Option<u32>) -> String {
    let peer = binary("mailbox-peer");
    let mut command = match as_uid {
        None => Command::new(peer),
        Some(uid) => {
            let id = uid.to_string();
            let mut command = Command::new(require_tool("setpriv", "apt-get install util-linux"));
            command
                .args(["--reuid", &id, "--regid", &id, "--clear-groups"])
                .arg(peer);
            command
        }
    };
    let output = command
        .arg("open")
        .arg(broker.socket())
        .arg(mailbox)
        .arg("0")
        .stdin(Stdio::null())
        .output()
        .expect("run mailbox-peer open");
    assert_eq!(
        exit_code(&output),
        0,
        "mailbox-peer open {mailbox}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    stdout.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn the_owner_opens_its_mailbox_without_restating_its_settings() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs", "--capacity", "4", "--mode", "0700"]);
    assert_eq!(
        open(&broker, "jobs", None),
        "opened jobs owner 0 mode 700 capacity 4"
    );
    // Opening created and changed nothing.
    let info = broker.info("jobs");
    assert_eq!(info["mode"], "0700", "{info}");
    assert_eq!(open(&broker, "absent", None), "refused NoSuchMailbox");
    let listed = broker.ok(&["--json", "list"]);
    assert!(!listed.contains("absent"), "{listed}");
}

#[test]
fn a_stranger_opens_only_a_mailbox_it_has_a_right_on() {
    if !is_root() {
        eprintln!("skipped: needs root to run a client as uid {STRANGER}");
        return;
    }
    let broker = Broker::start_for_everyone();
    broker.ok(&["create", "jobs", "--capacity", "4", "--mode", "0700"]);

    // No right on it: refused as `info` would refuse it.
    assert_eq!(
        open(&broker, "jobs", Some(STRANGER)),
        "refused PermissionDenied"
    );
    let info = Command::new(require_tool("setpriv", "apt-get install util-linux"))
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(binary("mailboxctl"))
        .arg("--socket")
        .arg(broker.socket())
        .args(["info", "jobs"])
        .stdin(Stdio::null())
        .output()
        .expect("setpriv mailboxctl info");
    assert_eq!(exit_code(&info), 77, "info is refused alike");
    assert_eq!(
        open(&broker, "absent", Some(STRANGER)),
        "refused NoSuchMailbox"
    );

    // Given the receive right by the owner's mode: opened, settings known.
    broker.ok(&["chmod", "jobs", "0704"]);
    assert_eq!(
        open(&broker, "jobs", Some(STRANGER)),
        "opened jobs owner 0 mode 704 capacity 4"
    );
}
