//! The acknowledgement timeout (`ack=MS`): a message held with manual
//! acknowledgement for longer goes back as if its holder had left.

use super::check;

#[test]
fn a_message_held_past_the_timeout_goes_back_to_the_head_with_one_redelivery_more() {
    check(
        "
        c1#1 create q ack=100           => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c1#3 send q b                   => c1#3 sent 2 to 1
        c2#1 recvw q ack                => c2#1 got 1 a from c1
        advance 99 =>
        expire                          =>
        c3#1 recvw q ack never          => c3#1 got 2 b from c1
        advance 1 =>
        expire                          =>
        c4#1 recvw q ack never          => c4#1 got 1 a from c1 r=1
        c2#2 ack q 1                    => c2#2 NotHeld
        c2#3 nack q 1                   => c2#3 NotHeld
        c4#2 ack q 1                    => c4#2 settled
        c3#2 ack q 2                    => c3#2 settled
        c1#4 info q                     => c1#4 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=2 delivered=3 inflight=0 redelivered=1 expired=0 dead=0 dropped=0 acktimeouts=1
        ",
    );
}

#[test]
fn a_receiver_waiting_gets_the_message_at_the_deadline() {
    check(
        "
        c1#1 create q ack=50            => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#1 recvw q ack                => c2#1 got 1 a from c1
        c3#1 recv q                     =>
        advance 50 =>
        expire                          => c3#1 got 1 a from c1 r=1
        ",
    );
}

#[test]
fn a_settle_after_the_deadline_is_refused_even_before_the_timer_fires() {
    check(
        "
        c1#1 create q ack=50            => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#1 recvw q ack                => c2#1 got 1 a from c1
        c3#1 recv q                     =>
        advance 50 =>
        c2#2 ack q 1                    => c2#2 NotHeld; c3#1 got 1 a from c1 r=1
        ",
    );
}

#[test]
fn messages_of_one_batch_go_back_in_order_before_those_queued() {
    check(
        "
        c1#1 create q ack=100           => c1#1 created
        c1#2 sendmany q a,b,c,d         => c1#2 sentmany 1+4 to 1
        c2#1 recvw q ack max=3          => c2#1 gotmany 1:a 2:b 3:c from c1
        advance 100 =>
        expire                          =>
        c3#1 recvmany q 4 never         => c3#1 gotmany 1:a 2:b 3:c 4:d from c1
        ",
    );
}

#[test]
fn timeouts_count_towards_the_maximum_deliveries() {
    check(
        "
        c1#1 create dead                        => c1#1 created
        c1#2 create q ack=10 deliveries=2 dlq=dead => c1#2 created
        c1#3 send q a                           => c1#3 sent 1 to 1
        c2#1 recvw q ack                        => c2#1 got 1 a from c1
        advance 10 =>
        expire                                  =>
        c2#2 recvw q ack                        => c2#2 got 1 a from c1 r=1
        advance 10 =>
        expire                                  =>
        c2#3 recv q never                       => c2#3 WouldBlock
        c2#4 recv dead never                    => c2#4 got 1 a from c1 dead=q#1:max-deliveries
        c1#4 info q                             => c1#4 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=2 inflight=0 redelivered=1 expired=0 dead=1 dropped=0 acktimeouts=2
        ",
    );
}

#[test]
fn a_sender_waiting_for_the_acknowledgement_waits_for_the_redelivered_copy() {
    check(
        "
        c1#1 create q ack=10                    => c1#1 created
        c1#2 sendw q a stage=acknowledged       =>
        c2#1 recvw q ack                        => c2#1 got 1 a from c1
        advance 10 =>
        expire                                  =>
        c2#2 ack q 1                            => c2#2 NotHeld
        c3#1 recvw q ack                        => c3#1 got 1 a from c1 r=1
        c3#2 ack q 1                            => c3#2 settled; c1#2 sent 1 to 1
        ",
    );
}

#[test]
fn a_call_whose_request_times_out_is_answered_by_the_next_holder() {
    check(
        "
        c1#1 create svc ack=10          => c1#1 created
        c3#1 call svc ping              =>
        c2#1 recvw svc ack              => c2#1 got 1 ping from c3 call=1
        advance 10 =>
        expire                          =>
        c2#2 reply 1 late               => c2#2 NotHeld
        c4#1 recvw svc ack              => c4#1 got 1 ping from c3 r=1 call=1
        c4#2 reply 1 pong               => c4#2 replied; c3#1 got 0 pong from c4 call=1
        ",
    );
}

#[test]
fn each_delivery_has_its_own_deadline() {
    // A settled message leaves a wake behind: it must not cut the next
    // delivery's time short, nor an earlier delivery's of the same message.
    check(
        "
        c1#1 create q ack=100           => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#1 recvw q ack                => c2#1 got 1 a from c1
        advance 60 =>
        c2#2 nack q 1                   => c2#2 settled
        c2#3 recvw q ack never          => c2#3 got 1 a from c1 r=1
        advance 40 =>
        expire                          =>
        c2#4 ack q 1                    => c2#4 settled
        c1#3 send q b                   => c1#3 sent 2 to 1
        c2#5 recvw q ack                => c2#5 got 2 b from c1
        advance 99 =>
        expire                          =>
        c3#1 recv q never               => c3#1 WouldBlock
        advance 1 =>
        expire                          =>
        c3#2 recv q never               => c3#2 got 2 b from c1 r=1
        ",
    );
}

#[test]
fn a_message_returned_by_a_disconnect_leaves_no_deadline_behind() {
    check(
        "
        c1#1 create q ack=100           => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#1 recvw q ack                => c2#1 got 1 a from c1
        advance 50 =>
        disconnect c2                   =>
        c3#1 recvw q ack                => c3#1 got 1 a from c1 r=1
        advance 50 =>
        expire                          =>
        c3#2 ack q 1                    => c3#2 settled
        ",
    );
}

#[test]
fn an_ack_timeout_needs_a_policy_with_manual_acknowledgement() {
    check(
        "
        c1#1 create b broadcast ack=10  => c1#1 InvalidSettings
        c1#2 create q ack=0             => c1#2 InvalidSettings
        c1#3 create h hash ack=10       => c1#3 created
        c1#4 create p priority ack=10   => c1#4 created
        c1#5 create q ack=10            => c1#5 created
        c1#6 create q ack=20            => c1#6 MailboxExists
        ",
    );
}

#[test]
fn without_an_ack_timeout_a_held_message_is_held_forever() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#1 recvw q ack                => c2#1 got 1 a from c1
        advance 86400000 =>
        expire                          =>
        c3#1 recv q never               => c3#1 WouldBlock
        c2#2 ack q 1                    => c2#2 settled
        ",
    );
}
