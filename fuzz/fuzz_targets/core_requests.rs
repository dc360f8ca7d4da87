//! Arbitrary bytes as a run of the broker's core: connections come and go,
//! send any request (built field by field, or bincode-decoded from raw
//! bytes as a hostile client would send it), and the clock moves and fires
//! deadlines. Small limits, names and ids make the interesting cases
//! (budget spent, too many waits, duplicate ids, names taken, calls,
//! expiry) likely.
//!
//! Checked, besides "never panics" (the target is built with debug
//! assertions, so the core's own `debug_assert!`s and overflow checks count):
//! - a reply only ever goes to a connection that is connected;
//! - no request is answered more than once;
//! - after `shut_down`, no request of a live connection is left unanswered.

#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Result, Unstructured};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use mailbox_core::{Clock, ConnectionId, Core, Limits, Outcome, Peer, Ticket};
use mailbox_proto::{
    decode_client_frame, Address, Capacity, DeliveryPolicy, MailboxSettings, ReceiveOptions,
    Request, SendOptions, Source, Stage, Target, Verdict, Wait,
};

const NAMES: [&str; 6] = ["a", "b", "dead", "a/b.c-d_e", "", "bad name"];
const CONNECTIONS: u64 = 4;
/// Root, and two users (also used as group ids).
const UIDS: [u32; 3] = [0, 1000, 1001];
const WALL_START: u64 = 1_700_000_000_000_000_000;

/// With `MAILBOX_FUZZ_TRACE` set (replaying a crash), prints every step.
fn trace(what: std::fmt::Arguments<'_>) {
    if std::env::var_os("MAILBOX_FUZZ_TRACE").is_some() {
        eprintln!("{what}");
    }
}

struct Run {
    core: Core,
    start: Instant,
    elapsed: Duration,
    connected: HashSet<ConnectionId>,
    /// Requests applied and not answered yet, per ticket (a duplicate id
    /// is applied while the first is still waiting, hence a count).
    unanswered: HashMap<Ticket, u32>,
}

impl Run {
    fn clock(&self) -> Clock {
        Clock {
            now: self.start + self.elapsed,
            unix_nanos: WALL_START + self.elapsed.as_nanos() as u64,
        }
    }

    fn check(&mut self, out: &mut Outcome) {
        for reply in out.replies.drain(..) {
            trace(format_args!("  -> {reply:?}"));
            assert!(
                self.connected.contains(&reply.ticket.connection),
                "a reply to a connection that is gone: {reply:?}"
            );
            let count = self
                .unanswered
                .get_mut(&reply.ticket)
                .unwrap_or_else(|| panic!("an unasked or second reply: {reply:?}"));
            *count -= 1;
            if *count == 0 {
                self.unanswered.remove(&reply.ticket);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Unstructured::new(data);
    let limits = Limits {
        memory_budget: *input.choose(&[64, 4096, 1 << 20, 1 << 30]).unwrap_or(&64),
        max_queued_messages: *input.choose(&[1, 4, 64, 4 << 20]).unwrap_or(&1),
        max_requests_in_flight: *input.choose(&[1, 3, 64, 65_536]).unwrap_or(&1),
        max_connections: *input.choose(&[2, 16_384]).unwrap_or(&2),
        max_connections_per_uid: *input.choose(&[1, 16_384]).unwrap_or(&1),
        max_mailboxes_per_uid: *input.choose(&[1, 2, 65_536]).unwrap_or(&1),
        max_queued_bytes_per_mailbox: *input.choose(&[0, 100, 1 << 30]).unwrap_or(&0),
        ..Limits::default()
    };
    let start = Instant::now();
    let mut run = Run {
        core: Core::new(limits, start),
        start,
        elapsed: Duration::ZERO,
        connected: HashSet::new(),
        unanswered: HashMap::new(),
    };
    let mut out = Outcome::new();
    // Running out of input ends the run early; the shutdown check still holds.
    let _ = steps(&mut run, &mut input, &mut out);
    let clock = run.clock();
    trace(format_args!("shut down"));
    run.core.shut_down(&clock, &mut out);
    run.check(&mut out);
    assert!(
        run.unanswered.is_empty(),
        "unanswered after shutdown: {:?}",
        run.unanswered
    );
});

fn steps(run: &mut Run, input: &mut Unstructured<'_>, out: &mut Outcome) -> Result<()> {
    let start = run.start;
    while !input.is_empty() {
        let clock = run.clock();
        match input.int_in_range(0..=15)? {
            0 => {
                let id = ConnectionId(input.int_in_range(1..=CONNECTIONS)?);
                let peer = Peer {
                    pid: input.arbitrary()?,
                    uid: *input.choose(&UIDS)?,
                    gid: *input.choose(&UIDS)?,
                };
                let groups = if input.arbitrary()? {
                    vec![*input.choose(&UIDS)?]
                } else {
                    Vec::new()
                };
                // As the server does: ask first, then connect.
                if !run.connected.contains(&id) && run.core.may_connect(&peer).is_ok() {
                    trace(format_args!("connect {id:?} {peer:?} {groups:?}"));
                    run.connected.insert(id);
                    run.core.connect_with_groups(id, peer, groups);
                }
            }
            1 => {
                let id = ConnectionId(input.int_in_range(1..=CONNECTIONS)?);
                if run.connected.remove(&id) {
                    trace(format_args!("disconnect {id:?}"));
                    run.unanswered.retain(|ticket, _| ticket.connection != id);
                    run.core.disconnect(id, &clock, out);
                }
            }
            2 => {
                let millis = *input.choose(&[0, 1, 10, 100, 1000, 60_000])?;
                run.elapsed += Duration::from_millis(millis);
                trace(format_args!("expire at {:?}", run.elapsed));
                let clock = run.clock();
                run.core.expire(&clock, out);
            }
            3 => {
                // As the timer task does: sleep until the next deadline.
                if let Some(next) = run.core.next_deadline() {
                    let at = next.saturating_duration_since(start);
                    if at > run.elapsed && at - run.elapsed < Duration::from_secs(3600) {
                        run.elapsed = at;
                    }
                }
                trace(format_args!(
                    "expire at the next deadline: {:?}",
                    run.elapsed
                ));
                let clock = run.clock();
                run.core.expire(&clock, out);
            }
            4 => {
                // A raw frame body, as a client would send it.
                let len = input.int_in_range(0..=64)?;
                let body = input.bytes(len)?;
                let mut frame = BytesMut::with_capacity(4 + body.len());
                frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
                frame.extend_from_slice(body);
                if let Ok(Some(decoded)) = decode_client_frame(&mut frame, 1 << 16) {
                    let id = ConnectionId(input.int_in_range(1..=CONNECTIONS)?);
                    apply(run, id, decoded.id, decoded.request, out);
                }
            }
            _ => {
                let id = ConnectionId(input.int_in_range(1..=CONNECTIONS)?);
                let request_id = input.int_in_range(0..=7)?;
                let request = request(input)?;
                apply(run, id, request_id, request, out);
            }
        }
        run.check(out);
        let _ = run.core.status(&run.clock());
    }
    Ok(())
}

fn apply(run: &mut Run, id: ConnectionId, request_id: u64, request: Request, out: &mut Outcome) {
    // The server only applies requests of connections it connected.
    if !run.connected.contains(&id) {
        return;
    }
    let ticket = Ticket {
        connection: id,
        request: request_id,
    };
    *run.unanswered.entry(ticket).or_default() += 1;
    if std::env::var_os("MAILBOX_FUZZ_TRACE").is_some() {
        let text: String = format!("{request:?}").chars().take(300).collect();
        trace(format_args!("{id:?} #{request_id}: {text}"));
    }
    let clock = run.clock();
    run.core.apply(id, request_id, request, &clock, out);
}

fn name(input: &mut Unstructured<'_>) -> Result<String> {
    Ok(if input.ratio(1, 16)? {
        String::arbitrary(input)?
    } else {
        (*input.choose(&NAMES)?).to_owned()
    })
}

fn payload(input: &mut Unstructured<'_>) -> Result<Bytes> {
    let len = *input.choose(&[0, 1, 3, 8, 100, 5000])?;
    Ok(Bytes::from(vec![input.arbitrary::<u8>()?; len]))
}

fn wait(input: &mut Unstructured<'_>) -> Result<Wait> {
    Ok(match input.int_in_range(0..=3)? {
        0 => Wait::Forever,
        1 => Wait::Never,
        2 => Wait::Timeout {
            millis: *input.choose(&[0, 1, 50, 1000])?,
        },
        _ => Wait::Timeout {
            millis: input.arbitrary()?,
        },
    })
}

fn capacity(input: &mut Unstructured<'_>) -> Result<Capacity> {
    Ok(match input.int_in_range(0..=3)? {
        0 => Capacity::Zero,
        1 => Capacity::Unbounded,
        2 => Capacity::Bounded(input.int_in_range(0..=3)?),
        _ => Capacity::Bounded(input.arbitrary()?),
    })
}

fn settings(input: &mut Unstructured<'_>) -> Result<MailboxSettings> {
    Ok(MailboxSettings {
        capacity: capacity(input)?,
        policy: *input.choose(&[
            DeliveryPolicy::RoundRobin,
            DeliveryPolicy::Broadcast,
            DeliveryPolicy::Hash,
            DeliveryPolicy::Priority,
        ])?,
        max_message_size: *input.choose(&[0, 1, 8, 4096, 1 << 20, 16 << 20, u32::MAX])?,
        fixed_size: if input.ratio(1, 4)? {
            Some(*input.choose(&[0, 1, 8, 100])?)
        } else {
            None
        },
        max_deliveries: if input.ratio(1, 3)? {
            Some(input.int_in_range(0..=3)?)
        } else {
            None
        },
        dead_letter: if input.ratio(1, 3)? {
            Some(name(input)?)
        } else {
            None
        },
        ttl_millis: if input.ratio(1, 3)? {
            Some(*input.choose(&[0, 1, 100, u64::MAX])?)
        } else {
            None
        },
        ack_timeout_millis: if input.ratio(1, 3)? {
            Some(*input.choose(&[0, 1, 100, u64::MAX])?)
        } else {
            None
        },
        cut_slow_subscribers_after_millis: if input.ratio(1, 3)? {
            Some(*input.choose(&[0, 1, 100, u64::MAX])?)
        } else {
            None
        },
    })
}

fn address(input: &mut Unstructured<'_>) -> Result<Address> {
    Ok(if input.arbitrary()? {
        Address::Process(input.int_in_range(0..=CONNECTIONS + 1)?)
    } else {
        Address::Name(name(input)?)
    })
}

fn target(input: &mut Unstructured<'_>) -> Result<Target> {
    Ok(if input.arbitrary()? {
        Target::Mailbox(name(input)?)
    } else {
        Target::Process(address(input)?)
    })
}

fn send_options(input: &mut Unstructured<'_>) -> Result<SendOptions> {
    Ok(SendOptions {
        stage: *input.choose(&[Stage::Queued, Stage::Received, Stage::Acknowledged])?,
        key: if input.arbitrary()? {
            Some((*input.choose(&["k", "l", "m"])?).to_owned())
        } else {
            None
        },
        ttl_millis: if input.ratio(1, 3)? {
            Some(*input.choose(&[0, 1, 100, u64::MAX])?)
        } else {
            None
        },
    })
}

fn source(input: &mut Unstructured<'_>) -> Result<Source> {
    Ok(if input.arbitrary()? {
        Source::Mailbox(name(input)?)
    } else {
        Source::Inbox {
            from: if input.arbitrary()? {
                Some(address(input)?)
            } else {
                None
            },
        }
    })
}

fn mode(input: &mut Unstructured<'_>) -> Result<Option<u32>> {
    Ok(if input.arbitrary()? {
        Some(*input.choose(&[0, 0o600, 0o640, 0o666, 0o777, 0o7777, u32::MAX])?)
    } else {
        None
    })
}

fn request(input: &mut Unstructured<'_>) -> Result<Request> {
    Ok(match input.int_in_range(0..=34)? {
        0 => Request::CreateMailbox {
            name: name(input)?,
            settings: Box::new(settings(input)?),
        },
        1 => Request::DeleteMailbox { name: name(input)? },
        2 => Request::ListMailboxes,
        3 => Request::MailboxInfo { name: name(input)? },
        4 => Request::Send {
            mailbox: name(input)?,
            payload: payload(input)?,
            wait: wait(input)?,
        },
        5 => Request::Receive {
            mailbox: name(input)?,
            wait: wait(input)?,
        },
        6 => Request::Subscribe {
            mailbox: name(input)?,
        },
        7 => Request::Unsubscribe {
            mailbox: name(input)?,
        },
        8 => Request::Cancel {
            request: input.int_in_range(0..=7)?,
        },
        9 => Request::Status,
        10 => {
            let count = input.int_in_range(0..=5)?;
            let mut payloads = Vec::with_capacity(count);
            for _ in 0..count {
                payloads.push(payload(input)?);
            }
            Request::SendMany {
                mailbox: name(input)?,
                payloads,
                wait: wait(input)?,
            }
        }
        11 => Request::ReceiveMany {
            mailbox: name(input)?,
            max: *input.choose(&[0, 1, 2, 5, u32::MAX])?,
            wait: wait(input)?,
        },
        12 => Request::SendWith {
            to: target(input)?,
            payload: payload(input)?,
            options: send_options(input)?.into(),
            wait: wait(input)?,
        },
        13 => Request::ReceiveWith {
            from: source(input)?,
            options: ReceiveOptions {
                max: if input.arbitrary()? {
                    Some(*input.choose(&[0, 1, 3, u32::MAX])?)
                } else {
                    None
                },
                manual_ack: input.arbitrary()?,
                priority: *input.choose(&[i32::MIN, -1, 0, 1, i32::MAX])?,
            },
            wait: wait(input)?,
        },
        14 => Request::Settle {
            mailbox: if input.ratio(3, 4)? {
                Some(name(input)?)
            } else {
                None
            },
            sequence: input.int_in_range(0..=8)?,
            verdict: if input.arbitrary()? {
                Verdict::Ack
            } else {
                Verdict::Nack {
                    to_tail: input.arbitrary()?,
                }
            },
            redeliveries: if input.arbitrary()? {
                Some(input.int_in_range(0..=3)?)
            } else {
                None
            },
        },
        15 => Request::Call {
            to: target(input)?,
            payload: payload(input)?,
            options: send_options(input)?.into(),
            wait: wait(input)?,
        },
        16 => Request::Reply {
            call: input.int_in_range(0..=6)?,
            payload: payload(input)?,
        },
        17 => Request::ClaimName {
            name: name(input)?,
            wait: wait(input)?,
        },
        18 => Request::ReleaseName { name: name(input)? },
        19 => Request::ListNames,
        20 => Request::SetPermissions {
            name: name(input)?,
            owner: if input.arbitrary()? {
                Some(*input.choose(&UIDS)?)
            } else {
                None
            },
            group: if input.arbitrary()? {
                Some(*input.choose(&UIDS)?)
            } else {
                None
            },
            mode: mode(input)?,
        },
        21 => Request::Purge { name: name(input)? },
        22 => Request::CreateMailboxWith {
            name: name(input)?,
            settings: Box::new(settings(input)?),
            mode: mode(input)?,
            group: if input.arbitrary()? {
                Some(*input.choose(&UIDS)?)
            } else {
                None
            },
        },
        23 => Request::SetInboxPermissions {
            mode: mode(input)?,
            group: if input.arbitrary()? {
                Some(*input.choose(&UIDS)?)
            } else {
                None
            },
        },
        24 => Request::ListMailboxPage {
            after: if input.arbitrary()? {
                Some(name(input)?)
            } else {
                None
            },
            max: *input.choose(&[0, 1, 2, 1000, u32::MAX])?,
        },
        25 => Request::ListNamePage {
            after: if input.arbitrary()? {
                Some(name(input)?)
            } else {
                None
            },
            max: *input.choose(&[0, 1, 2, u32::MAX])?,
        },
        26 => Request::Peek {
            from: source(input)?,
            after: if input.arbitrary()? {
                Some(*input.choose(&[0, 1, 2, 5, u64::MAX])?)
            } else {
                None
            },
            max: *input.choose(&[0, 1, 2, 1000, u32::MAX])?,
        },
        27 => Request::OpenMailbox {
            name: name(input)?,
            wait: wait(input)?,
        },
        28 => Request::SendQuietly {
            mailbox: name(input)?,
            payload: payload(input)?,
        },
        29 => Request::CreateRegion {
            name: name(input)?,
            size: *input.choose(&[0, 1, 4096, 1 << 30, (1 << 30) + 1, u64::MAX])?,
            mode: mode(input)?,
            group: if input.arbitrary()? {
                Some(input.int_in_range(0..=3)?)
            } else {
                None
            },
        },
        30 => Request::DeleteRegion { name: name(input)? },
        31 => Request::RegionInfo { name: name(input)? },
        32 => Request::ListRegionPage {
            after: if input.arbitrary()? {
                Some(name(input)?)
            } else {
                None
            },
            max: *input.choose(&[0, 1, 2, 1000, u32::MAX])?,
        },
        33 => Request::OpenRegion {
            name: name(input)?,
            access: if input.arbitrary()? {
                mailbox_proto::RegionAccess::Read
            } else {
                mailbox_proto::RegionAccess::ReadWrite
            },
        },
        _ => Request::SetInboxCapacity {
            capacity: capacity(input)?,
        },
    })
}
