//! Waiting lines at scale: 100,000 waiting requests on one line (from one
//! connection, and from as many connections; round-robin, priority,
//! broadcast, hash, blocked senders, name claimers), half of them leaving
//! from the middle in random order (cancel, timeout, disconnect), the rest
//! served. Each test counts the slots the lines looked at and the members
//! and subscribers the pumps visited ([`line::steps`]) and asserts a small
//! constant per operation (a delivery counts as one): a line searched from
//! the front, or a pump passing over every subscriber, would look at
//! billions. Each also checks that the survivors are served first come,
//! first served (or by priority, then arrival; or in turn).

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use mailbox_proto::{
    DeliveryPolicy, MailboxSettings, ReceiveOptions, Request, Response, Source, Wait,
};

use super::{Clock, ConnectionId, Core, Limits, Outcome, Peer, Reply, Ticket, UNIX_BASE};
use crate::line;

const WAITERS: u64 = 100_000;

/// Slots looked at per operation, at most (amortised: compactions and index
/// builds included).
const STEPS_PER_OPERATION: u64 = 8;

/// A deterministic shuffle (xorshift), so a failure can be replayed.
fn shuffled(mut items: Vec<u64>, seed: u64) -> Vec<u64> {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
    items
}

struct Scale {
    core: Core,
    started: std::time::Instant,
    millis: u64,
    operations: u64,
    steps_at_start: u64,
}

impl Scale {
    fn new() -> Self {
        let limits = Limits {
            max_requests_in_flight: 2 * WAITERS as usize,
            max_connections: 2 * WAITERS as usize,
            max_connections_per_uid: 2 * WAITERS as usize,
            ..Limits::default()
        };
        let started = std::time::Instant::now();
        let mut core = Core::new(limits, started);
        core.set_access_policy(crate::AccessPolicy {
            default_mode: 0o777,
            ..crate::AccessPolicy::default()
        });
        Self {
            core,
            started,
            millis: 0,
            operations: 0,
            steps_at_start: line::steps(),
        }
    }

    fn clock(&self) -> Clock {
        Clock {
            now: self.started + Duration::from_millis(self.millis),
            unix_nanos: UNIX_BASE + self.millis * 1_000_000,
        }
    }

    fn connect(&mut self, n: u64) {
        let n32 = n as u32;
        self.core.connect(
            ConnectionId(n),
            Peer {
                pid: n32,
                uid: 1000,
                gid: 1000,
            },
        );
    }

    fn apply(&mut self, connection: u64, id: u64, request: Request) -> Vec<Reply> {
        self.operations += 1;
        let clock = self.clock();
        let mut out = Outcome::new();
        self.core
            .apply(ConnectionId(connection), id, request, &clock, &mut out);
        out.replies
    }

    fn disconnect(&mut self, connection: u64) -> Vec<Reply> {
        self.operations += 1;
        let clock = self.clock();
        let mut out = Outcome::new();
        self.core
            .disconnect(ConnectionId(connection), &clock, &mut out);
        out.replies
    }

    /// Moves the clock and fires the deadlines; one operation per reply.
    fn expire_after(&mut self, millis: u64) -> Vec<Reply> {
        self.millis += millis;
        let clock = self.clock();
        let mut out = Outcome::new();
        self.core.expire(&clock, &mut out);
        self.operations += out.replies.len() as u64;
        out.replies
    }

    fn create(&mut self, name: &str, settings: MailboxSettings) {
        let replies = self.apply(
            1,
            u64::MAX,
            Request::CreateMailbox {
                name: name.into(),
                settings: Box::new(settings),
            },
        );
        assert!(matches!(
            replies[0].result,
            Ok(Response::Created { created: true })
        ));
    }

    /// Sends one message to `mailbox` and returns who received it.
    fn serve_one(&mut self, mailbox: &str, id: u64) -> Ticket {
        let replies = self.apply(
            1,
            id,
            Request::Send {
                mailbox: mailbox.into(),
                payload: Bytes::from_static(b"m"),
                wait: Wait::Never,
            },
        );
        let received: Vec<Ticket> = replies
            .iter()
            .filter(|reply| matches!(reply.result, Ok(Response::Received(_))))
            .map(|reply| reply.ticket)
            .collect();
        assert_eq!(received.len(), 1, "one receiver served: {replies:?}");
        received[0]
    }

    fn check_steps(&self, what: &str) {
        let steps = line::steps() - self.steps_at_start;
        assert!(
            steps <= STEPS_PER_OPERATION * self.operations,
            "{what}: {steps} slots looked at for {} operations",
            self.operations
        );
    }
}

fn receive(mailbox: &str, wait: Wait) -> Request {
    Request::Receive {
        mailbox: mailbox.into(),
        wait,
    }
}

#[test]
fn a_hundred_thousand_receives_of_one_connection_cost_constant_work_each() {
    let mut scale = Scale::new();
    scale.connect(1);
    scale.connect(2);
    scale.create("q", MailboxSettings::default());
    // Odd ids time out after a second, even ones wait forever.
    for id in 1..=WAITERS {
        let wait = if id % 2 == 1 {
            Wait::Timeout { millis: 1_000 }
        } else {
            Wait::Forever
        };
        assert!(scale.apply(2, id, receive("q", wait)).is_empty());
    }
    // Half of the forever ones are cancelled, in random order.
    let forever: Vec<u64> = (1..=WAITERS).filter(|id| id % 2 == 0).collect();
    let (cancelled, kept) = forever.split_at(forever.len() / 2);
    for (n, id) in shuffled(cancelled.to_vec(), 7).into_iter().enumerate() {
        let replies = scale.apply(2, WAITERS + 1 + n as u64, Request::Cancel { request: id });
        assert_eq!(
            replies.len(),
            2,
            "the cancel and the cancelled: {replies:?}"
        );
    }
    // The timed ones expire together.
    let expired = scale.expire_after(1_000);
    assert_eq!(expired.len() as u64, WAITERS / 2);
    // The rest are served in the order they came.
    for (n, id) in kept.iter().enumerate() {
        let served = scale.serve_one("q", n as u64);
        assert_eq!(served.request, *id, "first come, first served");
    }
    scale.check_steps("one connection");
}

#[test]
fn a_hundred_thousand_receiving_connections_cost_constant_work_each() {
    let mut scale = Scale::new();
    scale.connect(1);
    scale.create("q", MailboxSettings::default());
    for n in 2..WAITERS + 2 {
        scale.connect(n);
        assert!(scale.apply(n, 1, receive("q", Wait::Forever)).is_empty());
    }
    let everyone: Vec<u64> = (2..WAITERS + 2).collect();
    let leaving = shuffled(everyone.clone(), 11);
    let (leaving, _) = leaving.split_at(everyone.len() / 2);
    let leaving: HashSet<u64> = leaving.iter().copied().collect();
    for n in shuffled(leaving.iter().copied().collect(), 13) {
        assert!(scale.disconnect(n).is_empty());
    }
    for (id, n) in everyone.iter().filter(|n| !leaving.contains(n)).enumerate() {
        let served = scale.serve_one("q", id as u64);
        assert_eq!(
            served.connection,
            ConnectionId(*n),
            "first come, first served"
        );
    }
    scale.check_steps("many connections");
}

#[test]
fn a_hundred_thousand_prioritised_receives_cost_logarithmic_work_each() {
    let mut scale = Scale::new();
    scale.connect(1);
    scale.connect(2);
    scale.create(
        "p",
        MailboxSettings {
            policy: DeliveryPolicy::Priority,
            ..MailboxSettings::default()
        },
    );
    let priority_of = |id: u64| (id * 7919 % 17) as i32 - 8;
    for id in 1..=WAITERS {
        let request = Request::ReceiveWith {
            from: Source::Mailbox("p".into()),
            options: ReceiveOptions {
                priority: priority_of(id),
                ..ReceiveOptions::default()
            },
            wait: Wait::Forever,
        };
        assert!(scale.apply(2, id, request).is_empty());
    }
    let cancelled = shuffled((1..=WAITERS).collect(), 17);
    let (cancelled, _) = cancelled.split_at(WAITERS as usize / 2);
    let cancelled: HashSet<u64> = cancelled.iter().copied().collect();
    for (n, id) in cancelled.iter().enumerate() {
        let replies = scale.apply(2, WAITERS + 1 + n as u64, Request::Cancel { request: *id });
        assert_eq!(replies.len(), 2);
    }
    let mut expected: Vec<u64> = (1..=WAITERS).filter(|id| !cancelled.contains(id)).collect();
    expected.sort_by_key(|id| (-priority_of(*id), *id));
    for (n, id) in expected.iter().enumerate() {
        let served = scale.serve_one("p", n as u64);
        assert_eq!(
            served.request, *id,
            "higher priority first, then first come"
        );
    }
    // A B-tree step counts as one.
    scale.check_steps("priority");
}

#[test]
fn a_hundred_thousand_blocked_senders_and_claimers_cost_constant_work_each() {
    let mut scale = Scale::new();
    scale.connect(1);
    scale.connect(2);
    scale.connect(3);
    scale.create(
        "full",
        MailboxSettings {
            capacity: mailbox_proto::Capacity::Zero,
            ..MailboxSettings::default()
        },
    );
    // Senders wait on a rendezvous mailbox; claimers wait for a name.
    let claimed = scale.apply(
        1,
        1,
        Request::ClaimName {
            name: "leader".into(),
            wait: Wait::Never,
        },
    );
    assert!(matches!(claimed[0].result, Ok(Response::NameClaimed)));
    for id in 1..=WAITERS {
        let send = Request::Send {
            mailbox: "full".into(),
            payload: Bytes::from(id.to_string()),
            wait: Wait::Forever,
        };
        assert!(scale.apply(2, id, send).is_empty());
        let claim = Request::ClaimName {
            name: "leader".into(),
            wait: Wait::Forever,
        };
        assert!(scale.apply(3, id, claim).is_empty());
    }
    let cancelled = shuffled((1..=WAITERS).collect(), 19);
    let (cancelled, _) = cancelled.split_at(WAITERS as usize / 2);
    let cancelled: HashSet<u64> = cancelled.iter().copied().collect();
    for (n, id) in cancelled.iter().enumerate() {
        let id_base = WAITERS + 1 + n as u64;
        assert_eq!(
            scale
                .apply(2, id_base, Request::Cancel { request: *id })
                .len(),
            2
        );
        assert_eq!(
            scale
                .apply(3, id_base, Request::Cancel { request: *id })
                .len(),
            2
        );
    }
    let mut owner = 1;
    for (n, id) in (1..=WAITERS)
        .filter(|id| !cancelled.contains(id))
        .enumerate()
    {
        // The oldest blocked send is the one a receiver meets.
        let replies = scale.apply(1, 10 + n as u64, receive("full", Wait::Never));
        let got = replies.iter().find_map(|reply| match &reply.result {
            Ok(Response::Received(message)) => Some(message.payload.clone()),
            _ => None,
        });
        assert_eq!(got, Some(Bytes::from(id.to_string())), "oldest send first");
        // The oldest claimer gets the name next.
        let released = scale.apply(
            owner,
            u64::MAX - n as u64,
            Request::ReleaseName {
                name: "leader".into(),
            },
        );
        let next = released
            .iter()
            .find(|reply| matches!(reply.result, Ok(Response::NameClaimed)))
            .map(|reply| reply.ticket);
        assert_eq!(
            next,
            Some(Ticket {
                connection: ConnectionId(3),
                request: id
            }),
            "oldest claim first"
        );
        // Connection 3 holds it now, and releases it in the next round.
        owner = 3;
    }
    scale.check_steps("senders and claimers");
}

/// Subscribes (broadcast) or joins (hash) `WAITERS` connections to `name`,
/// each with one receive waiting; cancels half of them in random order;
/// returns the connections still waiting, in the order they came.
fn crowd(scale: &mut Scale, name: &str, subscribe: bool) -> Vec<u64> {
    for n in 2..WAITERS + 2 {
        scale.connect(n);
        if subscribe {
            let replies = scale.apply(
                n,
                1,
                Request::Subscribe {
                    mailbox: name.into(),
                },
            );
            assert!(matches!(replies[0].result, Ok(Response::Subscribed { .. })));
        }
        assert!(scale.apply(n, 2, receive(name, Wait::Forever)).is_empty());
    }
    let everyone: Vec<u64> = (2..WAITERS + 2).collect();
    let leaving = shuffled(everyone.clone(), 23);
    let leaving: HashSet<u64> = leaving[..everyone.len() / 2].iter().copied().collect();
    for n in shuffled(leaving.iter().copied().collect(), 29) {
        let replies = scale.apply(n, 3, Request::Cancel { request: 2 });
        assert_eq!(replies.len(), 2, "the cancel and the cancelled");
    }
    everyone
        .into_iter()
        .filter(|n| !leaving.contains(n))
        .collect()
}

#[test]
fn a_hundred_thousand_subscribers_waiting_cost_constant_work_each() {
    let mut scale = Scale::new();
    scale.connect(1);
    scale.create(
        "b",
        MailboxSettings {
            policy: DeliveryPolicy::Broadcast,
            capacity: mailbox_proto::Capacity::Bounded(4),
            ..MailboxSettings::default()
        },
    );
    let waiting = crowd(&mut scale, "b", true);
    // One message reaches every subscriber that still waits, and no one
    // else; each delivery counts as an operation.
    let replies = scale.apply(
        1,
        1,
        Request::Send {
            mailbox: "b".into(),
            payload: Bytes::from_static(b"all"),
            wait: Wait::Never,
        },
    );
    let mut reached: Vec<u64> = replies
        .iter()
        .filter(|reply| matches!(reply.result, Ok(Response::Received(_))))
        .map(|reply| reply.ticket.connection.0)
        .collect();
    reached.sort_unstable();
    assert_eq!(reached, waiting, "every waiting subscriber, and only those");
    scale.operations += reached.len() as u64;
    scale.check_steps("broadcast");
}

#[test]
fn a_hundred_thousand_hash_members_waiting_cost_constant_work_each() {
    let mut scale = Scale::new();
    scale.connect(1);
    scale.create(
        "h",
        MailboxSettings {
            policy: DeliveryPolicy::Hash,
            ..MailboxSettings::default()
        },
    );
    let waiting = crowd(&mut scale, "h", false);
    // Keyless messages go to the waiting members in turn: in the order
    // they joined.
    for (id, n) in waiting.iter().enumerate() {
        let served = scale.serve_one("h", id as u64);
        assert_eq!(served.connection, ConnectionId(*n), "members in turn");
    }
    // A new key goes to the member with the fewest keys, then the lowest
    // address: all have none, so connection 2.
    assert!(scale.apply(2, 4, receive("h", Wait::Forever)).is_empty());
    let replies = scale.apply(
        1,
        u64::MAX - 1,
        Request::SendWith {
            to: mailbox_proto::Target::Mailbox("h".into()),
            payload: Bytes::from_static(b"keyed"),
            options: Box::new(mailbox_proto::SendOptions {
                key: Some("k".into()),
                ..mailbox_proto::SendOptions::default()
            }),
            wait: Wait::Never,
        },
    );
    let to_two = Ticket {
        connection: ConnectionId(2),
        request: 4,
    };
    assert!(
        replies.iter().any(
            |reply| reply.ticket == to_two && matches!(reply.result, Ok(Response::Received(_)))
        ),
        "{replies:?}"
    );
    scale.check_steps("hash");
}

#[test]
fn a_hundred_thousand_receives_on_an_inbox_cost_constant_work_each() {
    use mailbox_proto::{Address, SendOptions, Target};
    let mut scale = Scale::new();
    for n in 2..=4 {
        scale.connect(n);
    }
    let direct = |payload: &str| Request::SendWith {
        to: Target::Process(Address::Process(2)),
        payload: Bytes::from(payload.to_owned()),
        options: Box::new(SendOptions::default()),
        wait: Wait::Never,
    };
    // Connection 2 waits for messages of connection 3 alone, 100,000 times.
    for id in 1..=WAITERS {
        let request = Request::ReceiveWith {
            from: Source::Inbox {
                from: Some(Address::Process(3)),
            },
            options: ReceiveOptions::default(),
            wait: Wait::Forever,
        };
        assert!(scale.apply(2, id, request).is_empty());
    }
    // Messages of another sender wait beside them, taken by none.
    for n in 0..1_000u64 {
        let replies = scale.apply(4, n, direct("other"));
        assert_eq!(replies.len(), 1, "only the sender is answered");
    }
    let cancelled = shuffled((1..=WAITERS).collect(), 31);
    let cancelled: HashSet<u64> = cancelled[..WAITERS as usize / 2].iter().copied().collect();
    for (n, id) in cancelled.iter().enumerate() {
        let replies = scale.apply(2, WAITERS + 1 + n as u64, Request::Cancel { request: *id });
        assert_eq!(replies.len(), 2);
    }
    // Each message of connection 3 goes to the oldest receive still waiting.
    for (n, id) in (1..=WAITERS)
        .filter(|id| !cancelled.contains(id))
        .enumerate()
    {
        let replies = scale.apply(3, n as u64, direct("mine"));
        let served = replies
            .iter()
            .find(|reply| matches!(reply.result, Ok(Response::Received(_))))
            .map(|reply| reply.ticket);
        assert_eq!(
            served,
            Some(Ticket {
                connection: ConnectionId(2),
                request: id
            }),
            "oldest receive first"
        );
    }
    scale.check_steps("inbox");
}
