//! What `mailboxctl` prints for each command, in text and JSON.

use mailbox_tests::Broker;

#[test]
fn list_shows_every_mailbox_with_its_counts_in_a_table() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs", "--capacity", "4"]);
    broker.ok(&[
        "create",
        "news",
        "--policy",
        "broadcast",
        "--capacity",
        "zero",
    ]);
    broker.ok(&["send", "jobs", "x"]);
    let table = broker.ok(&["list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in [
        "NAME",
        "CAPACITY",
        "POLICY",
        "QUEUED",
        "WAITING SENDERS",
        "WAITING RECEIVERS",
        "SUBSCRIBERS",
    ] {
        assert!(
            lines[0].contains(column),
            "header has {column}: {}",
            lines[0]
        );
    }
    let jobs: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(jobs, ["jobs", "4", "round-robin", "1", "0", "0", "0"]);
    let news: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(news, ["news", "zero", "broadcast", "0", "0", "0", "0"]);

    let json = broker.ok(&["--json", "list"]);
    let names: Vec<String> = json
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("json line");
            value["name"].as_str().expect("name").to_owned()
        })
        .collect();
    assert_eq!(names, ["jobs", "news"]);
}

#[test]
fn status_reports_connections_mailboxes_and_queued_messages() {
    let broker = Broker::start();
    broker.ok(&["create", "a"]);
    broker.ok(&["create", "b"]);
    broker.ok(&["send", "a", "12345"]);
    let status: serde_json::Value =
        serde_json::from_str(broker.ok(&["--json", "status"]).trim()).expect("json");
    assert_eq!(status["mailboxes"], 2);
    assert_eq!(status["queued_messages"], 1);
    assert_eq!(status["queued_bytes"], 5);
    assert_eq!(status["connections"], 1, "only the status command itself");
    assert_eq!(status["pid"], broker.pid());
    let text = broker.ok(&["status"]);
    assert!(text.contains("broker version"), "{text}");
    assert!(text.contains("uptime"), "{text}");
}

#[test]
fn payloads_travel_byte_for_byte_from_stdin_to_stdout() {
    let broker = Broker::start();
    broker.ok(&["create", "raw"]);
    let payload: Vec<u8> = (0..=255u8).chain([0, 10, 13, 0]).collect();
    let sent = broker.run_with_input(&["send", "raw"], &payload);
    assert!(sent.status.success());
    let received = broker.run(&["recv", "raw"]);
    assert!(received.status.success());
    assert_eq!(received.stdout, payload);
}

#[test]
fn json_receive_carries_the_exact_bytes_in_base64() {
    let broker = Broker::start();
    broker.ok(&["create", "raw"]);
    broker.run_with_input(&["send", "raw"], &[0xff, 0x00, 0x41]);
    let text = broker.ok(&["--json", "recv", "raw"]);
    let message: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    assert_eq!(message["payload_base64"], "/wBB");
    assert_eq!(message["payload"], serde_json::Value::Null, "not UTF-8");
    assert_eq!(message["mailbox"], "raw");
}

#[test]
fn recv_count_and_follow_take_several_messages() {
    let broker = Broker::start();
    broker.ok(&["create", "feed"]);
    for text in ["a", "b", "c"] {
        broker.ok(&["send", "feed", text]);
    }
    assert_eq!(broker.ok(&["recv", "feed", "--count", "2"]), "ab");
    let mut follower = broker.spawn(&["--json", "recv", "feed", "--follow"]);
    broker.ok(&["send", "feed", "d"]);
    mailbox_tests::wait_until("the follower took both", || {
        broker.info("feed")["messages_delivered"] == 4
    });
    assert!(follower.is_running(), "--follow keeps receiving");
    let pid = follower.pid();
    mailbox_tests::signal(pid, libc::SIGTERM);
    let output = follower.finish();
    let payloads: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let message: serde_json::Value = serde_json::from_str(line).expect("json line");
            message["payload"].as_str().expect("text").to_owned()
        })
        .collect();
    assert_eq!(payloads, ["c", "d"]);
}

#[test]
fn delete_removes_the_mailbox() {
    let broker = Broker::start();
    broker.ok(&["create", "gone"]);
    broker.ok(&["delete", "gone"]);
    assert_eq!(broker.run(&["info", "gone"]).status.code(), Some(66));
    assert_eq!(broker.ok(&["list"]).lines().count(), 1, "header only");
}
