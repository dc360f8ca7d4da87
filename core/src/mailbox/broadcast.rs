//! Broadcast: every subscriber gets every message sent after it subscribed.
//! The mailbox keeps one log, with one shared payload per message, that
//! every subscriber reads with its own cursor; an entry leaves the log when
//! everyone has read it. On `zero` every subscriber must be waiting, and
//! all take the message at once. A bounded mailbox may cut a subscriber
//! whose backlog stays full too long (a slow consumer holds every sender
//! back).
//!
//! Invariants: a subscriber has waiting receives only when it has read
//! everything in the log; the log's front entry is still unread by someone;
//! senders wait only while the log is full (on `zero`: while some
//! subscriber has no waiting receive); on a mailbox that cuts slow
//! subscribers, a subscriber's `full_since` is set exactly while its
//! backlog is full.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use mailbox_proto::{BrokerError, Capacity, ErrorKind, MailboxSettings, Message, Response};

use super::batch::{batch_len, page};
use super::ledger::{release, Ledger};
use super::own_lines;
use super::policy::{room, Charge, DeliveryRules, Unsubscribed};
use super::waiters::{Context, WaitingReceive, WaitingSend};
use crate::line::{step, Line};
use crate::types::{ConnectionId, Effect, Ticket};

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

/// The lines of a broadcast mailbox.
#[derive(Debug, Default)]
pub(super) struct BroadcastLines {
    /// Messages not yet read by every subscriber; the last entry has
    /// sequence `next_sequence - 1`. One shared payload per message.
    log: VecDeque<LogEntry>,
    subscribers: BTreeMap<ConnectionId, Subscriber>,
    /// Subscribers with a receive waiting.
    listening: BTreeSet<ConnectionId>,
    /// Subscribers with a receive waiting and something unread: the only
    /// ones the pump serves (empty after it), so a receive or a send costs
    /// no pass over every subscriber.
    ready: BTreeSet<ConnectionId>,
}

fn broadcast_sent(sequence: u64, recipients: u32) -> Response {
    Response::Sent {
        sequence,
        recipients,
    }
}

/// What a subscriber of mailbox `name` cut off as a slow consumer learns.
pub(super) fn slow_consumer_error(name: &str, settings: &MailboxSettings) -> BrokerError {
    BrokerError::new(
        ErrorKind::SlowConsumer,
        format!(
            "this connection's subscription to {} was cut off: its backlog stayed full (the mailbox's capacity, {} unread) for longer than {} ms, holding every sender back; its unread messages are gone, subscribe again to read on",
            name,
            settings.capacity,
            settings.cut_slow_subscribers_after_millis.unwrap_or_default()
        ),
    )
}

impl BroadcastLines {
    /// The sequence number of the log's front entry.
    fn first(&self, ledger: &Ledger) -> u64 {
        ledger.next_sequence - self.log.len() as u64
    }

    /// Appends `message`, admitted for `recipients` subscribers, to the
    /// log; one that reaches nobody is not kept (whether it was).
    fn append(
        &mut self,
        message: Message,
        recipients: u32,
        ledger: &mut Ledger,
        ctx: &mut Context<'_>,
    ) -> bool {
        if recipients == 0 {
            // Reaches nobody: nothing to keep.
            release(ctx.budget, &message);
            return false;
        }
        ledger.queued_bytes += message.payload.len() as u64;
        self.log.push_back(LogEntry {
            message,
            unread_by: recipients,
            expired: false,
        });
        // Everyone waiting has something unread now (and each of them is
        // served by the pump).
        self.ready.extend(self.listening.iter().copied());
        true
    }

    /// Ends the subscription of `connection`: its unread backlog is
    /// released (entries it was the last to read leave the log in the next
    /// pump). Returns it.
    fn remove_subscriber(
        &mut self,
        connection: ConnectionId,
        next_sequence: u64,
    ) -> Option<Subscriber> {
        let subscriber = self.subscribers.remove(&connection)?;
        self.listening.remove(&connection);
        self.ready.remove(&connection);
        let first = next_sequence - self.log.len() as u64;
        let unread_from = subscriber.cursor.saturating_sub(first) as usize;
        for entry in self.log.iter_mut().skip(unread_from) {
            entry.unread_by -= 1;
        }
        Some(subscriber)
    }

    /// Rendezvous with everyone: all current subscribers must be waiting,
    /// so all take the message at once. Whether one moved.
    fn pump_rendezvous(
        &mut self,
        ledger: &mut Ledger,
        senders: &mut Line<WaitingSend>,
        ctx: &mut Context<'_>,
    ) -> bool {
        if senders.is_empty() || self.listening.len() != self.subscribers.len() {
            return false;
        }
        let recipients = self.subscribers.len() as u32;
        let Some(message) = ledger.admit(senders, None, recipients, ctx) else {
            return false;
        };
        release(ctx.budget, &message);
        let sequence = message.metadata.sequence;
        for (id, subscriber) in self.subscribers.iter_mut() {
            step(1);
            if let Some(receive) = subscriber.waiting.pop_front() {
                subscriber.cursor += 1;
                if receive.takes(message.payload.len()) {
                    ledger.delivered += 1;
                    receive.deliver(vec![message.clone()], ctx.out);
                } else {
                    // Its copy is one it can never take inline: skipped
                    // for it (the others have theirs), and it hears why.
                    receive.refuse(Some(sequence), message.payload.len(), ctx.out);
                }
            }
            if subscriber.waiting.is_empty() {
                self.listening.remove(id);
            }
        }
        if let Some(watch) = ledger.take_watch(sequence) {
            ctx.out
                .reply(watch.ticket, Ok(broadcast_sent(sequence, recipients)));
        }
        true
    }

    /// Serves subscribers that have a backlog and a waiting receive: those
    /// in `ready`, no one else. Whether anything moved.
    fn serve_ready(&mut self, ledger: &mut Ledger, ctx: &mut Context<'_>) -> bool {
        let mut moved = false;
        let first = self.first(ledger);
        let Self {
            log,
            subscribers,
            listening,
            ready,
        } = self;
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
                    &receive,
                    log.range(from..).map(|entry| entry.message.payload.len()),
                );
                if take == 0 {
                    // The next message of its log is longer than it takes
                    // inline: skipped for it (a subscriber's copy is its
                    // own, and it could never take this one), refused.
                    if let Some(entry) = log.get_mut(from) {
                        entry.unread_by -= 1;
                        subscriber.cursor += 1;
                        moved = true;
                        let (sequence, len) =
                            (entry.message.metadata.sequence, entry.message.payload.len());
                        receive.refuse(Some(sequence), len, ctx.out);
                    } else {
                        subscriber.waiting.push_front(receive);
                        break;
                    }
                    continue;
                }
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
        moved
    }

    /// Notes whose backlog is full (a bounded broadcast mailbox that cuts
    /// slow subscribers: `capacity` unread messages, so the log is full
    /// and this subscriber is one that holds it so), since when, and asks
    /// to be woken when the first of them will have been full for
    /// `after_millis`. Runs after every pump: a subscriber's backlog fills
    /// only when a message is admitted and empties only when it takes one
    /// (or is purged), and both happen in a pump.
    fn watch_backlogs(
        &mut self,
        capacity: Capacity,
        after_millis: u64,
        ledger: &mut Ledger,
        ctx: &mut Context<'_>,
    ) {
        let Capacity::Bounded(capacity) = capacity else {
            return;
        };
        let next = ledger.next_sequence;
        let now = ctx.clock.now;
        let mut newly_full = false;
        for subscriber in self.subscribers.values_mut() {
            if next - subscriber.cursor < u64::from(capacity) {
                subscriber.full_since = None;
            } else if subscriber.full_since.is_none() {
                subscriber.full_since = Some(now);
                newly_full = true;
            }
        }
        if newly_full {
            if let Some(at) = now.checked_add(Duration::from_millis(after_millis)) {
                ledger.arm(at, ctx);
            }
        }
    }

    /// Cuts off every subscriber whose backlog has been full for the
    /// mailbox's limit: its subscription ends, its unread backlog is
    /// released (so waiting senders proceed in the pump that follows), and
    /// it learns why, at its waiting receive or else at its next receive
    /// (through the core, `Effect::SubscriberCut`).
    fn cut_slow_subscribers(
        &mut self,
        settings: &MailboxSettings,
        ledger: &mut Ledger,
        ctx: &mut Context<'_>,
    ) {
        let Some(after) = settings.cut_slow_subscribers_after_millis else {
            return;
        };
        let after = Duration::from_millis(after);
        let now = ctx.clock.now;
        let error = slow_consumer_error(ledger.name(), settings);
        let name = ledger.name().to_owned();
        let slow: Vec<ConnectionId> = self
            .subscribers
            .iter()
            .filter(|(_, s)| {
                s.full_since
                    .and_then(|since| since.checked_add(after))
                    .is_some_and(|at| at <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for connection in slow {
            let Some(mut subscriber) = self.remove_subscriber(connection, ledger.next_sequence)
            else {
                continue;
            };
            let tell = subscriber.waiting.is_empty();
            for receive in subscriber.waiting.drain() {
                ctx.out.reply(receive.ticket, Err(error.clone()));
            }
            ledger.more().slow_subscribers_cut += 1;
            ctx.out.effects.push(Effect::SubscriberCut {
                connection,
                mailbox: name.clone(),
                tell,
            });
        }
    }
}

impl DeliveryRules for BroadcastLines {
    fn add_receive(&mut self, receive: WaitingReceive, ledger: &Ledger) -> Result<(), BrokerError> {
        let connection = receive.ticket.connection;
        let Some(subscriber) = self.subscribers.get_mut(&connection) else {
            return Err(BrokerError::new(
                ErrorKind::NotSubscribed,
                format!(
                    "mailbox {} is a broadcast mailbox; subscribe to it before receiving",
                    ledger.name()
                ),
            ));
        };
        subscriber.waiting.push_back(receive);
        self.listening.insert(connection);
        if subscriber.cursor < ledger.next_sequence {
            self.ready.insert(connection);
        }
        Ok(())
    }

    fn has_receive(&self, ticket: Ticket) -> bool {
        own_lines::has_receive(&self.subscribers, |subscriber| &subscriber.waiting, ticket)
    }

    fn remove_receive(&mut self, ticket: Ticket) -> bool {
        let Some(subscriber) = self.subscribers.get_mut(&ticket.connection) else {
            return false;
        };
        let removed = subscriber.waiting.remove(ticket).is_some();
        if subscriber.waiting.is_empty() {
            self.listening.remove(&ticket.connection);
            self.ready.remove(&ticket.connection);
        }
        removed
    }

    fn pump(
        &mut self,
        settings: &MailboxSettings,
        ledger: &mut Ledger,
        senders: &mut Line<WaitingSend>,
        ctx: &mut Context<'_>,
    ) {
        let capacity = settings.capacity;
        loop {
            let mut moved = false;
            if capacity == Capacity::Zero {
                moved = self.pump_rendezvous(ledger, senders, ctx);
            } else {
                let recipients = self.subscribers.len() as u32;
                for _ in 0..room(capacity, self.log.len()) {
                    let Some(message) = ledger.admit(senders, None, recipients, ctx) else {
                        break;
                    };
                    moved = true;
                    let sequence = message.metadata.sequence;
                    if !self.append(message, recipients, ledger, ctx) {
                        if let Some(watch) = ledger.take_watch(sequence) {
                            ctx.out.reply(watch.ticket, Ok(broadcast_sent(sequence, 0)));
                        }
                    }
                }
                moved |= self.serve_ready(ledger, ctx);
                // Entries everyone has read leave the log, which makes
                // room; that counts as a move, since the room for this
                // round was measured before (an unsubscribe or a
                // disconnect may leave such entries before the pump).
                while self.log.front().is_some_and(|entry| entry.unread_by == 0) {
                    if let Some(entry) = self.log.pop_front() {
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
        }
        if let Some(after) = settings.cut_slow_subscribers_after_millis {
            self.watch_backlogs(capacity, after, ledger, ctx);
        }
    }

    /// Broadcast messages are read in place (see `expire`).
    fn take_queued(&mut self, _sequence: u64) -> Option<Message> {
        None
    }

    /// Broadcast deliveries are never manual; nothing comes back.
    fn put_back(&mut self, _message: Message, _to_tail: bool) -> bool {
        false
    }

    /// An expired message stays in the log, unread by anyone from now on.
    fn expire(&mut self, sequence: u64, ledger: &mut Ledger, _ctx: &mut Context<'_>) -> bool {
        let first = self.first(ledger);
        if let Some(entry) = sequence
            .checked_sub(first)
            .and_then(|index| self.log.get_mut(index as usize))
        {
            if !entry.expired {
                entry.expired = true;
                ledger.more().expired += 1;
            }
        }
        true
    }

    /// A dead letter goes to every current subscriber.
    fn take_dead_letter(&mut self, message: Message, ledger: &mut Ledger, ctx: &mut Context<'_>) {
        let recipients = self.subscribers.len() as u32;
        self.append(message, recipients, ledger, ctx);
    }

    fn queued_charges(&self) -> Box<dyn Iterator<Item = Charge> + '_> {
        Box::new(self.log.iter().map(|entry| Charge::of(&entry.message)))
    }

    fn queued_count(&self) -> usize {
        self.log.len()
    }

    /// A subscriber sees its own unread messages (from its cursor), anyone
    /// else every message of the log, that is every message still unread
    /// by some subscriber; expired ones are read by nobody and not shown.
    /// The log is in sequence order, so `after` is an index.
    fn peek(
        &self,
        viewer: ConnectionId,
        after: Option<u64>,
        limit: usize,
        ledger: &Ledger,
    ) -> (Vec<Message>, bool) {
        let first = self.first(ledger);
        let from = self
            .subscribers
            .get(&viewer)
            .map_or(first, |subscriber| subscriber.cursor);
        let start = after.map_or(from, |after| after.saturating_add(1).max(from));
        let index = start.min(ledger.next_sequence) - first;
        let unread = self
            .log
            .range(index as usize..)
            .filter(|entry| {
                step(1);
                !entry.expired
            })
            .map(|entry| &entry.message);
        page(unread, limit)
    }

    fn waiting_receivers(&self) -> usize {
        own_lines::waiting_count(&self.subscribers, |subscriber| &subscriber.waiting)
    }

    fn drain_receives(&mut self) -> Vec<WaitingReceive> {
        self.listening.clear();
        self.ready.clear();
        own_lines::drain_all(&mut self.subscribers, |subscriber| &mut subscriber.waiting)
    }

    fn drain_queued(&mut self, next_sequence: u64) -> Vec<Message> {
        for subscriber in self.subscribers.values_mut() {
            subscriber.cursor = next_sequence;
        }
        self.ready.clear();
        self.log.drain(..).map(|entry| entry.message).collect()
    }

    fn subscribe(&mut self, connection: ConnectionId, next_sequence: u64) -> Option<bool> {
        if self.subscribers.contains_key(&connection) {
            return Some(false);
        }
        self.subscribers.insert(
            connection,
            Subscriber {
                cursor: next_sequence,
                waiting: Line::default(),
                full_since: None,
            },
        );
        Some(true)
    }

    fn unsubscribe(&mut self, connection: ConnectionId, next_sequence: u64) -> Unsubscribed {
        Unsubscribed::from(
            self.remove_subscriber(connection, next_sequence)
                .map(|subscriber| subscriber.waiting),
        )
    }

    fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    /// A wake cuts slow subscribers.
    fn on_wake(&mut self, settings: &MailboxSettings, ledger: &mut Ledger, ctx: &mut Context<'_>) {
        self.cut_slow_subscribers(settings, ledger, ctx);
    }

    /// When the first subscriber whose backlog is full will have been so
    /// for the mailbox's limit.
    fn next_wake(&self, settings: &MailboxSettings) -> Option<Instant> {
        let after = Duration::from_millis(settings.cut_slow_subscribers_after_millis?);
        self.subscribers
            .values()
            .filter_map(|s| s.full_since?.checked_add(after))
            .min()
    }

    #[cfg(test)]
    fn check_invariants(
        &self,
        settings: &MailboxSettings,
        ledger: &Ledger,
        senders: &Line<WaitingSend>,
    ) -> u64 {
        let Self {
            log,
            subscribers,
            listening,
            ready,
        } = self;
        let waiting: BTreeSet<ConnectionId> = subscribers
            .iter()
            .filter(|(_, s)| !s.waiting.is_empty())
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(&waiting, listening, "listening subscribers");
        if settings.capacity != Capacity::Zero {
            assert!(ready.is_empty(), "ready subscribers left after the pump");
        }
        let first = self.first(ledger);
        for (index, entry) in log.iter().enumerate() {
            assert_eq!(entry.message.metadata.sequence, first + index as u64);
            let unread = subscribers
                .values()
                .filter(|s| s.cursor <= entry.message.metadata.sequence)
                .count();
            assert_eq!(entry.unread_by as usize, unread);
        }
        assert!(log.front().is_none_or(|e| e.unread_by > 0));
        if !senders.is_empty() {
            match settings.capacity {
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
            assert!(subscriber.cursor <= ledger.next_sequence);
            if !subscriber.waiting.is_empty() {
                assert_eq!(subscriber.cursor, ledger.next_sequence);
            }
            if let (Some(_), Capacity::Bounded(n)) = (
                settings.cut_slow_subscribers_after_millis,
                settings.capacity,
            ) {
                let full = ledger.next_sequence - subscriber.cursor >= u64::from(n);
                assert_eq!(full, subscriber.full_since.is_some(), "full since");
            }
        }
        log.iter().map(|e| e.message.payload.len() as u64).sum()
    }
}
