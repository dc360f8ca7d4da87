//! Batches: send-many and receive-many.

use super::*;

#[test]
fn a_batch_is_admitted_in_order_with_consecutive_sequence_numbers() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 send q v                   => c2#1 sent 1 to 1
        c1#2 sendmany q a,b,c           => c1#2 sentmany 2+3 to 1
        c2#2 send q y                   => c2#2 sent 5 to 1
        c3#1 recv q                     => c3#1 got 1 v from c2
        c3#2 recv q                     => c3#2 got 2 a from c1
        c3#3 recv q                     => c3#3 got 3 b from c1
        c3#4 recv q                     => c3#4 got 4 c from c1
        c3#5 recv q                     => c3#5 got 5 y from c2
        c3#6 info q => c3#6 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=5 delivered=5
        ",
    );
}

#[test]
fn an_empty_batch_is_answered_at_once_with_nothing_admitted() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c1#3 sendmany q -               => c1#3 sentmany 2+0 to 0
        c1#4 sendmany q - never         => c1#4 sentmany 2+0 to 0
        c1#5 sendmany r -               => c1#5 NoSuchMailbox
        c1#6 info q => c1#6 info queued=1 bytes=1 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        ",
    );
}

#[test]
fn a_waiting_batch_holds_the_head_of_the_line_so_no_other_message_interleaves() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 sendmany q a,b,c           =>
        c2#1 send q v                   =>
        c4#1 info q => c4#1 info queued=1 bytes=1 senders=2 receivers=0 subscribers=0 accepted=1 delivered=0
        c4#2 status                     => c4#2 status connections=4 mailboxes=1 queued=1 bytes=4
        c3#1 recv q                     => c3#1 got 1 a from c1
        c3#2 recv q                     => c3#2 got 2 b from c1; c1#2 sentmany 1+3 to 1
        c3#3 recv q                     => c3#3 got 3 c from c1; c2#1 sent 4 to 1
        c3#4 recv q                     => c3#4 got 4 v from c2
        c4#3 status                     => c4#3 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn a_non_blocking_batch_admits_what_fits_and_stops_with_would_block() {
    check(
        "
        c1#1 create q cap=3             => c1#1 created
        c1#2 send q v                   => c1#2 sent 1 to 1
        c1#3 sendmany q a,b,c,d never   => c1#3 sentmany 2+2 to 1 stopped WouldBlock
        c1#4 sendmany q e never         => c1#4 sentmany 4+0 to 0 stopped WouldBlock
        c1#5 sendmany q f,g t=0         => c1#5 sentmany 4+0 to 0 stopped Timeout
        c1#6 status                     => c1#6 status connections=4 mailboxes=1 queued=3 bytes=3
        c2#1 recvmany q 10 never        => c2#1 gotmany 1:v 2:a 3:b from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c1#7 sendmany q h,i t=0         => c1#7 sentmany 4+2 to 1
        c1#8 create z zero              => c1#8 created
        c2#3 recv z                     =>
        c1#9 sendmany z j,k never       => c1#9 sentmany 1+1 to 1 stopped WouldBlock; c2#3 got 1 j from c1
        c1#10 sendmany z l never        => c1#10 sentmany 2+0 to 0 stopped WouldBlock
        c1#11 status                    => c1#11 status connections=4 mailboxes=2 queued=2 bytes=2
        ",
    );
}

#[test]
fn a_timed_batch_admits_as_room_appears_then_times_out_with_what_it_admitted() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q v                   => c1#2 sent 1 to 1
        c1#3 sendmany q a,b,c t=50      =>
        advance 20                      =>
        c2#1 recv q                     => c2#1 got 1 v from c1
        c2#2 status                     => c2#2 status connections=4 mailboxes=1 queued=1 bytes=3
        advance 29                      =>
        expire                          =>
        advance 1                       =>
        expire                          => c1#3 sentmany 2+1 to 1 stopped Timeout
        c2#3 status                     => c2#3 status connections=4 mailboxes=1 queued=1 bytes=1
        c2#4 recv q never               => c2#4 got 2 a from c1
        c2#5 recv q never               => c2#5 WouldBlock
        c1#4 send q y                   => c1#4 sent 3 to 1
        c1#5 sendmany q m,n t=10        =>
        advance 10                      =>
        expire                          => c1#5 sentmany 4+0 to 0 stopped Timeout
        c2#6 recv q never               => c2#6 got 3 y from c1
        c2#7 recv q never               => c2#7 WouldBlock
        ",
    );
}

#[test]
fn deleting_the_mailbox_mid_batch_answers_it_with_what_was_admitted() {
    check(
        "
        c1#1 create q cap=2             => c1#1 created
        c1#2 sendmany q a,b,c,d         =>
        c2#1 recvmany q 1               => c2#1 gotmany 1:a from c1
        c2#2 delete q                   => c2#2 deleted; c1#2 sentmany 1+3 to 1 stopped MailboxDeleted
        c2#3 status                     => c2#3 status connections=4 mailboxes=0 queued=0 bytes=0
        c2#4 create q cap=2             => c2#4 created
        c2#5 sendmany q e,f,g           =>
        c2#6 sendmany q h               =>
        c3#1 delete q                   => c3#1 deleted; c2#5 sentmany 1+2 to 1 stopped MailboxDeleted; c2#6 sentmany 3+0 to 0 stopped MailboxDeleted
        ",
    );
}

#[test]
fn cancelling_a_batch_mid_way_answers_it_with_what_was_admitted_and_admits_no_more() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 sendmany q a,b,c           =>
        c1#3 cancel 2                   => c1#3 cancelled true; c1#2 sentmany 1+1 to 1 stopped Cancelled
        c1#4 cancel 2                   => c1#4 cancelled false
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c2#3 status                     => c2#3 status connections=4 mailboxes=1 queued=0 bytes=0
        c1#5 send q v                   => c1#5 sent 2 to 1
        c1#6 sendmany q y,z             =>
        c1#7 cancel 6                   => c1#7 cancelled true; c1#6 sentmany 3+0 to 0 stopped Cancelled
        c2#4 recv q never               => c2#4 got 2 v from c1
        c2#5 recv q never               => c2#5 WouldBlock
        ",
    );
}

#[test]
fn shut_down_mid_batch_answers_it_with_what_was_admitted() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 create b broadcast cap=1   => c1#2 created
        c2#1 sub b                      => c2#1 subscribed
        c1#3 sendmany q a,b             =>
        c1#4 sendmany b c,d,e           =>
        c3#1 sendmany q f               =>
        shutdown                        => c1#3 sentmany 1+1 to 1 stopped BrokerShuttingDown; c1#4 sentmany 1+1 to 1 stopped BrokerShuttingDown; c3#1 sentmany 2+0 to 0 stopped BrokerShuttingDown
        c1#5 sendmany q g               => c1#5 BrokerShuttingDown
        c2#2 recvmany b 2               => c2#2 BrokerShuttingDown
        ",
    );
}

#[test]
fn disconnect_mid_batch_withdraws_the_rest_silently_and_keeps_what_was_admitted() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 sendmany q a,b,c           =>
        c2#1 send q v                   =>
        disconnect c1                   =>
        c3#1 recv q never               => c3#1 got 1 a from c1; c2#1 sent 2 to 1
        c3#2 recv q never               => c3#2 got 2 v from c2
        c3#3 recv q never               => c3#3 WouldBlock
        c3#4 status                     => c3#4 status connections=3 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn a_batch_over_the_memory_budget_is_refused_whole_with_broker_full() {
    check_with(
        limits(6, 100),
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q ab                  => c1#2 sent 1 to 1
        c1#3 sendmany q cd,ef,g         => c1#3 BrokerFull
        c1#4 sendmany q cd,ef,g never   => c1#4 BrokerFull
        c1#5 status                     => c1#5 status connections=4 mailboxes=1 queued=1 bytes=2
        c1#6 sendmany q cd,ef           => c1#6 sentmany 2+2 to 1
        c1#7 sendmany q \"\",\"\"       => c1#7 sentmany 4+2 to 1
        c1#8 sendmany q g               => c1#8 BrokerFull
        c2#1 recvmany q 3               => c2#1 gotmany 1:ab 2:cd 3:ef from c1
        c1#9 sendmany q g               => c1#9 sentmany 6+1 to 1
        ",
    );
}

#[test]
fn a_waiting_batch_holds_only_its_unadmitted_bytes_and_releases_them_when_withdrawn() {
    check_with(
        limits(6, 100),
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 sendmany q ab,cd,ef        =>
        c2#1 status                     => c2#1 status connections=4 mailboxes=1 queued=1 bytes=6
        c2#2 send q g never             => c2#2 BrokerFull
        c2#3 recv q                     => c2#3 got 1 ab from c1
        c2#4 status                     => c2#4 status connections=4 mailboxes=1 queued=1 bytes=4
        c2#5 sendmany q gh,ij never     => c2#5 BrokerFull
        c2#6 sendmany q g never         => c2#6 sentmany 3+0 to 0 stopped WouldBlock
        c2#7 status                     => c2#7 status connections=4 mailboxes=1 queued=1 bytes=4
        c1#3 cancel 2                   => c1#3 cancelled true; c1#2 sentmany 1+2 to 1 stopped Cancelled
        c2#8 status                     => c2#8 status connections=4 mailboxes=1 queued=1 bytes=2
        c2#9 recv q                     => c2#9 got 2 cd from c1
        c2#10 status                    => c2#10 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn one_payload_too_large_or_of_the_wrong_size_refuses_the_whole_batch() {
    check(
        "
        c1#1 create q max=4             => c1#1 created
        c1#2 sendmany q a,@5,b          => c1#2 MessageTooLarge
        c1#3 sendmany q a,b,@5 never    => c1#3 MessageTooLarge
        c1#4 create f max=8 fixed=2     => c1#4 created
        c1#5 sendmany f ab,cd,e         => c1#5 WrongMessageSize
        c1#6 sendmany f ab,@9           => c1#6 MessageTooLarge
        c1#7 status                     => c1#7 status connections=4 mailboxes=2 queued=0 bytes=0
        c1#8 sendmany f ab,cd           => c1#8 sentmany 1+2 to 1
        c1#9 sendmany q a,@4            => c1#9 sentmany 1+2 to 1
        c1#10 sendmany bad!name a       => c1#10 InvalidName
        c1#11 sendmany nope a           => c1#11 NoSuchMailbox
        c1#12 recvmany nope 2 never     => c1#12 NoSuchMailbox
        c1#13 status                    => c1#13 status connections=4 mailboxes=2 queued=4 bytes=9
        ",
    );
}

#[test]
fn receive_many_takes_up_to_max_in_order_and_leaves_the_rest() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendmany q a,b,c,d,e       => c1#2 sentmany 1+5 to 1
        c2#1 recvmany q 2               => c2#1 gotmany 1:a 2:b from c1
        c2#2 recvmany q 2 never         => c2#2 gotmany 3:c 4:d from c1
        c2#3 recvmany q 9 t=0           => c2#3 gotmany 5:e from c1
        c2#4 recvmany q 9 never         => c2#4 WouldBlock
        c2#5 recvmany q 9 t=0           => c2#5 Timeout
        c2#6 info q => c2#6 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=5 delivered=5
        c3#1 send q f                   => c3#1 sent 6 to 1
        c1#3 sendmany q g,h             => c1#3 sentmany 7+2 to 1
        c2#7 recvmany q 9               => c2#7 gotmany 6:f from c3, 7:g 8:h from c1
        ",
    );
}

#[test]
fn receive_many_with_max_zero_takes_one() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendmany q a,b             => c1#2 sentmany 1+2 to 1
        c2#1 recvmany q 0               => c2#1 gotmany 1:a from c1
        c2#2 recvmany q 0 never         => c2#2 gotmany 2:b from c1
        c2#3 recvmany q 0               =>
        c1#3 sendmany q c,d             => c1#3 sentmany 3+2 to 1; c2#3 gotmany 3:c from c1
        ",
    );
}

#[test]
fn receive_many_waits_for_the_first_message_then_takes_what_is_buffered() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recvmany q 3               =>
        c1#2 send q a                   => c1#2 sent 1 to 1; c2#1 gotmany 1:a from c1
        c2#2 recvmany q 3               =>
        c1#3 sendmany q b,c,d,e         => c1#3 sentmany 2+4 to 1; c2#2 gotmany 2:b 3:c 4:d from c1
        c2#3 recv q never               => c2#3 got 5 e from c1
        c2#4 recvmany q 3 t=10          =>
        advance 10                      =>
        expire                          => c2#4 Timeout
        c2#5 recvmany q 3 t=10          =>
        c2#6 cancel 5                   => c2#6 cancelled true; c2#5 Cancelled
        c1#4 create s cap=1             => c1#4 created
        c3#1 recvmany s 3               =>
        c1#5 sendmany s f,g,h           => c3#1 gotmany 1:f from c1
        c3#2 recvmany s 3 never         => c3#2 gotmany 2:g from c1; c1#5 sentmany 1+3 to 1
        c3#3 recv s never               => c3#3 got 3 h from c1
        ",
    );
}

#[test]
fn waiting_receive_many_and_receive_are_served_first_come_first_served() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recvmany q 2               =>
        c3#1 recv q                     =>
        c4#1 recvmany q 2               =>
        c1#2 sendmany q a,b,c,d,e,f     => c1#2 sentmany 1+6 to 1; c2#1 gotmany 1:a 2:b from c1; c3#1 got 3 c from c1; c4#1 gotmany 4:d 5:e from c1
        c2#2 recvmany q 2 never         => c2#2 gotmany 6:f from c1
        ",
    );
}

#[test]
fn zero_capacity_receive_many_takes_from_several_waiting_senders() {
    check(
        "
        c1#1 create z zero              => c1#1 created
        c1#2 send z a                   =>
        c2#1 sendmany z b,c             =>
        c3#1 send z d                   =>
        c4#1 recvmany z 3               => c4#1 gotmany 1:a from c1, 2:b 3:c from c2; c1#2 sent 1 to 1; c2#1 sentmany 2+2 to 1
        c4#2 recvmany z 3 never         => c4#2 gotmany 4:d from c3; c3#1 sent 4 to 1
        c4#3 recvmany z 3 never         => c4#3 WouldBlock
        c1#3 sendmany z e,f,g           =>
        c4#4 recvmany z 2               => c4#4 gotmany 5:e 6:f from c1
        c4#5 recv z                     => c4#5 got 7 g from c1; c1#3 sentmany 5+3 to 1
        c4#6 status                     => c4#6 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn zero_capacity_batch_meets_waiting_receivers_one_after_another() {
    check(
        "
        c1#1 create z zero              => c1#1 created
        c2#1 recv z                     =>
        c3#1 recvmany z 2               =>
        c4#1 recv z                     =>
        c1#2 sendmany z a,b,c,d,e       => c2#1 got 1 a from c1; c3#1 gotmany 2:b 3:c from c1; c4#1 got 4 d from c1
        c1#3 info z => c1#3 info queued=0 bytes=0 senders=1 receivers=0 subscribers=0 accepted=4 delivered=4
        c2#2 recv z                     => c2#2 got 5 e from c1; c1#2 sentmany 1+5 to 1
        ",
    );
}

#[test]
fn broadcast_receive_many_reads_the_subscribers_backlog() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c3#1 sendmany b a,b,c           => c3#1 sentmany 1+3 to 2
        c1#3 recvmany b 2               => c1#3 gotmany 1:a 2:b from c3
        c2#2 recvmany b 5               => c2#2 gotmany 1:a 2:b 3:c from c3
        c1#4 recvmany b 5               => c1#4 gotmany 3:c from c3
        c1#5 recvmany b 5               =>
        c3#2 sendmany b d,e             => c3#2 sentmany 4+2 to 2; c1#5 gotmany 4:d 5:e from c3
        c2#3 recvmany b 1 never         => c2#3 gotmany 4:d from c3
        c4#1 recvmany b 3               => c4#1 NotSubscribed
        c4#2 info b => c4#2 info queued=1 bytes=1 senders=0 receivers=0 subscribers=2 accepted=5 delivered=9
        c2#4 unsub b                    => c2#4 unsubscribed
        c4#3 status                     => c4#3 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn zero_broadcast_delivers_one_message_per_rendezvous_even_to_receive_many() {
    check(
        "
        c1#1 create b broadcast zero    => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c1#3 recvmany b 3               =>
        c2#2 recvmany b 3               =>
        c3#1 sendmany b v,y             => c1#3 gotmany 1:v from c3; c2#2 gotmany 1:v from c3
        c1#4 recv b                     =>
        c2#3 recvmany b 2               => c1#4 got 2 y from c3; c2#3 gotmany 2:y from c3; c3#1 sentmany 1+2 to 2
        c4#1 sendmany b z never         => c4#1 sentmany 3+0 to 0 stopped WouldBlock
        c1#5 create n broadcast zero    => c1#5 created
        c4#2 sendmany n z1,z2 never     => c4#2 sentmany 1+2 to 0
        ",
    );
}

#[test]
fn a_broadcast_batch_reports_the_subscribers_when_its_last_message_was_admitted() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c3#1 sendmany b w               => c3#1 sentmany 1+1 to 0
        c1#2 sub b                      => c1#2 subscribed
        c3#2 sendmany b v,y             =>
        c2#1 sub b                      => c2#1 subscribed
        c1#3 recv b                     => c1#3 got 2 v from c3; c3#2 sentmany 2+2 to 2
        c2#2 recv b never               => c2#2 got 3 y from c3
        c1#4 recv b never               => c1#4 got 3 y from c3
        c2#3 recv b never               => c2#3 WouldBlock
        ",
    );
}

#[test]
fn unsubscribing_the_laggard_lets_a_waiting_broadcast_batch_go_on() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c3#1 sendmany b m1,m2,m3        =>
        c1#3 recv b never               => c1#3 got 1 m1 from c3
        c2#2 unsub b                    => c2#2 unsubscribed
        c4#1 info b => c4#1 info queued=1 bytes=2 senders=1 receivers=0 subscribers=1 accepted=2 delivered=1
        c1#4 recvmany b 5 never         => c1#4 gotmany 2:m2 from c3; c3#1 sentmany 1+3 to 1
        c1#5 recv b never               => c1#5 got 3 m3 from c3
        c4#2 status                     => c4#2 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn too_many_waiting_requests_stop_a_batch_after_what_it_admitted() {
    check_with(
        limits(1 << 20, 1),
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 create r                   => c1#2 created
        c1#3 recv r                     =>
        c1#4 sendmany q a,b,c           => c1#4 sentmany 1+1 to 1 stopped TooManyRequests
        c1#5 recvmany r 2 t=10          => c1#5 TooManyRequests
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c2#3 status                     => c2#3 status connections=4 mailboxes=2 queued=0 bytes=0
        ",
    );
}

#[test]
fn a_receive_a_batch_just_fed_no_longer_counts_toward_the_waiting_limit() {
    check_with(
        limits(1 << 20, 1),
        "
        c1#1 create z zero              => c1#1 created
        c1#2 recv z                     =>
        c1#3 sendmany z a,b             => c1#2 got 1 a from c1
        c1#4 recvmany z 2 never         => c1#4 gotmany 2:b from c1; c1#3 sentmany 1+2 to 1
        ",
    );
}

#[test]
fn a_batch_answer_stops_before_it_would_outgrow_one_frame() {
    check(
        "
        c1#1 create q max=16777216              => c1#1 created
        c1#2 sendmany q @8388608,@8388608,a     => c1#2 sentmany 1+3 to 1
        c2#1 recvmany q 3                       => c2#1 gotmany 1:@8388608 from c1
        c2#2 recvmany q 3                       => c2#2 gotmany 2:@8388608 3:a from c1
        c1#3 send q @16777216                   => c1#3 sent 4 to 1
        c2#3 recvmany q 5 never                 => c2#3 gotmany 4:@16777216 from c1
        c1#4 create z zero max=16777216         => c1#4 created
        c1#5 sendmany z @8388608,@8388608       =>
        c2#4 recvmany z 2                       => c2#4 gotmany 1:@8388608 from c1
        c2#5 recvmany z 2                       => c2#5 gotmany 2:@8388608 from c1; c1#5 sentmany 1+2 to 1
        c1#6 create b broadcast max=16777216    => c1#6 created
        c2#6 sub b                              => c2#6 subscribed
        c1#7 sendmany b @8388608,@8388608       => c1#7 sentmany 1+2 to 1
        c2#7 recvmany b 2                       => c2#7 gotmany 1:@8388608 from c1
        c2#8 recvmany b 2                       => c2#8 gotmany 2:@8388608 from c1
        c2#9 status                             => c2#9 status connections=4 mailboxes=3 queued=0 bytes=0
        ",
    );
}
