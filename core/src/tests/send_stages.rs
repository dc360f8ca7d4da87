//! How long a send waits: until its message is queued, received or
//! acknowledged; what a timeout or a sender leaving does at each stage.

use super::check;

#[test]
fn a_send_waiting_for_received_is_answered_when_a_receiver_takes_it() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendw q m stage=received   =>
        c1#3 info q                     => c1#3 info queued=1 bytes=1 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        c2#1 recv q                     => c2#1 got 1 m from c1; c1#2 sent 1 to 1
        c1#4 sendw q n stage=received never => c1#4 InvalidRequest
        ",
    );
}

#[test]
fn a_send_waiting_for_received_that_times_out_is_withdrawn() {
    check(
        "
        c1#1 create q                           => c1#1 created
        c1#2 sendw q m stage=received t=50      =>
        advance 50 =>
        expire                                  => c1#2 Timeout
        c2#1 recv q never                       => c2#1 WouldBlock
        c1#3 info q                             => c1#3 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0 inflight=0 redelivered=0 expired=0 dead=0 dropped=1
        ",
    );
}

#[test]
fn a_send_waiting_for_acknowledged_is_answered_at_the_ack() {
    check(
        "
        c1#1 create q                           => c1#1 created
        c1#2 sendw q m stage=acknowledged       =>
        c2#1 recvw q ack                        => c2#1 got 1 m from c1
        c1#3 info q                             => c1#3 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=1 inflight=1 redelivered=0 expired=0 dead=0 dropped=0
        c2#2 ack q 1                            => c2#2 settled; c1#2 sent 1 to 1
        c2#3 ack q 1                            => c2#3 NotHeld
        c1#4 sendw q n stage=acknowledged       =>
        c2#4 recv q                             => c2#4 got 2 n from c1; c1#4 sent 2 to 1
        ",
    );
}

#[test]
fn a_timeout_after_the_receiver_took_the_message_says_so_and_leaves_it() {
    check(
        "
        c1#1 create q                                 => c1#1 created
        c1#2 sendw q m stage=acknowledged t=50        =>
        c2#1 recvw q ack                              => c2#1 got 1 m from c1
        advance 50 =>
        expire                                        => c1#2 TimeoutInFlight
        c2#2 ack q 1                                  => c2#2 settled
        ",
    );
}

#[test]
fn a_sender_that_leaves_while_waiting_for_its_stage_leaves_its_message() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendw q m stage=received   =>
        disconnect c1                   =>
        c2#1 recv q never               => c2#1 got 1 m from c1
        ",
    );
}

#[test]
fn broadcast_waits_for_every_subscriber_and_has_no_acknowledgement() {
    check(
        "
        c1#1 create b broadcast                 => c1#1 created
        c2#1 sub b                              => c2#1 subscribed
        c3#1 sub b                              => c3#1 subscribed
        c1#2 sendw b m stage=received           =>
        c2#2 recv b never                       => c2#2 got 1 m from c1
        c3#2 recv b never                       => c3#2 got 1 m from c1; c1#2 sent 1 to 2
        c1#3 sendw b m stage=acknowledged       => c1#3 InvalidRequest
        c2#3 recvw b ack                        => c2#3 InvalidRequest
        c1#4 call b ping                        => c1#4 InvalidRequest
        ",
    );
}
