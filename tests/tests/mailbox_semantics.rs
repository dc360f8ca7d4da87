//! The textbook semantics across real processes: blocking producers,
//! rendezvous, round-robin and broadcast delivery, disconnects.

use std::collections::BTreeSet;

use mailbox_tests::{wait_until, Broker};

#[test]
fn a_producer_blocks_while_the_bounded_mailbox_is_full() {
    let broker = Broker::start();
    broker.ok(&["create", "buffer", "--capacity", "2"]);
    broker.ok(&["send", "buffer", "m1"]);
    broker.ok(&["send", "buffer", "m2"]);
    let mut producer = broker.spawn(&["send", "buffer", "m3"]);
    broker.wait_for_info("buffer", "waiting_senders", 1);
    assert!(
        producer.is_running(),
        "the producer must wait while the mailbox is full"
    );
    assert_eq!(broker.info("buffer")["queued_messages"], 2);

    assert_eq!(broker.ok(&["recv", "buffer"]), "m1");
    let output = producer.finish();
    assert!(output.status.success());
    assert_eq!(broker.ok(&["recv", "buffer"]), "m2");
    assert_eq!(broker.ok(&["recv", "buffer"]), "m3");
}

#[test]
fn a_rendezvous_send_completes_only_when_a_receiver_takes_it() {
    let broker = Broker::start();
    broker.ok(&["create", "meet", "--capacity", "zero"]);
    let mut sender = broker.spawn(&["--json", "send", "meet", "hello"]);
    broker.wait_for_info("meet", "waiting_senders", 1);
    assert!(sender.is_running());
    assert_eq!(broker.info("meet")["queued_messages"], 0);

    let received = broker.ok(&["--json", "recv", "meet"]);
    let received: serde_json::Value = serde_json::from_str(received.trim()).expect("json");
    let sent = sender.finish();
    assert!(sent.status.success());
    let sent: serde_json::Value =
        serde_json::from_slice(&sent.stdout).expect("send prints its receipt as json");
    assert_eq!(received["sequence"], sent["sequence"]);
    assert_eq!(received["payload"], "hello");
}

#[test]
fn round_robin_gives_each_message_to_exactly_one_waiting_receiver_in_turn() {
    let broker = Broker::start();
    broker.ok(&["create", "work"]);
    let mut receivers = Vec::new();
    for expected in 1..=3 {
        receivers.push(broker.spawn(&["recv", "work"]));
        // Line them up one by one, so the turn order is known.
        broker.wait_for_info("work", "waiting_receivers", expected);
    }
    for text in ["a", "b", "c"] {
        broker.ok(&["send", "work", text]);
    }
    let got: Vec<String> = receivers
        .into_iter()
        .map(|r| String::from_utf8(r.finish().stdout).expect("utf-8"))
        .collect();
    assert_eq!(got, ["a", "b", "c"], "first waiter gets the first message");
    assert_eq!(broker.info("work")["queued_messages"], 0);
}

#[test]
fn broadcast_gives_every_subscriber_every_message_in_order() {
    let broker = Broker::start();
    broker.ok(&["create", "news", "--policy", "broadcast", "--capacity", "4"]);
    let subscribers: Vec<_> = (0..3)
        .map(|_| broker.spawn(&["recv", "news", "--count", "3"]))
        .collect();
    broker.wait_for_info("news", "subscribers", 3);
    for text in ["one ", "two ", "three"] {
        let receipt = broker.ok(&["--json", "send", "news", text]);
        let receipt: serde_json::Value = serde_json::from_str(receipt.trim()).expect("json");
        assert_eq!(receipt["recipients"], 3);
    }
    for subscriber in subscribers {
        let output = subscriber.finish();
        assert!(output.status.success());
        assert_eq!(String::from_utf8_lossy(&output.stdout), "one two three");
    }
}

#[test]
fn a_killed_receiver_gets_nothing_and_the_next_receiver_gets_the_message() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs"]);
    let doomed = broker.spawn(&["recv", "jobs"]);
    broker.wait_for_info("jobs", "waiting_receivers", 1);
    doomed.kill();
    broker.wait_for_info("jobs", "waiting_receivers", 0);
    broker.ok(&["send", "jobs", "survives"]);
    assert_eq!(broker.ok(&["recv", "jobs"]), "survives");
}

#[test]
fn a_killed_blocked_sender_is_withdrawn_and_never_delivered() {
    let broker = Broker::start();
    broker.ok(&["create", "meet", "--capacity", "zero"]);
    let doomed = broker.spawn(&["send", "meet", "ghost"]);
    broker.wait_for_info("meet", "waiting_senders", 1);
    doomed.kill();
    broker.wait_for_info("meet", "waiting_senders", 0);
    let output = broker.run(&["recv", "meet", "--timeout", "200ms"]);
    assert_eq!(output.status.code(), Some(124));
}

#[test]
fn metadata_names_the_real_sender() {
    let broker = Broker::start();
    broker.ok(&["create", "who"]);
    let sender = broker.spawn(&["send", "who", "me"]);
    let sender_pid = sender.pid();
    assert!(sender.finish().status.success());
    let text = broker.ok(&["--json", "recv", "who"]);
    let message: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    assert_eq!(message["sender_pid"], sender_pid);
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(message["sender_uid"], uid);
    assert_eq!(message["sequence"], 1);
}

#[test]
fn many_concurrent_producers_and_consumers_lose_and_duplicate_nothing() {
    let broker = Broker::start();
    broker.ok(&["create", "pool", "--capacity", "3"]);
    let consumers: Vec<_> = (0..3)
        .map(|_| broker.spawn(&["--json", "recv", "pool", "--count", "10"]))
        .collect();
    let expected: BTreeSet<String> = (0..30).map(|i| format!("m{i}")).collect();
    let producers: Vec<_> = expected
        .iter()
        .map(|text| broker.spawn(&["send", "pool", text]))
        .collect();
    for producer in producers {
        assert!(producer.finish().status.success());
    }
    let mut seen = BTreeSet::new();
    for consumer in consumers {
        let output = consumer.finish();
        assert!(output.status.success());
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut last_sequence = 0;
        for line in text.lines() {
            let message: serde_json::Value = serde_json::from_str(line).expect("json line");
            let payload = message["payload"]
                .as_str()
                .expect("text payload")
                .to_owned();
            assert!(seen.insert(payload.clone()), "{payload} delivered twice");
            let sequence = message["sequence"].as_u64().expect("sequence");
            assert!(
                sequence > last_sequence,
                "a consumer sees sequences in order"
            );
            last_sequence = sequence;
        }
    }
    assert_eq!(seen, expected, "every message delivered exactly once");
    wait_until("the mailbox is drained", || {
        broker.info("pool")["queued_messages"] == 0
    });
}
