//! How `mailboxctl` writes what it received and what it did: the exact
//! bytes into a pipe, `--raw`, `--delimiter` and `-0` between messages, and
//! one convention for confirmations (quiet on success, the receipt with
//! `-v` or `--json`). The terminal's newline rule is a unit test of
//! `cli/src/output/payload.rs` (no pty here).

use mailbox_tests::{json_lines, Broker};

/// A broker with mailbox `feed` holding `messages`, in order.
fn feed(messages: &[&str]) -> Broker {
    let broker = Broker::start();
    broker.ok(&["create", "feed"]);
    for message in messages {
        broker.ok(&["send", "feed", message]);
    }
    broker
}

#[test]
fn recv_into_a_pipe_writes_the_exact_bytes_with_nothing_added() {
    let broker = feed(&["to everyone", "a line\n", ""]);
    let output = broker.run(&["recv", "feed", "--count", "3"]);
    assert!(output.status.success());
    assert_eq!(output.stdout, b"to everyonea line\n");
}

#[test]
fn recv_null_and_delimiter_put_their_bytes_after_every_message() {
    let broker = feed(&["one", "two\n", "three", "four", "five"]);
    let output = broker.run(&["recv", "feed", "--count", "2", "-0"]);
    assert_eq!(output.stdout, b"one\0two\n\0");
    let output = broker.run(&["recv", "feed", "--count", "2", "--delimiter", "\\n--\\n"]);
    assert_eq!(output.stdout, b"three\n--\nfour\n--\n");
    let output = broker.run(&["recv", "feed", "--raw"]);
    assert_eq!(output.stdout, b"five");
}

#[test]
fn broadcast_subscribers_with_a_newline_delimiter_print_one_message_a_line() {
    let broker = Broker::start();
    broker.ok(&[
        "create",
        "news",
        "--policy",
        "broadcast",
        "--capacity",
        "16",
    ]);
    let subscriber = broker.spawn(&["recv", "news", "--count", "2", "--delimiter", "\\n"]);
    mailbox_tests::wait_until("the subscriber subscribed", || {
        broker.info("news")["subscribers"] == 1
    });
    broker.ok(&["send", "news", "to everyone"]);
    broker.ok(&["send", "news", "to everyone"]);
    let output = subscriber.finish();
    assert!(output.status.success());
    assert_eq!(output.stdout, b"to everyone\nto everyone\n");
}

#[test]
fn call_takes_the_same_delimiters_for_its_reply() {
    let broker = Broker::start();
    broker.ok(&["create", "upper"]);
    let _handler = broker.spawn_group(&["recv", "upper", "--exec", "tr a-z A-Z", "--follow"]);
    let reply = broker.run(&["call", "upper", "hello", "--timeout", "20s", "-0"]);
    assert!(reply.status.success(), "{reply:?}");
    assert_eq!(reply.stdout, b"HELLO\0");
}

#[test]
fn framing_flags_are_refused_with_json_and_exec() {
    let broker = feed(&["kept"]);
    for args in [
        &["--json", "recv", "feed", "-0"][..],
        &["recv", "feed", "--exec", "cat", "--raw"][..],
        &["recv", "feed", "--raw", "--null"][..],
    ] {
        let output = broker.run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    assert_eq!(broker.info("feed")["queued_messages"], 1, "nothing taken");
}

#[test]
fn commands_that_change_something_are_quiet_on_success() {
    let broker = Broker::start();
    for args in [
        &["create", "jobs"][..],
        &["create", "jobs"][..],
        &["send", "jobs", "x"][..],
        &["chmod", "jobs", "0762"][..],
        &["chown", "jobs", "0:0"][..],
        &["purge", "jobs"][..],
        &["delete", "jobs"][..],
    ] {
        assert_eq!(broker.ok(args), "", "{args:?} prints nothing");
    }
}

#[test]
fn verbose_prints_the_receipt_as_text_and_json_as_an_object() {
    let broker = Broker::start();
    let receipts = [
        (&["create", "jobs", "-v"][..], "created jobs\n"),
        (
            &["create", "jobs", "--verbose"][..],
            "jobs already exists with the same settings\n",
        ),
        (
            &["send", "jobs", "x", "-v"][..],
            "sent #1 to mailbox jobs (1 recipient)\n",
        ),
        (
            &["chmod", "jobs", "0762", "-v"][..],
            "mode of jobs is now 0762\n",
        ),
        (
            &["purge", "jobs", "-v"][..],
            "purged 1 queued message from jobs\n",
        ),
        (&["delete", "jobs", "-v"][..], "deleted jobs\n"),
    ];
    for (args, receipt) in receipts {
        assert_eq!(broker.ok(args), receipt, "{args:?}");
    }
    broker.ok(&["create", "jobs"]);
    let sent = json_lines(broker.ok(&["--json", "send", "jobs", "y"]).as_bytes());
    assert_eq!(sent[0]["sequence"], 1);
    assert_eq!(sent[0]["recipients"], 1);
    let deleted = json_lines(broker.ok(&["--json", "delete", "jobs"]).as_bytes());
    assert_eq!(deleted[0]["deleted"], true);
}

#[test]
fn failures_say_each_thing_once() {
    let broker = Broker::start();
    let output = broker.run(&["send", "--to", "nobody", "hi"]);
    assert_eq!(output.status.code(), Some(68));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "mailboxctl: no process named nobody is connected; start it first, or see the \
         claimed names with `mailboxctl names`\n"
    );
}

#[test]
fn status_shows_every_limit_in_force_for_people_and_exact_in_json() {
    let broker = Broker::start_with(&["--frame-timeout", "1.5s", "--max-buffered-bytes", "96M"]);
    let text = broker.ok(&["status", "--interval", "0"]);
    let shown = |name: &str| -> String {
        text.lines()
            .find_map(|line| {
                let line = line.strip_prefix("  ")?;
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no limit {name} in\n{text}"))
    };
    // The server's own settings are there too, as people write them.
    assert_eq!(shown("frame_timeout"), "1.5s");
    assert_eq!(shown("handshake_timeout"), "10s");
    assert_eq!(shown("write_timeout"), "30s");
    assert_eq!(shown("max_buffered_bytes"), "96 MiB");
    assert_eq!(shown("memory_budget"), "1 GiB");
    assert_eq!(shown("max_connections_per_uid"), "1024");
    for name in [
        "max_frame_size",
        "max_unread_reply_bytes",
        "max_buffered_bytes_per_uid",
        "max_message_size",
    ] {
        assert!(
            shown(name).ends_with("iB") || shown(name).contains("bytes"),
            "{name}"
        );
    }
    assert!(!text.contains("18446744073709551615"), "{text}");

    let status = json_lines(
        broker
            .ok(&["--json", "status", "--interval", "0"])
            .as_bytes(),
    );
    let limits = &status[0]["limits"];
    assert_eq!(limits["frame_timeout_millis"], 1500, "{limits}");
    assert_eq!(limits["handshake_timeout_millis"], 10_000, "{limits}");
    assert_eq!(limits["max_buffered_bytes"], 96 << 20, "{limits}");
    assert_eq!(limits["memory_budget"], 1 << 30, "{limits}");
    assert!(limits["max_frame_size"].as_u64().is_some(), "{limits}");
    assert!(
        limits["max_unread_reply_bytes"].as_u64().is_some(),
        "{limits}"
    );
}

#[test]
fn info_names_the_owner_and_group_and_shows_sizes_for_people() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs", "--max-size", "64K", "--ttl", "1.5s"]);
    let text = broker.ok(&["info", "jobs"]);
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    // Each by its name (where it has one), then its id.
    let named = |key: &str, id: u32| -> String {
        let line = text
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in\n{text}"));
        assert!(line.ends_with(&format!(" ({id})")), "{line}");
        line.to_owned()
    };
    let owner = named("owner: ", uid);
    named("group: ", gid);
    if uid == 0 {
        assert_eq!(owner, "owner: root (0)");
    }
    for line in [
        "max message size: 64 KiB",
        "fixed size: none",
        "time to live: 1.5s",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
    let info = broker.info("jobs");
    assert!(info["owner"].is_string(), "{info}");
    assert_eq!(info["owner_uid"], uid);
    assert_eq!(info["max_message_size"], 65_536);
}
