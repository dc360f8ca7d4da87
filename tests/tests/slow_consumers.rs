//! Consumers that stop (SIGSTOP) without leaving, across real processes: a
//! broadcast subscriber whose backlog stays full is cut off so that the
//! senders and the other subscribers go on (`--cut-slow-subscribers-after`),
//! and a message held with manual acknowledgement comes back after the
//! mailbox's `--ack-timeout`.
//!
//! The stopped subscriber is another user (uid 65534 under `setpriv`, as in
//! `access_between_users.rs`): one user's stalled client must not starve
//! another's. That test needs root; run as anyone else it says so and does
//! nothing.

use std::time::{Duration, Instant};

use mailbox_tests::configured_broker::{ConfiguredBroker, OPEN_SOCKET};
use mailbox_tests::other_users::root;
use mailbox_tests::{exit_code, json_lines, signal, Broker};

/// Another user's subscriber, stopped, is cut off after the mailbox's time:
/// every send completes, the healthy subscriber gets every message in
/// order, and the stopped one, once continued, learns why it was cut (exit
/// code 121).
#[test]
fn another_users_stopped_subscriber_is_cut_off_and_the_others_go_on() {
    const N: usize = 20;
    if !root() {
        return;
    }
    let shared = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    let broker = &shared.broker;
    broker.ok(&[
        "create",
        "news",
        "--policy",
        "broadcast",
        "--capacity",
        "4",
        "--cut-slow-subscribers-after",
        "1s",
        "--mode",
        "0764",
    ]);
    let slow = shared.spawn_as_other(&["recv", "news", "--follow"]);
    broker.wait_for_info("news", "subscribers", 1);
    signal(slow.pid(), libc::SIGSTOP);
    let healthy = broker.spawn(&["--json", "recv", "news", "--count", &N.to_string()]);
    broker.wait_for_info("news", "subscribers", 2);

    // Every send completes (each would wait for ever without the cut; the
    // timeout only turns a failure into an exit code instead of a hang).
    let started = Instant::now();
    for i in 0..N {
        let sent = broker.run(&["send", "news", &format!("m-{i}"), "--timeout", "20s"]);
        assert_eq!(
            exit_code(&sent),
            0,
            "send {i}: {}",
            String::from_utf8_lossy(&sent.stderr)
        );
    }
    // The sends waited for the cut, not for ever.
    assert!(started.elapsed() >= Duration::from_millis(900));

    let output = healthy.finish();
    assert_eq!(
        exit_code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let payloads: Vec<String> = json_lines(&output.stdout)
        .iter()
        .map(|m| m["payload"].as_str().expect("text").to_owned())
        .collect();
    let expected: Vec<String> = (0..N).map(|i| format!("m-{i}")).collect();
    assert_eq!(payloads, expected, "the healthy subscriber missed nothing");

    let info = broker.info("news");
    assert_eq!(info["slow_subscribers_cut"], 1, "{info}");
    assert_eq!(info["cut_slow_subscribers_after_millis"], 1000, "{info}");
    assert_eq!(info["queued_messages"], 0, "{info}");

    signal(slow.pid(), libc::SIGCONT);
    let output = slow.finish();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(exit_code(&output), 121, "{stderr}");
    assert!(stderr.contains("cut off"), "{stderr}");
}

/// A receiver stopped while it holds a message: after the ack timeout the
/// message goes to another receiver with one redelivery; the sender that
/// waits for the acknowledgement waits for that copy; the stopped holder's
/// late acknowledgement fails and changes nothing.
#[test]
fn a_message_held_by_a_stopped_receiver_comes_back_after_the_ack_timeout() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs", "--ack-timeout", "1s"]);
    let sender = broker.spawn(&[
        "send",
        "jobs",
        "job",
        "--wait",
        "acknowledged",
        "--timeout",
        "30s",
    ]);
    // The holder's command outlives the deadline; mailboxctl itself is
    // stopped while it runs, and acknowledges when continued.
    let holder =
        broker.spawn_group(&["recv", "jobs", "--ack", "--exec", "cat >/dev/null; sleep 3"]);
    broker.wait_for_info("jobs", "in_flight", 1);
    holder.signal_leader(libc::SIGSTOP);

    broker.wait_for_info("jobs", "ack_timeouts", 1);
    let mut sender = sender;
    assert!(
        sender.is_running(),
        "the sender still waits for an acknowledgement"
    );
    let taker = broker.run(&["--json", "recv", "jobs", "--ack", "--timeout", "10s"]);
    assert_eq!(
        exit_code(&taker),
        0,
        "{}",
        String::from_utf8_lossy(&taker.stderr)
    );
    let messages = json_lines(&taker.stdout);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["payload"], "job");
    assert_eq!(messages[0]["redeliveries"], 1, "{}", messages[0]);
    let sent = sender.finish();
    assert_eq!(
        exit_code(&sent),
        0,
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );

    // The old holder wakes up and acknowledges too late.
    holder.signal_leader(libc::SIGCONT);
    let output = holder.finish();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(exit_code(&output), 1, "{stderr}");
    assert!(stderr.contains("--ack-timeout"), "{stderr}");

    let info = broker.info("jobs");
    assert_eq!(info["in_flight"], 0, "{info}");
    assert_eq!(info["queued_messages"], 0, "{info}");
    assert_eq!(info["messages_redelivered"], 1, "{info}");
    assert_eq!(info["ack_timeout_millis"], 1000, "{info}");
    assert_eq!(exit_code(&broker.run(&["recv", "jobs", "--nonblock"])), 75);
}

/// The settings are refused where they mean nothing, with the exit code
/// of refused settings.
#[test]
fn the_settings_are_refused_where_they_do_not_apply() {
    let broker = Broker::start();
    for args in [
        &[
            "create",
            "b",
            "--policy",
            "broadcast",
            "--ack-timeout",
            "1s",
        ][..],
        &[
            "create",
            "q",
            "--capacity",
            "4",
            "--cut-slow-subscribers-after",
            "1s",
        ][..],
        &[
            "create",
            "b",
            "--policy",
            "broadcast",
            "--cut-slow-subscribers-after",
            "1s",
        ][..],
    ] {
        let output = broker.run(args);
        assert_eq!(
            exit_code(&output),
            65,
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
