//! Inbox: a connection's own mailbox. One queue; a receive may ask for one
//! sender only, and then takes that sender's oldest message, even straight
//! from a waiting send (the queue may be full of others' messages).
//!
//! Its queue and receives are arranged so that the oldest message of any
//! sender or of one sender, and the earliest receive something waits for,
//! are each found without a pass over the queue or the receives.
//!
//! Invariant: no receive waits beside a queued message it accepts.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use mailbox_proto::{BrokerError, MailboxSettings, Message};

use super::batch::{after_in_order, page, BatchSize};
use super::ledger::Ledger;
use super::policy::{room, DeliveryRules};
use super::waiters::{Context, Load, WaitingReceive, WaitingSend};
use crate::line::{step, Line, Ticketed};
use crate::types::{ConnectionId, Ticket};

/// A receive on an inbox with its place in arrival order (receives of any
/// sender and of one sender wait in separate lines).
#[derive(Debug, Clone, Copy)]
struct Arrived {
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
enum Which {
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
    fn len(&self) -> usize {
        self.queue.len()
    }

    /// Queues `message` at the back (or the head: it came back).
    fn push(&mut self, message: Message, at_front: bool) {
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
    fn take(&mut self, key: i64) -> Option<Message> {
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

    fn messages(&self) -> impl Iterator<Item = &Message> + Clone {
        self.queue.values()
    }

    pub(super) fn has_from(&self, sender: ConnectionId) -> bool {
        self.of_sender.contains_key(&sender.0)
    }

    /// Removes the queued message with `sequence` (a pass over the queue:
    /// only expiries and withdrawn watched sends come here).
    fn take_sequence(&mut self, sequence: u64) -> Option<Message> {
        let key = self
            .queue
            .iter()
            .find(|(_, m)| m.metadata.sequence == sequence)
            .map(|(key, _)| *key)?;
        self.take(key)
    }

    fn drain(&mut self) -> Vec<Message> {
        self.of_sender.clear();
        self.ready.clear();
        std::mem::take(&mut self.queue).into_values().collect()
    }

    fn add_waiting(&mut self, receive: WaitingReceive) {
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.line_up(Arrived { arrival, receive }, false);
    }

    /// Puts `arrived` in its line (the one for any sender, or the one for
    /// its sender), at the back or, with `front`, at the front.
    #[inline]
    fn line_up(&mut self, arrived: Arrived, front: bool) {
        let receive = arrived.receive;
        match receive.from {
            None if front => self.any.push_front(arrived),
            None => self.any.push_back(arrived),
            Some(sender) => {
                self.filters.insert(receive.ticket, sender);
                let line = self.from.entry(sender).or_default();
                if front {
                    line.push_front(arrived);
                } else {
                    line.push_back(arrived);
                }
                if self.has_from(sender) {
                    self.ready.insert(sender);
                }
            }
        }
    }

    fn contains_receive(&self, ticket: Ticket) -> bool {
        self.filters.contains_key(&ticket) || self.any.contains(ticket)
    }

    fn take_receive(&mut self, ticket: Ticket) -> Option<WaitingReceive> {
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
    fn pop_receive(&mut self, which: Which) -> Option<WaitingReceive> {
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
    fn restore(&mut self, arrival: u64, receive: WaitingReceive) {
        self.line_up(Arrived { arrival, receive }, true);
    }

    fn receive_count(&self) -> usize {
        self.any.len() + self.filters.len()
    }

    /// Every receive, in arrival order.
    fn drain_waiting(&mut self) -> Vec<WaitingReceive> {
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
    fn next_from_queue(&self) -> Option<(u64, Which)> {
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
    fn next_handoff(&self, senders: &Line<WaitingSend>) -> Option<(u64, Which, Ticket)> {
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
    fn take_for(&mut self, receive: &WaitingReceive) -> (Vec<Message>, u64) {
        let mut messages = Vec::new();
        let mut bytes = 0u64;
        let mut size = BatchSize::new(receive);
        loop {
            let key = match receive.from {
                None => self.queue.keys().next().copied(),
                Some(sender) => self
                    .of_sender
                    .get(&sender.0)
                    .and_then(|keys| keys.front().copied()),
            };
            let Some((key, len)) =
                key.and_then(|key| Some((key, self.queue.get(&key)?.payload.len())))
            else {
                break;
            };
            if !size.fits(len) {
                break;
            }
            let Some(message) = self.take(key) else {
                break;
            };
            bytes += message.payload.len() as u64;
            messages.push(message);
        }
        (messages, bytes)
    }
}

impl DeliveryRules for InboxLines {
    fn add_receive(&mut self, receive: WaitingReceive, _: &Ledger) -> Result<(), BrokerError> {
        self.add_waiting(receive);
        Ok(())
    }

    fn has_receive(&self, ticket: Ticket) -> bool {
        self.contains_receive(ticket)
    }

    fn remove_receive(&mut self, ticket: Ticket) -> bool {
        self.take_receive(ticket).is_some()
    }

    fn pump(
        &mut self,
        settings: &MailboxSettings,
        ledger: &mut Ledger,
        senders: &mut Line<WaitingSend>,
        ctx: &mut Context<'_>,
    ) {
        loop {
            let space = room(settings.capacity, self.len());
            let mut moved = ledger.admit_queued(senders, space, ctx, |m| self.push(m, false));
            // Serve the earliest receive that something waits for, until
            // none does: from the queue, or straight from a waiting send it
            // accepts (the queue may be full of others' messages).
            loop {
                let queued = self.next_from_queue();
                let handoff = if senders.is_empty() {
                    None
                } else {
                    self.next_handoff(senders)
                };
                // Both finds name a receive at the front of its line and
                // what it takes, so neither branch below can come away
                // empty-handed; if one did, the receive goes back to its
                // place (it must still be answered) and the message to the
                // head of the queue (it must not vanish).
                let (receiver, messages, bytes) = match (queued, handoff) {
                    (Some((at, which)), handoff)
                        if handoff.is_none_or(|(later, ..)| at < later) =>
                    {
                        let Some(receiver) = self.pop_receive(which) else {
                            break;
                        };
                        let (messages, bytes) = self.take_for(&receiver);
                        if messages.is_empty() {
                            self.restore(at, receiver);
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
                        let Some(receiver) = self.pop_receive(which) else {
                            self.push(message, true);
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
        }
    }

    fn take_queued(&mut self, sequence: u64) -> Option<Message> {
        self.take_sequence(sequence)
    }

    fn put_back(&mut self, message: Message, to_tail: bool) -> bool {
        self.push(message, !to_tail);
        true
    }

    fn queued_messages(&self) -> Box<dyn Iterator<Item = &Message> + '_> {
        Box::new(self.messages())
    }

    fn queued_count(&self) -> usize {
        self.len()
    }

    /// The inbox in the order a receive of any sender takes it; `after` is
    /// found by a pass (an inbox holds at most its capacity, 1024 unless
    /// its owner sets more).
    fn peek(
        &self,
        _viewer: ConnectionId,
        after: Option<u64>,
        limit: usize,
        _ledger: &Ledger,
    ) -> (Vec<Message>, bool) {
        page(after_in_order(self.messages(), after), limit)
    }

    fn waiting_receivers(&self) -> usize {
        self.receive_count()
    }

    fn drain_receives(&mut self) -> Vec<WaitingReceive> {
        self.drain_waiting()
    }

    fn drain_queued(&mut self, _next_sequence: u64) -> Vec<Message> {
        self.drain()
    }

    #[cfg(test)]
    fn check_invariants(&self, _: &MailboxSettings, _: &Ledger, _: &Line<WaitingSend>) -> u64 {
        self.check_lines();
        self.messages().map(|m| m.payload.len() as u64).sum()
    }
}

#[cfg(test)]
impl InboxLines {
    /// Panics when a waiting receive accepts a queued message, or the
    /// indexes are out of step with the queue and the lines.
    fn check_lines(&self) {
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
