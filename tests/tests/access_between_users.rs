//! Access between users, end to end: a real `mailboxd` started with
//! `--config`, and `mailboxctl` run as root and as other uids: rights from a
//! mailbox's owner, group and mode, the admin group, reserved names and
//! prefixes, inboxes, dead letters, and what a stranger may see or do.
//!
//! Clients of other uids run under `setpriv --reuid 65534 --regid 65534
//! --clear-groups` (util-linux). For them to reach the broker, each test's
//! directory is world-accessible, the socket's mode comes from the
//! configuration (`0666`), and `mailboxctl` is linked or copied into the
//! directory (the target directory may not be reachable by other users).
//! Those tests need root; run as anyone else they say so and do nothing.

use std::io::Read;
use std::process::Stdio;

use mailbox_tests::configured_broker::{ConfiguredBroker, OPEN_SOCKET};
use mailbox_tests::other_users::{root, OTHER};
use mailbox_tests::{assert_exit, stderr, wait_until, Broker};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Access control across uids.

#[test]
fn others_without_rights_are_refused_and_change_nothing() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    setup.broker.ok(&["create", "secret"]);
    setup.broker.ok(&["send", "secret", "for root"]);
    let before = setup.broker.info("secret");
    assert_eq!(before["mode"], "0760");
    assert_eq!(before["owner_uid"], 0);

    for args in [
        &["send", "secret", "intruder"][..],
        &["recv", "secret", "--nonblock"],
        &["delete", "secret"],
        &["info", "secret"],
        &["purge", "secret"],
        &["chmod", "secret", "0777"],
        &["chown", "secret", "65534"],
    ] {
        let output = setup.as_other(args);
        assert_exit(&output, 77, &format!("{args:?} as uid 65534"));
        let said = stderr(&output);
        assert!(said.contains("permission denied"), "{said}");
        assert!(said.contains("uid 65534"), "{said}");
    }
    let after = setup.broker.info("secret");
    assert_eq!(before, after, "nothing changed");
    assert_eq!(
        setup.broker.ok(&["recv", "secret", "--nonblock"]),
        "for root"
    );
    setup.wait_for_log("permission denied", 7);
}

#[test]
fn chmod_gives_others_exactly_the_rights_of_its_mode() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    setup.broker.ok(&["create", "inbox"]);
    // 0762: others may send (2), not receive (4) or manage (1).
    let changed = setup.broker.ok(&["chmod", "inbox", "0762", "-v"]);
    assert!(changed.contains("0762"), "{changed}");
    assert_eq!(setup.broker.info("inbox")["mode"], "0762");
    assert_exit(&setup.as_other(&["send", "inbox", "hello"]), 0, "send");
    assert_exit(&setup.as_other(&["info", "inbox"]), 0, "info");
    assert_exit(
        &setup.as_other(&["recv", "inbox", "--nonblock"]),
        77,
        "recv",
    );
    assert_exit(&setup.as_other(&["delete", "inbox"]), 77, "delete");
    assert_exit(&setup.as_other(&["purge", "inbox"]), 77, "purge");
    assert_eq!(setup.broker.info("inbox")["queued_messages"], 1);

    // 0766: others may send and receive (6), still not manage.
    setup.broker.ok(&["chmod", "inbox", "0766"]);
    assert_eq!(
        setup.as_other(&["recv", "inbox", "--nonblock"]).stdout,
        b"hello"
    );
    assert_exit(&setup.as_other(&["send", "inbox", "again"]), 0, "send");
    assert_exit(&setup.as_other(&["delete", "inbox"]), 77, "delete");
    assert_exit(&setup.as_other(&["chmod", "inbox", "0777"]), 77, "chmod");

    // 0761: others may manage (1) but not send or receive.
    setup.broker.ok(&["chmod", "inbox", "0761"]);
    assert_exit(&setup.as_other(&["send", "inbox", "x"]), 77, "send");
    assert_exit(&setup.as_other(&["purge", "inbox"]), 0, "purge");
    assert_eq!(setup.broker.info("inbox")["queued_messages"], 0);

    // Root purges: the queue empties, the mailbox stays.
    setup.broker.ok(&["send", "inbox", "one"]);
    setup.broker.ok(&["send", "inbox", "two"]);
    let purged = setup.broker.ok(&["--json", "purge", "inbox"]);
    let purged: Value = serde_json::from_str(purged.trim()).expect("json");
    assert_eq!(purged["purged"], 2);
    assert_eq!(setup.broker.info("inbox")["queued_messages"], 0);
    assert_exit(
        &setup.as_other(&["delete", "inbox"]),
        0,
        "delete with manage",
    );
    assert!(!setup.exists("inbox"));
}

#[test]
fn a_mailbox_belongs_to_its_creator_and_root_may_do_everything() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    assert_exit(
        &setup.as_other(&["create", "mine", "--mode", "0700"]),
        0,
        "create as uid 65534",
    );
    let mine = setup.broker.info("mine");
    assert_eq!(mine["owner_uid"], OTHER, "{mine}");
    assert_eq!(mine["group_gid"], OTHER, "{mine}");
    assert_eq!(mine["mode"], "0700", "{mine}");
    // Its owner may use and manage it.
    assert_exit(&setup.as_other(&["send", "mine", "a"]), 0, "owner sends");
    assert_exit(
        &setup.as_other(&["chmod", "mine", "0760"]),
        0,
        "owner chmods",
    );
    // Root may do everything, whatever the mode.
    setup.broker.ok(&["chmod", "mine", "0000"]);
    setup.broker.ok(&["send", "mine", "b"]);
    assert_eq!(setup.broker.ok(&["recv", "mine", "--count", "2"]), "ab");
    setup.broker.ok(&["chown", "mine", "root:100"]);
    let mine = setup.broker.info("mine");
    assert_eq!(mine["owner_uid"], 0, "{mine}");
    assert_eq!(mine["group_gid"], 100, "{mine}");
    // No longer its owner's: mode 0000 leaves uid 65534 nothing.
    assert_exit(
        &setup.as_other(&["delete", "mine"]),
        77,
        "former owner deletes",
    );
    setup.broker.ok(&["chown", "mine", ":nogroup"]);
    assert_eq!(setup.broker.info("mine")["group_gid"], 65534);
    setup.broker.ok(&["delete", "mine"]);
    assert!(!setup.exists("mine"));

    // create --group, by root.
    setup
        .broker
        .ok(&["create", "shared", "--mode", "0770", "--group", "100"]);
    let shared = setup.broker.info("shared");
    assert_eq!(shared["group_gid"], 100, "{shared}");
    assert_eq!(shared["mode"], "0770", "{shared}");
    // Unknown users and groups are usage errors, before anything is sent.
    let output = setup.broker.run(&["chown", "shared", "no-such-user-here"]);
    assert_exit(&output, 2, "chown to an unknown user");
    assert!(
        stderr(&output).contains("no user named"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_admin_group_may_manage_every_mailbox_but_not_read_it() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(
        &format!("{OPEN_SOCKET}\n[access]\nadmin_group = 4242\n"),
        &[],
    );
    setup.broker.ok(&["create", "private"]);
    setup.broker.ok(&["chmod", "private", "0700"]);
    setup.broker.ok(&["send", "private", "x"]);
    // uid 65533 with 4242 as a supplementary group: an administrator.
    let admin = ["--reuid", "65533", "--regid", "100", "--groups", "4242"];
    assert_exit(
        &setup.as_user(&admin, &["recv", "private", "--nonblock"]),
        77,
        "admin receives",
    );
    assert_exit(
        &setup.as_user(&admin, &["send", "private", "y"]),
        77,
        "admin sends",
    );
    // The same uid without the group may not delete.
    let plain = ["--reuid", "65533", "--regid", "100", "--clear-groups"];
    assert_exit(
        &setup.as_user(&plain, &["delete", "private"]),
        77,
        "non-admin deletes",
    );
    assert_exit(
        &setup.as_user(&admin, &["delete", "private"]),
        0,
        "admin deletes",
    );
    assert!(!setup.exists("private"));
}

#[test]
fn a_reserved_name_is_refused_to_other_uids() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(
        &format!("{OPEN_SOCKET}\n[access.names]\n\"org.example.svc\" = [\"root\"]\n"),
        &[],
    );
    let output = setup.as_other(&["--as", "org.example.svc", "names"]);
    assert_exit(&output, 77, "uid 65534 claims a name reserved to root");
    assert!(stderr(&output).contains("reserved"), "{}", stderr(&output));
    // A free name is fine; root may claim the reserved one.
    assert_exit(
        &setup.as_other(&["--as", "free.name", "names"]),
        0,
        "free name",
    );
    let names = setup.broker.ok(&["--as", "org.example.svc", "names"]);
    assert!(names.contains("org.example.svc"), "{names}");
}

// ---------------------------------------------------------------------------
// What one user can do to another.

#[test]
fn creating_a_mailbox_a_stranger_made_fails_and_leaves_it_as_it_was() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    assert_exit(
        &setup.as_other(&["create", "payroll", "--mode", "0777"]),
        0,
        "nobody creates payroll first",
    );
    let output = setup.broker.run(&["create", "payroll", "--mode", "0700"]);
    assert_exit(&output, 73, "root creates payroll second");
    let said = stderr(&output);
    assert!(said.contains("belongs to uid 65534"), "{said}");
    let payroll = setup.broker.info("payroll");
    assert_eq!(payroll["owner_uid"], OTHER, "{payroll}");
    assert_eq!(payroll["mode"], "0777", "{payroll}");

    // The other way round, a stranger learns the owner, not the settings.
    setup
        .broker
        .ok(&["create", "secret", "--capacity", "7", "--mode", "0700"]);
    let output = setup.as_other(&["create", "secret"]);
    assert_exit(&output, 73, "nobody creates root's secret");
    let said = stderr(&output);
    assert!(said.contains("belongs to uid 0"), "{said}");
    assert!(!said.contains("capacity"), "{said}");
    assert!(!said.contains("0700"), "{said}");

    // Its owner creating again gets its mailbox, with the mode it asks for.
    setup
        .broker
        .ok(&["create", "secret", "--capacity", "7", "--mode", "0760"]);
    assert_eq!(setup.broker.info("secret")["mode"], "0760");
}

#[test]
fn reserved_prefixes_keep_names_for_their_holders() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(
        &format!("{OPEN_SOCKET}\n[access.reserved_prefixes]\n\"payroll.\" = \"root\"\n"),
        &[],
    );
    let output = setup.as_other(&["create", "payroll.jobs"]);
    assert_exit(&output, 77, "nobody squats payroll.jobs");
    assert!(stderr(&output).contains("reserved"), "{}", stderr(&output));
    assert_exit(
        &setup.as_other(&["--as", "payroll.svc", "names"]),
        77,
        "nobody claims payroll.svc",
    );
    assert!(!setup.exists("payroll.jobs"));
    setup.broker.ok(&["create", "payroll.jobs"]);
    assert_exit(
        &setup.as_other(&["create", "payrolls"]),
        0,
        "a name outside the prefix",
    );
}

#[test]
fn dead_letters_never_move_into_a_strangers_mailbox() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    // Writing into root's mailbox through a dead-letter setting.
    setup.broker.ok(&["create", "rootonly", "--mode", "0700"]);
    let output = setup.as_other(&[
        "create",
        "nbjobs",
        "--max-deliveries",
        "1",
        "--dead-letter",
        "rootonly",
    ]);
    assert_exit(
        &output,
        77,
        "nobody points its dead letters at root's mailbox",
    );
    assert!(!setup.exists("nbjobs"));

    // Reading root's failed messages by creating its dead-letter mailbox.
    setup.broker.ok(&[
        "create",
        "rjobs",
        "--ttl",
        "100ms",
        "--dead-letter",
        "rjobs.dead",
    ]);
    assert_exit(
        &setup.as_other(&["create", "rjobs.dead", "--mode", "0700"]),
        0,
        "nobody creates rjobs.dead",
    );
    setup.broker.ok(&["send", "rjobs", "salary of alice"]);
    wait_until("the message expires", || {
        setup.broker.info("rjobs")["messages_dropped"] == 1
    });
    assert_exit(
        &setup.as_other(&["recv", "rjobs.dead", "--nonblock"]),
        75,
        "nothing reached the stranger",
    );
    assert_eq!(setup.broker.info("rjobs")["messages_dead_lettered"], 0);
    setup.wait_for_log("dead letter refused", 1);
}

#[test]
fn a_group_is_given_only_by_its_members_and_an_owner_always_manages() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    assert_exit(&setup.as_other(&["create", "mine"]), 0, "create");
    let output = setup.as_other(&["chown", "mine", ":0"]);
    assert_exit(&output, 77, "nobody gives its mailbox to group root");
    assert!(
        stderr(&output).contains("not a member"),
        "{}",
        stderr(&output)
    );
    assert_eq!(setup.broker.info("mine")["group_gid"], OTHER);
    // Mode 0000 takes the owner's own rights away, but not managing them.
    assert_exit(&setup.as_other(&["chmod", "mine", "0000"]), 0, "chmod 0");
    assert_exit(&setup.as_other(&["send", "mine", "x"]), 77, "send at 0000");
    assert_exit(&setup.as_other(&["chmod", "mine", "0700"]), 0, "chmod back");
    assert_exit(&setup.as_other(&["send", "mine", "x"]), 0, "send at 0700");
}

#[test]
fn an_inbox_takes_only_its_own_uid_until_its_owner_opens_it() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    let mut closed = setup
        .broker
        .ctl()
        .args(["--as", "svc.closed", "recv", "--inbox", "--timeout", "20s"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn receiver");
    let mut open = setup
        .broker
        .ctl()
        .args([
            "--as",
            "svc.open",
            "--inbox-mode",
            "0622",
            "recv",
            "--inbox",
            "--timeout",
            "20s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn receiver");
    wait_until("both names are claimed", || {
        let names = setup.broker.ok(&["names"]);
        names.contains("svc.closed") && names.contains("svc.open")
    });
    let output = setup.as_other(&["send", "--to", "svc.closed", "flood"]);
    assert_exit(&output, 77, "nobody sends to a closed inbox");
    assert!(stderr(&output).contains("inbox"), "{}", stderr(&output));
    assert_exit(
        &setup.as_other(&["send", "--to", "svc.open", "welcome"]),
        0,
        "nobody sends to an opened inbox",
    );
    // Root may always send.
    setup
        .broker
        .ok(&["send", "--to", "svc.closed", "from root"]);
    let mut got = String::new();
    closed
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut got)
        .expect("read");
    assert_eq!(got, "from root");
    assert!(closed.wait().expect("wait").success());
    let mut got = String::new();
    open.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut got)
        .expect("read");
    assert_eq!(got, "welcome");
    assert!(open.wait().expect("wait").success());
}

#[test]
fn a_receive_from_a_name_takes_a_strangers_message_only_through_an_opened_inbox() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    // `mailboxctl --as NAME [OPTIONS] --json recv --inbox --from alice`.
    let wait_for_alice = |name: &str, options: &[&str]| {
        let recv = [
            "--json",
            "recv",
            "--inbox",
            "--from",
            "alice",
            "--timeout",
            "20s",
        ];
        setup
            .broker
            .ctl()
            .args(["--as", name])
            .args(options)
            .args(recv)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn receiver")
    };
    // The one message a receiver printed, once it exited with success.
    let printed = |mut receiver: std::process::Child| {
        let mut got = String::new();
        receiver
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut got)
            .expect("read");
        assert!(receiver.wait().expect("wait").success());
        serde_json::from_str::<Value>(got.trim()).expect("one JSON message")
    };
    // Both wait for alice before anyone holds the name.
    let mut closed = wait_for_alice("svc.closed", &[]);
    let open = wait_for_alice("svc.open", &["--inbox-mode", "0622"]);
    wait_until("both names are claimed", || {
        let names = setup.broker.ok(&["names"]);
        names.contains("svc.closed") && names.contains("svc.open")
    });
    // Another uid as alice: refused by the closed inbox, taken by the open one.
    let output = setup.as_other(&["--as", "alice", "send", "--to", "svc.closed", "x"]);
    assert_exit(&output, 77, "nobody as alice sends to a closed inbox");
    assert_exit(
        &setup.as_other(&["--as", "alice", "send", "--to", "svc.open", "welcome"]),
        0,
        "nobody as alice sends to an opened inbox",
    );
    let message = printed(open);
    assert_eq!(message["payload"], "welcome", "{message}");
    assert_eq!(message["sender_uid"], OTHER, "{message}");
    // The refused send left nothing: the closed inbox still waits for alice.
    assert!(closed.try_wait().expect("try_wait").is_none());
    setup
        .broker
        .ok(&["--as", "alice", "send", "--to", "svc.closed", "from root"]);
    assert_eq!(printed(closed)["payload"], "from root");
}

#[test]
fn a_key_with_control_characters_is_refused_at_the_door() {
    let broker = Broker::start();
    broker.ok(&["create", "h", "--policy", "hash"]);
    for key in ["a\u{1}b", "tab\there", &"k".repeat(256)] {
        let output = broker.run(&["send", "h", "x", "--key", key]);
        assert_exit(&output, 65, &format!("key {key:?}"));
    }
    assert_eq!(broker.info("h")["messages_accepted"], 0);
    broker.ok(&["send", "h", "x", "--key", "région-7"]);
    assert_eq!(broker.info("h")["messages_accepted"], 1);
}

#[test]
fn a_strangers_paged_listing_shows_only_what_it_has_a_right_on() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    setup.broker.ok(&["create", "secret", "--mode", "0700"]);
    setup.broker.ok(&["create", "open", "--mode", "0766"]);
    // `list` reads the paged listing (ListMailboxPage) to its end.
    let output = setup.as_other(&["list"]);
    assert_exit(&output, 0, "list as uid 65534");
    let listed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(listed.contains("open"), "{listed}");
    assert!(!listed.contains("secret"), "{listed}");
}
