//! The producer-consumer problem solved with a bounded mailbox, across
//! separate processes built on the client library.

use std::process::{Command, Stdio};

use mailbox_tests::{Broker, Running};

fn peer(broker: &Broker, role: &str, mailbox: &str, count: u64) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_mailbox-peer"))
        .arg(role)
        .arg(broker.socket())
        .arg(mailbox)
        .arg(count.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailbox-peer");
    Running::from_child(child)
}

fn assert_ok(peer: Running, count: u64) {
    let output = peer.finish();
    assert!(
        output.status.success(),
        "peer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("ok {count}")
    );
}

#[test]
fn the_producer_blocks_on_a_full_buffer_and_the_consumer_gets_everything_in_order() {
    let broker = Broker::start();
    broker.ok(&["create", "buffer", "--capacity", "4"]);
    let mut producer = peer(&broker, "produce", "buffer", 50);
    // With no consumer yet, the producer fills the buffer and then blocks.
    broker.wait_for_info("buffer", "waiting_senders", 1);
    assert_eq!(broker.info("buffer")["queued_messages"], 4);
    assert!(producer.is_running(), "the producer waits for room");

    let consumer = peer(&broker, "consume", "buffer", 50);
    assert_ok(consumer, 50);
    assert_ok(producer, 50);
    assert_eq!(broker.info("buffer")["messages_delivered"], 50);
}

#[test]
fn a_rendezvous_mailbox_moves_every_message_hand_to_hand() {
    let broker = Broker::start();
    broker.ok(&["create", "meet", "--capacity", "zero"]);
    let producer = peer(&broker, "produce", "meet", 30);
    let consumer = peer(&broker, "consume-async", "meet", 30);
    assert_ok(consumer, 30);
    assert_ok(producer, 30);
    let info = broker.info("meet");
    assert_eq!(info["queued_messages"], 0);
    assert_eq!(info["messages_accepted"], 30);
}

#[test]
fn an_unbounded_mailbox_never_blocks_the_producer() {
    let broker = Broker::start();
    broker.ok(&["create", "spool", "--capacity", "unbounded"]);
    assert_ok(peer(&broker, "produce", "spool", 200), 200);
    assert_eq!(broker.info("spool")["queued_messages"], 200);
    assert_ok(peer(&broker, "consume", "spool", 200), 200);
}
