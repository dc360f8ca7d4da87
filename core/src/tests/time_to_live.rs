//! Time-to-live: expired messages are never delivered, are counted, and go
//! to the dead-letter mailbox if there is one.

use super::check;

#[test]
fn an_expired_message_is_never_delivered_and_is_counted() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendw q a ttl=100          => c1#2 sent 1 to 1
        c1#3 send q b                   => c1#3 sent 2 to 1
        advance 100 =>
        c2#1 recv q never               => c2#1 got 2 b from c1
        c1#4 info q                     => c1#4 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=2 delivered=1 inflight=0 redelivered=0 expired=1 dead=0 dropped=1
        c1#5 sendw q c ttl=0            => c1#5 InvalidRequest
        ",
    );
}

#[test]
fn a_mailbox_time_to_live_moves_expired_messages_to_its_dead_letter_mailbox() {
    check(
        "
        c1#1 create dead                => c1#1 created
        c1#2 create q ttl=50 dlq=dead   => c1#2 created
        c1#3 send q a                   => c1#3 sent 1 to 1
        c1#4 sendw q b ttl=500          => c1#4 sent 2 to 1
        advance 49 =>
        expire                          =>
        advance 1 =>
        expire                          =>
        c2#1 recv dead never            => c2#1 got 1 a from c1 dead=q#1:expired
        c2#2 recv dead never            => c2#2 got 2 b from c1 dead=q#2:expired
        c2#3 recv q never               => c2#3 WouldBlock
        ",
    );
}

#[test]
fn a_send_waiting_for_received_learns_its_message_expired() {
    check(
        "
        c1#1 create q                           => c1#1 created
        c1#2 sendw q a stage=received ttl=10    =>
        advance 10 =>
        expire                                  => c1#2 Expired
        ",
    );
}

#[test]
fn broadcast_subscribers_skip_an_expired_message() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c1#2 sendw b a ttl=10           => c1#2 sent 1 to 1
        c1#3 send b z                   => c1#3 sent 2 to 1
        advance 10 =>
        c2#2 recv b never               => c2#2 got 2 z from c1
        ",
    );
}
