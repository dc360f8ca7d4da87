//! The one shape every delivery policy has ([`DeliveryRules`]), and the
//! enum of the policies' states ([`Lines`]) that a mailbox holds and that
//! forwards each call to its policy with a `match`: static dispatch, no
//! virtual call on the pump, which is the broker's hot path.
//!
//! Adding a policy is adding a file with its state and its
//! `impl DeliveryRules`, one arm to [`Lines`] and to `each_policy!`, and
//! its constructor to [`Lines::new`].

use std::time::Instant;

use mailbox_proto::{BrokerError, Capacity, DeliveryPolicy, MailboxSettings, Message};

use super::broadcast::BroadcastLines;
use super::hash::HashLines;
use super::inbox::InboxLines;
use super::ledger::{Ledger, EXPIRED};
use super::priority::PriorityLines;
use super::round_robin::RoundRobinLines;
use super::waiters::{Context, WaitingReceive, WaitingSend};
use crate::line::Line;
use crate::types::{ConnectionId, Ticket};

/// What ending a subscription (broadcast) or pool membership (hash) found.
#[derive(Debug)]
pub(super) enum Unsubscribed {
    /// It ended; these receives of the connection were still waiting.
    Left(Line<WaitingReceive>),
    /// The connection was not subscribed.
    NotSubscribed,
    /// This policy has no subscribers.
    NoSubscribers,
}

impl From<Option<Line<WaitingReceive>>> for Unsubscribed {
    /// What a policy with subscribers found: the receives still waiting of
    /// the connection that left, or that it was not subscribed.
    fn from(left: Option<Line<WaitingReceive>>) -> Self {
        match left {
            Some(waiting) => Self::Left(waiting),
            None => Self::NotSubscribed,
        }
    }
}

/// A delivery policy's own rules: where a waiting receive waits, where an
/// admitted message is kept, and who gets what in the pump. Counting,
/// stamping and answering are the ledger's ([`Ledger`]); each policy calls
/// it.
pub(super) trait DeliveryRules {
    /// Puts `receive` at the back of its line (where that is, is the
    /// policy's rule); a policy may refuse it (broadcast: not subscribed).
    fn add_receive(&mut self, receive: WaitingReceive, ledger: &Ledger) -> Result<(), BrokerError>;

    /// Whether the receive of `ticket` waits in a line.
    fn has_receive(&self, ticket: Ticket) -> bool;

    /// Takes the receive of `ticket` out of its line, unanswered.
    fn remove_receive(&mut self, ticket: Ticket) -> bool;

    /// Moves messages as far as the rules allow, until nothing moves:
    /// waiting senders into the buffer while there is room, buffered
    /// messages to waiting receivers (a batch receive takes as many as it
    /// may), and on `zero` straight from senders to receivers.
    fn pump(
        &mut self,
        settings: &MailboxSettings,
        ledger: &mut Ledger,
        senders: &mut Line<WaitingSend>,
        ctx: &mut Context<'_>,
    );

    /// Takes the queued message with `sequence` out, if it is queued (its
    /// bytes are still counted as queued: see [`DeliveryRules::dequeue`]).
    fn take_queued(&mut self, sequence: u64) -> Option<Message>;

    /// Puts a message that came back into the queue, at the head or the
    /// tail, whatever the capacity (it had its place already); false when
    /// the policy does not keep it.
    fn put_back(&mut self, message: Message, to_tail: bool) -> bool;

    /// What every queued message (for broadcast: every message in the
    /// log) is charged to its sender, one message or a run of messages of
    /// one sender at a time.
    fn queued_charges(&self) -> Box<dyn Iterator<Item = Charge> + '_>;

    /// How many messages are queued.
    fn queued_count(&self) -> usize;

    /// A page of a peek (`Request::Peek`): copies of the queued messages
    /// in the order receivers would get them, from after the one with
    /// sequence `after`, at most `limit` and what fits a batch answer
    /// ([`page`](super::batch::page)), and whether more follow. `viewer` is
    /// the connection peeking (broadcast shows a subscriber its own unread
    /// messages). Changes nothing, so it needs no pump.
    fn peek(
        &self,
        viewer: ConnectionId,
        after: Option<u64>,
        limit: usize,
        ledger: &Ledger,
    ) -> (Vec<Message>, bool);

    /// How many receives wait.
    fn waiting_receivers(&self) -> usize;

    /// Takes every waiting receive out of its line, in line order.
    fn drain_receives(&mut self) -> Vec<WaitingReceive>;

    /// Takes every queued message out (a purge); `next_sequence` is the
    /// mailbox's next sequence number.
    fn drain_queued(&mut self, next_sequence: u64) -> Vec<Message>;

    /// Panics when an invariant of the policy does not hold (tests only);
    /// returns the payload bytes queued.
    #[cfg(test)]
    fn check_invariants(
        &self,
        settings: &MailboxSettings,
        ledger: &Ledger,
        senders: &Line<WaitingSend>,
    ) -> u64;

    /// Removes the queued message with `sequence`, if it is queued; its
    /// bytes are no longer counted as queued.
    fn dequeue(&mut self, sequence: u64, ledger: &mut Ledger) -> Option<Message> {
        let message = self.take_queued(sequence)?;
        ledger.queued_bytes -= message.payload.len() as u64;
        Some(message)
    }

    /// Puts a message that came back into the queue (see
    /// [`DeliveryRules::put_back`]), counting its bytes as queued.
    fn requeue(&mut self, message: Message, to_tail: bool, ledger: &mut Ledger) {
        let len = message.payload.len() as u64;
        if self.put_back(message, to_tail) {
            ledger.queued_bytes += len;
        }
    }

    /// Retires the message `sequence` when its time-to-live has run out and
    /// it is still queued; a message in flight or delivered is left alone.
    /// Returns whether the mailbox must pump.
    fn expire(&mut self, sequence: u64, ledger: &mut Ledger, ctx: &mut Context<'_>) -> bool {
        let Some(message) = self.dequeue(sequence, ledger) else {
            return false;
        };
        ledger.more().expired += 1;
        ledger.retire(message, EXPIRED, ctx);
        true
    }

    /// Queues a dead letter, already restamped, at the back.
    fn take_dead_letter(&mut self, message: Message, ledger: &mut Ledger, _ctx: &mut Context<'_>) {
        self.requeue(message, true, ledger);
    }

    /// Subscribes `connection` (broadcast) or adds it to the pool (hash):
    /// whether it is new there; `None` when the policy has no subscribers.
    fn subscribe(&mut self, _connection: ConnectionId, _next_sequence: u64) -> Option<bool> {
        None
    }

    /// Ends the subscription or pool membership of `connection` (see
    /// [`Unsubscribed`]).
    fn unsubscribe(&mut self, _connection: ConnectionId, _next_sequence: u64) -> Unsubscribed {
        Unsubscribed::NoSubscribers
    }

    /// Subscribers (broadcast) or members of the pool (hash).
    fn subscriber_count(&self) -> usize {
        0
    }

    /// What the policy does when the mailbox's wake comes (broadcast: cut
    /// slow subscribers).
    fn on_wake(
        &mut self,
        _settings: &MailboxSettings,
        _ledger: &mut Ledger,
        _ctx: &mut Context<'_>,
    ) {
    }

    /// The earliest time the policy needs a wake for, if any.
    fn next_wake(&self, _settings: &MailboxSettings) -> Option<Instant> {
        None
    }
}

/// The lines of a mailbox: the state of its delivery policy. Hash and inbox
/// states are boxed, so round-robin and broadcast mailboxes stay small.
#[derive(Debug)]
pub(super) enum Lines {
    RoundRobin(RoundRobinLines),
    Priority(PriorityLines),
    Broadcast(BroadcastLines),
    Hash(Box<HashLines>),
    Inbox(Box<InboxLines>),
}

impl Lines {
    /// The empty lines of a named mailbox of `policy`.
    pub(super) fn new(policy: DeliveryPolicy) -> Self {
        match policy {
            DeliveryPolicy::RoundRobin => Self::RoundRobin(RoundRobinLines::default()),
            DeliveryPolicy::Priority => Self::Priority(PriorityLines::default()),
            DeliveryPolicy::Broadcast => Self::Broadcast(BroadcastLines::default()),
            DeliveryPolicy::Hash => Self::Hash(Box::default()),
        }
    }
}

/// `$body` with `$state` bound to the state of `$lines`' policy, whichever
/// it is: one `match`, one arm per policy.
macro_rules! each_policy {
    ($lines:expr, $state:ident => $body:expr) => {
        match $lines {
            Lines::RoundRobin($state) => $body,
            Lines::Priority($state) => $body,
            Lines::Broadcast($state) => $body,
            Lines::Hash($state) => $body,
            Lines::Inbox($state) => $body,
        }
    };
}

impl DeliveryRules for Lines {
    #[inline]
    fn add_receive(&mut self, receive: WaitingReceive, ledger: &Ledger) -> Result<(), BrokerError> {
        each_policy!(self, state => state.add_receive(receive, ledger))
    }

    #[inline]
    fn has_receive(&self, ticket: Ticket) -> bool {
        each_policy!(self, state => state.has_receive(ticket))
    }

    #[inline]
    fn remove_receive(&mut self, ticket: Ticket) -> bool {
        each_policy!(self, state => state.remove_receive(ticket))
    }

    #[inline]
    fn pump(
        &mut self,
        settings: &MailboxSettings,
        ledger: &mut Ledger,
        senders: &mut Line<WaitingSend>,
        ctx: &mut Context<'_>,
    ) {
        each_policy!(self, state => state.pump(settings, ledger, senders, ctx))
    }

    fn take_queued(&mut self, sequence: u64) -> Option<Message> {
        each_policy!(self, state => state.take_queued(sequence))
    }

    fn put_back(&mut self, message: Message, to_tail: bool) -> bool {
        each_policy!(self, state => state.put_back(message, to_tail))
    }

    fn queued_charges(&self) -> Box<dyn Iterator<Item = Charge> + '_> {
        each_policy!(self, state => state.queued_charges())
    }

    fn queued_count(&self) -> usize {
        each_policy!(self, state => state.queued_count())
    }

    fn peek(
        &self,
        viewer: ConnectionId,
        after: Option<u64>,
        limit: usize,
        ledger: &Ledger,
    ) -> (Vec<Message>, bool) {
        each_policy!(self, state => state.peek(viewer, after, limit, ledger))
    }

    fn waiting_receivers(&self) -> usize {
        each_policy!(self, state => state.waiting_receivers())
    }

    fn drain_receives(&mut self) -> Vec<WaitingReceive> {
        each_policy!(self, state => state.drain_receives())
    }

    fn drain_queued(&mut self, next_sequence: u64) -> Vec<Message> {
        each_policy!(self, state => state.drain_queued(next_sequence))
    }

    #[cfg(test)]
    fn check_invariants(
        &self,
        settings: &MailboxSettings,
        ledger: &Ledger,
        senders: &Line<WaitingSend>,
    ) -> u64 {
        each_policy!(self, state => state.check_invariants(settings, ledger, senders))
    }

    fn dequeue(&mut self, sequence: u64, ledger: &mut Ledger) -> Option<Message> {
        each_policy!(self, state => state.dequeue(sequence, ledger))
    }

    fn requeue(&mut self, message: Message, to_tail: bool, ledger: &mut Ledger) {
        each_policy!(self, state => state.requeue(message, to_tail, ledger))
    }

    fn expire(&mut self, sequence: u64, ledger: &mut Ledger, ctx: &mut Context<'_>) -> bool {
        each_policy!(self, state => state.expire(sequence, ledger, ctx))
    }

    fn take_dead_letter(&mut self, message: Message, ledger: &mut Ledger, ctx: &mut Context<'_>) {
        each_policy!(self, state => state.take_dead_letter(message, ledger, ctx))
    }

    fn subscribe(&mut self, connection: ConnectionId, next_sequence: u64) -> Option<bool> {
        each_policy!(self, state => state.subscribe(connection, next_sequence))
    }

    fn unsubscribe(&mut self, connection: ConnectionId, next_sequence: u64) -> Unsubscribed {
        each_policy!(self, state => state.unsubscribe(connection, next_sequence))
    }

    fn subscriber_count(&self) -> usize {
        each_policy!(self, state => state.subscriber_count())
    }

    fn on_wake(&mut self, settings: &MailboxSettings, ledger: &mut Ledger, ctx: &mut Context<'_>) {
        each_policy!(self, state => state.on_wake(settings, ledger, ctx))
    }

    fn next_wake(&self, settings: &MailboxSettings) -> Option<Instant> {
        each_policy!(self, state => state.next_wake(settings))
    }
}

/// Queued messages charged to their sender: what a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Charge {
    pub(super) uid: u32,
    pub(super) bytes: u64,
    pub(super) messages: u64,
}

impl Charge {
    /// What `message` is charged.
    pub(super) fn of(message: &Message) -> Self {
        Self {
            uid: message.metadata.sender_uid,
            bytes: message.payload.len() as u64,
            messages: 1,
        }
    }
}

/// How many more messages fit in a buffer of `capacity` holding `queued`.
pub(super) fn room(capacity: Capacity, queued: usize) -> usize {
    match capacity {
        Capacity::Zero => 0,
        Capacity::Bounded(n) => (n as usize).saturating_sub(queued),
        Capacity::Unbounded => usize::MAX,
    }
}
