//! Receiving from a well-known name (`recvw inbox from=n:NAME`): a message
//! matches when its sender held the name when the inbox accepted it (the
//! name resolved per message, not once when the receive starts), so the
//! two sides of a conversation may start in either order. Scripts in the
//! language of the parent module's doc; connection `cN` has process
//! address `pN`.

use super::{check, ConnectionId, Harness, Limits};

#[test]
fn a_receive_from_a_name_nobody_holds_waits_for_whoever_claims_it_and_sends() {
    // The symmetric pair, the receiver first: c2 (worker) waits for alice
    // before alice exists; c3 then claims alice and sends.
    check(
        "
        c2#1 claim worker               => c2#1 claimed
        c2#2 recvw inbox from=n:alice   =>
        c3#1 claim alice                => c3#1 claimed
        c3#2 sendw n:worker hi          => c3#2 sent 1 to 1; c2#2 got 1 hi from c3
        c3#3 recvw inbox from=n:worker  =>
        c2#3 sendw n:alice back         => c2#3 sent 1 to 1; c3#3 got 1 back from c2
        ",
    );
    // The other order: alice claims and sends first; worker asks later.
    check(
        "
        c2#1 claim worker               => c2#1 claimed
        c3#1 claim alice                => c3#1 claimed
        c3#2 sendw n:worker hi          => c3#2 sent 1 to 1
        c3#3 recvw inbox from=n:worker  =>
        c2#2 recvw inbox from=n:alice   => c2#2 got 1 hi from c3
        c2#3 sendw n:alice back         => c2#3 sent 1 to 1; c3#3 got 1 back from c2
        ",
    );
}

#[test]
fn a_name_nobody_holds_is_no_error_a_receive_finds_nothing_or_times_out() {
    check(
        "
        c1#1 recvw inbox from=n:ghost never  => c1#1 WouldBlock
        c1#2 recvw inbox from=n:ghost t=50   =>
        advance 50 =>
        expire                               => c1#2 Timeout
        c1#3 recvw inbox from=n:bad!name     => c1#3 InvalidName
        c1#4 recvw inbox from=p9 never       => c1#4 NoSuchProcess
        ",
    );
}

#[test]
fn the_holder_when_a_message_is_sent_decides_not_the_holder_when_the_receive_began() {
    // c2 waits for alice while c3 holds it; c3 lets it go to c4, queued.
    // What c3 sends then is not alice's; what c4 sends is.
    check(
        "
        c3#1 claim alice                => c3#1 claimed
        c2#1 recvw inbox from=n:alice   =>
        c4#1 claim alice forever        =>
        c3#2 release alice              => c3#2 released; c4#1 claimed
        c3#3 sendw p2 not-alice         => c3#3 sent 1 to 1
        c4#2 sendw p2 from-alice        => c4#2 sent 2 to 1; c2#1 got 2 from-alice from c4
        c2#2 recvw inbox never          => c2#2 got 1 not-alice from c3
        ",
    );
}

#[test]
fn a_receive_from_a_name_outlives_its_holder() {
    // Unlike a receive from a process, which ends when that process
    // leaves: the name may be claimed again.
    check(
        "
        c3#1 claim alice                => c3#1 claimed
        c2#1 recvw inbox from=n:alice   =>
        disconnect c3                   =>
        c4#1 claim alice                => c4#1 claimed
        c4#2 sendw p2 again             => c4#2 sent 1 to 1; c2#1 got 1 again from c4
        ",
    );
}

#[test]
fn a_queued_message_keeps_the_names_its_sender_held_when_it_was_sent() {
    // Sent before the claim: not alice's. Sent while holding it: alice's,
    // after the release and after the sender left too.
    check(
        "
        c3#1 sendw p2 before            => c3#1 sent 1 to 1
        c3#2 claim alice                => c3#2 claimed
        c3#3 sendw p2 during            => c3#3 sent 2 to 1
        c3#4 release alice              => c3#4 released
        c3#5 sendw p2 after             => c3#5 sent 3 to 1
        c2#1 recvw inbox from=n:alice never => c2#1 got 2 during from c3
        c2#2 recvw inbox from=n:alice never => c2#2 WouldBlock
        c4#1 claim bob                  => c4#1 claimed
        c4#2 sendw p2 bobs              => c4#2 sent 4 to 1
        disconnect c4                   =>
        c2#3 recvw inbox from=n:bob never => c2#3 got 4 bobs from c4
        c2#4 recvw inbox from=p3 never  => c2#4 got 1 before from c3
        c2#5 recvw inbox never          => c2#5 got 3 after from c3
        ",
    );
}

#[test]
fn a_sender_that_holds_several_names_is_each_of_them() {
    check(
        "
        c3#1 claim alice                => c3#1 claimed
        c3#2 claim bob                  => c3#2 claimed
        c3#3 sendw p2 one               => c3#3 sent 1 to 1
        c3#4 sendw p2 two               => c3#4 sent 2 to 1
        c2#1 recvw inbox from=n:bob never   => c2#1 got 1 one from c3
        c2#2 recvw inbox from=n:alice never => c2#2 got 2 two from c3
        c2#3 recvw inbox from=n:alice never => c2#3 WouldBlock
        c2#4 recvw inbox from=n:bob         =>
        c2#5 recvw inbox from=n:alice       =>
        c3#5 sendw p2 three             => c3#5 sent 3 to 1; c2#4 got 3 three from c3
        c3#6 sendw p2 four              => c3#6 sent 4 to 1; c2#5 got 4 four from c3
        ",
    );
}

#[test]
fn a_receive_from_a_name_takes_a_waiting_send_straight_when_the_inbox_is_full() {
    check(
        "
        c2#1 inboxcap 1                 => c2#1 inboxcap
        c1#1 sendw p2 a                 => c1#1 sent 1 to 1
        c3#1 claim alice                => c3#1 claimed
        c3#2 sendw p2 b                 =>
        c2#2 recvw inbox from=n:alice never => c3#2 sent 2 to 1; c2#2 got 2 b from c3
        c4#1 sendw p2 c                 =>
        c2#3 recvw inbox from=n:alice   =>
        c3#3 sendw p2 d                 => c3#3 sent 3 to 1; c2#3 got 3 d from c3
        c2#4 recvw inbox never          => c2#4 got 1 a from c1; c4#1 sent 4 to 1
        ",
    );
}

#[test]
fn a_message_that_comes_back_keeps_its_senders_names() {
    // Received with manual acknowledgement, then put back after the sender
    // let the name go: still alice's.
    check(
        "
        c3#1 claim alice                => c3#1 claimed
        c3#2 sendw p2 job               => c3#2 sent 1 to 1
        c2#1 recvw inbox ack from=n:alice never => c2#1 got 1 job from c3
        c3#3 release alice              => c3#3 released
        c2#2 nack inbox 1               => c2#2 settled
        c2#3 recvw inbox from=n:alice never => c2#3 got 1 job from c3 r=1
        ",
    );
    // The same for one taken straight from its waiting sender (a
    // rendezvous inbox).
    check(
        "
        c2#1 inboxcap zero              => c2#1 inboxcap
        c3#1 claim alice                => c3#1 claimed
        c3#2 sendw p2 job               =>
        c2#2 recvw inbox ack from=n:alice never => c3#2 sent 1 to 1; c2#2 got 1 job from c3
        c3#3 release alice              => c3#3 released
        c2#3 nack inbox 1               => c2#3 settled
        c2#4 recvw inbox from=n:alice never => c2#4 got 1 job from c3 r=1
        ",
    );
}

#[test]
fn a_connection_holds_or_waits_for_a_bounded_number_of_names() {
    let mut script = String::new();
    for n in 1..=crate::MAX_NAMES_PER_CONNECTION {
        script.push_str(&format!("c1#{n} claim svc{n} => c1#{n} claimed\n"));
    }
    let next = crate::MAX_NAMES_PER_CONNECTION + 1;
    script.push_str(&format!(
        "
        c1#{next} claim other           => c1#{next} TooManyRequests
        c1#100 claim svc1               => c1#100 claimed
        c2#1 claim held                 => c2#1 claimed
        c1#101 release svc1             => c1#101 released
        c1#102 claim held forever       =>
        c1#103 claim held forever       =>
        c1#104 claim other              => c1#104 TooManyRequests
        c2#2 release held               => c2#2 released; c1#102 claimed
        "
    ));
    check(&script);
}

#[test]
fn the_names_kept_for_messages_received_and_settled_stay_bounded() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run("c3#1 claim alice => c3#1 claimed");
    for n in 1..=500u64 {
        let id = n + 1;
        harness.run(&format!(
            "
            c3#{id} sendw p2 job            => c3#{id} sent {n} to 1
            c2#{id} recvw inbox ack from=n:alice never => c2#{id} got {n} job from c3
            c2#{} ack inbox {n}             => c2#{} settled
            ",
            1000 + id,
            1000 + id,
        ));
    }
    let inbox = harness
        .core
        .places
        .inboxes
        .get(&ConnectionId(2))
        .expect("inbox");
    // Nothing is queued or in flight: at most the sweep's slack is kept.
    assert!(inbox.names_kept() <= 17, "{}", inbox.names_kept());
}
