//! An inbox's queue and receives: the oldest message of any sender or of
//! one sender, and the earliest receive something waits for, each found
//! without a pass over the queue or the receives.
//!
//! What it deliberately does not do: admit senders or answer anyone (the
//! mailbox's pump does, with what this finds).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use mailbox_proto::Message;

use super::{Load, WaitingReceive, WaitingSend, MAX_BATCH_BYTES, MESSAGE_OVERHEAD};
use crate::line::{step, Line, Ticketed};
use crate::types::{ConnectionId, Ticket};

/// A receive on an inbox with its place in arrival order (receives of any
/// sender and of one sender wait in separate lines).
#[derive(Debug, Clone, Copy)]
pub(super) struct Arrived {
    arrival: u64,
    receive: WaitingReceive,
}

impl Ticketed for Arrived {
    fn ticket(&self) -> Ticket {
        self.receive.ticket
    }
}

/// Which line of an inbox a receive waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Which {
    Any,
    From(ConnectionId),
}

/// An inbox's queue and receivers, arranged so that no operation passes
/// over all of either: the queue is ordered by a key (lower: older; a
/// message that comes back to the head gets a key below all) with each
/// sender's keys beside it, so "the oldest message of this sender" is found
/// at once; receives of any sender wait in one line and receives of one
/// sender in a line per sender, each stamped with its arrival, and `ready`
/// names the senders that have both queued messages and receives waiting
/// for them alone.
#[derive(Debug, Default)]
pub(super) struct InboxLines {
    queue: BTreeMap<i64, Message>,
    /// Keys of each sender's queued messages, oldest first.
    of_sender: HashMap<u64, VecDeque<i64>>,
    /// Key of the next message at the back (and one below the front's).
    back: i64,
    front: i64,
    any: Line<Arrived>,
    from: HashMap<ConnectionId, Line<Arrived>>,
    /// The sender each receive of one sender waits for.
    filters: HashMap<Ticket, ConnectionId>,
    ready: BTreeSet<ConnectionId>,
    next_arrival: u64,
}

impl InboxLines {
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Queues `message` at the back (or the head: it came back).
    pub(super) fn push(&mut self, message: Message, at_front: bool) {
        let sender = message.metadata.sender_connection;
        let key = if at_front {
            self.front -= 1;
            self.front
        } else {
            self.back += 1;
            self.back
        };
        let keys = self.of_sender.entry(sender).or_default();
        if at_front {
            keys.push_front(key);
        } else {
            keys.push_back(key);
        }
        self.queue.insert(key, message);
        if self.from.contains_key(&ConnectionId(sender)) {
            self.ready.insert(ConnectionId(sender));
        }
    }

    /// Takes the message under `key` out of the queue.
    pub(super) fn take(&mut self, key: i64) -> Option<Message> {
        let message = self.queue.remove(&key)?;
        let sender = message.metadata.sender_connection;
        if let Some(keys) = self.of_sender.get_mut(&sender) {
            if keys.front() == Some(&key) {
                keys.pop_front();
            } else if let Some(at) = keys.iter().position(|k| *k == key) {
                // Only `take_sequence` (an expiry) takes from the middle.
                keys.remove(at);
            }
            if keys.is_empty() {
                self.of_sender.remove(&sender);
                self.ready.remove(&ConnectionId(sender));
            }
        }
        Some(message)
    }

    pub(super) fn messages(&self) -> impl Iterator<Item = &Message> {
        self.queue.values()
    }

    pub(super) fn has_from(&self, sender: ConnectionId) -> bool {
        self.of_sender.contains_key(&sender.0)
    }

    /// Removes the queued message with `sequence` (a pass over the queue:
    /// only expiries and withdrawn watched sends come here).
    pub(super) fn take_sequence(&mut self, sequence: u64) -> Option<Message> {
        let key = self
            .queue
            .iter()
            .find(|(_, m)| m.metadata.sequence == sequence)
            .map(|(key, _)| *key)?;
        self.take(key)
    }

    pub(super) fn drain(&mut self) -> Vec<Message> {
        self.of_sender.clear();
        self.ready.clear();
        std::mem::take(&mut self.queue).into_values().collect()
    }

    pub(super) fn add_receive(&mut self, receive: WaitingReceive) {
        let arrived = Arrived {
            arrival: self.next_arrival,
            receive,
        };
        self.next_arrival += 1;
        match receive.from {
            None => self.any.push_back(arrived),
            Some(sender) => {
                self.filters.insert(receive.ticket, sender);
                self.from.entry(sender).or_default().push_back(arrived);
                if self.has_from(sender) {
                    self.ready.insert(sender);
                }
            }
        }
    }

    pub(super) fn contains_receive(&self, ticket: Ticket) -> bool {
        self.filters.contains_key(&ticket) || self.any.contains(ticket)
    }

    pub(super) fn remove_receive(&mut self, ticket: Ticket) -> Option<WaitingReceive> {
        match self.filters.remove(&ticket) {
            None => self.any.remove(ticket).map(|a| a.receive),
            Some(sender) => {
                let line = self.from.get_mut(&sender)?;
                let removed = line.remove(ticket).map(|a| a.receive);
                if line.is_empty() {
                    self.from.remove(&sender);
                    self.ready.remove(&sender);
                }
                removed
            }
        }
    }

    /// The first receive of `which`'s line, taken out of it.
    pub(super) fn pop_receive(&mut self, which: Which) -> Option<WaitingReceive> {
        match which {
            Which::Any => self.any.pop_front().map(|a| a.receive),
            Which::From(sender) => {
                let line = self.from.get_mut(&sender)?;
                let arrived = line.pop_front()?;
                self.filters.remove(&arrived.receive.ticket);
                if line.is_empty() {
                    self.from.remove(&sender);
                    self.ready.remove(&sender);
                }
                Some(arrived.receive)
            }
        }
    }

    /// Puts `receive` back at the front of its line, with its `arrival`
    /// (it was just taken from there).
    pub(super) fn restore(&mut self, arrival: u64, receive: WaitingReceive) {
        let arrived = Arrived { arrival, receive };
        match receive.from {
            None => self.any.push_front(arrived),
            Some(sender) => {
                self.filters.insert(receive.ticket, sender);
                self.from.entry(sender).or_default().push_front(arrived);
                if self.has_from(sender) {
                    self.ready.insert(sender);
                }
            }
        }
    }

    pub(super) fn receive_count(&self) -> usize {
        self.any.len() + self.filters.len()
    }

    /// Every receive, in arrival order.
    pub(super) fn drain_receives(&mut self) -> Vec<WaitingReceive> {
        let mut all: Vec<Arrived> = self.any.drain().collect();
        for (_, mut line) in self.from.drain() {
            all.extend(line.drain());
        }
        self.filters.clear();
        self.ready.clear();
        all.sort_by_key(|a| a.arrival);
        all.into_iter().map(|a| a.receive).collect()
    }

    /// Takes the receives waiting for `sender` alone out of their line.
    pub(super) fn take_receives_from(&mut self, sender: ConnectionId) -> Vec<WaitingReceive> {
        self.ready.remove(&sender);
        let Some(mut line) = self.from.remove(&sender) else {
            return Vec::new();
        };
        let taken: Vec<WaitingReceive> = line.drain().map(|a| a.receive).collect();
        for receive in &taken {
            self.filters.remove(&receive.ticket);
        }
        taken
    }

    /// The earliest receive that queued messages wait for: the first of any
    /// sender when something is queued, or the first of a ready sender.
    pub(super) fn next_from_queue(&self) -> Option<(u64, Which)> {
        let any = self
            .any
            .front()
            .filter(|_| !self.queue.is_empty())
            .map(|a| (a.arrival, Which::Any));
        let one = self
            .ready
            .iter()
            .filter_map(|sender| {
                step(1);
                let first = self.from.get(sender)?.front()?;
                Some((first.arrival, Which::From(*sender)))
            })
            .min();
        match (any, one) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The earliest receive that takes a waiting send directly (nothing is
    /// queued for it), with that send: a pass over the waiting sends, made
    /// only while some receive could take one.
    pub(super) fn next_handoff(&self, senders: &Line<WaitingSend>) -> Option<(u64, Which, Ticket)> {
        let any = self.any.front().filter(|_| self.queue.is_empty());
        if any.is_none() && self.from.is_empty() {
            return None;
        }
        let mut best: Option<(u64, Which, Ticket)> = None;
        let mut seen: BTreeSet<ConnectionId> = BTreeSet::new();
        for send in senders.iter() {
            step(1);
            if !matches!(send.load, Load::One(_)) {
                continue;
            }
            let from = send.ticket.connection;
            let mut consider = |candidate: (u64, Which, Ticket)| {
                if best.is_none_or(|b| candidate.0 < b.0) {
                    best = Some(candidate);
                }
            };
            if let Some(first) = any {
                consider((first.arrival, Which::Any, send.ticket));
            }
            if seen.insert(from) && !self.has_from(from) {
                if let Some(first) = self.from.get(&from).and_then(Line::front) {
                    consider((first.arrival, Which::From(from), send.ticket));
                }
            }
        }
        best
    }

    /// Takes what `receive` takes from the queue: the oldest messages it
    /// accepts, up to its limit and a batch answer's size.
    pub(super) fn take_for(&mut self, receive: &WaitingReceive) -> (Vec<Message>, u64) {
        let mut messages = Vec::new();
        let mut bytes = 0u64;
        while messages.len() < receive.limit() {
            let key = match receive.from {
                None => self.queue.keys().next().copied(),
                Some(sender) => self
                    .of_sender
                    .get(&sender.0)
                    .and_then(|keys| keys.front().copied()),
            };
            let Some(next) = key.and_then(|key| Some((key, self.queue.get(&key)?.payload.len())))
            else {
                break;
            };
            if !messages.is_empty()
                && (bytes as usize + next.1 + MESSAGE_OVERHEAD * (messages.len() + 1))
                    > MAX_BATCH_BYTES
            {
                break;
            }
            let Some(message) = self.take(next.0) else {
                break;
            };
            bytes += message.payload.len() as u64;
            messages.push(message);
        }
        (messages, bytes)
    }
}

#[cfg(test)]
impl InboxLines {
    /// Panics when a waiting receive accepts a queued message, or the
    /// indexes are out of step with the queue and the lines.
    pub(super) fn check_invariants(&self) {
        assert!(
            self.any.is_empty() || self.queue.is_empty(),
            "inbox receiver waits beside a message it accepts"
        );
        for (sender, line) in &self.from {
            assert!(!line.is_empty(), "empty line of one sender");
            assert!(
                !self.has_from(*sender),
                "inbox receiver waits beside a message it accepts"
            );
        }
        assert!(self.ready.is_empty(), "ready senders left after the pump");
        let filtered: usize = self.from.values().map(Line::len).sum();
        assert_eq!(filtered, self.filters.len(), "filters");
        let keyed: usize = self.of_sender.values().map(VecDeque::len).sum();
        assert_eq!(keyed, self.queue.len(), "keys of senders");
    }
}
