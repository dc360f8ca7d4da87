//! `send --wait received|acknowledged`: how long a send waits, and what a
//! timeout means at each stage, across real processes.

use std::time::{Duration, Instant};

use mailbox_tests::{exit_code, json_lines, stderr, Broker, Gate};

#[test]
fn waiting_for_received_with_no_receiver_times_out_and_withdraws_the_message() {
    let broker = Broker::start();
    broker.ok(&["create", "q"]);
    let start = Instant::now();
    let output = broker.run(&["send", "q", "m", "--wait", "received", "--timeout", "500ms"]);
    assert_eq!(exit_code(&output), 124, "{}", stderr(&output));
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert!(stderr(&output).contains("withdrawn"), "{}", stderr(&output));

    let info = broker.info("q");
    assert_eq!(info["queued_messages"], 0, "{info}");
    // A receiver that comes later gets nothing.
    assert_eq!(
        exit_code(&broker.run(&["recv", "q", "--timeout", "300ms"])),
        124
    );
}

#[test]
fn waiting_for_received_ends_only_when_a_receiver_took_the_message() {
    let broker = Broker::start();
    broker.ok(&["create", "q"]);
    let mut sender = broker.spawn(&[
        "--json",
        "send",
        "q",
        "m",
        "--wait",
        "received",
        "--timeout",
        "10s",
    ]);
    broker.wait_for_info("q", "queued_messages", 1);
    std::thread::sleep(Duration::from_millis(200));
    assert!(sender.is_running(), "queued is not received");

    assert_eq!(broker.ok(&["recv", "q"]), "m");
    let output = sender.finish();
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
    let receipt = &json_lines(&output.stdout)[0];
    assert_eq!(receipt["sequence"], 1, "{receipt}");
    assert_eq!(receipt["recipients"], 1, "{receipt}");
}

#[test]
fn waiting_for_acknowledged_past_the_timeout_exits_120_and_leaves_the_message_in_flight() {
    let broker = Broker::start();
    broker.ok(&["create", "q"]);
    let gate = Gate::new();
    // A receiver that takes the message and holds it until the gate opens.
    let holder = broker.spawn_group(&["recv", "q", "--ack", "--exec", &gate.shell_wait()]);
    broker.wait_for_info("q", "waiting_receivers", 1);

    let start = Instant::now();
    let output = broker.run(&[
        "send",
        "q",
        "job",
        "--wait",
        "acknowledged",
        "--timeout",
        "700ms",
    ]);
    assert_eq!(exit_code(&output), 120, "{}", stderr(&output));
    assert!(start.elapsed() >= Duration::from_millis(700));
    assert!(
        stderr(&output).contains("not withdrawn"),
        "{}",
        stderr(&output)
    );
    let info = broker.info("q");
    assert_eq!(info["in_flight"], 1, "still with its receiver: {info}");

    // The receiver finishes with it after all.
    gate.open();
    let done = holder.finish();
    assert_eq!(exit_code(&done), 0, "{}", stderr(&done));
    let info = broker.info("q");
    assert_eq!(info["in_flight"], 0, "{info}");
    assert_eq!(info["queued_messages"], 0, "{info}");
    assert_eq!(info["messages_delivered"], 1, "{info}");
}

#[test]
fn waiting_for_acknowledged_outlasts_a_nack_and_ends_with_the_ack() {
    let broker = Broker::start();
    broker.ok(&["create", "q"]);
    let gate = Gate::new();
    let mut sender = broker.spawn(&[
        "send",
        "q",
        "job",
        "--wait",
        "acknowledged",
        "--timeout",
        "10s",
    ]);
    broker.wait_for_info("q", "queued_messages", 1);

    // Taken, then given back: received, but not acknowledged.
    let failing = format!("{}; false", gate.shell_wait());
    let nacker = broker.spawn_group(&["recv", "q", "--ack", "--exec", &failing]);
    broker.wait_for_info("q", "in_flight", 1);
    std::thread::sleep(Duration::from_millis(150));
    assert!(sender.is_running(), "received is not acknowledged");
    gate.open();
    assert_eq!(exit_code(&nacker.finish()), 1);
    broker.wait_for_info("q", "queued_messages", 1);
    assert!(sender.is_running(), "a nack is no acknowledgement");

    // Acknowledged at last.
    assert_eq!(broker.ok(&["recv", "q", "--ack"]), "job");
    let output = sender.finish();
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
}
