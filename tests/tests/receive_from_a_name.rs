//! `recv --inbox --from NAME` waits for whoever holds NAME when it sends:
//! the symmetric pair started from the shell in either order, a name that
//! changes hands, and when "no such process" (68) is still the answer.

use std::time::Duration;

use mailbox_client::blocking::Client;
use mailbox_tests::{exit_code, json_lines, wait_until, Broker, Running};

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits until `name` is claimed.
fn wait_for_name(broker: &Broker, name: &str) {
    wait_until(&format!("{name} is claimed"), || {
        broker.names().iter().any(|entry| entry["name"] == name)
    });
}

/// The one message `receiver` printed (with `--json`), once it exited
/// with success.
fn the_one_message(receiver: Running) -> serde_json::Value {
    let output = receiver.finish();
    assert!(output.status.success(), "{}", stderr(&output));
    let mut messages = json_lines(&output.stdout);
    assert_eq!(messages.len(), 1, "{messages:?}");
    messages.remove(0)
}

/// Starts `mailboxctl --as RECEIVER --json recv --inbox --from SENDER`
/// (bounded by a timeout, so a broken build fails instead of hanging) and
/// checks that it still waits although nobody holds `sender`.
fn wait_for_a_name_nobody_holds(broker: &Broker, receiver: &str, sender: &str) -> Running {
    assert!(
        !broker.names().iter().any(|entry| entry["name"] == sender),
        "{sender} is not held yet"
    );
    let mut waiting = broker.spawn(&[
        "--as",
        receiver,
        "--json",
        "recv",
        "--inbox",
        "--from",
        sender,
        "--timeout",
        "30s",
    ]);
    wait_for_name(broker, receiver);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        waiting.is_running(),
        "recv --from {sender} waits for {sender} to exist"
    );
    waiting
}

/// One side of the pair waits for the other before it exists; the other
/// then claims its name and sends.
fn start_the_receiver_first(receiver: &str, sender: &str) {
    let broker = Broker::start();
    let waiting = wait_for_a_name_nobody_holds(&broker, receiver, sender);
    broker.ok(&["--as", sender, "send", "--to", receiver, "hello"]);
    assert_eq!(the_one_message(waiting)["payload"], "hello");
}

#[test]
fn the_symmetric_pair_starts_from_the_shell_with_the_worker_first() {
    start_the_receiver_first("worker", "alice");
}

#[test]
fn the_symmetric_pair_starts_from_the_shell_with_alice_first() {
    start_the_receiver_first("alice", "worker");
}

#[test]
fn the_holder_of_the_name_when_a_message_is_sent_decides() {
    let broker = Broker::start();
    let waiting = wait_for_a_name_nobody_holds(&broker, "worker", "alice");
    // Someone else's message does not satisfy the receive.
    broker.ok(&["send", "--to", "worker", "from a stranger"]);
    // alice comes and goes without sending; the receive keeps waiting.
    let mut first = Client::connect(broker.socket()).expect("connect");
    first.claim_name("alice").expect("claim alice");
    drop(first);
    wait_until("alice is free again", || {
        !broker.names().iter().any(|entry| entry["name"] == "alice")
    });
    let mut waiting = waiting;
    assert!(
        waiting.is_running(),
        "a receive from a name outlives its holder"
    );
    // Whoever holds alice next is alice; a message it sent before it
    // claimed the name is not alice's.
    let mut second = Client::connect(broker.socket()).expect("connect");
    second.send_to("worker", "before the claim").expect("send");
    second.claim_name("alice").expect("claim alice");
    second.send_to("worker", "as alice").expect("send");
    let message = the_one_message(waiting);
    assert_eq!(message["payload"], "as alice", "{message}");
    assert_eq!(message["sender_connection"], second.address(), "{message}");
}

#[test]
fn a_message_stays_its_senders_after_the_sender_lets_the_name_go() {
    let broker = Broker::start();
    let mut worker = Client::connect(broker.socket()).expect("connect");
    worker.claim_name("worker").expect("claim worker");
    // alice sends and leaves; the name is free when worker asks for it.
    broker.ok(&["--as", "alice", "send", "--to", "worker", "left behind"]);
    let message = worker
        .receive_from_timeout("alice", Duration::from_secs(10))
        .expect("alice's message");
    assert_eq!(&message.payload[..], b"left behind");
}

#[test]
fn no_such_process_is_kept_for_addresses_a_name_nobody_holds_finds_nothing_or_times_out() {
    let broker = Broker::start();
    // An address nobody has: no message can ever come from it.
    let output = broker.run(&["recv", "--inbox", "--from", "999999"]);
    assert_eq!(exit_code(&output), 68, "{}", stderr(&output));
    // A name nobody holds now: nothing there yet (75), or a timeout (124).
    let output = broker.run(&["recv", "--inbox", "--from", "ghost", "--nonblock"]);
    assert_eq!(exit_code(&output), 75, "{}", stderr(&output));
    let output = broker.run(&["recv", "--inbox", "--from", "ghost", "--timeout", "200ms"]);
    assert_eq!(exit_code(&output), 124, "{}", stderr(&output));
}

#[test]
fn a_connection_holds_at_most_32_names() {
    let broker = Broker::start();
    let mut client = Client::connect(broker.socket()).expect("connect");
    for n in 0..32 {
        client.claim_name(&format!("svc.{n}")).expect("claim");
    }
    let error = client.claim_name("svc.32").expect_err("the 33rd name");
    assert_eq!(
        error.kind(),
        Some(mailbox_client::ErrorKind::TooManyRequests),
        "{error}"
    );
    client.release_name("svc.0").expect("release");
    client.claim_name("svc.32").expect("room again");
}
