//! The producer-consumer problem solved with a bounded mailbox, across
//! separate processes built on the client library.

use mailbox_tests::{Broker, Running};

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
    let mut producer = broker.peer("produce", "buffer", 50);
    // With no consumer yet, the producer fills the buffer and then blocks.
    broker.wait_for_info("buffer", "waiting_senders", 1);
    assert_eq!(broker.info("buffer")["queued_messages"], 4);
    assert!(producer.is_running(), "the producer waits for room");

    let consumer = broker.peer("consume", "buffer", 50);
    assert_ok(consumer, 50);
    assert_ok(producer, 50);
    assert_eq!(broker.info("buffer")["messages_delivered"], 50);
}

#[test]
fn a_rendezvous_mailbox_moves_every_message_hand_to_hand() {
    let broker = Broker::start();
    broker.ok(&["create", "meet", "--capacity", "zero"]);
    let producer = broker.peer("produce", "meet", 30);
    let consumer = broker.peer("consume-async", "meet", 30);
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
    assert_ok(broker.peer("produce", "spool", 200), 200);
    assert_eq!(broker.info("spool")["queued_messages"], 200);
    assert_ok(broker.peer("consume", "spool", 200), 200);
}
