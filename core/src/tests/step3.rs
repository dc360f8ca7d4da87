//! Rules of direct communication, send stages, acknowledgements and
//! redelivery, dead letters, time-to-live, request/reply, and the hash and
//! priority policies, as scripts (see the parent module's doc for the
//! language; these add `sendw`, `recvw`, `ack`, `nack`, `call`, `reply`,
//! `claim`, `release`, `names`, `inboxcap`). Connection `cN` has process
//! address `pN`.

use super::check;

// --- Direct communication ---------------------------------------------------

#[test]
fn a_message_sent_to_a_process_lands_in_its_inbox_and_says_who_sent_it() {
    check(
        "
        c1#1 sendw p2 hi               => c1#1 sent 1 to 1
        c3#1 sendw p2 there            => c3#1 sent 2 to 1
        c2#1 recvw inbox never         => c2#1 got 1 hi from c1
        c2#2 recvw inbox never         => c2#2 got 2 there from c3
        c2#3 recvw inbox never         => c2#3 WouldBlock
        ",
    );
}

#[test]
fn receive_from_takes_only_that_senders_messages_in_their_order() {
    check(
        "
        c1#1 sendw p3 from1            => c1#1 sent 1 to 1
        c2#1 sendw p3 from2            => c2#1 sent 2 to 1
        c3#1 recvw inbox from=p2 never => c3#1 got 2 from2 from c2
        c3#2 recvw inbox from=p2 never => c3#2 WouldBlock
        c3#3 recvw inbox from=p2       =>
        c1#2 sendw p3 again            => c1#2 sent 3 to 1
        c2#2 sendw p3 late             => c2#2 sent 4 to 1; c3#3 got 4 late from c2
        c3#4 recvw inbox never         => c3#4 got 1 from1 from c1
        c3#5 recvw inbox never         => c3#5 got 3 again from c1
        ",
    );
}

#[test]
fn sending_to_or_receiving_from_a_process_that_is_not_there_fails_at_once() {
    check(
        "
        c1#1 sendw p9 hi                => c1#1 NoSuchProcess
        c1#2 sendw n:ghost hi           => c1#2 NoSuchProcess
        c1#3 recvw inbox from=p9 never  => c1#3 NoSuchProcess
        c1#4 recvw inbox from=n:ghost   => c1#4 NoSuchProcess
        c1#5 sendw n:bad!name hi        => c1#5 InvalidName
        ",
    );
}

#[test]
fn a_receive_from_a_process_that_leaves_fails_but_what_it_sent_stays_receivable() {
    check(
        "
        c2#1 recvw inbox from=p3        =>
        disconnect c3                   => c2#1 NoSuchProcess
        c4#1 sendw p2 last              => c4#1 sent 1 to 1
        disconnect c4                   =>
        c2#2 recvw inbox from=p4 never  => c2#2 got 1 last from c4
        ",
    );
}

#[test]
fn a_well_known_name_is_exclusive_and_passes_to_the_next_in_line() {
    check(
        "
        c2#1 claim worker               => c2#1 claimed
        c2#2 claim worker               => c2#2 claimed
        c3#1 claim worker               => c3#1 NameTaken
        c3#2 claim worker forever       =>
        c1#1 sendw n:worker job         => c1#1 sent 1 to 1
        c1#2 names                      => c1#2 names worker=c2+1
        disconnect c2                   => c3#2 claimed
        c1#3 sendw n:worker job2        => c1#3 sent 1 to 1
        c3#3 recvw inbox never          => c3#3 got 1 job2 from c1
        c3#4 release worker             => c3#4 released
        c1#4 sendw n:worker x           => c1#4 NoSuchProcess
        c1#5 release worker             => c1#5 NotHeld
        c1#6 names                      => c1#6 names
        ",
    );
}

#[test]
fn a_queued_claim_can_time_out_or_be_cancelled() {
    check(
        "
        c2#1 claim svc                  => c2#1 claimed
        c3#1 claim svc t=50             =>
        c4#1 claim svc                  => c4#1 NameTaken
        c4#2 claim svc forever          =>
        c4#3 cancel 2                   => c4#2 Cancelled; c4#3 cancelled true
        advance 50 =>
        expire                          => c3#1 Timeout
        c2#2 release svc                => c2#2 released
        c1#1 names                      => c1#1 names
        ",
    );
}

#[test]
fn an_inbox_is_bounded_with_blocking_non_blocking_and_timed_sends() {
    check(
        "
        c2#1 inboxcap 1                 => c2#1 inboxcap
        c1#1 sendw p2 a                 => c1#1 sent 1 to 1
        c1#2 sendw p2 b never           => c1#2 WouldBlock
        c1#3 sendw p2 b t=100           =>
        advance 100 =>
        expire                          => c1#3 Timeout
        c1#4 sendw p2 c                 =>
        c2#2 recvw inbox never          => c2#2 got 1 a from c1; c1#4 sent 2 to 1
        c1#5 sendw p2 d                 =>
        disconnect c2                   => c1#5 NoSuchProcess
        ",
    );
}

#[test]
fn a_zero_capacity_inbox_is_a_rendezvous() {
    check(
        "
        c2#1 inboxcap zero              => c2#1 inboxcap
        c1#1 sendw p2 a never           => c1#1 WouldBlock
        c1#2 sendw p2 a                 =>
        c2#2 recvw inbox                => c1#2 sent 1 to 1; c2#2 got 1 a from c1
        ",
    );
}

#[test]
fn receive_from_takes_a_waiting_send_straight_when_the_inbox_is_full_of_others() {
    check(
        "
        c2#1 inboxcap 1                 => c2#1 inboxcap
        c1#1 sendw p2 a                 => c1#1 sent 1 to 1
        c3#1 sendw p2 b                 =>
        c2#2 recvw inbox from=p3 never  => c3#1 sent 2 to 1; c2#2 got 2 b from c3
        c2#3 recvw inbox never          => c2#3 got 1 a from c1
        ",
    );
}

// --- How long a send waits --------------------------------------------------

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

// --- Acknowledgements and redelivery ----------------------------------------

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

// --- Time-to-live ----------------------------------------------------------

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

// --- Request/reply -----------------------------------------------------------

#[test]
fn a_call_is_answered_by_the_reply_of_whoever_took_the_request() {
    check(
        "
        c1#1 create svc                 => c1#1 created
        c2#1 recv svc                   =>
        c3#1 call svc ping t=1000       => c2#1 got 1 ping from c3 call=1
        c2#2 reply 1 pong               => c2#2 replied; c3#1 got 0 pong from c2 call=1
        c2#3 reply 1 again              => c2#3 CallEnded
        c4#1 reply 7 x                  => c4#1 NotHeld
        c3#2 call svc ping never        => c3#2 InvalidRequest
        ",
    );
}

#[test]
fn many_calls_can_be_outstanding_on_one_connection() {
    check(
        "
        c1#1 create svc                 => c1#1 created
        c3#1 call svc a                 =>
        c3#2 call svc b                 =>
        c2#1 recvmany svc 10            => c2#1 gotmany 1:a 2:b from c3
        c4#1 reply 2 B                  => c4#1 NotHeld
        c2#2 reply 2 B                  => c2#2 replied; c3#2 got 0 B from c2 call=2
        c2#3 reply 1 A                  => c2#3 replied; c3#1 got 0 A from c2 call=1
        ",
    );
}

#[test]
fn a_call_to_a_named_process_goes_through_its_inbox() {
    check(
        "
        c2#1 claim adder                => c2#1 claimed
        c1#1 call n:adder 1+1           =>
        c2#2 recvw inbox                => c2#2 got 1 1+1 from c1 call=1
        c2#3 reply 1 2                  => c2#3 replied; c1#1 got 0 2 from c2 call=1
        ",
    );
}

#[test]
fn a_holder_that_leaves_without_replying_ends_the_call_at_once() {
    check(
        "
        c1#1 create svc                 => c1#1 created
        c3#1 call svc ping              =>
        c2#1 recv svc                   => c2#1 got 1 ping from c3 call=1
        disconnect c2                   => c3#1 NoReply
        ",
    );
}

#[test]
fn a_request_held_unacknowledged_goes_back_when_its_holder_leaves() {
    check(
        "
        c1#1 create svc                 => c1#1 created
        c3#1 call svc ping              =>
        c2#1 recvw svc ack              => c2#1 got 1 ping from c3 call=1
        disconnect c2                   =>
        c4#1 recv svc never             => c4#1 got 1 ping from c3 r=1 call=1
        c4#2 reply 1 pong               => c4#2 replied; c3#1 got 0 pong from c4 call=1
        ",
    );
}

#[test]
fn a_call_that_times_out_withdraws_its_queued_request() {
    check(
        "
        c1#1 create svc                 => c1#1 created
        c3#1 call svc ping t=100        =>
        advance 100 =>
        expire                          => c3#1 Timeout
        c2#1 recv svc never             => c2#1 WouldBlock
        c3#2 call svc ping              =>
        c1#2 delete svc                 => c1#2 deleted; c3#2 MailboxDeleted
        ",
    );
}

#[test]
fn a_caller_that_leaves_makes_the_reply_fail_with_call_ended() {
    check(
        "
        c1#1 create svc                 => c1#1 created
        c3#1 call svc ping              =>
        c2#1 recv svc                   => c2#1 got 1 ping from c3 call=1
        disconnect c3                   =>
        c2#2 reply 1 pong               => c2#2 CallEnded
        ",
    );
}

// --- Hash and priority ------------------------------------------------------

#[test]
fn hash_sends_a_key_to_the_same_receiver_while_it_stays() {
    check(
        "
        c1#1 create h hash              => c1#1 created
        c2#1 recv h                     =>
        c3#1 recv h                     =>
        c1#2 sendw h a1 key=a           => c1#2 sent 1 to 1; c2#1 got 1 a1 from c1 key=a
        c1#3 sendw h b1 key=b           => c1#3 sent 2 to 1; c3#1 got 2 b1 from c1 key=b
        c1#4 sendw h a2 key=a           => c1#4 sent 3 to 1
        c3#2 recv h never               => c3#2 WouldBlock
        c2#2 recv h never               => c2#2 got 3 a2 from c1 key=a
        c1#5 send h free                => c1#5 sent 4 to 1
        c3#3 recv h never               => c3#3 got 4 free from c1
        c1#6 sendw h a3 key=a           => c1#6 sent 5 to 1
        disconnect c2                   =>
        c3#4 recv h never               => c3#4 got 5 a3 from c1 key=a
        c1#7 info h                     => c1#7 info queued=0 bytes=0 senders=0 receivers=0 subscribers=1 accepted=5 delivered=5
        ",
    );
}

#[test]
fn hash_keys_of_a_leaving_receiver_move_with_their_messages_in_order() {
    check(
        "
        c1#1 create h hash              => c1#1 created
        c2#1 recvw h ack                =>
        c1#2 sendw h a1 key=a           => c1#2 sent 1 to 1; c2#1 got 1 a1 from c1 key=a
        c1#3 sendw h a2 key=a           => c1#3 sent 2 to 1
        c3#1 recv h                     =>
        disconnect c2                   => c3#1 got 1 a1 from c1 r=1 key=a
        c3#2 recv h never               => c3#2 got 2 a2 from c1 key=a
        ",
    );
}

#[test]
fn hash_keeps_keyed_messages_until_a_pool_exists_and_leaving_is_unsubscribe() {
    check(
        "
        c1#1 create h hash              => c1#1 created
        c1#2 sendw h x1 key=x           => c1#2 sent 1 to 1
        c1#3 sendw h x2 key=x           => c1#3 sent 2 to 1
        c2#1 sub h                      => c2#1 subscribed
        c3#1 recv h never               => c3#1 WouldBlock
        c2#2 recvmany h 5 never         => c2#2 gotmany 1:x1 2:x2 from c1
        c2#3 unsub h                    => c2#3 unsubscribed
        c1#4 sendw h x3 key=x           => c1#4 sent 3 to 1
        c3#2 recv h never               => c3#2 got 3 x3 from c1 key=x
        ",
    );
}

#[test]
fn a_zero_capacity_hash_mailbox_hands_over_only_to_the_keys_receiver() {
    check(
        "
        c1#1 create h hash zero         => c1#1 created
        c1#2 sendw h a key=k never      => c1#2 WouldBlock
        c2#1 recv h                     =>
        c1#3 sendw h a key=k            => c1#3 sent 1 to 1; c2#1 got 1 a from c1 key=k
        c3#1 recv h                     =>
        c1#4 sendw h b key=k            =>
        c2#2 recv h                     => c1#4 sent 2 to 1; c2#2 got 2 b from c1 key=k
        ",
    );
}

#[test]
fn priority_serves_the_highest_waiting_receiver_first_then_in_arrival_order() {
    check(
        "
        c1#1 create p priority          => c1#1 created
        c2#1 recvw p prio=1             =>
        c3#1 recvw p prio=5             =>
        c4#1 recvw p prio=5             =>
        c1#2 send p m1                  => c1#2 sent 1 to 1; c3#1 got 1 m1 from c1
        c1#3 send p m2                  => c1#3 sent 2 to 1; c4#1 got 2 m2 from c1
        c1#4 send p m3                  => c1#4 sent 3 to 1; c2#1 got 3 m3 from c1
        ",
    );
}

#[test]
fn priority_fails_over_to_the_standby_when_the_primary_leaves() {
    check(
        "
        c1#1 create p priority          => c1#1 created
        c2#1 recvw p prio=1             =>
        c3#1 recvw p prio=9             =>
        c1#2 send p first               => c1#2 sent 1 to 1; c3#1 got 1 first from c1
        c3#2 recvw p prio=9             =>
        disconnect c3                   =>
        c1#3 send p second              => c1#3 sent 2 to 1; c2#1 got 2 second from c1
        ",
    );
}

// --- Shutdown -----------------------------------------------------------------

#[test]
fn shutdown_answers_queued_claims_and_calls() {
    check(
        "
        c1#1 create svc                 => c1#1 created
        c2#1 claim n                    => c2#1 claimed
        c3#1 claim n forever            =>
        c4#1 call svc x                 =>
        c1#2 sendw p2 y stage=received  =>
        shutdown                        => c3#1 BrokerShuttingDown; c4#1 BrokerShuttingDown; c1#2 BrokerShuttingDown
        ",
    );
}

#[test]
fn shutdown_answers_a_call_whose_request_still_waits_to_be_sent_only_once() {
    // Found by the `core_requests` fuzz target: such a call was answered as
    // a waiting sender and again as an open call, two replies to one id.
    check(
        "
        c2#1 inboxcap zero              => c2#1 inboxcap
        c1#1 call p2 ping               =>
        c1#2 create full cap=1          => c1#2 created
        c1#3 send full x                => c1#3 sent 1 to 1
        c3#1 call full y                =>
        shutdown                        => c1#1 BrokerShuttingDown; c3#1 BrokerShuttingDown
        ",
    );
}
