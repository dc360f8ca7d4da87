//! Direct communication from the shell: well-known names (`--as`), inboxes
//! (`send --to`, `recv --inbox`), symmetric receives (`--from`), `names`.

use std::time::Duration;

use mailbox_client::blocking::Client;
use mailbox_tests::{exit_code, json_lines, stderr, wait_until, Broker};

/// Fails with `code` and says so on one stderr line.
fn assert_fails(output: &std::process::Output, code: i32) {
    assert_eq!(exit_code(output), code, "stderr: {}", stderr(output));
    let text = stderr(output);
    assert_eq!(text.trim_end().lines().count(), 1, "{text:?}");
    assert!(text.starts_with("mailboxctl: "), "{text:?}");
}

/// Waits until `name` is claimed; returns its `names --json` entry.
fn wait_for_name(broker: &Broker, name: &str) -> serde_json::Value {
    let mut found = None;
    wait_until(&format!("{name} is claimed"), || {
        found = broker
            .names()
            .into_iter()
            .find(|entry| entry["name"] == name);
        found.is_some()
    });
    found.expect("found")
}

#[test]
fn a_named_process_receives_what_is_sent_to_its_name() {
    let broker = Broker::start();
    let worker = broker.spawn(&["--as", "worker", "recv", "--inbox"]);
    let entry = wait_for_name(&broker, "worker");
    assert_eq!(entry["pid"], worker.pid(), "{entry}");
    // SAFETY: getuid has no preconditions.
    assert_eq!(entry["uid"], unsafe { libc::getuid() }, "{entry}");
    assert_eq!(entry["queued_claims"], 0, "{entry}");
    let process = entry["process"].as_u64().expect("an address");

    // The table: a header, then the name with its owner's address and pid.
    let table = broker.ok(&["names"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "PROCESS", "PID", "USER", "QUEUED"],
        "{table}"
    );
    assert_eq!(lines.len(), 2, "{table}");
    let row: Vec<String> = lines[1].split_whitespace().map(str::to_owned).collect();
    assert_eq!(
        row,
        [
            "worker".to_owned(),
            process.to_string(),
            worker.pid().to_string(),
            // The holder's user by name (its uid without one), as `ps` shows it.
            entry["user"]
                .as_str()
                .map_or_else(|| entry["uid"].to_string(), str::to_owned),
            "0".to_owned()
        ]
    );

    // Nobody holds "ghost": a send there fails instead of getting lost.
    let ghost = broker.run(&["send", "--to", "ghost", "hi"]);
    assert_fails(&ghost, 68);
    assert!(stderr(&ghost).contains("ghost"), "{}", stderr(&ghost));

    // The name is exclusive while the worker holds it.
    let second = broker.run(&["--as", "worker", "recv", "--inbox", "--timeout", "5s"]);
    assert_fails(&second, 73);
    assert!(stderr(&second).contains("worker"), "{}", stderr(&second));

    broker.ok(&["send", "--to", "worker", "hi"]);
    let output = worker.finish();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"hi");

    // Released with the process: sending to it now fails.
    wait_until("worker is released", || broker.names().is_empty());
    assert_fails(&broker.run(&["send", "--to", "worker", "late"]), 68);
}

#[test]
fn a_process_is_reachable_by_its_address_and_the_message_names_its_sender() {
    let broker = Broker::start();
    let worker = broker.spawn(&["--as", "w", "--json", "recv", "--inbox"]);
    let process = wait_for_name(&broker, "w")["process"]
        .as_u64()
        .expect("an address");
    assert_fails(&broker.run(&["send", "--to", "999999", "x"]), 68);
    let sender = broker.spawn(&["send", "--to", &process.to_string(), "by address"]);
    let sender_pid = sender.pid();
    assert!(sender.finish().status.success());

    let output = worker.finish();
    assert!(output.status.success(), "{}", stderr(&output));
    let messages = json_lines(&output.stdout);
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message["payload"], "by address");
    assert_eq!(message["mailbox"], serde_json::Value::Null, "the inbox");
    assert_eq!(message["sender_pid"], sender_pid);
}

#[test]
fn a_symmetric_receive_takes_only_that_senders_messages() {
    let broker = Broker::start();
    let mut alice = Client::connect(broker.socket()).expect("connect");
    alice.claim_name("alice").expect("claim alice");

    let mut worker = broker.spawn(&[
        "--as", "worker", "--json", "recv", "--inbox", "--from", "alice",
    ]);
    wait_for_name(&broker, "worker");
    // Bob's messages arrive first, and are not what the worker waits for.
    broker.ok(&["send", "--to", "worker", "from bob 1"]);
    broker.ok(&["send", "--to", "worker", "from bob 2"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        worker.is_running(),
        "bob's messages do not satisfy --from alice"
    );

    alice
        .send_to("worker", "from alice")
        .expect("send to worker");
    let output = worker.finish();
    assert!(output.status.success(), "{}", stderr(&output));
    let messages = json_lines(&output.stdout);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["payload"], "from alice");
    assert_eq!(messages[0]["sender_connection"], alice.address());

    // By address too; and when that sender leaves while the receive waits,
    // the receive fails with "no such process" instead of waiting forever.
    let address = alice.address().to_string();
    let waiting = broker.spawn(&["--as", "worker2", "recv", "--inbox", "--from", &address]);
    wait_for_name(&broker, "worker2");
    std::thread::sleep(Duration::from_millis(100));
    drop(alice);
    let output = waiting.finish();
    assert_fails(&output, 68);
}
