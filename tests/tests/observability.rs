//! `mailboxctl status` (limits, per-mailbox rates) and `mailboxctl top`, against
//! a real broker with real traffic.

use std::time::Duration;

use mailbox_tests::Broker;

/// Sends to `mailbox` from a separate process for a while.
fn producer(broker: &Broker, mailbox: &str) -> mailbox_tests::Running {
    let script = format!(
        "i=0; while [ $i -lt 400 ]; do {ctl} --socket {socket} send {mailbox} m$i >/dev/null || exit 1; i=$((i+1)); done",
        ctl = mailbox_tests::binary("mailboxctl").display(),
        socket = broker.socket().display(),
    );
    let child = std::process::Command::new("sh")
        .args(["-c", &script])
        .spawn()
        .expect("start the producer");
    mailbox_tests::Running::from_child(child)
}

#[test]
fn status_lists_the_limits_in_force_and_the_rates_of_busy_mailboxes() {
    let broker = Broker::start();
    broker.ok(&["create", "busy"]);
    broker.ok(&["create", "idle"]);
    let sending = producer(&broker, "busy");
    std::thread::sleep(Duration::from_millis(100));
    let status = broker.ok(&["--json", "status", "--interval", "700ms"]);
    drop(sending);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status is JSON");
    for limit in [
        "memory_budget",
        "max_connections",
        "max_connections_per_uid",
        "max_mailboxes_per_uid",
        "max_queued_bytes_per_mailbox",
        "max_message_size",
        "max_requests_in_flight",
    ] {
        assert!(
            status["limits"][limit].as_u64().is_some_and(|v| v > 0),
            "limit {limit} in {status}"
        );
    }
    let rates = status["mailbox_rates"].as_array().expect("rates");
    let rate = |name: &str| {
        rates
            .iter()
            .find(|r| r["name"] == name)
            .and_then(|r| r["accepted_per_s"].as_f64())
            .expect("a rate per mailbox")
    };
    assert!(rate("busy") > 0.0, "{status}");
    assert_eq!(rate("idle"), 0.0, "{status}");
}

#[test]
fn top_refreshes_with_depth_rates_and_waiting_receivers() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs"]);
    broker.ok(&["create", "watched"]);
    let receiver = broker.spawn(&["recv", "watched"]);
    broker.wait_for_info("watched", "waiting_receivers", 1);
    let sending = producer(&broker, "jobs");
    let output = broker.ok(&["top", "--interval", "300ms", "--iterations", "3"]);
    drop(sending);
    let frames: Vec<&str> = output
        .split("mailboxd ")
        .filter(|frame| !frame.is_empty())
        .collect();
    assert_eq!(frames.len(), 3, "three refreshes: {output}");
    let last = frames[2];
    let row = |name: &str| -> Vec<String> {
        last.lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("a row for {name}: {last}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // MAILBOX POLICY DEPTH IN-FLIGHT IN/S OUT/S SENDERS RECEIVERS
    let jobs = row("jobs");
    assert!(jobs[2].parse::<u64>().expect("depth") > 0, "{last}");
    let watched = row("watched");
    assert_eq!(watched[7], "1", "one waiting receiver: {last}");
    assert!(
        output.contains("IN/S") && output.contains("OUT/S"),
        "{output}"
    );
    receiver.kill();
}
