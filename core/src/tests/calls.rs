//! Request/reply: calls, replies, and holders or callers that leave. Scripts in the language of the parent module's doc; connection `cN` has
//! process address `pN`.

use super::check;

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
