//! Opening a mailbox by name (`Client::open`, `open_timeout`), end to end:
//! the side that does not own a mailbox's settings learns them without
//! restating them, with the rights of `info`: its owner may, a stranger with
//! a right on it may, a stranger without one is refused, and a mailbox that
//! does not exist is `NoSuchMailbox`. Opening changes nothing. An open that
//! may wait is answered when the mailbox is created, by its owner or by the
//! configuration at a reload, or times out.
//!
//! The library runs in `mailbox-peer open` and `open-wait`; strangers run it under `setpriv
//! --reuid 65534 --regid 65534 --clear-groups` (util-linux), which needs
//! root: run as anyone else those tests say so and do nothing.

use std::process::{Command, Output, Stdio};

use mailbox_client::blocking::Client;
use mailbox_tests::configured_broker::{ConfiguredBroker, OPEN_SOCKET};
use mailbox_tests::other_users;
use mailbox_tests::{binary, exit_code, signal, wait_until, Broker, Running};

/// The uid and gid of a stranger (nobody, nogroup).
const STRANGER: u32 = 65534;

/// This test's uid, the owner of what it creates.
fn own_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// What `mailbox-peer open` says about `mailbox`, run as this test's uid or,
/// given `Some(uid)`, as that uid and gid.
fn open(broker: &Broker, mailbox: &str, as_uid: Option<u32>) -> String {
    let peer = binary("mailbox-peer");
    let mut command = match as_uid {
        None => Command::new(peer),
        Some(uid) => other_users::as_uid(uid, &peer),
    };
    let output = command
        .arg("open")
        .arg(broker.socket())
        .arg(mailbox)
        .arg("0")
        .stdin(Stdio::null())
        .output()
        .expect("run mailbox-peer open");
    first_line(mailbox, &output)
}

/// The first line `mailbox-peer` printed about `mailbox`, which must have
/// exited 0.
fn first_line(mailbox: &str, output: &Output) -> String {
    assert_eq!(
        exit_code(output),
        0,
        "mailbox-peer open {mailbox}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn the_owner_opens_its_mailbox_without_restating_its_settings() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs", "--capacity", "4", "--mode", "0700"]);
    assert_eq!(
        open(&broker, "jobs", None),
        format!("opened jobs owner {} mode 700 capacity 4", own_uid())
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
    if !other_users::root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    let broker = &setup.broker;
    broker.ok(&["create", "jobs", "--capacity", "4", "--mode", "0700"]);

    // No right on it: refused as `info` would refuse it.
    assert_eq!(
        open(broker, "jobs", Some(STRANGER)),
        "refused PermissionDenied"
    );
    let info = setup.as_uid(STRANGER, &["info", "jobs"]);
    assert_eq!(exit_code(&info), 77, "info is refused alike");
    assert_eq!(
        open(broker, "absent", Some(STRANGER)),
        "refused NoSuchMailbox"
    );

    // Given the receive right by the owner's mode: opened, settings known.
    broker.ok(&["chmod", "jobs", "0704"]);
    assert_eq!(
        open(broker, "jobs", Some(STRANGER)),
        "opened jobs owner 0 mode 704 capacity 4"
    );
}

/// Starts `mailbox-peer open-wait MAILBOX` (waiting up to 20 s for it), and
/// returns once the broker counts its connection beside `watcher`'s.
fn open_waiting(broker: &Broker, watcher: &mut Client, mailbox: &str) -> Running {
    let child = Command::new(binary("mailbox-peer"))
        .arg("open-wait")
        .arg(broker.socket())
        .arg(mailbox)
        .arg("20000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailbox-peer open-wait");
    let opener = Running::from_child(child);
    wait_until("the opener is connected", || {
        watcher.status().expect("status").connections == 2
    });
    opener
}

#[test]
fn an_open_waits_for_the_mailbox_its_owner_creates_later() {
    let broker = Broker::start();
    let mut watcher = Client::connect(broker.socket()).expect("connect");
    let mut opener = open_waiting(&broker, &mut watcher, "jobs");
    assert!(opener.is_running(), "no mailbox yet: the open waits");
    broker.ok(&["create", "jobs", "--capacity", "4", "--mode", "0740"]);
    assert_eq!(
        first_line("jobs", &opener.finish()),
        format!("opened jobs owner {} mode 740 capacity 4", own_uid())
    );

    let timed_out = Command::new(binary("mailbox-peer"))
        .args(["open-wait"])
        .arg(broker.socket())
        .args(["absent", "100"])
        .stdin(Stdio::null())
        .output()
        .expect("run mailbox-peer open-wait");
    assert_eq!(first_line("absent", &timed_out), "refused Timeout");
    let names: Vec<String> = watcher
        .list()
        .expect("list")
        .into_iter()
        .map(|info| info.name)
        .collect();
    assert_eq!(names, ["jobs"], "waiting created nothing");
}

#[test]
fn an_open_waits_for_a_mailbox_the_configuration_declares_at_a_reload() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("mailboxd.toml");
    std::fs::write(&config, "").expect("write config");
    let config_arg = config.to_str().expect("utf-8 path");
    let broker = Broker::start_with(&["--config", config_arg]);
    let mut watcher = Client::connect(broker.socket()).expect("connect");
    let mut opener = open_waiting(&broker, &mut watcher, "jobs");
    assert!(opener.is_running(), "no mailbox yet: the open waits");
    std::fs::write(&config, "[[mailbox]]\nname = \"jobs\"\n").expect("rewrite config");
    signal(broker.pid(), libc::SIGHUP);
    let said = first_line("jobs", &opener.finish());
    assert!(
        said.starts_with(&format!("opened jobs owner {} mode ", own_uid())),
        "{said}"
    );
}
