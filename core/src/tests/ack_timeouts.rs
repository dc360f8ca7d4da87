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
fn a_late_settle_names_its_delivery_and_never_settles_the_next_one() {
    // The message comes back at the deadline and goes straight to the same
    // connection's waiting receive: the settle of the old delivery, applied
    // after it, must not settle the new one.
    check(
        "
        c1#1 create q ack=50            => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#1 recvw q ack                => c2#1 got 1 a from c1
        c2#2 recvw q ack                =>
        advance 50 =>
        c2#3 ack q 1/0                  => c2#3 NotHeld; c2#2 got 1 a from c1 r=1
        c2#4 nack q 1/0                 => c2#4 NotHeld
        c2#5 ack q 1/1                  => c2#5 settled
        c1#3 info q                     => c1#3 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=2 inflight=0 redelivered=1 expired=0 dead=0 dropped=0 acktimeouts=1
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

// --- Random holders against the timeout -------------------------------------

mod random {
    use std::collections::{BTreeMap, BTreeSet};

    use bytes::Bytes;
    use mailbox_proto::{
        Capacity, ErrorKind, MailboxSettings, ReceiveOptions, Request, Response, Source, Verdict,
        Wait,
    };
    use proptest::prelude::*;

    use super::super::{ConnectionId, Harness, Limits, Reply};

    #[derive(Debug, Clone)]
    enum Op {
        Send,
        Receive {
            slot: usize,
            wait: bool,
        },
        Ack {
            slot: usize,
            pick: usize,
            nack: bool,
        },
        /// Time passes; the broker's timer fires only when `fire`.
        Advance {
            millis: u64,
            fire: bool,
        },
        Disconnect {
            slot: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Send),
            3 => (0..3usize, any::<bool>()).prop_map(|(slot, wait)| Op::Receive { slot, wait }),
            3 => (0..3usize, any::<usize>(), prop::bool::weighted(0.2))
                .prop_map(|(slot, pick, nack)| Op::Ack { slot, pick, nack }),
            3 => (1..=25u64, any::<bool>()).prop_map(|(millis, fire)| Op::Advance { millis, fire }),
            1 => (0..3usize).prop_map(|slot| Op::Disconnect { slot }),
        ]
    }

    /// The core's holders and what the test knows of them.
    struct Run {
        harness: Harness,
        timeout: u64,
        slots: [ConnectionId; 3],
        next_connection: u64,
        next_id: u64,
        /// Per slot: message sequence -> when it received it and its
        /// redeliveries then (its hold).
        holds: [BTreeMap<u64, (u64, u32)>; 3],
        accepted: BTreeSet<u64>,
        acked: BTreeSet<u64>,
    }

    impl Run {
        fn request(&mut self, slot: usize, request: Request) -> Vec<Reply> {
            self.next_id += 1;
            self.harness.req(self.slots[slot], self.next_id, request)
        }

        /// Notes every message handed to a slot (a waiting receive may be
        /// answered by any step).
        fn note(&mut self, replies: &[Reply]) {
            for reply in replies {
                let Ok(Response::Received(message)) = &reply.result else {
                    continue;
                };
                if let Some(slot) = self
                    .slots
                    .iter()
                    .position(|c| *c == reply.ticket.connection)
                {
                    self.holds[slot].insert(
                        message.metadata.sequence,
                        (self.harness.elapsed_millis, message.metadata.redeliveries),
                    );
                }
            }
        }

        fn step(&mut self, op: &Op) {
            let replies = match op {
                Op::Send => {
                    self.next_id += 1;
                    let replies = self.harness.req(
                        ConnectionId(99),
                        self.next_id,
                        Request::Send {
                            mailbox: "q".into(),
                            payload: Bytes::from_static(b"m"),
                            wait: Wait::Never,
                        },
                    );
                    for reply in &replies {
                        if let Ok(Response::Sent { sequence, .. }) = reply.result {
                            assert!(self.accepted.insert(sequence), "sequence {sequence} twice");
                        }
                    }
                    replies
                }
                Op::Receive { slot, wait } => self.request(
                    *slot,
                    Request::ReceiveWith {
                        from: Source::Mailbox("q".into()),
                        options: ReceiveOptions {
                            manual_ack: true,
                            ..ReceiveOptions::default()
                        },
                        wait: if *wait { Wait::Forever } else { Wait::Never },
                    },
                ),
                Op::Ack { slot, pick, nack } => {
                    let holds = &self.holds[*slot];
                    if holds.is_empty() {
                        return;
                    }
                    let Some((&sequence, &(since, redeliveries))) =
                        holds.iter().nth(pick % holds.len())
                    else {
                        return;
                    };
                    let verdict = if *nack {
                        Verdict::Nack { to_tail: false }
                    } else {
                        Verdict::Ack
                    };
                    let replies = self.request(
                        *slot,
                        Request::Settle {
                            mailbox: Some("q".into()),
                            sequence,
                            verdict,
                            redeliveries: Some(redeliveries),
                        },
                    );
                    let mine = replies.iter().find(|r| {
                        r.ticket.connection == self.slots[*slot] && r.ticket.request == self.next_id
                    });
                    let late = self.harness.elapsed_millis - since >= self.timeout;
                    match mine.map(|r| &r.result) {
                        Some(Ok(Response::Settled)) => {
                            assert!(!late, "settled {sequence} after its deadline");
                            if !*nack {
                                assert!(self.acked.insert(sequence), "{sequence} acked twice");
                            }
                        }
                        Some(Err(error)) if error.kind == ErrorKind::NotHeld => {
                            assert!(late, "{sequence} taken back before its deadline");
                        }
                        other => panic!("settle answered {other:?}"),
                    }
                    self.holds[*slot].remove(&sequence);
                    replies
                }
                Op::Advance { millis, fire } => {
                    self.harness.advance(*millis);
                    if !*fire {
                        return;
                    }
                    self.harness.expire()
                }
                Op::Disconnect { slot } => {
                    let replies = self.harness.disconnect(self.slots[*slot]);
                    self.next_connection += 1;
                    self.slots[*slot] = ConnectionId(self.next_connection);
                    self.harness.connect(self.slots[*slot]);
                    self.holds[*slot].clear();
                    replies
                }
            };
            self.note(&replies);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 128,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Whatever holders do, a settle before the deadline of the
        /// delivery works and one at or after it is refused; no message is
        /// acknowledged twice, and every accepted message ends acknowledged
        /// once or back in the mailbox.
        #[test]
        fn settles_race_the_deadline_and_nothing_is_lost(
            timeout in 1..=40u64,
            capacity in prop_oneof![Just(Capacity::Unbounded), (1..=3u32).prop_map(Capacity::Bounded)],
            ops in prop::collection::vec(op(), 1..60),
        ) {
            let mut harness = Harness::new(Limits::default());
            for n in [1, 2, 3, 99] {
                harness.connect(ConnectionId(n));
            }
            let settings = MailboxSettings {
                capacity,
                ack_timeout_millis: Some(timeout),
                ..MailboxSettings::default()
            };
            harness.req(ConnectionId(99), 1, Request::CreateMailbox { name: "q".into(), settings: Box::new(settings) });
            let mut run = Run {
                harness,
                timeout,
                slots: [ConnectionId(1), ConnectionId(2), ConnectionId(3)],
                next_connection: 3,
                next_id: 1,
                holds: Default::default(),
                accepted: BTreeSet::new(),
                acked: BTreeSet::new(),
            };
            for op in &ops {
                run.step(op);
            }
            // Every hold runs out (a waiting receive may take it again) and
            // the holders leave; then everything not acknowledged is queued
            // again, once.
            run.harness.advance(timeout);
            let replies = run.harness.expire();
            run.note(&replies);
            for slot in run.slots {
                run.harness.disconnect(slot);
            }
            let drained = run.harness.req(
                ConnectionId(99),
                u64::MAX,
                Request::ReceiveMany { mailbox: "q".into(), max: 1000, wait: Wait::Never },
            );
            let mut back = BTreeSet::new();
            for reply in &drained {
                match &reply.result {
                    Ok(Response::ReceivedMany(messages)) => {
                        for message in messages {
                            assert!(back.insert(message.metadata.sequence));
                        }
                    }
                    Err(error) if error.kind == ErrorKind::WouldBlock => {}
                    other => panic!("drain answered {other:?}"),
                }
            }
            assert!(back.is_disjoint(&run.acked), "an acknowledged message came back");
            let all: BTreeSet<u64> = back.union(&run.acked).copied().collect();
            prop_assert_eq!(all, run.accepted);
        }
    }
}
