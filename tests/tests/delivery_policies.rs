//! The `hash` and `priority` delivery policies with real receiver processes.

use std::collections::{BTreeMap, BTreeSet};

use mailbox_tests::{json_lines, Broker};

/// `(key, payload)` of each message a `recv --json --follow` printed.
fn keyed(output: &std::process::Output) -> Vec<(String, String)> {
    json_lines(&output.stdout)
        .iter()
        .map(|m| {
            (
                m["key"].as_str().expect("a key").to_owned(),
                m["payload"].as_str().expect("text").to_owned(),
            )
        })
        .collect()
}

fn payloads(output: &std::process::Output) -> Vec<String> {
    json_lines(&output.stdout)
        .iter()
        .map(|m| m["payload"].as_str().expect("text").to_owned())
        .collect()
}

#[test]
fn a_hash_mailbox_gives_every_message_of_a_key_to_the_same_receiver() {
    let broker = Broker::start();
    broker.ok(&["create", "h", "--policy", "hash"]);
    let first = broker.spawn(&["--json", "recv", "h", "--follow"]);
    broker.wait_for_info("h", "waiting_receivers", 1);
    let second = broker.spawn(&["--json", "recv", "h", "--follow"]);
    broker.wait_for_info("h", "waiting_receivers", 2);

    // Not alternating, so that taking turns would split a key.
    let mut sent = Vec::new();
    let mut rounds = BTreeMap::<&str, usize>::new();
    for key in ["a", "a", "b", "a", "b", "b", "a", "b"] {
        let round = rounds.entry(key).or_default();
        let payload = format!("{key}{round}");
        *round += 1;
        broker.ok(&["send", "h", "--key", key, &payload]);
        sent.push((key.to_owned(), payload));
    }
    broker.wait_for_info("h", "messages_delivered", 8);
    // Both back to waiting: each has printed what it got.
    broker.wait_for_info("h", "waiting_receivers", 2);

    // A receiver that leaves gives up its keys: the other one gets them.
    let first = first.stop(libc::SIGKILL);
    broker.wait_for_info("h", "waiting_receivers", 1);
    for key in ["a", "b"] {
        let payload = format!("{key}-after");
        broker.ok(&["send", "h", "--key", key, &payload]);
    }
    broker.wait_for_info("h", "messages_delivered", 10);
    broker.wait_for_info("h", "waiting_receivers", 1);
    let second = second.stop(libc::SIGTERM);

    let (first, second) = (keyed(&first), keyed(&second));
    let keys = |got: &[(String, String)]| -> BTreeSet<String> {
        got.iter().map(|(key, _)| key.clone()).collect()
    };
    assert_eq!(keys(&first).len(), 1, "one key per receiver: {first:?}");
    assert!(
        keys(&first).is_disjoint(&keys(&second[..second.len() - 2])),
        "a key never split between receivers: {first:?} {second:?}"
    );
    let mut all: Vec<(String, String)> = first.iter().chain(&second).cloned().collect();
    all.sort();
    let mut expected = sent.clone();
    expected.extend(["a", "b"].map(|k| (k.to_owned(), format!("{k}-after"))));
    expected.sort();
    assert_eq!(all, expected, "every message exactly once");

    // Per key, in the order sent.
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, payload) in first.iter().chain(&second) {
        by_key.entry(key.clone()).or_default().push(payload.clone());
    }
    for (key, payloads) in by_key {
        let mut want: Vec<String> = (0..4).map(|round| format!("{key}{round}")).collect();
        want.push(format!("{key}-after"));
        assert_eq!(payloads, want, "key {key} in order");
    }
    assert_eq!(
        second[second.len() - 2..],
        [
            ("a".to_owned(), "a-after".to_owned()),
            ("b".to_owned(), "b-after".to_owned())
        ],
        "the survivor took over the departed receiver's key"
    );
}

#[test]
fn a_standby_gets_nothing_while_the_primary_waits_and_takes_over_when_it_dies() {
    let broker = Broker::start();
    broker.ok(&["create", "p", "--policy", "priority"]);
    // The standby waits first, so arrival order would favour it.
    let standby = broker.spawn(&["--json", "recv", "p", "--follow", "--priority", "1"]);
    broker.wait_for_info("p", "waiting_receivers", 1);
    let primary = broker.spawn(&["--json", "recv", "p", "--follow", "--priority", "9"]);
    broker.wait_for_info("p", "waiting_receivers", 2);

    for index in 1..=4u64 {
        broker.ok(&["send", "p", &format!("m{index}")]);
        broker.wait_for_info("p", "messages_delivered", index);
        // The primary is back to waiting before the next message.
        broker.wait_for_info("p", "waiting_receivers", 2);
    }

    let primary = primary.stop(libc::SIGKILL);
    broker.wait_for_info("p", "waiting_receivers", 1);
    for index in 5..=6u64 {
        broker.ok(&["send", "p", &format!("m{index}")]);
        broker.wait_for_info("p", "messages_delivered", index);
    }
    // Back to waiting: it has printed both.
    broker.wait_for_info("p", "waiting_receivers", 1);
    let standby = standby.stop(libc::SIGTERM);

    assert_eq!(payloads(&primary), ["m1", "m2", "m3", "m4"]);
    assert_eq!(
        payloads(&standby),
        ["m5", "m6"],
        "nothing before the failover"
    );
}
