//! One mailbox: its buffer, its waiting senders and receivers, and the rules
//! of its delivery policy.
//!
//! Every operation follows the same shape: put the new sender or receiver at
//! the back of its waiting line, then [`Mailbox::pump`] moves messages as far
//! as the rules allow. Because only the pump moves messages, and it always
//! serves the fronts of the lines, FIFO order and first-come-first-served
//! fairness hold by construction; a non-blocking operation that the pump did
//! not complete is simply taken back off the back of its line.
//!
//! Invariants (checked by `check_invariants` in tests):
//! - round-robin: receivers wait only while the queue is empty; senders wait
//!   only while the queue is full (on `zero`: while no receiver waits).
//! - broadcast: a subscriber has waiting receives only when it has read
//!   everything in the log; the log's front entry is still unread by someone;
//!   senders wait only while the log is full (on `zero`: while some
//!   subscriber has no waiting receive).
//! - sequence numbers are assigned at admission, so they increase by one along
//!   the queue and along every subscriber's stream.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use mailbox_proto::{
    BrokerError, Capacity, DeliveryPolicy, ErrorKind, MailboxInfo, MailboxSettings, Message,
    Metadata, Response,
};

use super::budget::Budget;
use super::types::{Clock, ConnectionId, Outcome, Peer, Ticket};

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

/// A send that has not been (completely) admitted yet. The bytes of its
/// waiting payloads are reserved in the budget.
#[derive(Debug)]
pub(crate) struct WaitingSend {
    pub ticket: Ticket,
    pub sender: Peer,
    pub load: Load,
    /// Payload bytes not admitted yet (what withdrawing it releases).
    pub held: u64,
}

impl WaitingSend {
    /// How many of its payloads still wait for admission.
    pub fn waiting_count(&self) -> u64 {
        match &self.load {
            Load::One(_) => 1,
            Load::Many(batch) => batch.rest.len() as u64,
        }
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
}

impl WaitingReceive {
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
    Send(WaitingSend),
    Receive,
}

/// Whether an operation finished inside the call or now waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// It was answered (its reply is in the outcome).
    Done,
    /// It waits in the mailbox's line.
    Waiting,
}

/// Counters and the sequence, apart from the lines so both can be borrowed.
#[derive(Debug)]
struct Ledger {
    next_sequence: u64,
    accepted: u64,
    delivered: u64,
    queued_bytes: u64,
}

impl Ledger {
    /// Admits the front payload of the front waiting send, answering that
    /// send when it is now fully admitted. Returns the stamped message.
    fn admit_front(
        &mut self,
        senders: &mut VecDeque<WaitingSend>,
        recipients: u32,
        ctx: &mut Context<'_>,
    ) -> Option<Message> {
        let front = senders.front_mut()?;
        let sequence = self.next_sequence;
        let payload = match &mut front.load {
            Load::One(_) => {
                let send = senders.pop_front()?;
                let Load::One(payload) = send.load else {
                    return None;
                };
                ctx.out.reply(
                    send.ticket,
                    Ok(Response::Sent {
                        sequence,
                        recipients,
                    }),
                );
                return Some(self.stamp(send.ticket, send.sender, payload, ctx.clock));
            }
            Load::Many(batch) => {
                let payload = batch.rest.pop_front()?;
                if batch.admitted == 0 {
                    batch.first_sequence = sequence;
                }
                batch.admitted += 1;
                batch.recipients = recipients;
                front.held -= payload.len() as u64;
                payload
            }
        };
        let (ticket, sender) = (front.ticket, front.sender);
        if let Load::Many(batch) = &front.load {
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
                senders.pop_front();
            }
        }
        Some(self.stamp(ticket, sender, payload, ctx.clock))
    }

    fn stamp(&mut self, ticket: Ticket, sender: Peer, payload: Bytes, clock: &Clock) -> Message {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.accepted += 1;
        Message {
            metadata: Metadata {
                sequence,
                sender_pid: sender.pid,
                sender_uid: sender.uid,
                sender_gid: sender.gid,
                sender_connection: ticket.connection.0,
                accepted_at_unix_nanos: clock.unix_nanos,
            },
            payload,
        }
    }
}

#[derive(Debug)]
struct LogEntry {
    message: Message,
    /// Subscribers that have not read it yet.
    unread_by: u32,
}

#[derive(Debug, Default)]
struct Subscriber {
    /// Sequence number of the next message it will read.
    cursor: u64,
    waiting: VecDeque<WaitingReceive>,
}

#[derive(Debug)]
enum Lines {
    RoundRobin {
        queue: VecDeque<Message>,
        receivers: VecDeque<WaitingReceive>,
    },
    Broadcast {
        /// Messages not yet read by every subscriber; the last entry has
        /// sequence `next_sequence - 1`. One shared payload per message.
        log: VecDeque<LogEntry>,
        subscribers: BTreeMap<ConnectionId, Subscriber>,
    },
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

/// The size of the next payload the front waiting send would admit.
fn front_payload_len(senders: &VecDeque<WaitingSend>) -> usize {
    match senders.front().map(|send| &send.load) {
        Some(Load::One(payload)) => payload.len(),
        Some(Load::Many(batch)) => batch.rest.front().map_or(0, Bytes::len),
        None => 0,
    }
}

/// A named mailbox.
#[derive(Debug)]
pub(crate) struct Mailbox {
    name: String,
    settings: MailboxSettings,
    ledger: Ledger,
    senders: VecDeque<WaitingSend>,
    lines: Lines,
}

fn deleted(name: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::MailboxDeleted,
        format!("mailbox {name} was deleted while this operation waited"),
    )
}

impl Mailbox {
    pub fn new(name: String, settings: MailboxSettings) -> Self {
        let lines = match settings.policy {
            DeliveryPolicy::RoundRobin => Lines::RoundRobin {
                queue: VecDeque::new(),
                receivers: VecDeque::new(),
            },
            DeliveryPolicy::Broadcast => Lines::Broadcast {
                log: VecDeque::new(),
                subscribers: BTreeMap::new(),
            },
        };
        Self {
            name,
            settings,
            ledger: Ledger {
                next_sequence: 1,
                accepted: 0,
                delivered: 0,
                queued_bytes: 0,
            },
            senders: VecDeque::new(),
            lines,
        }
    }

    pub fn settings(&self) -> &MailboxSettings {
        &self.settings
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
                    "message of {len} bytes is above mailbox {}'s limit of {} bytes",
                    self.name, self.settings.max_message_size
                ),
            ));
        }
        if let Some(fixed) = self.settings.fixed_size {
            if len != fixed as usize {
                return Err(BrokerError::new(
                    ErrorKind::WrongMessageSize,
                    format!(
                        "message of {len} bytes, but mailbox {} takes exactly {fixed} bytes",
                        self.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Adds a send at the back of the senders' line and pumps. When `may_wait`
    /// is false and it was not (completely) admitted, it is taken back and
    /// returned; the caller answers it and releases what it still holds.
    pub fn send(
        &mut self,
        send: WaitingSend,
        may_wait: bool,
        ctx: &mut Context<'_>,
    ) -> Result<Progress, WaitingSend> {
        let ticket = send.ticket;
        self.senders.push_back(send);
        self.pump(ctx);
        if self.senders.back().map(|s| s.ticket) != Some(ticket) {
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
    /// subscriber's line) and pumps. When `may_wait` is false and it was not
    /// served, it is taken back and `Ok(None)` is returned.
    pub fn receive(
        &mut self,
        receive: WaitingReceive,
        may_wait: bool,
        ctx: &mut Context<'_>,
    ) -> Result<Option<Progress>, BrokerError> {
        let ticket = receive.ticket;
        match &mut self.lines {
            Lines::RoundRobin { receivers, .. } => receivers.push_back(receive),
            Lines::Broadcast { subscribers, .. } => match subscribers.get_mut(&ticket.connection) {
                Some(subscriber) => subscriber.waiting.push_back(receive),
                None => {
                    return Err(BrokerError::new(
                        ErrorKind::NotSubscribed,
                        format!(
                            "mailbox {} is a broadcast mailbox; subscribe to it before receiving",
                            self.name
                        ),
                    ))
                }
            },
        }
        self.pump(ctx);
        let line = match &mut self.lines {
            Lines::RoundRobin { receivers, .. } => receivers,
            Lines::Broadcast { subscribers, .. } => match subscribers.get_mut(&ticket.connection) {
                Some(subscriber) => &mut subscriber.waiting,
                None => return Ok(Some(Progress::Done)),
            },
        };
        if line.back().map(|r| r.ticket) != Some(ticket) {
            return Ok(Some(Progress::Done));
        }
        if may_wait {
            return Ok(Some(Progress::Waiting));
        }
        line.pop_back();
        Ok(None)
    }

    /// Takes a waiting send or receive out of its line without answering it;
    /// a send's unadmitted payloads are released from the budget.
    pub fn withdraw(&mut self, ticket: Ticket, ctx: &mut Context<'_>) -> Option<Withdrawn> {
        let withdrawn = if let Some(index) = self.senders.iter().position(|s| s.ticket == ticket) {
            self.senders.remove(index).map(|send| {
                ctx.budget.release(send.held, send.waiting_count());
                Withdrawn::Send(send)
            })
        } else {
            let line = match &mut self.lines {
                Lines::RoundRobin { receivers, .. } => Some(receivers),
                Lines::Broadcast { subscribers, .. } => subscribers
                    .get_mut(&ticket.connection)
                    .map(|subscriber| &mut subscriber.waiting),
            };
            line.and_then(|line| {
                let index = line.iter().position(|r| r.ticket == ticket)?;
                line.remove(index).map(|_| Withdrawn::Receive)
            })
        };
        // A withdrawn sender at the head may have been what held others back.
        self.pump(ctx);
        withdrawn
    }

    /// Subscribes `connection` from the next message on. Returns false when it
    /// was subscribed already.
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
                        waiting: VecDeque::new(),
                    },
                );
                Ok(true)
            }
            Lines::RoundRobin { .. } => Err(BrokerError::new(
                ErrorKind::NotBroadcast,
                format!(
                    "mailbox {} is round-robin; receive from it without subscribing",
                    self.name
                ),
            )),
        }
    }

    /// Ends the subscription of `connection`, releasing its unread backlog.
    /// Its waiting receives are answered with `NotSubscribed` when
    /// `answer_waiters` (an explicit unsubscribe), or dropped silently (the
    /// connection is gone).
    pub fn unsubscribe(
        &mut self,
        connection: ConnectionId,
        answer_waiters: bool,
        ctx: &mut Context<'_>,
    ) -> Result<(), BrokerError> {
        let Lines::Broadcast { log, subscribers } = &mut self.lines else {
            return Err(BrokerError::new(
                ErrorKind::NotBroadcast,
                format!(
                    "mailbox {} is round-robin; it has no subscribers",
                    self.name
                ),
            ));
        };
        let Some(subscriber) = subscribers.remove(&connection) else {
            return Err(BrokerError::new(
                ErrorKind::NotSubscribed,
                format!("this connection is not subscribed to {}", self.name),
            ));
        };
        let first = self.ledger.next_sequence - log.len() as u64;
        let unread_from = subscriber.cursor.saturating_sub(first) as usize;
        for entry in log.iter_mut().skip(unread_from) {
            entry.unread_by -= 1;
        }
        if answer_waiters {
            for receive in subscriber.waiting {
                ctx.out.reply(
                    receive.ticket,
                    Err(BrokerError::new(
                        ErrorKind::NotSubscribed,
                        format!("the subscription to {} ended while waiting", self.name),
                    )),
                );
            }
        }
        self.pump(ctx);
        Ok(())
    }

    /// Answers every waiting operation with `MailboxDeleted` and releases
    /// everything the mailbox held. Returns how many buffered messages were
    /// discarded.
    pub fn delete(mut self, ctx: &mut Context<'_>) -> u64 {
        self.fail_all_waiters(&deleted(&self.name), ctx);
        let discarded = match &self.lines {
            Lines::RoundRobin { queue, .. } => queue.len() as u64,
            Lines::Broadcast { log, .. } => log.len() as u64,
        };
        ctx.budget.release(self.ledger.queued_bytes, discarded);
        match self.lines {
            Lines::RoundRobin { queue, .. } => queue.len() as u64,
            Lines::Broadcast { log, .. } => log.len() as u64,
        }
    }

    /// Answers every waiting operation with `error` and forgets them.
    pub fn fail_all_waiters(&mut self, error: &BrokerError, ctx: &mut Context<'_>) {
        let next_sequence = self.ledger.next_sequence;
        for send in self.senders.drain(..) {
            ctx.budget.release(send.held, send.waiting_count());
            ctx.out
                .reply(send.ticket, send.failed(error.clone(), next_sequence));
        }
        let waiting: Vec<WaitingReceive> = match &mut self.lines {
            Lines::RoundRobin { receivers, .. } => receivers.drain(..).collect(),
            Lines::Broadcast { subscribers, .. } => subscribers
                .values_mut()
                .flat_map(|s| s.waiting.drain(..))
                .collect(),
        };
        for receive in waiting {
            ctx.out.reply(receive.ticket, Err(error.clone()));
        }
    }

    /// A snapshot for `info` and `list`.
    pub fn info(&self) -> MailboxInfo {
        let (queued_messages, waiting_receivers, subscribers) = match &self.lines {
            Lines::RoundRobin { queue, receivers } => (queue.len(), receivers.len(), 0),
            Lines::Broadcast { log, subscribers } => (
                log.len(),
                subscribers.values().map(|s| s.waiting.len()).sum(),
                subscribers.len(),
            ),
        };
        MailboxInfo {
            name: self.name.clone(),
            settings: self.settings,
            queued_messages: queued_messages as u64,
            queued_bytes: self.ledger.queued_bytes,
            waiting_senders: self.senders.len() as u32,
            waiting_receivers: waiting_receivers as u32,
            subscribers: subscribers as u32,
            messages_accepted: self.ledger.accepted,
            messages_delivered: self.ledger.delivered,
        }
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
            Lines::RoundRobin { queue, receivers } => loop {
                let mut moved = false;
                let room = match capacity {
                    Capacity::Zero => 0,
                    Capacity::Bounded(n) => (n as usize).saturating_sub(queue.len()),
                    Capacity::Unbounded => usize::MAX,
                };
                for _ in 0..room {
                    let Some(message) = ledger.admit_front(senders, 1, ctx) else {
                        break;
                    };
                    ledger.queued_bytes += message.payload.len() as u64;
                    queue.push_back(message);
                    moved = true;
                }
                while !queue.is_empty() {
                    let Some(receiver) = receivers.pop_front() else {
                        break;
                    };
                    let take = batch_len(receiver.limit(), queue.iter());
                    let messages: Vec<Message> = queue.drain(..take).collect();
                    let bytes: u64 = messages.iter().map(|m| m.payload.len() as u64).sum();
                    ledger.queued_bytes -= bytes;
                    ctx.budget.release(bytes, take as u64);
                    ledger.delivered += take as u64;
                    receiver.deliver(messages, ctx.out);
                    moved = true;
                }
                if capacity == Capacity::Zero {
                    // Rendezvous: messages go straight from waiting senders to
                    // the waiting receiver, and both complete now.
                    while !senders.is_empty() {
                        let Some(receiver) = receivers.pop_front() else {
                            break;
                        };
                        let mut messages = Vec::new();
                        let mut bytes = 0;
                        while messages.len() < receiver.limit() {
                            let next = front_payload_len(senders);
                            bytes += next + MESSAGE_OVERHEAD;
                            if !messages.is_empty() && bytes > MAX_BATCH_BYTES {
                                break;
                            }
                            let Some(message) = ledger.admit_front(senders, 1, ctx) else {
                                break;
                            };
                            ctx.budget.release(message.payload.len() as u64, 1);
                            messages.push(message);
                        }
                        ledger.delivered += messages.len() as u64;
                        receiver.deliver(messages, ctx.out);
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            },
            Lines::Broadcast { log, subscribers } => loop {
                let mut moved = false;
                if capacity == Capacity::Zero {
                    // Rendezvous with everyone: all current subscribers must
                    // be waiting, so all take the message at once.
                    if !senders.is_empty() && subscribers.values().all(|s| !s.waiting.is_empty()) {
                        let recipients = subscribers.len() as u32;
                        if let Some(message) = ledger.admit_front(senders, recipients, ctx) {
                            ctx.budget.release(message.payload.len() as u64, 1);
                            for subscriber in subscribers.values_mut() {
                                if let Some(receive) = subscriber.waiting.pop_front() {
                                    subscriber.cursor += 1;
                                    ledger.delivered += 1;
                                    receive.deliver(vec![message.clone()], ctx.out);
                                }
                            }
                            moved = true;
                        }
                    }
                } else {
                    let room = match capacity {
                        Capacity::Bounded(n) => (n as usize).saturating_sub(log.len()),
                        _ => usize::MAX,
                    };
                    let recipients = subscribers.len() as u32;
                    for _ in 0..room {
                        let Some(message) = ledger.admit_front(senders, recipients, ctx) else {
                            break;
                        };
                        moved = true;
                        let len = message.payload.len() as u64;
                        if recipients == 0 {
                            // Reaches nobody: nothing to keep.
                            ctx.budget.release(len, 1);
                            continue;
                        }
                        ledger.queued_bytes += len;
                        log.push_back(LogEntry {
                            message,
                            unread_by: recipients,
                        });
                    }
                    // Serve subscribers that have a backlog and a waiting receive.
                    let first = ledger.next_sequence - log.len() as u64;
                    for subscriber in subscribers.values_mut() {
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
                                messages.push(entry.message.clone());
                            }
                            subscriber.cursor += take as u64;
                            ledger.delivered += take as u64;
                            receive.deliver(messages, ctx.out);
                            moved = true;
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
                            ctx.budget.release(len, 1);
                            moved = true;
                        }
                    }
                }
                if !moved {
                    break;
                }
            },
        }
    }

    /// Panics when an invariant of the module doc does not hold (tests only).
    #[cfg(test)]
    pub fn check_invariants(&self) {
        let bytes: u64 = match &self.lines {
            Lines::RoundRobin { queue, receivers } => {
                assert!(
                    queue.is_empty() || receivers.is_empty(),
                    "receiver waits beside a message"
                );
                if !self.senders.is_empty() {
                    match self.settings.capacity {
                        Capacity::Zero => assert!(receivers.is_empty()),
                        Capacity::Bounded(n) => assert_eq!(queue.len(), n as usize),
                        Capacity::Unbounded => panic!("sender waits on unbounded"),
                    }
                }
                let first = self.ledger.next_sequence - queue.len() as u64;
                for (expected, message) in (first..).zip(queue) {
                    assert_eq!(message.metadata.sequence, expected);
                }
                queue.iter().map(|m| m.payload.len() as u64).sum()
            }
            Lines::Broadcast { log, subscribers } => {
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
                }
                log.iter().map(|e| e.message.payload.len() as u64).sum()
            }
        };
        assert_eq!(bytes, self.ledger.queued_bytes);
    }

    #[cfg(test)]
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

    #[cfg(test)]
    pub fn waiting_message_count(&self) -> u64 {
        self.senders.iter().map(WaitingSend::waiting_count).sum()
    }

    #[cfg(test)]
    pub fn queued_bytes(&self) -> u64 {
        self.ledger.queued_bytes
    }
}
