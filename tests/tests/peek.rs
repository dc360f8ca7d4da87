//! `mailboxctl peek`, end to end: queued messages shown in order without
//! being taken (a later `recv` still gets every one), page by page with
//! `--count` and `--after`, and only to who may receive: a client of another
//! uid (run under `setpriv`, as `fair_share_of_queued_bytes.rs` does) is
//! refused until `chmod` grants it the receive right.

use std::process::Output;

use mailbox_tests::configured_broker::ConfiguredBroker;
use mailbox_tests::other_users::root;
use mailbox_tests::{exit_code, json_lines, Broker};

/// Stdout of a run that must have succeeded.
#[track_caller]
fn stdout_of(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: exit {:?}, stderr {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

/// The sequence numbers and payloads of `peek --json` (or `recv --json`)
/// output.
fn messages(output: &str) -> Vec<(u64, String)> {
    json_lines(output.as_bytes())
        .iter()
        .map(|m| {
            let sequence = m["sequence"].as_u64().expect("a sequence");
            (sequence, m["payload"].as_str().expect("text").to_owned())
        })
        .collect()
}

fn numbered(pairs: &[(u64, &str)]) -> Vec<(u64, String)> {
    pairs.iter().map(|(s, p)| (*s, (*p).to_owned())).collect()
}

#[test]
fn peek_shows_queued_messages_in_order_and_a_later_recv_still_gets_them_all() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs"]);
    for payload in ["first", "second", "third"] {
        broker.ok(&["send", "jobs", payload]);
    }
    let text = broker.ok(&["peek", "jobs"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        6,
        "a header line and the bytes of each: {text}"
    );
    assert!(lines[0].starts_with("#1 (5 bytes) from pid "), "{text}");
    assert!(lines[2].starts_with("#2 (6 bytes) from pid "), "{text}");
    assert!(lines[4].starts_with("#3 (5 bytes) from pid "), "{text}");
    assert_eq!([lines[1], lines[3], lines[5]], ["first", "second", "third"]);
    let json = broker.ok(&["--json", "peek", "jobs"]);
    let expected = numbered(&[(1, "first"), (2, "second"), (3, "third")]);
    assert_eq!(messages(&json), expected);
    // Nothing was taken, nothing counted as delivered.
    let info = broker.info("jobs");
    assert_eq!(info["queued_messages"], 3, "{info}");
    assert_eq!(info["messages_delivered"], 0, "{info}");
    let received = broker.ok(&["--json", "recv", "jobs", "--count", "3", "--nonblock"]);
    assert_eq!(messages(&received), expected);
    for message in json_lines(received.as_bytes()) {
        assert_eq!(message["redeliveries"], 0, "{message}");
    }
    // An empty queue shows nothing, and that is no failure.
    let empty = broker.run(&["peek", "jobs"]);
    assert_eq!(exit_code(&empty), 0);
    assert!(empty.stdout.is_empty());
}

#[test]
fn peek_walks_a_long_queue_in_pages_with_count_and_after() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs", "--capacity", "unbounded"]);
    let payloads: Vec<String> = (1..=1500).map(|n| format!("m{n}")).collect();
    // One process per message would be slow; a few batches suffice.
    let mut client = mailbox_client::blocking::Client::connect(broker.socket()).expect("connect");
    for chunk in payloads.chunks(500) {
        client.send_many("jobs", chunk.to_vec()).expect("send");
    }
    // More than one page of the broker's (1024 messages) in one peek.
    let all = broker.run(&["--json", "peek", "jobs", "--count", "2000"]);
    let all = messages(&stdout_of(&all, "peek all"));
    assert_eq!(all.len(), 1500);
    assert!(all
        .iter()
        .zip(1u64..)
        .all(|((sequence, payload), n)| *sequence == n && *payload == format!("m{n}")));
    // A short look says where to go on.
    let first = broker.run(&["--json", "peek", "jobs", "--count", "2"]);
    let stderr = String::from_utf8_lossy(&first.stderr).into_owned();
    assert_eq!(
        messages(&stdout_of(&first, "peek 2")),
        numbered(&[(1, "m1"), (2, "m2")])
    );
    assert!(stderr.contains("--after 2"), "{stderr}");
    let next = broker.ok(&["--json", "peek", "jobs", "--after", "2", "--count", "2"]);
    assert_eq!(messages(&next), numbered(&[(3, "m3"), (4, "m4")]));
    let last = broker.run(&["--json", "peek", "jobs", "--after", "1499"]);
    assert_eq!(
        messages(&stdout_of(&last, "peek last")),
        numbered(&[(1500, "m1500")])
    );
    assert!(last.stderr.is_empty(), "nothing more to say at the end");
    assert_eq!(broker.info("jobs")["queued_messages"], 1500);
}

const CONFIG: &str = r#"
[socket]
mode = "0666"
"#;

#[test]
fn a_stranger_may_not_peek_until_granted_the_receive_right() {
    if !root() {
        return;
    }
    let shared = ConfiguredBroker::start(CONFIG, &[]);
    let broker = &shared.broker;
    // Root's mailbox with the default mode 0760: nothing for others.
    broker.ok(&["create", "secrets"]);
    broker.ok(&["send", "secrets", "the-password"]);
    let refused = shared.as_uid(65534, &["peek", "secrets"]);
    assert_eq!(exit_code(&refused), 77, "permission denied");
    assert!(refused.stdout.is_empty());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!said.contains("the-password"), "{said}");
    // Others may send, still not look.
    broker.ok(&["chmod", "secrets", "0762"]);
    assert_eq!(exit_code(&shared.as_uid(65534, &["peek", "secrets"])), 77);
    // With the receive right, the stranger sees it, and it stays queued.
    broker.ok(&["chmod", "secrets", "0764"]);
    let seen = shared.as_uid(65534, &["--json", "peek", "secrets"]);
    assert_eq!(
        messages(&stdout_of(&seen, "peek as 65534")),
        numbered(&[(1, "the-password")])
    );
    let received = broker.ok(&["--json", "recv", "secrets", "--nonblock"]);
    assert_eq!(messages(&received), numbered(&[(1, "the-password")]));
}
