//! Every documented `mailboxctl` exit code, produced by a real broker.

use mailbox_tests::{exit_code, stderr, Broker};

/// Each failure says what happened on exactly one stderr line.
fn assert_fails(output: &std::process::Output, expected: i32) {
    assert_eq!(exit_code(output), expected, "stderr: {}", stderr(output));
    let text = stderr(output);
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "one line on stderr: {text:?}"
    );
    assert!(text.starts_with("mailboxctl: "), "{text:?}");
}

#[test]
fn success_is_0() {
    let broker = Broker::start();
    let output = broker.run(&["create", "jobs"]);
    assert_eq!(exit_code(&output), 0);
}

#[test]
fn usage_error_is_2() {
    let broker = Broker::start();
    assert_eq!(exit_code(&broker.run(&["frobnicate"])), 2);
    assert_eq!(
        exit_code(&broker.run(&["create", "x", "--capacity", "lots"])),
        2
    );
    assert_eq!(
        exit_code(&broker.run(&["recv", "x", "--timeout", "soon"])),
        2
    );
}

#[test]
fn refused_message_or_bad_name_is_65() {
    let broker = Broker::start();
    assert_fails(&broker.run(&["create", "bad name"]), 65);
    broker.ok(&["create", "small", "--max-size", "4"]);
    assert_fails(&broker.run(&["send", "small", "too long"]), 65);
    broker.ok(&["create", "fixed", "--fixed-size", "3"]);
    assert_fails(&broker.run(&["send", "fixed", "four"]), 65);
    broker.ok(&["send", "fixed", "abc"]);
}

#[test]
fn no_such_mailbox_is_66() {
    let broker = Broker::start();
    assert_fails(&broker.run(&["send", "nowhere", "hi"]), 66);
    assert_fails(&broker.run(&["recv", "nowhere", "--nonblock"]), 66);
    assert_fails(&broker.run(&["info", "nowhere"]), 66);
    assert_fails(&broker.run(&["delete", "nowhere"]), 66);
}

#[test]
fn unreachable_broker_is_69() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("nobody.sock");
    let output = std::process::Command::new(mailbox_tests::binary("mailboxctl"))
        .arg("--socket")
        .arg(&socket)
        .arg("status")
        .output()
        .expect("run mailboxctl");
    assert_fails(&output, 69);
}

#[test]
fn mailbox_exists_with_other_settings_is_73() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs", "--capacity", "8"]);
    broker.ok(&["create", "jobs", "--capacity", "8"]);
    assert_fails(&broker.run(&["create", "jobs", "--capacity", "9"]), 73);
}

#[test]
fn would_block_is_75() {
    let broker = Broker::start();
    broker.ok(&["create", "one", "--capacity", "1"]);
    assert_fails(&broker.run(&["recv", "one", "--nonblock"]), 75);
    broker.ok(&["send", "one", "--nonblock", "first"]);
    assert_fails(&broker.run(&["send", "one", "--nonblock", "second"]), 75);
    broker.ok(&["create", "rendezvous", "--capacity", "zero"]);
    assert_fails(&broker.run(&["send", "rendezvous", "--nonblock", "x"]), 75);
    // Nothing refused was enqueued.
    assert_eq!(broker.info("one")["queued_messages"], 1);
    assert_eq!(broker.info("rendezvous")["queued_messages"], 0);
}

#[test]
fn timeout_is_124_and_a_timed_out_send_is_never_delivered() {
    let broker = Broker::start();
    broker.ok(&["create", "one", "--capacity", "1"]);
    assert_fails(&broker.run(&["recv", "one", "--timeout", "100ms"]), 124);
    broker.ok(&["send", "one", "kept"]);
    assert_fails(
        &broker.run(&["send", "one", "--timeout", "150ms", "withdrawn"]),
        124,
    );
    assert_eq!(broker.ok(&["recv", "one"]), "kept");
    assert_fails(&broker.run(&["recv", "one", "--timeout", "200ms"]), 124);
}

#[test]
fn anything_else_is_1() {
    let broker = Broker::start();
    broker.ok(&["create", "doomed"]);
    let waiting = broker.spawn(&["recv", "doomed"]);
    broker.wait_for_info("doomed", "waiting_receivers", 1);
    broker.ok(&["delete", "doomed"]);
    let output = waiting.finish();
    assert_fails(&output, 1);
    assert!(stderr(&output).contains("deleted"), "{}", stderr(&output));
}
