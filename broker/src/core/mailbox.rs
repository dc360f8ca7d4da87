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
//!   everything in the log; the log's front entry is still unread by someone.
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

/// A send that has not been admitted yet. Its payload bytes are already
/// reserved in the budget.
#[derive(Debug)]
pub(crate) struct WaitingSend {
    pub ticket: Ticket,
    pub sender: Peer,
    pub payload: Bytes,
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
    fn stamp(&mut self, send: WaitingSend, clock: &Clock) -> Message {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.accepted += 1;
        Message {
            metadata: Metadata {
                sequence,
                sender_pid: send.sender.pid,
                sender_uid: send.sender.uid,
                sender_gid: send.sender.gid,
                sender_connection: send.ticket.connection.0,
                accepted_at_unix_nanos: clock.unix_nanos,
            },
            payload: send.payload,
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
    waiting: VecDeque<Ticket>,
}

#[derive(Debug)]
enum Lines {
    RoundRobin {
        queue: VecDeque<Message>,
        receivers: VecDeque<Ticket>,
    },
    Broadcast {
        /// Messages not yet read by every subscriber; the last entry has
        /// sequence `next_sequence - 1`. One shared payload per message.
        log: VecDeque<LogEntry>,
        subscribers: BTreeMap<ConnectionId, Subscriber>,
    },
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
    /// is false and it was not admitted, it is taken back and returned.
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
        ticket: Ticket,
        may_wait: bool,
        ctx: &mut Context<'_>,
    ) -> Result<Option<Progress>, BrokerError> {
        match &mut self.lines {
            Lines::RoundRobin { receivers, .. } => receivers.push_back(ticket),
            Lines::Broadcast { subscribers, .. } => match subscribers.get_mut(&ticket.connection) {
                Some(subscriber) => subscriber.waiting.push_back(ticket),
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
        if line.back() != Some(&ticket) {
            return Ok(Some(Progress::Done));
        }
        if may_wait {
            return Ok(Some(Progress::Waiting));
        }
        line.pop_back();
        Ok(None)
    }

    /// Takes a waiting send or receive out of its line without answering it.
    /// Returns whether it was there.
    pub fn withdraw(&mut self, ticket: Ticket, ctx: &mut Context<'_>) -> bool {
        let mut found = false;
        if let Some(index) = self.senders.iter().position(|s| s.ticket == ticket) {
            if let Some(send) = self.senders.remove(index) {
                ctx.budget.release(send.payload.len() as u64);
                found = true;
            }
        } else {
            let line = match &mut self.lines {
                Lines::RoundRobin { receivers, .. } => Some(receivers),
                Lines::Broadcast { subscribers, .. } => subscribers
                    .get_mut(&ticket.connection)
                    .map(|subscriber| &mut subscriber.waiting),
            };
            if let Some(line) = line {
                if let Some(index) = line.iter().position(|t| *t == ticket) {
                    line.remove(index);
                    found = true;
                }
            }
        }
        // A withdrawn sender at the head may have been what held others back.
        self.pump(ctx);
        found
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
            for ticket in subscriber.waiting {
                ctx.out.reply(
                    ticket,
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
    pub fn delete(self, ctx: &mut Context<'_>) -> u64 {
        for send in self.senders {
            ctx.budget.release(send.payload.len() as u64);
            ctx.out.reply(send.ticket, Err(deleted(&self.name)));
        }
        ctx.budget.release(self.ledger.queued_bytes);
        match self.lines {
            Lines::RoundRobin { queue, receivers } => {
                for ticket in receivers {
                    ctx.out.reply(ticket, Err(deleted(&self.name)));
                }
                queue.len() as u64
            }
            Lines::Broadcast { log, subscribers } => {
                for ticket in subscribers.into_values().flat_map(|s| s.waiting) {
                    ctx.out.reply(ticket, Err(deleted(&self.name)));
                }
                log.len() as u64
            }
        }
    }

    /// Answers every waiting operation with `error` and forgets them.
    pub fn fail_all_waiters(&mut self, error: &BrokerError, ctx: &mut Context<'_>) {
        for send in self.senders.drain(..) {
            ctx.budget.release(send.payload.len() as u64);
            ctx.out.reply(send.ticket, Err(error.clone()));
        }
        let waiting: Vec<Ticket> = match &mut self.lines {
            Lines::RoundRobin { receivers, .. } => receivers.drain(..).collect(),
            Lines::Broadcast { subscribers, .. } => subscribers
                .values_mut()
                .flat_map(|s| s.waiting.drain(..))
                .collect(),
        };
        for ticket in waiting {
            ctx.out.reply(ticket, Err(error.clone()));
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

    /// Moves messages as far as the rules allow: buffered messages to waiting
    /// receivers, then waiting senders into the buffer (or straight to
    /// receivers), until nothing moves.
    fn pump(&mut self, ctx: &mut Context<'_>) {
        let capacity = self.settings.capacity;
        let ledger = &mut self.ledger;
        let senders = &mut self.senders;
        match &mut self.lines {
            Lines::RoundRobin { queue, receivers } => loop {
                while !queue.is_empty() && !receivers.is_empty() {
                    let (Some(message), Some(ticket)) = (queue.pop_front(), receivers.pop_front())
                    else {
                        break;
                    };
                    let len = message.payload.len() as u64;
                    ledger.queued_bytes -= len;
                    ctx.budget.release(len);
                    ledger.delivered += 1;
                    ctx.out.reply(ticket, Ok(Response::Received(message)));
                }
                let has_room = match capacity {
                    Capacity::Zero => false,
                    Capacity::Bounded(n) => queue.len() < n as usize,
                    Capacity::Unbounded => true,
                };
                if has_room {
                    let Some(send) = senders.pop_front() else {
                        break;
                    };
                    let sender = send.ticket;
                    let message = ledger.stamp(send, ctx.clock);
                    ledger.queued_bytes += message.payload.len() as u64;
                    ctx.out.reply(
                        sender,
                        Ok(Response::Sent {
                            sequence: message.metadata.sequence,
                            recipients: 1,
                        }),
                    );
                    queue.push_back(message);
                } else if capacity == Capacity::Zero && !senders.is_empty() && !receivers.is_empty()
                {
                    // Rendezvous: the message goes straight from the waiting
                    // sender to the waiting receiver, and both complete now.
                    let (Some(send), Some(receiver)) = (senders.pop_front(), receivers.pop_front())
                    else {
                        break;
                    };
                    let sender = send.ticket;
                    let message = ledger.stamp(send, ctx.clock);
                    ctx.budget.release(message.payload.len() as u64);
                    ledger.delivered += 1;
                    ctx.out.reply(
                        sender,
                        Ok(Response::Sent {
                            sequence: message.metadata.sequence,
                            recipients: 1,
                        }),
                    );
                    ctx.out.reply(receiver, Ok(Response::Received(message)));
                } else {
                    break;
                }
            },
            Lines::Broadcast { log, subscribers } => loop {
                // Serve subscribers that have a backlog and a waiting receive.
                let first = ledger.next_sequence - log.len() as u64;
                for subscriber in subscribers.values_mut() {
                    while subscriber.cursor < ledger.next_sequence {
                        let Some(ticket) = subscriber.waiting.pop_front() else {
                            break;
                        };
                        let index = (subscriber.cursor - first) as usize;
                        let Some(entry) = log.get_mut(index) else {
                            break;
                        };
                        entry.unread_by -= 1;
                        subscriber.cursor += 1;
                        ledger.delivered += 1;
                        ctx.out
                            .reply(ticket, Ok(Response::Received(entry.message.clone())));
                    }
                }
                while log.front().is_some_and(|entry| entry.unread_by == 0) {
                    if let Some(entry) = log.pop_front() {
                        let len = entry.message.payload.len() as u64;
                        ledger.queued_bytes -= len;
                        ctx.budget.release(len);
                    }
                }
                let can_admit = !senders.is_empty()
                    && match capacity {
                        // Rendezvous with everyone: all current subscribers
                        // must be waiting, so all take it at once.
                        Capacity::Zero => subscribers.values().all(|s| !s.waiting.is_empty()),
                        Capacity::Bounded(n) => log.len() < n as usize,
                        Capacity::Unbounded => true,
                    };
                if !can_admit {
                    break;
                }
                let Some(send) = senders.pop_front() else {
                    break;
                };
                let sender = send.ticket;
                let message = ledger.stamp(send, ctx.clock);
                let mut unread_by = 0u32;
                for subscriber in subscribers.values_mut() {
                    // A subscriber with a waiting receive has read everything
                    // (the serving loop above ran first), so it takes this
                    // message now; the others will read it from the log.
                    if let Some(ticket) = subscriber.waiting.pop_front() {
                        subscriber.cursor += 1;
                        ledger.delivered += 1;
                        ctx.out
                            .reply(ticket, Ok(Response::Received(message.clone())));
                    } else {
                        unread_by += 1;
                    }
                }
                ctx.out.reply(
                    sender,
                    Ok(Response::Sent {
                        sequence: message.metadata.sequence,
                        recipients: subscribers.len() as u32,
                    }),
                );
                let len = message.payload.len() as u64;
                if unread_by > 0 {
                    ledger.queued_bytes += len;
                    log.push_back(LogEntry { message, unread_by });
                } else {
                    ctx.budget.release(len);
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
        self.senders.iter().map(|s| s.payload.len() as u64).sum()
    }

    #[cfg(test)]
    pub fn queued_bytes(&self) -> u64 {
        self.ledger.queued_bytes
    }
}
