//! Inbox: a connection's own mailbox. One queue; a receive may ask for one
//! sender only (a connection, or a well-known name: whoever held it when
//! the inbox accepted the message), and then takes that sender's oldest
//! message, even straight from a waiting send (the queue may be full of
//! others' messages).
//!
//! Its queue and receives are arranged so that the oldest message of any
//! sender or of one sender, and the earliest receive something waits for,
//! are each found without a pass over the queue or the receives.
//!
//! Invariant: no receive waits beside a queued message it accepts.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use mailbox_proto::{BrokerError, MailboxSettings, Message};

use super::batch::{after_in_order, page, BatchSize};
use super::ledger::Ledger;
use super::policy::{room, Charge, DeliveryRules};
use super::waiters::{Context, Load, Sender, WaitingReceive, WaitingSend};
use crate::line::{step, Line, Ticketed};
use crate::names::{HeldNames, NameRegistry};
use crate::types::{ConnectionId, Ticket};

/// A receive on an inbox with its place in arrival order (receives of any
/// sender and of one sender wait in separate lines).
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Which {
    Any,
    From(Sender),
}

/// An inbox's queue and receivers, arranged so that no operation passes
/// over all of either: the queue is ordered by a key (lower: older; a
/// message that comes back to the head gets a key below all) with each
/// sender's keys beside it, and the keys of each name its sender held when
/// the inbox accepted it, so "the oldest message of this sender" (or "of
/// this name") is found at once; receives of any sender wait in one line
/// and receives of one sender (a connection or a name) in a line per
/// sender, each stamped with its arrival, and `ready` names the senders
/// that have both queued messages and receives waiting for them alone.
///
/// A name is resolved per message: a message is stamped with the names its
/// sender held when the inbox accepted it (one shared pointer, the
/// registry's [`HeldNames`]) and stays receivable from those names after
/// its sender lets them go. The index costs one entry per queued message
/// and name of its sender, at most
/// [`crate::MAX_NAMES_PER_CONNECTION`] per message.
#[derive(Debug, Default)]
pub(super) struct InboxLines {
    queue: BTreeMap<i64, Message>,
    /// Keys of each sender's queued messages, oldest first.
    of_sender: HashMap<u64, VecDeque<i64>>,
    /// Keys of the queued messages whose sender held each name when the
    /// inbox accepted them.
    of_name: HashMap<Arc<str>, BTreeSet<i64>>,
    /// The names the sender of each queued message held then, by key
    /// (messages of senders that held none have no entry).
    stamps: HashMap<i64, HeldNames>,
    /// The same, by sequence, for messages handed to a receive that
    /// acknowledges itself: they keep their names if they come back.
    /// Settled ones are swept out once they outnumber twice the messages
    /// in flight (so the sweep costs O(1) per message, amortized).
    lent: HashMap<u64, HeldNames>,
    /// Key of the next message at the back (and one below the front's).
    back: i64,
    front: i64,
    any: Line<Arrived>,
    from: HashMap<Sender, Line<Arrived>>,
    /// The sender each receive of one sender waits for.
    filters: HashMap<Ticket, Sender>,
    ready: BTreeSet<Sender>,
    next_arrival: u64,
}

impl InboxLines {
    fn len(&self) -> usize {
        self.queue.len()
    }

    /// Queues `message` at the back (or the head: it came back), under the
    /// names its sender held when the inbox accepted it.
    fn push(&mut self, message: Message, at_front: bool, names: Option<HeldNames>) {
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
        let waits = !self.from.is_empty();
        let process = Sender::Process(ConnectionId(sender));
        if waits && self.from.contains_key(&process) {
            self.ready.insert(process);
        }
        if let Some(names) = names {
            for name in names.iter() {
                self.of_name.entry(name.clone()).or_default().insert(key);
                if waits {
                    let named = Sender::Name(name.clone());
                    if self.from.contains_key(&named) {
                        self.ready.insert(named);
                    }
                }
            }
            self.stamps.insert(key, names);
        }
    }

    /// Takes the message under `key` out of the queue; with `lend`, it
    /// keeps its names while a receiver holds it.
    fn take(&mut self, key: i64, lend: bool) -> Option<Message> {
        let message = self.queue.remove(&key)?;
        let sender = message.metadata.sender_connection;
        if let Some(keys) = self.of_sender.get_mut(&sender) {
            if keys.front() == Some(&key) {
                keys.pop_front();
            } else if let Ok(at) = keys.binary_search(&key) {
                // Only `take_sequence` (an expiry) and receives from a name
                // take from the middle; a sender's keys are in order (the
                // back ones rise, the front ones fall below all).
                keys.remove(at);
            }
            if keys.is_empty() {
                self.of_sender.remove(&sender);
                self.ready.remove(&Sender::Process(ConnectionId(sender)));
            }
        }
        if let Some(names) = self.stamps.remove(&key) {
            for name in names.iter() {
                if let Some(keys) = self.of_name.get_mut(name) {
                    keys.remove(&key);
                    if keys.is_empty() {
                        self.of_name.remove(name);
                        self.ready.remove(&Sender::Name(name.clone()));
                    }
                }
            }
            if lend {
                self.lent.insert(message.metadata.sequence, names);
            }
        }
        Some(message)
    }

    fn messages(&self) -> impl Iterator<Item = &Message> + Clone {
        self.queue.values()
    }

    /// Whether a message of `sender` is queued.
    pub(super) fn has_from(&self, sender: &Sender) -> bool {
        match sender {
            Sender::Process(id) => self.of_sender.contains_key(&id.0),
            Sender::Name(name) => self.of_name.contains_key(name),
        }
    }

    /// The key of the oldest queued message of `sender`.
    fn first_of(&self, sender: &Sender) -> Option<i64> {
        match sender {
            Sender::Process(id) => self.of_sender.get(&id.0)?.front().copied(),
            Sender::Name(name) => self.of_name.get(name)?.first().copied(),
        }
    }

    /// Removes the queued message with `sequence` (a pass over the queue:
    /// only expiries and withdrawn watched sends come here).
    fn take_sequence(&mut self, sequence: u64) -> Option<Message> {
        let key = self
            .queue
            .iter()
            .find(|(_, m)| m.metadata.sequence == sequence)
            .map(|(key, _)| *key)?;
        self.take(key, false)
    }

    fn drain(&mut self) -> Vec<Message> {
        self.of_sender.clear();
        self.of_name.clear();
        self.stamps.clear();
        self.lent.clear();
        self.ready.clear();
        std::mem::take(&mut self.queue).into_values().collect()
    }

    /// Forgets the names of lent messages that were settled, once they
    /// outnumber twice the messages in flight.
    fn sweep_lent(&mut self, ledger: &Ledger) {
        let in_flight = &ledger.view().in_flight;
        if self.lent.len() > 2 * in_flight.len() + 16 {
            self.lent
                .retain(|sequence, _| in_flight.contains_key(sequence));
        }
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
        match arrived.receive.from.clone() {
            None if front => self.any.push_front(arrived),
            None => self.any.push_back(arrived),
            Some(sender) => {
                self.filters.insert(arrived.receive.ticket, sender.clone());
                if self.has_from(&sender) {
                    self.ready.insert(sender.clone());
                }
                let line = self.from.entry(sender).or_default();
                if front {
                    line.push_front(arrived);
                } else {
                    line.push_back(arrived);
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
    fn pop_receive(&mut self, which: &Which) -> Option<WaitingReceive> {
        match which {
            Which::Any => self.any.pop_front().map(|a| a.receive),
            Which::From(sender) => {
                let line = self.from.get_mut(sender)?;
                let arrived = line.pop_front()?;
                if line.is_empty() {
                    self.from.remove(sender);
                    self.ready.remove(sender);
                }
                self.filters.remove(&arrived.receive.ticket);
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
    pub(super) fn take_receives_from(&mut self, sender: &Sender) -> Vec<WaitingReceive> {
        self.ready.remove(sender);
        let Some(mut line) = self.from.remove(sender) else {
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
                Some((first.arrival, sender))
            })
            .min()
            .map(|(arrival, sender)| (arrival, Which::From(sender.clone())));
        match (any, one) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The earliest receive that takes a waiting send directly (nothing is
    /// queued for it), with that send: a pass over the waiting sends, made
    /// only while some receive could take one. A send matches the receives
    /// of its connection and of each name its connection holds now (the
    /// inbox accepts it now).
    fn next_handoff(
        &self,
        senders: &Line<WaitingSend>,
        names: &NameRegistry,
    ) -> Option<(u64, Which, Ticket)> {
        let any = self.any.front().filter(|_| self.queue.is_empty());
        if any.is_none() && self.from.is_empty() {
            return None;
        }
        let mut best: Option<(u64, Which, Ticket)> = None;
        let mut seen: BTreeSet<ConnectionId> = BTreeSet::new();
        let mut consider = |arrival: u64, which: &dyn Fn() -> Which, send: Ticket| {
            if best.as_ref().is_none_or(|b| arrival < b.0) {
                best = Some((arrival, which(), send));
            }
        };
        for send in senders.iter() {
            step(1);
            if !matches!(send.load, Load::One(_)) {
                continue;
            }
            let from = send.ticket.connection;
            if let Some(first) = any {
                consider(first.arrival, &|| Which::Any, send.ticket);
            }
            if !seen.insert(from) {
                continue;
            }
            let process = Sender::Process(from);
            let held = names.held_by(from).map_or(&[][..], |held| &held[..]);
            let named = held.iter().map(|name| Sender::Name(name.clone()));
            for sender in std::iter::once(process).chain(named) {
                if self.has_from(&sender) {
                    continue;
                }
                if let Some(first) = self.from.get(&sender).and_then(Line::front) {
                    consider(first.arrival, &|| Which::From(sender.clone()), send.ticket);
                }
            }
        }
        best
    }

    /// The key of the oldest queued message `receive` accepts.
    fn first_for(&self, receive: &WaitingReceive) -> Option<i64> {
        match &receive.from {
            None => self.queue.keys().next().copied(),
            Some(sender) => self.first_of(sender),
        }
    }

    /// Takes what `receive` takes from the queue: the oldest messages it
    /// accepts, up to its limit and a batch answer's size.
    fn take_for(&mut self, receive: &WaitingReceive) -> (Vec<Message>, u64) {
        let mut messages = Vec::new();
        let mut bytes = 0u64;
        let mut size = BatchSize::new(receive);
        while let Some((key, len)) = self
            .first_for(receive)
            .and_then(|key| Some((key, self.queue.get(&key)?.payload.len())))
        {
            if !size.fits(len) {
                break;
            }
            let Some(message) = self.take(key, receive.manual) else {
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
        self.sweep_lent(ledger);
        let names = ctx.names;
        loop {
            let space = room(settings.capacity, self.len());
            let mut moved = ledger.admit_queued(senders, space, ctx, |m| {
                let held = names.held_by(ConnectionId(m.metadata.sender_connection));
                self.push(m, false, held.cloned())
            });
            // Serve the earliest receive that something waits for, until
            // none does: from the queue, or straight from a waiting send it
            // accepts (the queue may be full of others' messages).
            loop {
                let queued = self.next_from_queue();
                let handoff = if senders.is_empty() {
                    None
                } else {
                    self.next_handoff(senders, names)
                };
                // Both finds name a receive at the front of its line and
                // what it takes, so neither branch below can come away
                // empty-handed; if one did, the receive goes back to its
                // place (it must still be answered) and the message to the
                // head of the queue (it must not vanish).
                let (receiver, messages, bytes) = match (queued, handoff) {
                    (Some((at, which)), handoff)
                        if handoff.as_ref().is_none_or(|(later, ..)| at < *later) =>
                    {
                        let Some(receiver) = self.pop_receive(&which) else {
                            break;
                        };
                        let (messages, bytes) = self.take_for(&receiver);
                        if messages.is_empty() {
                            let first = self.first_for(&receiver).and_then(|key| {
                                let message = self.queue.get(&key)?;
                                Some((message.metadata.sequence, message.payload.len()))
                            });
                            match first {
                                Some((sequence, len)) if !receiver.takes(len) => {
                                    // Longer than it takes inline: refused,
                                    // the message stays queued.
                                    receiver.refuse(Some(sequence), len, ctx.out);
                                    continue;
                                }
                                _ => {
                                    self.restore(at, receiver);
                                    break;
                                }
                            }
                        }
                        (receiver, messages, bytes)
                    }
                    (_, Some((_, which, send))) => {
                        let Some(message) = ledger.admit(senders, Some(send), 1, ctx) else {
                            break;
                        };
                        let bytes = message.payload.len() as u64;
                        ledger.queued_bytes += bytes;
                        let held = names.held_by(send.connection).cloned();
                        let Some(receiver) = self.pop_receive(&which) else {
                            self.push(message, true, held);
                            break;
                        };
                        if !receiver.takes(message.payload.len()) {
                            // Longer than it takes inline: the message is
                            // queued (first) and the receive refused.
                            let (sequence, len) =
                                (message.metadata.sequence, message.payload.len());
                            self.push(message, true, held);
                            receiver.refuse(Some(sequence), len, ctx.out);
                            continue;
                        }
                        if let (true, Some(held)) = (receiver.manual, held) {
                            self.lent.insert(message.metadata.sequence, held);
                        }
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
        let names = self.lent.remove(&message.metadata.sequence);
        self.push(message, !to_tail, names);
        true
    }

    fn queued_charges(&self) -> Box<dyn Iterator<Item = Charge> + '_> {
        Box::new(self.messages().map(Charge::of))
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
    /// How many messages it keeps the names of (queued and lent).
    pub(super) fn names_kept(&self) -> usize {
        self.stamps.len() + self.lent.len()
    }

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
                !self.has_from(sender),
                "inbox receiver waits beside a message it accepts"
            );
        }
        assert!(self.ready.is_empty(), "ready senders left after the pump");
        let filtered: usize = self.from.values().map(Line::len).sum();
        assert_eq!(filtered, self.filters.len(), "filters");
        for keys in self.of_sender.values() {
            assert!(
                keys.iter().zip(keys.iter().skip(1)).all(|(a, b)| a < b),
                "a sender's keys out of order"
            );
        }
        let keyed: usize = self.of_sender.values().map(VecDeque::len).sum();
        assert_eq!(keyed, self.queue.len(), "keys of senders");
        let named: usize = self.of_name.values().map(BTreeSet::len).sum();
        let stamped: usize = self.stamps.values().map(|names| names.len()).sum();
        assert_eq!(named, stamped, "keys of names");
        assert!(
            self.stamps.keys().all(|key| self.queue.contains_key(key)),
            "names of a message no longer queued"
        );
    }
}
