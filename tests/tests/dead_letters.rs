//! Maximum deliveries, dead letters and time-to-live from the shell.

use mailbox_tests::{exit_code, json_lines, stderr, wait_until, Broker};

/// The one message in `mailbox`, as `recv --json` shows it.
fn take_json(broker: &Broker, mailbox: &str) -> serde_json::Value {
    let text = broker.ok(&["--json", "recv", mailbox, "--timeout", "5s"]);
    let mut messages = json_lines(text.as_bytes());
    assert_eq!(messages.len(), 1, "{text}");
    messages.remove(0)
}

#[test]
fn a_message_its_worker_always_fails_on_ends_in_the_dead_letter_mailbox() {
    let broker = Broker::start();
    broker.ok(&["create", "q.dead"]);
    broker.ok(&[
        "create",
        "q",
        "--max-deliveries",
        "2",
        "--dead-letter",
        "q.dead",
    ]);
    let sender = broker.spawn(&[
        "send",
        "q",
        "poison",
        "--wait",
        "acknowledged",
        "--timeout",
        "10s",
    ]);
    broker.wait_for_info("q", "queued_messages", 1);

    let mut worker = broker.spawn_group(&[
        "recv",
        "q",
        "--ack",
        "--exec",
        "cat >/dev/null; false",
        "--follow",
    ]);
    broker.wait_for_info("q.dead", "queued_messages", 1);
    // Waiting for the next message: it has said what it did with this one.
    broker.wait_for_info("q", "waiting_receivers", 1);
    assert!(worker.is_running());

    // The sender waiting for the acknowledgement learns it was dead-lettered.
    let sent = sender.finish();
    assert_eq!(exit_code(&sent), 1, "{}", stderr(&sent));
    assert!(stderr(&sent).contains("dead-lettered"), "{}", stderr(&sent));

    let info = broker.info("q");
    assert_eq!(info["queued_messages"], 0, "{info}");
    assert_eq!(info["in_flight"], 0, "{info}");
    assert_eq!(
        info["messages_delivered"], 2,
        "delivered twice, no more: {info}"
    );
    assert_eq!(info["messages_redelivered"], 1, "{info}");
    assert_eq!(info["messages_dead_lettered"], 1, "{info}");
    assert_eq!(info["messages_dropped"], 0, "{info}");

    let output = worker.stop(libc::SIGTERM);
    let notes = stderr(&output);
    // The command failed on both deliveries: the first was put back, the
    // second was the last one and went to the dead letters (not "put back").
    assert_eq!(notes.matches("it was put back").count(), 1, "{notes}");
    assert_eq!(
        notes
            .matches(
                "for message #1; that was its delivery 2 of at most 2 (--max-deliveries), \
                 so it was dead-lettered to q.dead"
            )
            .count(),
        1,
        "{notes}"
    );

    let dead = take_json(&broker, "q.dead");
    assert_eq!(dead["payload"], "poison", "{dead}");
    assert_eq!(dead["mailbox"], "q.dead", "{dead}");
    assert_eq!(dead["sequence"], 1, "restamped in q.dead: {dead}");
    assert_eq!(
        dead["dead_letter"],
        serde_json::json!({"mailbox": "q", "sequence": 1, "reason": "max deliveries"}),
        "{dead}"
    );
}

#[test]
fn an_expired_message_goes_to_the_dead_letter_mailbox_and_is_counted() {
    let broker = Broker::start();
    broker.ok(&["create", "t.dead"]);
    broker.ok(&["create", "t", "--ttl", "200ms", "--dead-letter", "t.dead"]);
    broker.ok(&["send", "t", "stale"]);
    // A sender waiting for a receiver learns that its message expired.
    let waiting = broker.run(&[
        "send",
        "t",
        "unread",
        "--wait",
        "received",
        "--timeout",
        "5s",
    ]);
    assert_eq!(exit_code(&waiting), 1, "{}", stderr(&waiting));
    assert!(stderr(&waiting).contains("expired"), "{}", stderr(&waiting));

    wait_until("both expired into t.dead", || {
        broker.info("t.dead")["queued_messages"] == 2
    });
    let info = broker.info("t");
    assert_eq!(info["queued_messages"], 0, "{info}");
    assert_eq!(info["messages_expired"], 2, "{info}");
    assert_eq!(info["messages_delivered"], 0, "never delivered: {info}");
    assert_eq!(exit_code(&broker.run(&["recv", "t", "--nonblock"])), 75);

    for (sequence, payload) in [(1, "stale"), (2, "unread")] {
        let dead = take_json(&broker, "t.dead");
        assert_eq!(dead["payload"], payload, "{dead}");
        assert_eq!(
            dead["dead_letter"],
            serde_json::json!({"mailbox": "t", "sequence": sequence, "reason": "expired"}),
            "{dead}"
        );
    }
}

#[test]
fn a_message_ttl_without_a_dead_letter_mailbox_drops_it() {
    let broker = Broker::start();
    broker.ok(&["create", "short"]);
    broker.ok(&["send", "short", "brief", "--ttl", "100ms"]);
    broker.ok(&["send", "short", "lasting"]);
    wait_until("the brief one expired", || {
        broker.info("short")["messages_expired"] == 1
    });
    let info = broker.info("short");
    assert_eq!(info["messages_dropped"], 1, "{info}");
    assert_eq!(info["queued_messages"], 1, "{info}");
    assert_eq!(broker.ok(&["recv", "short"]), "lasting");
}
