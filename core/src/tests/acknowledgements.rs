//! Acknowledgements and redelivery: nack to the head or the tail, the
//! maximum of deliveries, dead letters, inbox acknowledgements.

use super::check;

#[test]
fn a_nack_returns_the_message_to_the_head_with_a_redelivery_count() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c1#3 send q b                   => c1#3 sent 2 to 1
        c2#1 recvw q ack                => c2#1 got 1 a from c1
        c2#2 nack q 1                   => c2#2 settled
        c3#1 recvw q ack                => c3#1 got 1 a from c1 r=1
        disconnect c3                   =>
        c2#3 recv q never               => c2#3 got 1 a from c1 r=2
        c2#4 recv q never               => c2#4 got 2 b from c1
        c1#4 info q                     => c1#4 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=2 delivered=4 inflight=0 redelivered=2 expired=0 dead=0 dropped=0
        ",
    );
}

#[test]
fn a_nack_to_the_tail_puts_the_message_behind_the_others() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c1#3 send q b                   => c1#3 sent 2 to 1
        c2#1 recvw q ack                => c2#1 got 1 a from c1
        c2#2 nack q 1 tail              => c2#2 settled
        c2#3 recv q never               => c2#3 got 2 b from c1
        c2#4 recv q never               => c2#4 got 1 a from c1 r=1
        c2#5 nack q 1                   => c2#5 NotHeld
        c3#1 ack nowhere 1              => c3#1 NotHeld
        ",
    );
}

#[test]
fn a_returned_message_wakes_a_waiting_receiver_even_on_a_full_mailbox() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#1 recvw q ack                => c2#1 got 1 a from c1
        c1#3 send q b                   => c1#3 sent 2 to 1
        c3#1 recv q                     => c3#1 got 2 b from c1
        c3#2 recv q                     =>
        disconnect c2                   => c3#2 got 1 a from c1 r=1
        ",
    );
}

#[test]
fn a_message_past_its_maximum_deliveries_moves_to_the_dead_letter_mailbox() {
    check(
        "
        c1#1 create dead                        => c1#1 created
        c1#2 create q deliveries=2 dlq=dead     => c1#2 created
        c1#3 send q a                           => c1#3 sent 1 to 1
        c2#1 recvw q ack                        => c2#1 got 1 a from c1
        c2#2 nack q 1                           => c2#2 settled
        c2#3 recvw q ack                        => c2#3 got 1 a from c1 r=1
        c2#4 nack q 1                           => c2#4 settled
        c2#5 recv q never                       => c2#5 WouldBlock
        c2#6 recv dead never                    => c2#6 got 1 a from c1 dead=q#1:max-deliveries
        c1#4 info q                             => c1#4 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=2 inflight=0 redelivered=1 expired=0 dead=1 dropped=0
        ",
    );
}

#[test]
fn without_a_dead_letter_mailbox_the_message_is_dropped_and_counted() {
    check(
        "
        c1#1 create q deliveries=1              => c1#1 created
        c1#2 sendw q a stage=acknowledged       =>
        c2#1 recvw q ack                        => c2#1 got 1 a from c1
        c2#2 nack q 1                           => c2#2 settled; c1#2 DeadLettered
        c1#3 info q                             => c1#3 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=1 inflight=0 redelivered=0 expired=0 dead=0 dropped=1
        c1#4 create r deliveries=1 dlq=missing  => c1#4 created
        c1#5 send r b                           => c1#5 sent 1 to 1
        c2#3 recvw r ack                        => c2#3 got 1 b from c1
        disconnect c2                           =>
        c1#6 info r                             => c1#6 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=1 inflight=0 redelivered=0 expired=0 dead=0 dropped=1
        ",
    );
}

#[test]
fn an_inbox_message_can_be_acknowledged_too() {
    check(
        "
        c1#1 sendw p2 a stage=acknowledged      =>
        c2#1 recvw inbox ack                    => c2#1 got 1 a from c1
        c2#2 ack inbox 1                        => c2#2 settled; c1#1 sent 1 to 1
        ",
    );
}
