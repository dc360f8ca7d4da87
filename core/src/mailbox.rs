//! One mailbox: its buffer, its waiting senders and receivers, and the rules
//! of its delivery policy. A connection's inbox is a mailbox too.
//!
//! Every operation follows the same shape: put the new sender or receiver at
//! the back of its waiting line, then [`Mailbox::pump`] moves messages as far
//! as the rules allow. Because only the pump moves messages, and it always
//! serves the fronts of the lines, FIFO order and first-come-first-served
//! fairness hold by construction; a non-blocking operation that the pump did
//! not complete is simply taken back off the back of its line.
//!
//! The lines per policy:
//! - round-robin and priority: one queue, one line of receivers (for
//!   priority ordered by priority, then arrival).
//! - broadcast: a log every subscriber reads with its own cursor.
//! - hash: a shared queue for keyless messages, and one queue per member of
//!   the pool for the keys bound to it.
//! - inbox: one queue; a receive may ask for one sender only, and then takes
//!   that sender's oldest message, even straight from a waiting send.
//!
//! Invariants (checked by `check_invariants` in tests):
//! - round-robin and priority: receivers wait only while the queue is empty;
//!   senders wait only while the queue is full (on `zero`: while no receiver
//!   waits).
//! - broadcast: a subscriber has waiting receives only when it has read
//!   everything in the log; the log's front entry is still unread by someone;
//!   senders wait only while the log is full (on `zero`: while some
//!   subscriber has no waiting receive).
//! - hash: a member waits only while its own queue is empty; a key is bound
//!   to at most one member, and its queued messages are all in that member's
//!   queue (or in the shared queue while there are no members).
//! - sequence numbers are assigned at admission, so they increase along
//!   every queue; a message that comes back (nack, holder left) keeps its
//!   number, and one withdrawn or expired leaves a gap.
//! - a message handed to a receiver that acknowledges manually stays in
//!   `in_flight` (and in the budget) until it is settled or comes back; with
//!   an acknowledgement timeout its deadline is in `ack_deadlines` exactly
//!   as long.
//! - on a broadcast mailbox that cuts slow subscribers, a subscriber's
//!   `full_since` is set exactly while its backlog is full.
//! - a mailbox with a deadline (acknowledgement, backlog full) has a wake
//!   pending no later than the earliest one (`More::armed`).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mailbox_proto::{
    BrokerError, Capacity, DeadLetter, DeliveryPolicy, Details, ErrorKind, MailboxInfo,
    MailboxSettings, Message, Metadata, Response, Verdict,
};

use super::access::Permissions;
use super::budget::Budget;
use super::line::{step, Line, RankedLine, Ticketed};

mod inbox;
use super::types::{Clock, ConnectionId, Effect, Outcome, Peer, Place, Ticket};
use inbox::InboxLines;

/// What an operation needs from the world around the mailbox.
pub(crate) struct Context<'a> {
    pub out: &'a mut Outcome,
    pub budget: &'a mut Budget,
    pub clock: &'a Clock,
}

/// The payloads of a waiting send: one message, or a batch admitted one by
/// one from the front.
#[derive(Debug)]
pub(crate) enum Load {
    One(Bytes),
    Many(Batch),
}

/// A batch send's payloads still waiting, and what was admitted so far.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub rest: VecDeque<Bytes>,
    pub admitted: u32,
    pub first_sequence: u64,
    pub recipients: u32,
}

/// How far a send waits before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Answered at admission.
    Queued,
    /// Answered when a receiver takes it.
    Received,
    /// Answered when a receiver acknowledges it.
    Acknowledged,
    /// A call: answered by a reply, which the core routes.
    Reply(u64),
}

/// What only some sends carry (boxed, so plain sends stay small).
#[derive(Debug, Clone)]
pub(crate) struct SendExtra {
    pub until: Until,
    pub key: Option<String>,
    pub ttl: Option<Duration>,
}

/// A send that has not been (completely) admitted yet. The bytes of its
/// waiting payloads are reserved in the budget.
#[derive(Debug)]
pub(crate) struct WaitingSend {
    pub ticket: Ticket,
    pub sender: Peer,
    pub load: Load,
    /// Payload bytes not admitted yet (what withdrawing it releases).
    pub held: u64,
    pub extra: Option<Box<SendExtra>>,
}

impl Ticketed for WaitingSend {
    fn ticket(&self) -> Ticket {
        self.ticket
    }
}

impl Ticketed for WaitingReceive {
    fn ticket(&self) -> Ticket {
        self.ticket
    }
}

impl WaitingSend {
    /// How many of its payloads still wait for admission.
    pub fn waiting_count(&self) -> u64 {
        match &self.load {
            Load::One(_) => 1,
            Load::Many(batch) => batch.rest.len() as u64,
        }
    }

    fn until(&self) -> Until {
        self.extra
            .as_ref()
            .map_or(Until::Queued, |extra| extra.until)
    }

    /// The answer to this send when it ends without all of it admitted.
    pub fn failed(&self, error: BrokerError, next_sequence: u64) -> Result<Response, BrokerError> {
        match &self.load {
            Load::One(_) => Err(error),
            Load::Many(batch) => Ok(Response::SentMany {
                first_sequence: if batch.admitted == 0 {
                    next_sequence
                } else {
                    batch.first_sequence
                },
                admitted: batch.admitted,
                recipients: batch.recipients,
                stopped: Some(error),
            }),
        }
    }
}

/// A receive waiting for a message: a single one, or a batch of up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitingReceive {
    pub ticket: Ticket,
    /// Up to how many messages it takes; `None` for a single `Receive`.
    pub max: Option<u32>,
    /// The receiver settles each message itself.
    pub manual: bool,
    /// Its rank on a priority mailbox (higher first).
    pub priority: i32,
    /// On an inbox: take only messages of this sender.
    pub from: Option<ConnectionId>,
}

impl WaitingReceive {
    /// A plain receive of `max` messages (`None`: one).
    pub fn plain(ticket: Ticket, max: Option<u32>) -> Self {
        Self {
            ticket,
            max,
            manual: false,
            priority: 0,
            from: None,
        }
    }

    fn limit(&self) -> usize {
        self.max.map_or(1, |max| max.max(1) as usize)
    }

    /// Answers it with `messages` (one or more).
    fn deliver(self, mut messages: Vec<Message>, out: &mut Outcome) {
        let response = match self.max {
            Some(_) => Response::ReceivedMany(messages),
            None => match messages.pop() {
                Some(message) => Response::Received(message),
                None => return,
            },
        };
        out.reply(self.ticket, Ok(response));
    }
}

/// What [`Mailbox::withdraw`] took out of a line.
#[derive(Debug)]
pub(crate) enum Withdrawn {
    /// A send that was not (completely) admitted.
    Send(WaitingSend),
    /// A waiting receive.
    Receive,
    /// A watched send whose message was queued: the message is gone too.
    Queued,
    /// A watched send whose message a receiver holds: the message stays.
    InFlight,
}

/// Whether an operation finished inside the call or now waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// It was answered (its reply is in the outcome).
    Done,
    /// It waits in the mailbox's line (or, admitted, for its stage).
    Waiting,
}

/// An admitted send still waiting for its stage.
#[derive(Debug, Clone, Copy)]
struct Watch {
    ticket: Ticket,
    until: Until,
}

/// A message a manually acknowledging receiver holds.
#[derive(Debug)]
struct InFlight {
    message: Message,
    holder: ConnectionId,
    /// When it goes back unless settled (the mailbox's acknowledgement
    /// timeout); its entry in `More::ack_deadlines`.
    deadline: Option<Instant>,
}

/// Counters, the sequence, watches and messages in flight: apart from the
/// lines so both can be borrowed.
#[derive(Debug)]
struct Ledger {
    place: Place,
    next_sequence: u64,
    accepted: u64,
    delivered: u64,
    queued_bytes: u64,
    /// What only mailboxes that use step-3 features need (a time-to-live,
    /// dead letters, senders waiting for a stage, manual acknowledgement);
    /// allocated on first use, so a plain or idle mailbox stays small.
    more: Option<Box<More>>,
}

/// What [`Ledger::view`] shows of a mailbox that never needed [`More`].
static NOTHING_MORE: More = More {
    redelivered: 0,
    expired: 0,
    dead_lettered: 0,
    dropped: 0,
    ttl: None,
    max_deliveries: None,
    dead_letter: None,
    watches: BTreeMap::new(),
    watchers: BTreeMap::new(),
    in_flight: BTreeMap::new(),
    in_flight_bytes: 0,
    ack_timeout: None,
    ack_deadlines: BTreeSet::new(),
    armed: None,
    ack_timeouts: 0,
    slow_subscribers_cut: 0,
};

/// The part of a [`Ledger`] that plain mailboxes never need.
#[derive(Debug, Default)]
struct More {
    redelivered: u64,
    expired: u64,
    dead_lettered: u64,
    dropped: u64,
    ttl: Option<Duration>,
    max_deliveries: Option<u32>,
    dead_letter: Option<String>,
    watches: BTreeMap<u64, Watch>,
    /// The sequence number each watching send waits on (so a cancel, a
    /// timeout or a disconnect finds its watch without a search).
    watchers: BTreeMap<Ticket, u64>,
    in_flight: BTreeMap<u64, InFlight>,
    /// Payload bytes of the messages in flight.
    in_flight_bytes: u64,
    /// How long a receiver may hold a message unsettled.
    ack_timeout: Option<Duration>,
    /// The deadlines of the messages in flight, earliest first (deadline,
    /// sequence): what `wake` returns is found in O(log n), and a settled
    /// message leaves no trace.
    ack_deadlines: BTreeSet<(Instant, u64)>,
    /// The time of the one `Effect::Wake` the core keeps for this mailbox,
    /// if any; it is never later than the earliest acknowledgement
    /// deadline or backlog-full deadline. A wake at another time is stale.
    armed: Option<Instant>,
    /// Messages that went back on their acknowledgement deadline.
    ack_timeouts: u64,
    /// Subscribers cut off as slow consumers.
    slow_subscribers_cut: u64,
}

impl More {
    fn watch(&mut self, sequence: u64, watch: Watch) {
        self.watchers.insert(watch.ticket, sequence);
        self.watches.insert(sequence, watch);
    }

    fn unwatch(&mut self, sequence: u64) -> Option<Watch> {
        let watch = self.watches.remove(&sequence)?;
        self.watchers.remove(&watch.ticket);
        Some(watch)
    }

    fn take_watches(&mut self) -> BTreeMap<u64, Watch> {
        self.watchers.clear();
        std::mem::take(&mut self.watches)
    }
}

impl Ledger {
    /// The rarely needed part, allocated on first use.
    fn more(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    /// The rarely needed part, read-only, without allocating it.
    fn view(&self) -> &More {
        self.more.as_deref().unwrap_or(&NOTHING_MORE)
    }

    /// Ends the watch on `sequence`, if there is one, without allocating.
    fn take_watch(&mut self, sequence: u64) -> Option<Watch> {
        self.more.as_mut()?.unwatch(sequence)
    }

    /// Whether any sender waits for a stage of a message here.
    fn has_watches(&self) -> bool {
        self.more
            .as_ref()
            .is_some_and(|more| !more.watches.is_empty())
    }

    /// The mailbox's name, for messages (an inbox says whose it is).
    fn name(&self) -> &str {
        match &self.place {
            Place::Mailbox(name) | Place::Name(name) => name,
            Place::Inbox(_) => "the inbox",
        }
    }

    fn hold(&mut self, message: Message, holder: ConnectionId, ctx: &mut Context<'_>) {
        let sequence = message.metadata.sequence;
        let more = self.more();
        more.in_flight_bytes += message.payload.len() as u64;
        let deadline = more
            .ack_timeout
            .and_then(|timeout| ctx.clock.now.checked_add(timeout));
        more.in_flight.insert(
            sequence,
            InFlight {
                message,
                holder,
                deadline,
            },
        );
        if let Some(at) = deadline {
            self.more().ack_deadlines.insert((at, sequence));
            self.arm(at, ctx);
        }
    }

    fn unhold(&mut self, sequence: u64) -> Option<InFlight> {
        let more = self.more();
        let held = more.in_flight.remove(&sequence)?;
        more.in_flight_bytes -= held.message.payload.len() as u64;
        if let Some(at) = held.deadline {
            more.ack_deadlines.remove(&(at, sequence));
        }
        Some(held)
    }

    /// Makes sure the mailbox is woken at `at` or before: asks the core for
    /// a wake unless one at or before `at` is pending. Deadlines are set at
    /// `now` plus a fixed time, so they come in order and a mailbox has one
    /// pending wake, not one per message.
    fn arm(&mut self, at: Instant, ctx: &mut Context<'_>) {
        let more = self.more();
        if more.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        more.armed = Some(at);
        ctx.out.effects.push(Effect::Wake {
            at,
            place: self.place.clone(),
        });
    }

    /// Admits the payload at the front of the send of `which` (`None`: the
    /// front of the senders' line), answering that send when it is now fully
    /// admitted (or watching it when it waits for a later stage). Returns
    /// the stamped message.
    fn admit(
        &mut self,
        senders: &mut Line<WaitingSend>,
        which: Option<Ticket>,
        recipients: u32,
        ctx: &mut Context<'_>,
    ) -> Option<Message> {
        let send = match which {
            None => senders.front_mut()?,
            Some(ticket) => senders.get_mut(ticket)?,
        };
        let sequence = self.next_sequence;
        let payload = match &mut send.load {
            Load::One(_) => {
                let send = match which {
                    None => senders.pop_front()?,
                    Some(ticket) => senders.remove(ticket)?,
                };
                let Load::One(payload) = send.load else {
                    return None;
                };
                match send.extra {
                    None => {
                        ctx.out.reply(
                            send.ticket,
                            Ok(Response::Sent {
                                sequence,
                                recipients,
                            }),
                        );
                        return Some(self.stamp(send.ticket, send.sender, payload, None, ctx));
                    }
                    Some(extra) => {
                        if extra.until == Until::Queued {
                            ctx.out.reply(
                                send.ticket,
                                Ok(Response::Sent {
                                    sequence,
                                    recipients,
                                }),
                            );
                        } else {
                            self.more().watch(
                                sequence,
                                Watch {
                                    ticket: send.ticket,
                                    until: extra.until,
                                },
                            );
                        }
                        return Some(self.stamp(
                            send.ticket,
                            send.sender,
                            payload,
                            Some(&extra),
                            ctx,
                        ));
                    }
                }
            }
            Load::Many(batch) => {
                let payload = batch.rest.pop_front()?;
                if batch.admitted == 0 {
                    batch.first_sequence = sequence;
                }
                batch.admitted += 1;
                batch.recipients = recipients;
                send.held -= payload.len() as u64;
                payload
            }
        };
        let (ticket, sender) = (send.ticket, send.sender);
        if let Load::Many(batch) = &send.load {
            if batch.rest.is_empty() {
                ctx.out.reply(
                    ticket,
                    Ok(Response::SentMany {
                        first_sequence: batch.first_sequence,
                        admitted: batch.admitted,
                        recipients,
                        stopped: None,
                    }),
                );
                match which {
                    None => senders.pop_front(),
                    Some(ticket) => senders.remove(ticket),
                };
            }
        }
        Some(self.stamp(ticket, sender, payload, None, ctx))
    }

    #[inline]
    fn stamp(
        &mut self,
        ticket: Ticket,
        sender: Peer,
        payload: Bytes,
        extra: Option<&SendExtra>,
        ctx: &mut Context<'_>,
    ) -> Message {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.accepted += 1;
        // Plain messages (the hot path) carry no details.
        let details = if extra.is_none() && self.view().ttl.is_none() {
            None
        } else {
            self.details(sequence, extra, ctx)
        };
        Message {
            metadata: Metadata {
                sequence,
                sender_pid: sender.pid,
                sender_uid: sender.uid,
                sender_gid: sender.gid,
                sender_connection: ticket.connection.0,
                accepted_at_unix_nanos: ctx.clock.unix_nanos,
                redeliveries: 0,
                details,
            },
            payload,
        }
    }

    /// The details of message `sequence` sent with `extra`, scheduling its
    /// expiry when it has a time-to-live.
    #[inline(never)]
    fn details(
        &mut self,
        sequence: u64,
        extra: Option<&SendExtra>,
        ctx: &mut Context<'_>,
    ) -> Option<Box<Details>> {
        let ttl = match (self.view().ttl, extra.and_then(|e| e.ttl)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let call = match extra.map(|e| e.until) {
            Some(Until::Reply(call)) => Some(call),
            _ => None,
        };
        let key = extra.and_then(|e| e.key.clone());
        let expires_at_unix_nanos = ttl.map(|ttl| {
            ctx.clock
                .unix_nanos
                .saturating_add(ttl.as_nanos().min(u128::from(u64::MAX)) as u64)
        });
        if let Some(at) = ttl.and_then(|ttl| ctx.clock.now.checked_add(ttl)) {
            ctx.out.effects.push(Effect::Expiry {
                at,
                place: self.place.clone(),
                sequence,
            });
        }
        (key.is_some() || call.is_some() || expires_at_unix_nanos.is_some()).then(|| {
            Box::new(Details {
                key,
                call,
                expires_at_unix_nanos,
                dead_letter: None,
            })
        })
    }

    /// Gives `messages` (of `bytes` payload bytes) to `receiver`: answers
    /// the senders that waited for it, and either keeps the messages in
    /// flight (manual acknowledgement) or lets them go from the budget.
    /// Admits up to `room` messages of the waiting senders into the
    /// mailbox's buffer (`keep` puts each where it belongs), counting their
    /// bytes as queued; whether any was admitted.
    fn admit_queued(
        &mut self,
        senders: &mut Line<WaitingSend>,
        room: usize,
        ctx: &mut Context<'_>,
        mut keep: impl FnMut(Message),
    ) -> bool {
        let mut admitted = false;
        for _ in 0..room {
            let Some(message) = self.admit(senders, None, 1, ctx) else {
                break;
            };
            self.queued_bytes += message.payload.len() as u64;
            keep(message);
            admitted = true;
        }
        admitted
    }

    fn hand_over(
        &mut self,
        receiver: WaitingReceive,
        messages: Vec<Message>,
        bytes: u64,
        ctx: &mut Context<'_>,
    ) {
        let count = messages.len() as u64;
        self.delivered += count;
        let redelivered = messages
            .iter()
            .filter(|m| m.metadata.redeliveries > 0)
            .count() as u64;
        if redelivered > 0 {
            self.more().redelivered += redelivered;
        }
        if self.has_watches() {
            for message in &messages {
                self.on_delivered(message.metadata.sequence, receiver, ctx);
            }
        }
        if receiver.manual {
            for message in &messages {
                self.hold(message.clone(), receiver.ticket.connection, ctx);
            }
        } else {
            release_all(ctx.budget, &messages, bytes);
        }
        receiver.deliver(messages, ctx.out);
    }

    fn on_delivered(&mut self, sequence: u64, receiver: WaitingReceive, ctx: &mut Context<'_>) {
        let Some(watch) = self.view().watches.get(&sequence).copied() else {
            return;
        };
        match watch.until {
            Until::Queued => {
                self.more().unwatch(sequence);
            }
            Until::Received => {
                self.more().unwatch(sequence);
                ctx.out.reply(watch.ticket, Ok(sent(sequence)));
            }
            Until::Acknowledged => {
                if !receiver.manual {
                    self.more().unwatch(sequence);
                    ctx.out.reply(watch.ticket, Ok(sent(sequence)));
                }
            }
            Until::Reply(call) => {
                if !receiver.manual {
                    self.more().unwatch(sequence);
                }
                ctx.out.effects.push(Effect::CallDelivered {
                    call,
                    holder: receiver.ticket.connection,
                });
            }
        }
    }

    /// Ends the watch on `sequence`, if any, because the message is gone
    /// without reaching its stage.
    fn drop_watch(&mut self, sequence: u64, why: BrokerError, ctx: &mut Context<'_>) {
        if !self.has_watches() {
            return;
        }
        let Some(watch) = self.more().unwatch(sequence) else {
            return;
        };
        match watch.until {
            Until::Reply(call) => ctx.out.effects.push(Effect::CallDropped {
                call,
                why: BrokerError::new(
                    ErrorKind::NoReply,
                    format!("the request was dropped unanswered: {}", why.message),
                ),
            }),
            _ => ctx.out.reply(watch.ticket, Err(why)),
        }
    }

    /// A message taken out of circulation for `reason`: to the dead-letter
    /// mailbox when there is one (its budget goes with it), else dropped.
    fn retire(&mut self, message: Message, reason: &'static str, ctx: &mut Context<'_>) {
        let kind = if reason == EXPIRED {
            ErrorKind::Expired
        } else {
            ErrorKind::DeadLettered
        };
        self.drop_watch(
            message.metadata.sequence,
            BrokerError::new(
                kind,
                format!(
                    "message {} of {} was retired ({reason}) before reaching the stage waited for",
                    message.metadata.sequence,
                    self.name()
                ),
            ),
            ctx,
        );
        match self.view().dead_letter.clone() {
            Some(to) if to != self.name() => {
                self.more().dead_lettered += 1;
                ctx.out.effects.push(Effect::DeadLetter {
                    to,
                    from: self.place.clone(),
                    message,
                    reason,
                });
            }
            _ => {
                self.more().dropped += 1;
                release(ctx.budget, &message);
            }
        }
    }

    /// A message coming back from a receiver: one more redelivery, or
    /// retired when it has had its maximum of deliveries.
    fn comes_back(&mut self, mut message: Message, ctx: &mut Context<'_>) -> Option<Message> {
        message.metadata.redeliveries = message.metadata.redeliveries.saturating_add(1);
        if let Some(Watch {
            until: Until::Reply(call),
            ..
        }) = self.view().watches.get(&message.metadata.sequence)
        {
            ctx.out.effects.push(Effect::CallReturned { call: *call });
        }
        if self
            .view()
            .max_deliveries
            .is_some_and(|max| message.metadata.redeliveries >= max)
        {
            self.retire(message, MAX_DELIVERIES, ctx);
            return None;
        }
        Some(message)
    }
}

const EXPIRED: &str = "expired";
const MAX_DELIVERIES: &str = "max deliveries";

/// Lets `message` go from the budget, from its sender's share.
fn release(budget: &mut Budget, message: &Message) {
    budget.release(message.metadata.sender_uid, message.payload.len() as u64, 1);
}

/// Lets `messages` (of `bytes` payload bytes in all) go from the budget,
/// one release per run of messages of one sender (usually one in all).
fn release_all(budget: &mut Budget, messages: &[Message], bytes: u64) {
    let Some(first) = messages.first() else {
        return;
    };
    let uid = first.metadata.sender_uid;
    if messages.iter().all(|m| m.metadata.sender_uid == uid) {
        budget.release(uid, bytes, messages.len() as u64);
        return;
    }
    for message in messages {
        release(budget, message);
    }
}

fn sent(sequence: u64) -> Response {
    Response::Sent {
        sequence,
        recipients: 1,
    }
}

#[derive(Debug)]
struct LogEntry {
    message: Message,
    /// Subscribers that have not read it yet.
    unread_by: u32,
    /// Its time-to-live ran out: nobody reads it any more.
    expired: bool,
}

#[derive(Debug, Default)]
struct Subscriber {
    /// Sequence number of the next message it will read.
    cursor: u64,
    waiting: Line<WaitingReceive>,
    /// Since when its backlog has been full (a bounded mailbox that cuts
    /// slow subscribers only): reset by every message it takes.
    full_since: Option<Instant>,
}

/// A member of a hash mailbox's pool.
#[derive(Debug, Default)]
struct Member {
    /// Messages whose keys are bound to it.
    queue: VecDeque<Message>,
    waiting: Line<WaitingReceive>,
    /// How many keys are bound to it.
    keys: u64,
    /// Its turn for the next shared message (lower first).
    turn: u64,
}

/// The lines of a hash mailbox. Besides the members, three ordered sets say
/// who is next for what, so that no operation passes over every member:
/// `waiting_turns` (who gets the next shared message), `ready` (who has
/// both messages of its own and a receive waiting: the only members the
/// pump serves their own queue) and `by_load` (who gets the next new key).
#[derive(Debug, Default)]
struct HashLines {
    /// Keyless messages (and keyed ones while the pool is empty).
    shared: VecDeque<Message>,
    /// How many of `shared` have a key (they wait for a member).
    keyed_shared: usize,
    members: BTreeMap<ConnectionId, Member>,
    /// Members with a receive waiting, by turn.
    waiting_turns: BTreeSet<(u64, ConnectionId)>,
    /// Members with a receive waiting and messages of their own queued.
    ready: BTreeSet<ConnectionId>,
    /// Members by how many keys are bound to them, then address.
    by_load: BTreeSet<(u64, ConnectionId)>,
    /// The turn a member gets when it joins or has just been served.
    next_turn: u64,
    keys: HashMap<String, ConnectionId>,
    /// Messages in all queues.
    queued: usize,
}

impl HashLines {
    /// Adds a receive of member `id` (who joins first if need be).
    fn add_waiting(&mut self, id: ConnectionId, receive: WaitingReceive) {
        self.join(id);
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        member.waiting.push_back(receive);
        self.waiting_turns.insert((member.turn, id));
        if !member.queue.is_empty() {
            self.ready.insert(id);
        }
    }

    /// Takes the receive of `ticket` out of its member's line.
    fn remove_waiting(&mut self, ticket: Ticket) -> bool {
        let id = ticket.connection;
        let Some(member) = self.members.get_mut(&id) else {
            return false;
        };
        let removed = member.waiting.remove(ticket).is_some();
        if member.waiting.is_empty() {
            self.waiting_turns.remove(&(member.turn, id));
            self.ready.remove(&id);
        }
        removed
    }

    /// The next receive of member `id`; `rotate` sends it to the back of
    /// the turns (it takes a shared message).
    fn pop_waiting(&mut self, id: ConnectionId, rotate: bool) -> Option<WaitingReceive> {
        let member = self.members.get_mut(&id)?;
        let receive = member.waiting.pop_front()?;
        self.waiting_turns.remove(&(member.turn, id));
        if rotate {
            member.turn = self.next_turn;
            self.next_turn += 1;
        }
        if member.waiting.is_empty() {
            self.ready.remove(&id);
        } else {
            self.waiting_turns.insert((member.turn, id));
        }
        Some(receive)
    }

    /// Puts a message where its key says: the queue of the member the key
    /// is bound to (binding it to the member with the fewest keys, then the
    /// lowest address, when it is new), or the shared queue.
    fn route(&mut self, message: Message, front: bool) {
        self.queued += 1;
        let owner = match message.metadata.key() {
            None => None,
            Some(key) => match self.keys.get(key) {
                Some(owner) => Some(*owner),
                None => {
                    let chosen = self.by_load.pop_first();
                    if let Some((keys, owner)) = chosen {
                        self.keys.insert(key.to_owned(), owner);
                        self.by_load.insert((keys + 1, owner));
                        if let Some(member) = self.members.get_mut(&owner) {
                            member.keys += 1;
                        }
                    }
                    chosen.map(|(_, owner)| owner)
                }
            },
        };
        let queue = match owner.and_then(|owner| Some((owner, self.members.get_mut(&owner)?))) {
            Some((owner, member)) => {
                if !member.waiting.is_empty() {
                    self.ready.insert(owner);
                }
                &mut member.queue
            }
            None => {
                if message.metadata.key().is_some() {
                    self.keyed_shared += 1;
                }
                &mut self.shared
            }
        };
        if front {
            queue.push_front(message);
        } else {
            queue.push_back(message);
        }
    }

    /// Whether a message with `key` would go to a member that waits now.
    fn ready_for(&self, key: Option<&str>) -> bool {
        let waits = |id: &ConnectionId| {
            self.members
                .get(id)
                .is_some_and(|member| !member.waiting.is_empty())
        };
        match key {
            None => !self.waiting_turns.is_empty(),
            Some(key) => match self.keys.get(key) {
                Some(owner) => waits(owner),
                None => self.by_load.first().is_some_and(|(_, id)| waits(id)),
            },
        }
    }

    /// Adds `connection` to the pool; keyed messages that waited for a pool
    /// get their keys bound now, in order.
    fn join(&mut self, connection: ConnectionId) {
        if self.members.contains_key(&connection) {
            return;
        }
        self.members.insert(
            connection,
            Member {
                turn: self.next_turn,
                ..Member::default()
            },
        );
        self.next_turn += 1;
        self.by_load.insert((0, connection));
        if self.keyed_shared > 0 {
            let shared = std::mem::take(&mut self.shared);
            self.keyed_shared = 0;
            self.queued -= shared.len();
            for message in shared {
                self.route(message, false);
            }
        }
    }

    /// Removes `connection` from the pool: its keys move to the others with
    /// its queued messages, in order. Returns its waiting receives.
    fn leave(&mut self, connection: ConnectionId) -> Option<Line<WaitingReceive>> {
        let member = self.members.remove(&connection)?;
        self.waiting_turns.remove(&(member.turn, connection));
        self.ready.remove(&connection);
        self.by_load.remove(&(member.keys, connection));
        if member.keys > 0 {
            self.keys.retain(|_, owner| *owner != connection);
        }
        self.queued -= member.queue.len();
        for message in member.queue {
            self.route(message, false);
        }
        Some(member.waiting)
    }
}

#[derive(Debug)]
enum Lines {
    /// Round-robin and priority.
    RoundRobin {
        queue: VecDeque<Message>,
        receivers: Receivers,
        /// A message came back out of sequence order (a nack to the tail,
        /// returns in another order): until the queue empties, finding a
        /// message by its sequence number takes a pass instead of a
        /// binary search.
        unsorted: bool,
    },
    Broadcast {
        /// Messages not yet read by every subscriber; the last entry has
        /// sequence `next_sequence - 1`. One shared payload per message.
        log: VecDeque<LogEntry>,
        subscribers: BTreeMap<ConnectionId, Subscriber>,
        /// Subscribers with a receive waiting.
        listening: BTreeSet<ConnectionId>,
        /// Subscribers with a receive waiting and something unread: the only
        /// ones the pump serves (empty after it), so a receive or a send
        /// costs no pass over every subscriber.
        ready: BTreeSet<ConnectionId>,
    },
    Hash(Box<HashLines>),
    Inbox(Box<InboxLines>),
}

/// The receivers of a round-robin mailbox (first come, first served) or of
/// a priority mailbox (higher priority first, then first come).
#[derive(Debug)]
enum Receivers {
    Fifo(Line<WaitingReceive>),
    Ranked(Box<RankedLine<WaitingReceive>>),
}

impl Receivers {
    fn push(&mut self, receive: WaitingReceive) {
        match self {
            Self::Fifo(line) => line.push_back(receive),
            Self::Ranked(line) => line.push(receive.priority, receive),
        }
    }

    fn pop_front(&mut self) -> Option<WaitingReceive> {
        match self {
            Self::Fifo(line) => line.pop_front(),
            Self::Ranked(line) => line.pop_front(),
        }
    }

    fn contains(&self, ticket: Ticket) -> bool {
        match self {
            Self::Fifo(line) => line.contains(ticket),
            Self::Ranked(line) => line.contains(ticket),
        }
    }

    fn remove(&mut self, ticket: Ticket) -> Option<WaitingReceive> {
        match self {
            Self::Fifo(line) => line.remove(ticket),
            Self::Ranked(line) => line.remove(ticket),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Fifo(line) => line.len(),
            Self::Ranked(line) => line.len(),
        }
    }

    /// Every receive, in line order.
    fn drain(&mut self) -> Vec<WaitingReceive> {
        match self {
            Self::Fifo(line) => line.drain().collect(),
            Self::Ranked(line) => line.drain().collect(),
        }
    }

    #[cfg(test)]
    fn to_vec(&self) -> Vec<WaitingReceive> {
        match self {
            Self::Fifo(line) => line.iter().copied().collect(),
            Self::Ranked(line) => line.iter().copied().collect(),
        }
    }
}

/// Encoded bytes a message adds to a batch beside its payload (metadata and
/// lengths, rounded up).
const MESSAGE_OVERHEAD: usize = 64;

/// A batch answer stops growing at this size, so that its frame always fits
/// the protocol's frame limit; one message alone always fits.
const MAX_BATCH_BYTES: usize = mailbox_proto::MAX_MESSAGE_SIZE_LIMIT as usize;

/// How many of `messages` (at most `limit`, at least 1 when there is one) fit
/// in one batch answer.
fn batch_len<'a>(limit: usize, messages: impl Iterator<Item = &'a Message>) -> usize {
    let mut bytes = 0;
    let mut count = 0;
    for message in messages.take(limit) {
        bytes += message.payload.len() + MESSAGE_OVERHEAD;
        if count > 0 && bytes > MAX_BATCH_BYTES {
            break;
        }
        count += 1;
    }
    count
}

/// Takes the first `take` messages of `queue`, with their payload bytes.
fn take_front(queue: &mut VecDeque<Message>, take: usize) -> (Vec<Message>, u64) {
    let messages: Vec<Message> = queue.drain(..take).collect();
    let bytes = messages.iter().map(|m| m.payload.len() as u64).sum();
    (messages, bytes)
}

/// The size of the next payload the front waiting send would admit.
fn front_payload_len(senders: &Line<WaitingSend>) -> usize {
    match senders.front().map(|send| &send.load) {
        Some(Load::One(payload)) => payload.len(),
        Some(Load::Many(batch)) => batch.rest.front().map_or(0, Bytes::len),
        None => 0,
    }
}

fn room(capacity: Capacity, queued: usize) -> usize {
    match capacity {
        Capacity::Zero => 0,
        Capacity::Bounded(n) => (n as usize).saturating_sub(queued),
        Capacity::Unbounded => usize::MAX,
    }
}

/// A named mailbox, or a connection's inbox.
#[derive(Debug)]
pub(crate) struct Mailbox {
    settings: MailboxSettings,
    permissions: Permissions,
    ledger: Ledger,
    senders: Line<WaitingSend>,
    lines: Lines,
}

fn deleted(name: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::MailboxDeleted,
        format!("mailbox {name} was deleted while this operation waited"),
    )
}

impl Mailbox {
    /// A named mailbox.
    pub fn new(name: String, settings: MailboxSettings, permissions: Permissions) -> Self {
        let lines = match settings.policy {
            DeliveryPolicy::RoundRobin => Lines::RoundRobin {
                queue: VecDeque::new(),
                receivers: Receivers::Fifo(Line::default()),
                unsorted: false,
            },
            DeliveryPolicy::Priority => Lines::RoundRobin {
                queue: VecDeque::new(),
                receivers: Receivers::Ranked(Box::default()),
                unsorted: false,
            },
            DeliveryPolicy::Broadcast => Lines::Broadcast {
                log: VecDeque::new(),
                subscribers: BTreeMap::new(),
                listening: BTreeSet::new(),
                ready: BTreeSet::new(),
            },
            DeliveryPolicy::Hash => Lines::Hash(Box::default()),
        };
        Self::with_lines(Place::Mailbox(name), settings, permissions, lines)
    }

    /// The inbox of `owner`; `permissions` say who may send to it (its
    /// owner alone receives from it).
    pub fn inbox(owner: ConnectionId, capacity: Capacity, permissions: Permissions) -> Self {
        let settings = MailboxSettings {
            capacity,
            max_message_size: mailbox_proto::MAX_MESSAGE_SIZE_LIMIT,
            ..MailboxSettings::default()
        };
        let lines = Lines::Inbox(Box::default());
        Self::with_lines(Place::Inbox(owner), settings, permissions, lines)
    }

    fn with_lines(
        place: Place,
        settings: MailboxSettings,
        permissions: Permissions,
        lines: Lines,
    ) -> Self {
        Self {
            permissions,
            ledger: Ledger {
                place,
                next_sequence: 1,
                accepted: 0,
                delivered: 0,
                queued_bytes: 0,
                more: (settings.ttl_millis.is_some()
                    || settings.max_deliveries.is_some()
                    || settings.dead_letter.is_some()
                    || settings.ack_timeout_millis.is_some())
                .then(|| {
                    Box::new(More {
                        ttl: settings.ttl_millis.map(Duration::from_millis),
                        max_deliveries: settings.max_deliveries,
                        dead_letter: settings.dead_letter.clone(),
                        ack_timeout: settings.ack_timeout_millis.map(Duration::from_millis),
                        ..More::default()
                    })
                }),
            },
            settings,
            senders: Line::default(),
            lines,
        }
    }

    pub fn settings(&self) -> &MailboxSettings {
        &self.settings
    }

    pub fn permissions(&self) -> &Permissions {
        &self.permissions
    }

    pub fn set_permissions(&mut self, permissions: Permissions) {
        self.permissions = permissions;
    }

    /// Payload bytes held in the mailbox: queued and in flight.
    pub fn held_bytes(&self) -> u64 {
        self.ledger.queued_bytes + self.ledger.view().in_flight_bytes
    }

    pub fn name(&self) -> &str {
        self.ledger.name()
    }

    pub fn is_broadcast(&self) -> bool {
        matches!(self.lines, Lines::Broadcast { .. })
    }

    /// Changes an inbox's capacity; what it holds stays.
    pub fn set_capacity(&mut self, capacity: Capacity, ctx: &mut Context<'_>) {
        self.settings.capacity = capacity;
        self.pump(ctx);
    }

    /// The sequence number the next admitted message will get.
    pub fn next_sequence(&self) -> u64 {
        self.ledger.next_sequence
    }

    /// Checks a payload against the size rules; nothing changes.
    pub fn check_payload(&self, len: usize) -> Result<(), BrokerError> {
        if len > self.settings.max_message_size as usize {
            return Err(BrokerError::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "message of {len} bytes is above {}'s limit of {} bytes",
                    self.ledger.name(),
                    self.settings.max_message_size
                ),
            ));
        }
        if let Some(fixed) = self.settings.fixed_size {
            if len != fixed as usize {
                return Err(BrokerError::new(
                    ErrorKind::WrongMessageSize,
                    format!(
                        "message of {len} bytes, but mailbox {} takes exactly {fixed} bytes",
                        self.ledger.name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Adds a send at the back of the senders' line and pumps. When `may_wait`
    /// is false and it was not (completely) admitted, it is taken back and
    /// returned; the caller answers it and releases what it still holds.
    /// A send that waits for a later stage than `queued` counts as waiting
    /// until it is answered.
    pub fn send(
        &mut self,
        send: WaitingSend,
        may_wait: bool,
        ctx: &mut Context<'_>,
    ) -> Result<Progress, WaitingSend> {
        let ticket = send.ticket;
        let watched = send.until() != Until::Queued;
        let mark = ctx.out.replies.len();
        self.senders.push_back(send);
        self.pump(ctx);
        if self.senders.back().map(|s| s.ticket) != Some(ticket) {
            let answered = ctx.out.replies[mark..].iter().any(|r| r.ticket == ticket);
            if watched && !answered {
                return Ok(Progress::Waiting);
            }
            return Ok(Progress::Done);
        }
        if may_wait {
            return Ok(Progress::Waiting);
        }
        match self.senders.pop_back() {
            Some(send) => Err(send),
            None => Ok(Progress::Done),
        }
    }

    /// Adds a receive at the back of the receivers' line (for broadcast: the
    /// subscriber's line; for priority: behind those of equal or higher
    /// priority) and pumps. When `may_wait` is false and it was not served,
    /// it is taken back and `Ok(None)` is returned.
    pub fn receive(
        &mut self,
        receive: WaitingReceive,
        may_wait: bool,
        ctx: &mut Context<'_>,
    ) -> Result<Option<Progress>, BrokerError> {
        let ticket = receive.ticket;
        let next = self.ledger.next_sequence;
        match &mut self.lines {
            Lines::RoundRobin { receivers, .. } => receivers.push(receive),
            Lines::Inbox(inbox) => inbox.add_receive(receive),
            Lines::Hash(hash) => hash.add_waiting(ticket.connection, receive),
            Lines::Broadcast {
                subscribers,
                listening,
                ready,
                ..
            } => match subscribers.get_mut(&ticket.connection) {
                Some(subscriber) => {
                    subscriber.waiting.push_back(receive);
                    listening.insert(ticket.connection);
                    if subscriber.cursor < next {
                        ready.insert(ticket.connection);
                    }
                }
                None => {
                    return Err(BrokerError::new(
                        ErrorKind::NotSubscribed,
                        format!(
                            "mailbox {} is a broadcast mailbox; subscribe to it before receiving",
                            self.ledger.name()
                        ),
                    ))
                }
            },
        }
        self.pump(ctx);
        if !self.is_waiting_receive(ticket) {
            return Ok(Some(Progress::Done));
        }
        if may_wait {
            return Ok(Some(Progress::Waiting));
        }
        self.remove_receive(ticket);
        Ok(None)
    }

    fn is_waiting_receive(&self, ticket: Ticket) -> bool {
        match &self.lines {
            Lines::RoundRobin { receivers, .. } => receivers.contains(ticket),
            Lines::Inbox(inbox) => inbox.contains_receive(ticket),
            Lines::Hash(hash) => hash
                .members
                .get(&ticket.connection)
                .is_some_and(|member| member.waiting.contains(ticket)),
            Lines::Broadcast { subscribers, .. } => subscribers
                .get(&ticket.connection)
                .is_some_and(|subscriber| subscriber.waiting.contains(ticket)),
        }
    }

    fn remove_receive(&mut self, ticket: Ticket) -> bool {
        match &mut self.lines {
            Lines::RoundRobin { receivers, .. } => receivers.remove(ticket).is_some(),
            Lines::Inbox(inbox) => inbox.remove_receive(ticket).is_some(),
            Lines::Hash(hash) => hash.remove_waiting(ticket),
            Lines::Broadcast {
                subscribers,
                listening,
                ready,
                ..
            } => {
                let Some(subscriber) = subscribers.get_mut(&ticket.connection) else {
                    return false;
                };
                let removed = subscriber.waiting.remove(ticket).is_some();
                if subscriber.waiting.is_empty() {
                    listening.remove(&ticket.connection);
                    ready.remove(&ticket.connection);
                }
                removed
            }
        }
    }

    /// Takes a waiting send or receive out of its line without answering it;
    /// a send's unadmitted payloads are released from the budget. A send
    /// admitted but waiting for its stage loses its watch, and its message
    /// when that is still queued.
    pub fn withdraw(
        &mut self,
        ticket: Ticket,
        drop_queued: bool,
        ctx: &mut Context<'_>,
    ) -> Option<Withdrawn> {
        let withdrawn = if let Some(send) = self.senders.remove(ticket) {
            ctx.budget
                .release(send.sender.uid, send.held, send.waiting_count());
            Some(Withdrawn::Send(send))
        } else if self.remove_receive(ticket) {
            // A receive that leaves makes nothing deliverable (every rule
            // serves waiting receives; none waits for another to go), so
            // there is nothing to pump: a cancel costs what its line does.
            return Some(Withdrawn::Receive);
        } else {
            self.unwatch(ticket, drop_queued, ctx)
        };
        // A withdrawn sender at the head may have been what held others back.
        self.pump(ctx);
        withdrawn
    }

    /// Forgets the watch of `ticket`; its message goes too when still queued
    /// and `drop_queued`.
    pub fn unwatch(
        &mut self,
        ticket: Ticket,
        drop_queued: bool,
        ctx: &mut Context<'_>,
    ) -> Option<Withdrawn> {
        let sequence = *self.ledger.view().watchers.get(&ticket)?;
        self.ledger.more().unwatch(sequence);
        if self.ledger.view().in_flight.contains_key(&sequence) || !drop_queued {
            return Some(Withdrawn::InFlight);
        }
        match self.take_queued(sequence) {
            Some(message) => {
                self.ledger.more().dropped += 1;
                release(ctx.budget, &message);
                Some(Withdrawn::Queued)
            }
            None => Some(Withdrawn::InFlight),
        }
    }

    /// Removes the queued message with `sequence`, if it is queued.
    fn take_queued(&mut self, sequence: u64) -> Option<Message> {
        let found = |queue: &mut VecDeque<Message>| {
            let index = queue.iter().position(|m| m.metadata.sequence == sequence)?;
            queue.remove(index)
        };
        let message = match &mut self.lines {
            Lines::RoundRobin {
                queue, unsorted, ..
            } => {
                if queue.is_empty() {
                    *unsorted = false;
                }
                if *unsorted {
                    found(queue)
                } else {
                    // In sequence order: an expiry of a message already
                    // delivered (the common case) costs a binary search.
                    let at = queue.partition_point(|m| m.metadata.sequence < sequence);
                    if queue
                        .get(at)
                        .is_some_and(|m| m.metadata.sequence == sequence)
                    {
                        queue.remove(at)
                    } else {
                        None
                    }
                }
            }
            Lines::Inbox(inbox) => inbox.take_sequence(sequence),
            Lines::Hash(hash) => {
                let message = match found(&mut hash.shared) {
                    Some(message) => {
                        if message.metadata.key().is_some() {
                            hash.keyed_shared -= 1;
                        }
                        Some(message)
                    }
                    None => hash
                        .members
                        .values_mut()
                        .find_map(|member| found(&mut member.queue)),
                };
                if message.is_some() {
                    hash.queued -= 1;
                }
                message
            }
            // Broadcast messages are read in place (see `expire`).
            Lines::Broadcast { .. } => None,
        }?;
        self.ledger.queued_bytes -= message.payload.len() as u64;
        Some(message)
    }

    /// Retires the message `sequence` when its time-to-live has run out and
    /// it is still queued; a message in flight or delivered is left alone.
    pub fn expire(&mut self, sequence: u64, ctx: &mut Context<'_>) {
        if let Lines::Broadcast { log, .. } = &mut self.lines {
            let first = self.ledger.next_sequence - log.len() as u64;
            if let Some(entry) = sequence
                .checked_sub(first)
                .and_then(|index| log.get_mut(index as usize))
            {
                if !entry.expired {
                    entry.expired = true;
                    self.ledger.more().expired += 1;
                }
            }
            self.pump(ctx);
            return;
        }
        if let Some(message) = self.take_queued(sequence) {
            self.ledger.more().expired += 1;
            self.ledger.retire(message, EXPIRED, ctx);
            self.pump(ctx);
        }
    }

    /// Settles a message `holder` received with manual acknowledgement
    /// (when `redeliveries` is given: only that delivery of it).
    pub fn settle(
        &mut self,
        holder: ConnectionId,
        sequence: u64,
        redeliveries: Option<u32>,
        verdict: Verdict,
        ctx: &mut Context<'_>,
    ) -> Result<(), BrokerError> {
        match self.ledger.view().in_flight.get(&sequence) {
            Some(held)
                if held.holder == holder
                    && redeliveries.is_some_and(|r| r != held.message.metadata.redeliveries) =>
            {
                return Err(BrokerError::new(
                    ErrorKind::NotHeld,
                    format!(
                        "the delivery of message {sequence} of {} being settled (redelivery {}) came back (its acknowledgement timeout passed); this connection holds it again as redelivery {}, settle that one",
                        self.ledger.name(),
                        redeliveries.unwrap_or_default(),
                        held.message.metadata.redeliveries
                    ),
                ))
            }
            Some(held) if held.holder == holder => {}
            _ => {
                return Err(BrokerError::new(
                    ErrorKind::NotHeld,
                    format!(
                        "this connection holds no message {sequence} of {}; it was settled already, came back (nacked, its holder left, or its acknowledgement timeout passed), or was never received with manual acknowledgement",
                        self.ledger.name()
                    ),
                ))
            }
        }
        let Some(held) = self.ledger.unhold(sequence) else {
            return Ok(());
        };
        match verdict {
            Verdict::Ack => {
                release(ctx.budget, &held.message);
                if let Some(watch) = self.ledger.more().unwatch(sequence) {
                    if watch.until == Until::Acknowledged {
                        ctx.out.reply(watch.ticket, Ok(sent(sequence)));
                    }
                }
            }
            Verdict::Nack { to_tail } => {
                if let Some(message) = self.ledger.comes_back(held.message, ctx) {
                    self.requeue(message, to_tail);
                }
                self.pump(ctx);
            }
        }
        Ok(())
    }

    /// Every message `holder` held goes back to the head of the mailbox, in
    /// order (the holder left).
    pub fn return_held(&mut self, holder: ConnectionId, ctx: &mut Context<'_>) {
        let held: Vec<u64> = self
            .ledger
            .view()
            .in_flight
            .iter()
            .filter(|(_, held)| held.holder == holder)
            .map(|(sequence, _)| *sequence)
            .collect();
        if held.is_empty() {
            return;
        }
        // Newest first onto the head, so the oldest ends up in front.
        for sequence in held.into_iter().rev() {
            if let Some(held) = self.ledger.unhold(sequence) {
                if let Some(message) = self.ledger.comes_back(held.message, ctx) {
                    self.requeue(message, false);
                }
            }
        }
        self.pump(ctx);
    }

    /// Puts a message that came back into the queue, at the head or the tail,
    /// whatever the capacity (it had its place already).
    fn requeue(&mut self, message: Message, to_tail: bool) {
        self.ledger.queued_bytes += message.payload.len() as u64;
        match &mut self.lines {
            Lines::RoundRobin {
                queue, unsorted, ..
            } => {
                let sequence = message.metadata.sequence;
                if to_tail {
                    if queue.back().is_some_and(|m| m.metadata.sequence > sequence) {
                        *unsorted = true;
                    }
                    queue.push_back(message);
                } else {
                    if queue
                        .front()
                        .is_some_and(|m| m.metadata.sequence < sequence)
                    {
                        *unsorted = true;
                    }
                    queue.push_front(message);
                }
            }
            Lines::Inbox(inbox) => inbox.push(message, !to_tail),
            Lines::Hash(hash) => hash.route(message, !to_tail),
            Lines::Broadcast { .. } => {
                // Broadcast deliveries are never manual; nothing comes back.
                self.ledger.queued_bytes -= message.payload.len() as u64;
            }
        }
    }

    /// Takes a message retired from another mailbox, restamped with this
    /// mailbox's next sequence number, when there is room (or a receiver
    /// waiting on `zero`). Gives it back otherwise.
    pub fn take_dead_letter(
        &mut self,
        mut message: Message,
        from: &str,
        reason: &'static str,
        ctx: &mut Context<'_>,
    ) -> Result<(), Message> {
        let queued = self.queued_count();
        let has_room = match self.settings.capacity {
            Capacity::Zero => self.waiting_receivers() > 0,
            capacity => room(capacity, queued) > 0,
        };
        if !has_room || self.check_payload(message.payload.len()).is_err() {
            return Err(message);
        }
        let sequence = self.ledger.next_sequence;
        self.ledger.next_sequence += 1;
        self.ledger.accepted += 1;
        let details = message.metadata.details.get_or_insert_with(Box::default);
        details.expires_at_unix_nanos = None;
        details.call = None;
        details.dead_letter = Some(DeadLetter {
            mailbox: from.to_owned(),
            sequence: message.metadata.sequence,
            reason: reason.to_owned(),
        });
        message.metadata.sequence = sequence;
        message.metadata.redeliveries = 0;
        let len = message.payload.len() as u64;
        match &mut self.lines {
            Lines::Broadcast {
                log,
                subscribers,
                listening,
                ready,
            } => {
                let recipients = subscribers.len() as u32;
                if recipients == 0 {
                    release(ctx.budget, &message);
                } else {
                    self.ledger.queued_bytes += len;
                    log.push_back(LogEntry {
                        message,
                        unread_by: recipients,
                        expired: false,
                    });
                    ready.extend(listening.iter().copied());
                }
            }
            _ => self.requeue(message, true),
        }
        self.pump(ctx);
        Ok(())
    }

    /// Counts a dead letter this mailbox sent that could not be taken.
    pub fn dead_letter_refused(&mut self) {
        self.ledger.more().dead_lettered -= 1;
        self.ledger.more().dropped += 1;
    }

    /// Every queued message (for broadcast: every message in the log).
    fn queued_messages(&self) -> Box<dyn Iterator<Item = &Message> + '_> {
        match &self.lines {
            Lines::RoundRobin { queue, .. } => Box::new(queue.iter()),
            Lines::Inbox(inbox) => Box::new(inbox.messages()),
            Lines::Hash(hash) => Box::new(
                hash.shared
                    .iter()
                    .chain(hash.members.values().flat_map(|m| m.queue.iter())),
            ),
            Lines::Broadcast { log, .. } => Box::new(log.iter().map(|entry| &entry.message)),
        }
    }

    fn queued_count(&self) -> usize {
        match &self.lines {
            Lines::RoundRobin { queue, .. } => queue.len(),
            Lines::Inbox(inbox) => inbox.len(),
            Lines::Broadcast { log, .. } => log.len(),
            Lines::Hash(hash) => hash.queued,
        }
    }

    fn waiting_receivers(&self) -> usize {
        match &self.lines {
            Lines::RoundRobin { receivers, .. } => receivers.len(),
            Lines::Inbox(inbox) => inbox.receive_count(),
            Lines::Broadcast { subscribers, .. } => {
                subscribers.values().map(|s| s.waiting.len()).sum()
            }
            Lines::Hash(hash) => hash.members.values().map(|m| m.waiting.len()).sum(),
        }
    }

    /// Subscribes `connection` from the next message on (broadcast), or adds
    /// it to the pool (hash). Returns false when it was there already.
    pub fn subscribe(&mut self, connection: ConnectionId) -> Result<bool, BrokerError> {
        let next = self.ledger.next_sequence;
        match &mut self.lines {
            Lines::Broadcast { subscribers, .. } => {
                if subscribers.contains_key(&connection) {
                    return Ok(false);
                }
                subscribers.insert(
                    connection,
                    Subscriber {
                        cursor: next,
                        waiting: Line::default(),
                        full_since: None,
                    },
                );
                Ok(true)
            }
            Lines::Hash(hash) => {
                let new = !hash.members.contains_key(&connection);
                hash.join(connection);
                Ok(new)
            }
            _ => Err(BrokerError::new(
                ErrorKind::NotBroadcast,
                format!(
                    "mailbox {} is {}; receive from it without subscribing",
                    self.ledger.name(),
                    self.settings.policy
                ),
            )),
        }
    }

    /// Ends the subscription (broadcast) or pool membership (hash) of
    /// `connection`, releasing its unread backlog (broadcast) or moving its
    /// keys and messages to the other members (hash). Its waiting receives
    /// are answered with `NotSubscribed` when `answer_waiters` (an explicit
    /// unsubscribe), or dropped silently (the connection is gone).
    pub fn unsubscribe(
        &mut self,
        connection: ConnectionId,
        answer_waiters: bool,
        ctx: &mut Context<'_>,
    ) -> Result<(), BrokerError> {
        let not_subscribed = || {
            BrokerError::new(
                ErrorKind::NotSubscribed,
                format!(
                    "this connection is not subscribed to {}",
                    self.ledger.name()
                ),
            )
        };
        let mut waiting = match &mut self.lines {
            Lines::Broadcast {
                log,
                subscribers,
                listening,
                ready,
            } => {
                let Some(subscriber) = subscribers.remove(&connection) else {
                    return Err(not_subscribed());
                };
                listening.remove(&connection);
                ready.remove(&connection);
                let first = self.ledger.next_sequence - log.len() as u64;
                let unread_from = subscriber.cursor.saturating_sub(first) as usize;
                for entry in log.iter_mut().skip(unread_from) {
                    entry.unread_by -= 1;
                }
                subscriber.waiting
            }
            Lines::Hash(hash) => match hash.leave(connection) {
                Some(waiting) => waiting,
                None => return Err(not_subscribed()),
            },
            _ => {
                return Err(BrokerError::new(
                    ErrorKind::NotBroadcast,
                    format!(
                        "mailbox {} is {}; it has no subscribers",
                        self.ledger.name(),
                        self.settings.policy
                    ),
                ))
            }
        };
        if answer_waiters {
            for receive in waiting.drain() {
                ctx.out.reply(
                    receive.ticket,
                    Err(BrokerError::new(
                        ErrorKind::NotSubscribed,
                        format!(
                            "the subscription to {} ended while waiting",
                            self.ledger.name()
                        ),
                    )),
                );
            }
        }
        self.pump(ctx);
        Ok(())
    }

    /// Answers every waiting operation with `MailboxDeleted` (or `error`)
    /// and releases everything the mailbox held.
    pub fn delete(mut self, error: Option<BrokerError>, ctx: &mut Context<'_>) {
        let error = error.unwrap_or_else(|| deleted(self.ledger.name()));
        self.fail_all_waiters(&error, ctx);
        let watched: Vec<u64> = self.ledger.view().watches.keys().copied().collect();
        for sequence in watched {
            self.ledger.drop_watch(sequence, error.clone(), ctx);
        }
        let in_flight = match self.ledger.more.as_mut() {
            Some(more) => {
                more.in_flight_bytes = 0;
                more.ack_deadlines.clear();
                std::mem::take(&mut more.in_flight)
            }
            None => BTreeMap::new(),
        };
        for held in in_flight.values() {
            release(ctx.budget, &held.message);
        }
        for message in self.queued_messages() {
            release(ctx.budget, message);
        }
    }

    /// Answers every waiting operation with `error` and forgets them.
    pub fn fail_all_waiters(&mut self, error: &BrokerError, ctx: &mut Context<'_>) {
        let next_sequence = self.ledger.next_sequence;
        for send in self.senders.drain() {
            ctx.budget
                .release(send.sender.uid, send.held, send.waiting_count());
            ctx.out
                .reply(send.ticket, send.failed(error.clone(), next_sequence));
        }
        let waiting: Vec<WaitingReceive> = match &mut self.lines {
            Lines::RoundRobin { receivers, .. } => receivers.drain(),
            Lines::Inbox(inbox) => inbox.drain_receives(),
            Lines::Broadcast {
                subscribers,
                listening,
                ready,
                ..
            } => {
                listening.clear();
                ready.clear();
                subscribers
                    .values_mut()
                    .flat_map(|s| s.waiting.drain())
                    .collect()
            }
            Lines::Hash(hash) => {
                hash.waiting_turns.clear();
                hash.ready.clear();
                hash.members
                    .values_mut()
                    .flat_map(|m| m.waiting.drain())
                    .collect()
            }
        };
        for receive in waiting {
            ctx.out.reply(receive.ticket, Err(error.clone()));
        }
        let watches: Vec<(u64, Watch)> = match self.ledger.more.as_mut() {
            Some(more) => more.take_watches().into_iter().collect(),
            None => Vec::new(),
        };
        for (_, watch) in watches {
            match watch.until {
                Until::Reply(call) => ctx.out.effects.push(Effect::CallDropped {
                    call,
                    why: error.clone(),
                }),
                _ => ctx.out.reply(watch.ticket, Err(error.clone())),
            }
        }
    }

    /// Fails the waiting receives on this inbox that take only from
    /// `sender`, who is gone and can send nothing more.
    pub fn sender_left(&mut self, sender: ConnectionId, ctx: &mut Context<'_>) {
        let Lines::Inbox(inbox) = &mut self.lines else {
            return;
        };
        if inbox.has_from(sender) {
            // What it sent is still queued: its receives take that first.
            return;
        }
        for receive in inbox.take_receives_from(sender) {
            ctx.out.reply(
                receive.ticket,
                Err(BrokerError::new(
                    ErrorKind::NoSuchProcess,
                    format!("process {} left without sending more", sender.0),
                )),
            );
        }
    }

    /// Whether a message from `sender` is queued here (inboxes).
    pub fn has_message_from(&self, sender: ConnectionId) -> bool {
        match &self.lines {
            Lines::Inbox(inbox) => inbox.has_from(sender),
            _ => false,
        }
    }

    /// A snapshot for `info` and `list`.
    pub fn info(&self) -> MailboxInfo {
        let subscribers = match &self.lines {
            Lines::Broadcast { subscribers, .. } => subscribers.len(),
            Lines::Hash(hash) => hash.members.len(),
            _ => 0,
        };
        MailboxInfo {
            name: self.ledger.name().to_owned(),
            settings: self.settings.clone(),
            queued_messages: self.queued_count() as u64,
            queued_bytes: self.ledger.queued_bytes,
            waiting_senders: self.senders.len() as u32,
            waiting_receivers: self.waiting_receivers() as u32,
            subscribers: subscribers as u32,
            messages_accepted: self.ledger.accepted,
            messages_delivered: self.ledger.delivered,
            in_flight: self.ledger.view().in_flight.len() as u64,
            messages_redelivered: self.ledger.view().redelivered,
            messages_expired: self.ledger.view().expired,
            messages_dead_lettered: self.ledger.view().dead_lettered,
            messages_dropped: self.ledger.view().dropped,
            owner_uid: self.permissions.owner,
            group_gid: self.permissions.group,
            mode: self.permissions.mode,
            ack_timeouts: self.ledger.view().ack_timeouts,
            slow_subscribers_cut: self.ledger.view().slow_subscribers_cut,
        }
    }

    /// Discards every queued message (not those in flight); senders waiting
    /// for their stage learn `Purged`. Returns how many were discarded.
    pub fn purge(&mut self, ctx: &mut Context<'_>) -> u64 {
        let next = self.ledger.next_sequence;
        let discarded: Vec<Message> = match &mut self.lines {
            Lines::RoundRobin { queue, .. } => queue.drain(..).collect(),
            Lines::Inbox(inbox) => inbox.drain(),
            Lines::Hash(hash) => {
                let mut all: Vec<Message> = hash.shared.drain(..).collect();
                hash.keyed_shared = 0;
                for member in hash.members.values_mut() {
                    all.extend(member.queue.drain(..));
                }
                hash.ready.clear();
                hash.queued = 0;
                all
            }
            Lines::Broadcast {
                log,
                subscribers,
                ready,
                ..
            } => {
                for subscriber in subscribers.values_mut() {
                    subscriber.cursor = next;
                }
                ready.clear();
                log.drain(..).map(|entry| entry.message).collect()
            }
        };
        let count = discarded.len() as u64;
        let bytes: u64 = discarded.iter().map(|m| m.payload.len() as u64).sum();
        self.ledger.queued_bytes -= bytes;
        if count > 0 {
            self.ledger.more().dropped += count;
        }
        release_all(ctx.budget, &discarded, bytes);
        if self.ledger.has_watches() {
            for message in &discarded {
                self.ledger.drop_watch(
                    message.metadata.sequence,
                    BrokerError::new(
                        ErrorKind::Purged,
                        format!(
                            "{} was purged before the message reached its stage",
                            self.ledger.name()
                        ),
                    ),
                    ctx,
                );
            }
        }
        self.pump(ctx);
        count
    }

    /// Moves messages as far as the rules allow, until nothing moves: waiting
    /// senders into the buffer while there is room, buffered messages to
    /// waiting receivers (a batch receive takes as many as it may), and on
    /// `zero` straight from senders to receivers.
    fn pump(&mut self, ctx: &mut Context<'_>) {
        let capacity = self.settings.capacity;
        let ledger = &mut self.ledger;
        let senders = &mut self.senders;
        match &mut self.lines {
            Lines::RoundRobin {
                queue, receivers, ..
            } => loop {
                let space = room(capacity, queue.len());
                let mut moved = ledger.admit_queued(senders, space, ctx, |m| queue.push_back(m));
                while !queue.is_empty() {
                    let Some(receiver) = receivers.pop_front() else {
                        break;
                    };
                    let take = batch_len(receiver.limit(), queue.iter());
                    let (messages, bytes) = take_front(queue, take);
                    ledger.queued_bytes -= bytes;
                    ledger.hand_over(receiver, messages, bytes, ctx);
                    moved = true;
                }
                if capacity == Capacity::Zero {
                    // Rendezvous: messages go straight from waiting senders to
                    // the waiting receiver, and both complete now.
                    while !senders.is_empty() {
                        let Some(receiver) = receivers.pop_front() else {
                            break;
                        };
                        let (messages, bytes) = admit_batch(ledger, senders, receiver, ctx);
                        ledger.hand_over(receiver, messages, bytes, ctx);
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            },
            Lines::Inbox(inbox) => loop {
                let space = room(capacity, inbox.len());
                let mut moved = ledger.admit_queued(senders, space, ctx, |m| inbox.push(m, false));
                // Serve the earliest receive that something waits for, until
                // none does: from the queue, or straight from a waiting send
                // it accepts (the queue may be full of others' messages).
                loop {
                    let queued = inbox.next_from_queue();
                    let handoff = if senders.is_empty() {
                        None
                    } else {
                        inbox.next_handoff(senders)
                    };
                    // Both finds name a receive at the front of its line
                    // and what it takes, so neither branch below can come
                    // away empty-handed; if one did, the receive goes back
                    // to its place (it must still be answered) and the
                    // message to the head of the queue (it must not vanish).
                    let (receiver, messages, bytes) = match (queued, handoff) {
                        (Some((at, which)), handoff)
                            if handoff.is_none_or(|(later, ..)| at < later) =>
                        {
                            let Some(receiver) = inbox.pop_receive(which) else {
                                break;
                            };
                            let (messages, bytes) = inbox.take_for(&receiver);
                            if messages.is_empty() {
                                inbox.restore(at, receiver);
                                break;
                            }
                            (receiver, messages, bytes)
                        }
                        (_, Some((_, which, send))) => {
                            let Some(message) = ledger.admit(senders, Some(send), 1, ctx) else {
                                break;
                            };
                            let bytes = message.payload.len() as u64;
                            ledger.queued_bytes += bytes;
                            let Some(receiver) = inbox.pop_receive(which) else {
                                inbox.push(message, true);
                                break;
                            };
                            (receiver, vec![message], bytes)
                        }
                        _ => break,
                    };
                    ledger.queued_bytes -= bytes;
                    ledger.hand_over(receiver, messages, bytes, ctx);
                    moved = true;
                }
                if !moved {
                    break;
                }
            },
            Lines::Hash(hash) => {
                loop {
                    let space = room(capacity, hash.queued);
                    let mut moved =
                        ledger.admit_queued(senders, space, ctx, |m| hash.route(m, false));
                    // Members first take what is bound to them (only the
                    // ready ones have both a receive and messages).
                    while let Some(id) = hash.ready.pop_first() {
                        step(1);
                        while hash.members.get(&id).is_some_and(|m| !m.queue.is_empty()) {
                            let Some(receiver) = hash.pop_waiting(id, false) else {
                                break;
                            };
                            let Some(member) = hash.members.get_mut(&id) else {
                                break;
                            };
                            let take = batch_len(receiver.limit(), member.queue.iter());
                            let (messages, bytes) = take_front(&mut member.queue, take);
                            hash.queued -= take;
                            ledger.queued_bytes -= bytes;
                            ledger.hand_over(receiver, messages, bytes, ctx);
                            moved = true;
                        }
                        hash.ready.remove(&id);
                    }
                    // Shared messages go to waiting members in turn.
                    while !hash.shared.is_empty() {
                        if hash
                            .shared
                            .front()
                            .is_some_and(|m| m.metadata.key().is_some())
                        {
                            // Keyed messages are shared only while the pool is
                            // empty, and a waiting member means it is not.
                            break;
                        }
                        let Some(&(_, id)) = hash.waiting_turns.first() else {
                            break;
                        };
                        step(1);
                        let Some(receiver) = hash.pop_waiting(id, true) else {
                            break;
                        };
                        let keyless = hash
                            .shared
                            .iter()
                            .take_while(|m| m.metadata.key().is_none());
                        let take = batch_len(receiver.limit(), keyless);
                        let (messages, bytes) = take_front(&mut hash.shared, take);
                        hash.queued -= take;
                        ledger.queued_bytes -= bytes;
                        ledger.hand_over(receiver, messages, bytes, ctx);
                        moved = true;
                    }
                    if capacity == Capacity::Zero {
                        // Rendezvous: the front send is admitted only when the
                        // member it would go to waits, and the next round hands
                        // it over.
                        let key = senders
                            .front()
                            .map(|send| send.extra.as_ref().and_then(|e| e.key.as_deref()));
                        if key.is_some_and(|key| hash.ready_for(key)) {
                            if let Some(message) = ledger.admit(senders, None, 1, ctx) {
                                ledger.queued_bytes += message.payload.len() as u64;
                                hash.route(message, false);
                                moved = true;
                            }
                        }
                    }
                    if !moved {
                        break;
                    }
                }
            }
            Lines::Broadcast {
                log,
                subscribers,
                listening,
                ready,
            } => loop {
                let mut moved = false;
                if capacity == Capacity::Zero {
                    // Rendezvous with everyone: all current subscribers must
                    // be waiting, so all take the message at once.
                    if !senders.is_empty() && listening.len() == subscribers.len() {
                        let recipients = subscribers.len() as u32;
                        if let Some(message) = ledger.admit(senders, None, recipients, ctx) {
                            release(ctx.budget, &message);
                            let sequence = message.metadata.sequence;
                            for (id, subscriber) in subscribers.iter_mut() {
                                step(1);
                                if let Some(receive) = subscriber.waiting.pop_front() {
                                    subscriber.cursor += 1;
                                    ledger.delivered += 1;
                                    receive.deliver(vec![message.clone()], ctx.out);
                                }
                                if subscriber.waiting.is_empty() {
                                    listening.remove(id);
                                }
                            }
                            if let Some(watch) = ledger.take_watch(sequence) {
                                ctx.out
                                    .reply(watch.ticket, Ok(broadcast_sent(sequence, recipients)));
                            }
                            moved = true;
                        }
                    }
                } else {
                    let recipients = subscribers.len() as u32;
                    for _ in 0..room(capacity, log.len()) {
                        let Some(message) = ledger.admit(senders, None, recipients, ctx) else {
                            break;
                        };
                        moved = true;
                        let len = message.payload.len() as u64;
                        if recipients == 0 {
                            // Reaches nobody: nothing to keep.
                            release(ctx.budget, &message);
                            if let Some(watch) = ledger.take_watch(message.metadata.sequence) {
                                ctx.out.reply(
                                    watch.ticket,
                                    Ok(broadcast_sent(message.metadata.sequence, 0)),
                                );
                            }
                            continue;
                        }
                        ledger.queued_bytes += len;
                        log.push_back(LogEntry {
                            message,
                            unread_by: recipients,
                            expired: false,
                        });
                        // Everyone waiting has something unread now (and
                        // each of them is served below).
                        ready.extend(listening.iter().copied());
                    }
                    // Serve subscribers that have a backlog and a waiting
                    // receive: those in `ready`, no one else.
                    let first = ledger.next_sequence - log.len() as u64;
                    for id in std::mem::take(ready) {
                        step(1);
                        let Some(subscriber) = subscribers.get_mut(&id) else {
                            continue;
                        };
                        while subscriber.cursor < ledger.next_sequence {
                            let Some(receive) = subscriber.waiting.pop_front() else {
                                break;
                            };
                            let from = (subscriber.cursor - first) as usize;
                            let take = batch_len(
                                receive.limit(),
                                log.range(from..).map(|entry| &entry.message),
                            );
                            let mut messages = Vec::with_capacity(take);
                            for entry in log.range_mut(from..from + take) {
                                entry.unread_by -= 1;
                                if !entry.expired {
                                    messages.push(entry.message.clone());
                                }
                            }
                            subscriber.cursor += take as u64;
                            subscriber.full_since = None;
                            moved = true;
                            if messages.is_empty() {
                                // Everything it reached had expired.
                                subscriber.waiting.push_front(receive);
                                continue;
                            }
                            ledger.delivered += messages.len() as u64;
                            receive.deliver(messages, ctx.out);
                        }
                        if subscriber.waiting.is_empty() {
                            listening.remove(&id);
                        }
                    }
                    // Entries everyone has read leave the log, which makes
                    // room; that counts as a move, since the room for this
                    // round was measured before (an unsubscribe or a
                    // disconnect may leave such entries before the pump).
                    while log.front().is_some_and(|entry| entry.unread_by == 0) {
                        if let Some(entry) = log.pop_front() {
                            let len = entry.message.payload.len() as u64;
                            ledger.queued_bytes -= len;
                            release(ctx.budget, &entry.message);
                            let sequence = entry.message.metadata.sequence;
                            if let Some(watch) = ledger.take_watch(sequence) {
                                ctx.out
                                    .reply(watch.ticket, Ok(broadcast_sent(sequence, recipients)));
                            }
                            moved = true;
                        }
                    }
                }
                if !moved {
                    break;
                }
            },
        }
        if let Some(after) = self.settings.cut_slow_subscribers_after_millis {
            self.watch_backlogs(after, ctx);
        }
    }

    /// Notes whose backlog is full (a bounded broadcast mailbox that cuts
    /// slow subscribers: `capacity` unread messages, so the log is full
    /// and this subscriber is one that holds it so), since when, and asks
    /// to be woken when the first of them will have been full for
    /// `after_millis`. Runs after every pump: a subscriber's backlog fills
    /// only when a message is admitted and empties only when it takes one
    /// (or is purged), and both happen in a pump.
    fn watch_backlogs(&mut self, after_millis: u64, ctx: &mut Context<'_>) {
        let (Lines::Broadcast { subscribers, .. }, Capacity::Bounded(capacity)) =
            (&mut self.lines, self.settings.capacity)
        else {
            return;
        };
        let next = self.ledger.next_sequence;
        let now = ctx.clock.now;
        let mut newly_full = false;
        for subscriber in subscribers.values_mut() {
            if next - subscriber.cursor < u64::from(capacity) {
                subscriber.full_since = None;
            } else if subscriber.full_since.is_none() {
                subscriber.full_since = Some(now);
                newly_full = true;
            }
        }
        if newly_full {
            if let Some(at) = now.checked_add(Duration::from_millis(after_millis)) {
                self.ledger.arm(at, ctx);
            }
        }
    }

    /// The time this mailbox asked to be woken at (see `Ledger::arm`) has
    /// come: messages held past their acknowledgement deadline go back,
    /// subscribers whose backlog stayed full too long are cut off, and the
    /// next wake is asked for. A wake at another time than the one pending
    /// is stale (what it was for was settled, or an earlier mailbox of the
    /// same name asked for it) and does nothing.
    pub fn wake(&mut self, at: Instant, ctx: &mut Context<'_>) {
        if self.ledger.view().armed != Some(at) {
            return;
        }
        self.ledger.more().armed = None;
        self.return_overdue(ctx);
        self.cut_slow_subscribers(ctx);
        self.pump(ctx);
        let next_ack = self.ledger.view().ack_deadlines.first().map(|(at, _)| *at);
        let next = match (next_ack, self.next_cut()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = next {
            self.ledger.arm(at, ctx);
        }
    }

    /// Every message held past its acknowledgement deadline goes back to
    /// the head, in order, with one redelivery more (or is retired at its
    /// maximum of deliveries), as if its holder had left. The holder's late
    /// settle then fails with `NotHeld`; a sender waiting for the
    /// `acknowledged` stage keeps waiting for the redelivered copy.
    fn return_overdue(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.clock.now;
        let mut due: Vec<u64> = self
            .ledger
            .view()
            .ack_deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, sequence)| *sequence)
            .collect();
        if due.is_empty() {
            return;
        }
        due.sort_unstable();
        // Newest first onto the head, so the oldest ends up in front.
        for sequence in due.into_iter().rev() {
            if let Some(held) = self.ledger.unhold(sequence) {
                self.ledger.more().ack_timeouts += 1;
                if let Some(message) = self.ledger.comes_back(held.message, ctx) {
                    self.requeue(message, false);
                }
            }
        }
    }

    /// When the first subscriber whose backlog is full will have been so
    /// for the mailbox's limit.
    fn next_cut(&self) -> Option<Instant> {
        let after = Duration::from_millis(self.settings.cut_slow_subscribers_after_millis?);
        let Lines::Broadcast { subscribers, .. } = &self.lines else {
            return None;
        };
        subscribers
            .values()
            .filter_map(|s| s.full_since?.checked_add(after))
            .min()
    }

    /// Cuts off every subscriber whose backlog has been full for the
    /// mailbox's limit: its subscription ends, its unread backlog is
    /// released (so waiting senders proceed in the pump that follows), and
    /// it learns why, at its waiting receive or else at its next receive
    /// (through the core, `Effect::SubscriberCut`).
    fn cut_slow_subscribers(&mut self, ctx: &mut Context<'_>) {
        let Some(after) = self.settings.cut_slow_subscribers_after_millis else {
            return;
        };
        let after = Duration::from_millis(after);
        let now = ctx.clock.now;
        let error = self.slow_consumer_error();
        let name = self.ledger.name().to_owned();
        let Lines::Broadcast {
            log,
            subscribers,
            listening,
            ready,
        } = &mut self.lines
        else {
            return;
        };
        let slow: Vec<ConnectionId> = subscribers
            .iter()
            .filter(|(_, s)| {
                s.full_since
                    .and_then(|since| since.checked_add(after))
                    .is_some_and(|at| at <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        let first = self.ledger.next_sequence - log.len() as u64;
        for connection in slow {
            let Some(mut subscriber) = subscribers.remove(&connection) else {
                continue;
            };
            listening.remove(&connection);
            ready.remove(&connection);
            let unread_from = subscriber.cursor.saturating_sub(first) as usize;
            for entry in log.iter_mut().skip(unread_from) {
                entry.unread_by -= 1;
            }
            let tell = subscriber.waiting.is_empty();
            for receive in subscriber.waiting.drain() {
                ctx.out.reply(receive.ticket, Err(error.clone()));
            }
            self.ledger.more().slow_subscribers_cut += 1;
            ctx.out.effects.push(Effect::SubscriberCut {
                connection,
                mailbox: name.clone(),
                tell,
            });
        }
    }

    /// What a subscriber cut off as a slow consumer learns.
    pub fn slow_consumer_error(&self) -> BrokerError {
        BrokerError::new(
            ErrorKind::SlowConsumer,
            format!(
                "this connection's subscription to {} was cut off: its backlog stayed full (the mailbox's capacity, {} unread) for longer than {} ms, holding every sender back; its unread messages are gone, subscribe again to read on",
                self.ledger.name(),
                self.settings.capacity,
                self.settings.cut_slow_subscribers_after_millis.unwrap_or_default()
            ),
        )
    }
}

fn broadcast_sent(sequence: u64, recipients: u32) -> Response {
    Response::Sent {
        sequence,
        recipients,
    }
}

/// Admits from the front waiting sends as many messages as one batch answer
/// to `receiver` may carry (rendezvous).
fn admit_batch(
    ledger: &mut Ledger,
    senders: &mut Line<WaitingSend>,
    receiver: WaitingReceive,
    ctx: &mut Context<'_>,
) -> (Vec<Message>, u64) {
    let mut messages = Vec::new();
    let mut bytes = 0;
    let mut total = 0;
    while messages.len() < receiver.limit() {
        let next = front_payload_len(senders);
        bytes += next + MESSAGE_OVERHEAD;
        if !messages.is_empty() && bytes > MAX_BATCH_BYTES {
            break;
        }
        let Some(message) = ledger.admit(senders, None, 1, ctx) else {
            break;
        };
        total += message.payload.len() as u64;
        messages.push(message);
    }
    (messages, total)
}

#[cfg(test)]
impl Mailbox {
    /// Panics when an invariant of the module doc does not hold (tests only).
    pub fn check_invariants(&self) {
        let bytes: u64 = match &self.lines {
            Lines::RoundRobin {
                queue,
                receivers,
                unsorted,
            } => {
                if !unsorted {
                    assert!(
                        queue
                            .iter()
                            .zip(queue.iter().skip(1))
                            .all(|(a, b)| a.metadata.sequence < b.metadata.sequence),
                        "a queue not marked unsorted is in sequence order"
                    );
                }
                assert!(
                    queue.is_empty() || receivers.len() == 0,
                    "receiver waits beside a message"
                );
                if !self.senders.is_empty() {
                    match self.settings.capacity {
                        Capacity::Zero => assert!(receivers.len() == 0),
                        Capacity::Bounded(n) => assert!(queue.len() >= n as usize),
                        Capacity::Unbounded => panic!("sender waits on unbounded"),
                    }
                }
                for pair in receivers.to_vec().windows(2) {
                    if self.settings.policy == DeliveryPolicy::Priority {
                        assert!(pair[0].priority >= pair[1].priority, "priority order");
                    }
                }
                queue.iter().map(|m| m.payload.len() as u64).sum()
            }
            Lines::Inbox(inbox) => {
                inbox.check_invariants();
                inbox.messages().map(|m| m.payload.len() as u64).sum()
            }
            Lines::Hash(hash) => {
                let mut count = hash.shared.len();
                for (id, member) in &hash.members {
                    assert!(
                        member.queue.is_empty() || member.waiting.is_empty(),
                        "member waits beside its own messages"
                    );
                    for message in &member.queue {
                        if let Some(key) = message.metadata.key() {
                            assert_eq!(hash.keys.get(key), Some(id), "key bound elsewhere");
                        }
                    }
                    let bound = hash.keys.values().filter(|owner| *owner == id).count();
                    assert_eq!(bound as u64, member.keys, "member key count");
                    assert!(hash.by_load.contains(&(member.keys, *id)), "by load");
                    assert_eq!(
                        hash.waiting_turns.contains(&(member.turn, *id)),
                        !member.waiting.is_empty(),
                        "waiting turns"
                    );
                    assert!(
                        !hash.ready.contains(id),
                        "ready members left after the pump"
                    );
                    count += member.queue.len();
                }
                assert_eq!(count, hash.queued, "hash queued count");
                assert_eq!(hash.by_load.len(), hash.members.len(), "by load");
                let keyed = hash.shared.iter().filter(|m| m.metadata.key().is_some());
                assert_eq!(keyed.count(), hash.keyed_shared, "keyed shared messages");
                let waiting = hash.members.values().filter(|m| !m.waiting.is_empty());
                assert_eq!(hash.waiting_turns.len(), waiting.count(), "waiting turns");
                assert!(hash.ready.is_empty(), "ready members left after the pump");
                assert!(hash.keys.values().all(|o| hash.members.contains_key(o)));
                let shared: u64 = hash.shared.iter().map(|m| m.payload.len() as u64).sum();
                shared
                    + hash
                        .members
                        .values()
                        .flat_map(|m| m.queue.iter())
                        .map(|m| m.payload.len() as u64)
                        .sum::<u64>()
            }
            Lines::Broadcast {
                log,
                subscribers,
                listening,
                ready,
            } => {
                let waiting: BTreeSet<ConnectionId> = subscribers
                    .iter()
                    .filter(|(_, s)| !s.waiting.is_empty())
                    .map(|(id, _)| *id)
                    .collect();
                assert_eq!(&waiting, listening, "listening subscribers");
                if self.settings.capacity != Capacity::Zero {
                    assert!(ready.is_empty(), "ready subscribers left after the pump");
                }
                let first = self.ledger.next_sequence - log.len() as u64;
                for (index, entry) in log.iter().enumerate() {
                    assert_eq!(entry.message.metadata.sequence, first + index as u64);
                    let unread = subscribers
                        .values()
                        .filter(|s| s.cursor <= entry.message.metadata.sequence)
                        .count();
                    assert_eq!(entry.unread_by as usize, unread);
                }
                assert!(log.front().is_none_or(|e| e.unread_by > 0));
                if !self.senders.is_empty() {
                    match self.settings.capacity {
                        Capacity::Zero => assert!(
                            subscribers.values().any(|s| s.waiting.is_empty()),
                            "sender waits while every subscriber waits"
                        ),
                        Capacity::Bounded(n) => {
                            assert_eq!(log.len(), n as usize, "sender waits beside room")
                        }
                        Capacity::Unbounded => panic!("sender waits on unbounded"),
                    }
                }
                for subscriber in subscribers.values() {
                    assert!(subscriber.cursor >= first);
                    assert!(subscriber.cursor <= self.ledger.next_sequence);
                    if !subscriber.waiting.is_empty() {
                        assert_eq!(subscriber.cursor, self.ledger.next_sequence);
                    }
                    if let (Some(_), Capacity::Bounded(n)) = (
                        self.settings.cut_slow_subscribers_after_millis,
                        self.settings.capacity,
                    ) {
                        let full = self.ledger.next_sequence - subscriber.cursor >= u64::from(n);
                        assert_eq!(full, subscriber.full_since.is_some(), "full since");
                    }
                }
                log.iter().map(|e| e.message.payload.len() as u64).sum()
            }
        };
        assert_eq!(bytes, self.ledger.queued_bytes);
        // A pending wake comes no later than anything it must act on.
        let more = self.ledger.view();
        let earliest = more
            .ack_deadlines
            .first()
            .map(|(at, _)| *at)
            .into_iter()
            .chain(self.next_cut())
            .min();
        if let Some(earliest) = earliest {
            assert!(
                more.armed.is_some_and(|armed| armed <= earliest),
                "a deadline without a wake"
            );
        }
        let deadlines: BTreeSet<(Instant, u64)> = more
            .in_flight
            .iter()
            .filter_map(|(sequence, held)| Some((held.deadline?, *sequence)))
            .collect();
        assert!(
            deadlines == more.ack_deadlines,
            "acknowledgement deadlines out of step with the messages in flight"
        );
    }

    pub fn waiting_payload_bytes(&self) -> u64 {
        self.senders
            .iter()
            .map(|s| {
                let held = match &s.load {
                    Load::One(payload) => payload.len() as u64,
                    Load::Many(batch) => batch.rest.iter().map(|p| p.len() as u64).sum(),
                };
                assert_eq!(
                    held, s.held,
                    "a waiting send's held bytes are its payloads'"
                );
                held
            })
            .sum()
    }

    /// What this mailbox holds, by the uid it is charged to (its sender).
    pub fn charges(&self, into: &mut HashMap<u32, super::Usage>) {
        let mut charge = |uid: u32, bytes: u64, messages: u64| {
            let usage = into.entry(uid).or_default();
            usage.bytes += bytes;
            usage.messages += messages;
        };
        for message in self.queued_messages() {
            charge(message.metadata.sender_uid, message.payload.len() as u64, 1);
        }
        for held in self.ledger.view().in_flight.values() {
            let message = &held.message;
            charge(message.metadata.sender_uid, message.payload.len() as u64, 1);
        }
        for send in self.senders.iter() {
            charge(send.sender.uid, send.held, send.waiting_count());
        }
    }

    pub fn waiting_message_count(&self) -> u64 {
        self.senders.iter().map(WaitingSend::waiting_count).sum()
    }

    pub fn queued_bytes(&self) -> u64 {
        self.ledger.queued_bytes
    }

    pub fn watched_tickets(&self) -> Vec<Ticket> {
        self.ledger
            .view()
            .watches
            .values()
            .map(|w| w.ticket)
            .collect()
    }

    pub fn sender_tickets(&self) -> Vec<Ticket> {
        self.senders.iter().map(|send| send.ticket).collect()
    }

    pub fn in_flight_bytes(&self) -> (u64, u64) {
        (
            self.ledger
                .view()
                .in_flight
                .values()
                .map(|h| h.message.payload.len() as u64)
                .sum(),
            self.ledger.view().in_flight.len() as u64,
        )
    }
}
