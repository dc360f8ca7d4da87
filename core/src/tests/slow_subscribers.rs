//! Cutting slow subscribers (`cut=MS` on a bounded broadcast mailbox): a
//! subscriber whose backlog stays full for longer is cut off, so that the
//! senders it held back, and the other subscribers, go on.

use super::check;

#[test]
fn a_subscriber_whose_backlog_stays_full_is_cut_and_the_senders_proceed() {
    check(
        "
        c1#1 create b broadcast cap=2 cut=100  => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c3#1 sub b                      => c3#1 subscribed
        c1#2 send b a                   => c1#2 sent 1 to 2
        c1#3 send b b                   => c1#3 sent 2 to 2
        c2#2 recvmany b 10              => c2#2 gotmany 1:a 2:b from c1
        c1#4 send b c                   =>
        c2#3 recv b                     =>
        advance 99 =>
        expire                          =>
        advance 1 =>
        expire                          => c1#4 sent 3 to 1; c2#3 got 3 c from c1
        c1#5 send b d never             => c1#5 sent 4 to 1
        c3#2 recv b never               => c3#2 SlowConsumer
        c3#3 recv b never               => c3#3 NotSubscribed
        c2#4 recv b never               => c2#4 got 4 d from c1
        c1#6 info b                     => c1#6 info queued=0 bytes=0 senders=0 receivers=0 subscribers=1 accepted=4 delivered=4 cut=1
        ",
    );
}

#[test]
fn a_subscriber_that_keeps_reading_is_never_cut() {
    // Its backlog is full again right after each read, but never for the
    // whole limit at once.
    check(
        "
        c1#1 create b broadcast cap=1 cut=100  => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c1#2 send b a                   => c1#2 sent 1 to 1
        c1#3 send b b                   =>
        advance 90 =>
        c2#2 recv b never               => c2#2 got 1 a from c1; c1#3 sent 2 to 1
        c1#4 send b c                   =>
        advance 90 =>
        expire                          =>
        c2#3 recv b never               => c2#3 got 2 b from c1; c1#4 sent 3 to 1
        advance 90 =>
        expire                          =>
        c2#4 recv b never               => c2#4 got 3 c from c1
        advance 1000 =>
        expire                          =>
        c1#5 info b                     => c1#5 info queued=0 bytes=0 senders=0 receivers=0 subscribers=1 accepted=3 delivered=3
        ",
    );
}

#[test]
fn by_default_a_full_backlog_holds_senders_back_for_ever() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c1#2 send b a                   => c1#2 sent 1 to 1
        c1#3 send b b                   =>
        advance 86400000 =>
        expire                          =>
        c1#4 info b                     => c1#4 info queued=1 bytes=1 senders=1 receivers=0 subscribers=1 accepted=1 delivered=0
        c2#2 recv b never               => c2#2 got 1 a from c1; c1#3 sent 2 to 1
        ",
    );
}

#[test]
fn every_slow_subscriber_is_cut_and_a_cut_one_may_subscribe_again() {
    check(
        "
        c1#1 create b broadcast cap=1 cut=50  => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c3#1 sub b                      => c3#1 subscribed
        c1#2 send b a                   => c1#2 sent 1 to 2
        c1#3 send b b                   =>
        advance 50 =>
        expire                          => c1#3 sent 2 to 0
        c2#2 sub b                      => c2#2 subscribed
        c2#3 recv b never               => c2#3 WouldBlock
        c3#2 recv b never               => c3#2 SlowConsumer
        c1#4 send b c                   => c1#4 sent 3 to 1
        c2#4 recv b never               => c2#4 got 3 c from c1
        c1#5 info b                     => c1#5 info queued=0 bytes=0 senders=0 receivers=0 subscribers=1 accepted=3 delivered=1 cut=2
        ",
    );
}

#[test]
fn a_cut_subscriber_that_leaves_is_simply_forgotten() {
    check(
        "
        c1#1 create b broadcast cap=1 cut=50  => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c1#2 send b a                   => c1#2 sent 1 to 1
        advance 50 =>
        expire                          =>
        disconnect c2                   =>
        c1#3 info b                     => c1#3 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0 cut=1
        c1#4 delete b                   => c1#4 deleted
        ",
    );
}

#[test]
fn a_purge_empties_every_backlog_and_so_stops_the_clock() {
    check(
        "
        c1#1 create b broadcast cap=1 cut=50  => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c1#2 send b a                   => c1#2 sent 1 to 1
        advance 40 =>
        c1#3 purge b                    => c1#3 purged 1
        advance 40 =>
        expire                          =>
        c1#4 send b b                   => c1#4 sent 2 to 1
        advance 49 =>
        expire                          =>
        c2#2 recv b never               => c2#2 got 2 b from c1
        ",
    );
}

#[test]
fn cutting_slow_subscribers_needs_a_bounded_broadcast_mailbox() {
    check(
        "
        c1#1 create q cap=4 cut=10              => c1#1 InvalidSettings
        c1#2 create b broadcast cut=10          => c1#2 InvalidSettings
        c1#3 create b broadcast zero cut=10     => c1#3 InvalidSettings
        c1#4 create b broadcast cap=4 cut=0     => c1#4 InvalidSettings
        c1#5 create b broadcast cap=4 cut=10    => c1#5 created
        c1#6 create b broadcast cap=4           => c1#6 MailboxExists
        ",
    );
}

// --- Random subscribers against the limit -----------------------------------

mod random {
    use std::collections::{BTreeMap, BTreeSet};

    use bytes::Bytes;
    use mailbox_proto::{
        Capacity, DeliveryPolicy, ErrorKind, MailboxSettings, Request, Response, Wait,
    };
    use proptest::prelude::*;

    use super::super::{ConnectionId, Harness, Limits, Reply, Ticket};

    #[derive(Debug, Clone)]
    enum Op {
        Send { wait: bool },
        Receive { slot: usize, wait: bool },
        Subscribe { slot: usize },
        Unsubscribe { slot: usize },
        Advance { millis: u64, fire: bool },
        Disconnect { slot: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<bool>().prop_map(|wait| Op::Send { wait }),
            4 => (0..3usize, any::<bool>()).prop_map(|(slot, wait)| Op::Receive { slot, wait }),
            2 => (0..3usize).prop_map(|slot| Op::Subscribe { slot }),
            1 => (0..3usize).prop_map(|slot| Op::Unsubscribe { slot }),
            3 => (1..=25u64, any::<bool>()).prop_map(|(millis, fire)| Op::Advance { millis, fire }),
            1 => (0..3usize).prop_map(|slot| Op::Disconnect { slot }),
        ]
    }

    const SENDER: ConnectionId = ConnectionId(99);

    struct Run {
        harness: Harness,
        slots: [ConnectionId; 3],
        next_connection: u64,
        next_id: u64,
        /// The last sequence each connection received on its current
        /// subscription.
        last: BTreeMap<ConnectionId, u64>,
        answered: BTreeSet<Ticket>,
    }

    impl Run {
        fn request(&mut self, connection: ConnectionId, request: Request) -> Vec<Reply> {
            self.next_id += 1;
            self.harness.req(connection, self.next_id, request)
        }

        fn check(&mut self, replies: &[Reply]) {
            for reply in replies {
                assert!(
                    self.answered.insert(reply.ticket),
                    "{:?} answered twice",
                    reply.ticket
                );
                let connection = reply.ticket.connection;
                match &reply.result {
                    Ok(Response::Received(message)) => {
                        let sequence = message.metadata.sequence;
                        if let Some(last) = self.last.insert(connection, sequence) {
                            assert_eq!(sequence, last + 1, "{connection:?} missed a message");
                        }
                    }
                    Ok(Response::Subscribed { created: true }) => {
                        self.last.remove(&connection);
                    }
                    Err(error)
                        if matches!(
                            error.kind,
                            ErrorKind::SlowConsumer | ErrorKind::NotSubscribed
                        ) =>
                    {
                        self.last.remove(&connection);
                    }
                    _ => {}
                }
            }
        }

        fn step(&mut self, op: &Op) {
            let replies = match op {
                Op::Send { wait } => self.request(
                    SENDER,
                    Request::Send {
                        mailbox: "b".into(),
                        payload: Bytes::from_static(b"m"),
                        wait: if *wait { Wait::Forever } else { Wait::Never },
                    },
                ),
                Op::Receive { slot, wait } => self.request(
                    self.slots[*slot],
                    Request::Receive {
                        mailbox: "b".into(),
                        wait: if *wait { Wait::Forever } else { Wait::Never },
                    },
                ),
                Op::Subscribe { slot } => self.request(
                    self.slots[*slot],
                    Request::Subscribe {
                        mailbox: "b".into(),
                    },
                ),
                Op::Unsubscribe { slot } => self.request(
                    self.slots[*slot],
                    Request::Unsubscribe {
                        mailbox: "b".into(),
                    },
                ),
                Op::Advance { millis, fire } => {
                    self.harness.advance(*millis);
                    if !*fire {
                        return;
                    }
                    self.harness.expire()
                }
                Op::Disconnect { slot } => {
                    let gone = self.slots[*slot];
                    let replies = self.harness.disconnect(gone);
                    self.last.remove(&gone);
                    self.next_connection += 1;
                    self.slots[*slot] = ConnectionId(self.next_connection);
                    self.harness.connect(self.slots[*slot]);
                    replies
                }
            };
            self.check(&replies);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 128,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Whatever subscribers do, no subscriber misses a message while it
        /// is subscribed, no request is answered twice, and once nobody
        /// reads any more every waiting sender completes within a few
        /// limits' time.
        #[test]
        fn subscribers_miss_nothing_and_senders_never_wait_for_ever(
            capacity in 1..=3u32,
            after in 1..=30u64,
            ops in prop::collection::vec(op(), 1..60),
        ) {
            let mut harness = Harness::new(Limits::default());
            for n in [1, 2, 3, 99] {
                harness.connect(ConnectionId(n));
            }
            let settings = MailboxSettings {
                capacity: Capacity::Bounded(capacity),
                policy: DeliveryPolicy::Broadcast,
                cut_slow_subscribers_after_millis: Some(after),
                ..MailboxSettings::default()
            };
            harness.req(SENDER, 1, Request::CreateMailbox { name: "b".into(), settings: Box::new(settings) });
            let mut run = Run {
                harness,
                slots: [ConnectionId(1), ConnectionId(2), ConnectionId(3)],
                next_connection: 3,
                next_id: 1,
                last: BTreeMap::new(),
                answered: BTreeSet::new(),
            };
            for op in &ops {
                run.step(op);
            }
            // Each round cuts whoever has been full since before it; at most
            // one round per subscriber, and one to admit what is left.
            for _ in 0..5 {
                run.harness.advance(after);
                let replies = run.harness.expire();
                run.check(&replies);
            }
            let info = run.request(SENDER, Request::MailboxInfo { name: "b".into() });
            let Some(Ok(Response::Info(info))) = info.first().map(|r| &r.result) else {
                panic!("info answered {info:?}");
            };
            prop_assert_eq!(info.waiting_senders, 0);
        }
    }
}
