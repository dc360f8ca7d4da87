//! The hash and priority policies: keys that stay with their receiver,
//! fail-over to a standby.

use super::check;

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
