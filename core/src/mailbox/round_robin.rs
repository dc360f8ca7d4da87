//! Round-robin: one queue, one line of receivers that take turns
//! (`turns.rs`: a connection at a time, in the order they started waiting,
//! however many receives each keeps posted); each message (or batch) goes
//! to one receiver, the one whose turn it is. On
//! `zero` (a rendezvous) nothing is queued: messages go straight from the
//! waiting senders to the waiting receiver, and both complete at once.
//!
//! The queue's rules are written once, generic over the line of receivers
//! ([`ReceiverLine`]): a [`TurnLine`] here, a ranked line for priority
//! mailboxes (`priority.rs`).
//!
//! Invariants: receivers wait only while the queue is empty; senders wait
//! only while the queue is full (on `zero`: while no receiver waits).

use mailbox_proto::{BrokerError, Capacity, MailboxSettings, Message};

use super::batch::{admit_batch, after_in_order, front_payload_len, page};
use super::ledger::Ledger;
use super::policy::{room, Charge, DeliveryRules};
use super::queue::MessageQueue;
use super::turns::TurnLine;
use super::waiters::{Context, WaitingReceive, WaitingSend};
use crate::line::Line;
use crate::types::{ConnectionId, Ticket};

/// The line receives wait in on a queue: who is served first.
pub(super) trait ReceiverLine: Default + std::fmt::Debug {
    fn push(&mut self, receive: WaitingReceive);
    fn pop_front(&mut self) -> Option<WaitingReceive>;
    fn contains(&self, ticket: Ticket) -> bool;
    fn remove(&mut self, ticket: Ticket) -> Option<WaitingReceive>;
    fn len(&self) -> usize;
    /// Every receive, in line order.
    fn drain(&mut self) -> Vec<WaitingReceive>;
    /// Panics when the line is out of its order (tests only).
    #[cfg(test)]
    fn check_order(&self);
}

/// Connections take turns.
impl ReceiverLine for TurnLine {
    #[inline]
    fn push(&mut self, receive: WaitingReceive) {
        TurnLine::push(self, receive);
    }

    #[inline]
    fn pop_front(&mut self) -> Option<WaitingReceive> {
        TurnLine::pop_front(self)
    }

    #[inline]
    fn contains(&self, ticket: Ticket) -> bool {
        TurnLine::contains(self, ticket)
    }

    #[inline]
    fn remove(&mut self, ticket: Ticket) -> Option<WaitingReceive> {
        TurnLine::remove(self, ticket)
    }

    #[inline]
    fn len(&self) -> usize {
        TurnLine::len(self)
    }

    fn drain(&mut self) -> Vec<WaitingReceive> {
        TurnLine::drain(self)
    }

    #[cfg(test)]
    fn check_order(&self) {
        self.check();
    }
}

/// A queue of messages (stored compactly while long: `queue.rs`) and a
/// line of receivers.
#[derive(Debug, Default)]
pub(super) struct QueueLines<R> {
    queue: MessageQueue,
    receivers: R,
}

/// The lines of a round-robin mailbox.
pub(super) type RoundRobinLines = QueueLines<TurnLine>;

impl<R: ReceiverLine> DeliveryRules for QueueLines<R> {
    fn add_receive(&mut self, receive: WaitingReceive, _: &Ledger) -> Result<(), BrokerError> {
        self.receivers.push(receive);
        Ok(())
    }

    fn has_receive(&self, ticket: Ticket) -> bool {
        self.receivers.contains(ticket)
    }

    fn remove_receive(&mut self, ticket: Ticket) -> bool {
        self.receivers.remove(ticket).is_some()
    }

    fn pump(
        &mut self,
        settings: &MailboxSettings,
        ledger: &mut Ledger,
        senders: &mut Line<WaitingSend>,
        ctx: &mut Context<'_>,
    ) {
        let capacity = settings.capacity;
        let Self { queue, receivers } = self;
        loop {
            let space = room(capacity, queue.len());
            let mut moved =
                ledger.admit_queued(senders, space, ctx, |m| queue.push_back(m, capacity));
            while !queue.is_empty() {
                let Some(receiver) = receivers.pop_front() else {
                    break;
                };
                let take = queue.batch_len(&receiver);
                ledger.hand_over_front(receiver, queue, take, ctx);
                moved = true;
            }
            if capacity == Capacity::Zero {
                // Rendezvous: messages go straight from waiting senders to
                // the waiting receiver, and both complete now.
                while !senders.is_empty() {
                    let Some(receiver) = receivers.pop_front() else {
                        break;
                    };
                    let (messages, bytes) = admit_batch(ledger, senders, &receiver, ctx);
                    if messages.is_empty() {
                        // The next payload is longer than this receiver
                        // takes inline: refused, the send still waits.
                        receiver.refuse(None, front_payload_len(senders), ctx.out);
                    } else {
                        ledger.hand_over(receiver, messages, bytes, ctx);
                    }
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn take_queued(&mut self, sequence: u64) -> Option<Message> {
        self.queue.take(sequence)
    }

    fn put_back(&mut self, message: Message, to_tail: bool) -> bool {
        self.queue.put_back(message, to_tail);
        true
    }

    fn queued_charges(&self) -> Box<dyn Iterator<Item = Charge> + '_> {
        Box::new(self.queue.charges())
    }

    fn queued_count(&self) -> usize {
        self.queue.len()
    }

    /// The queue from after `after`: found by a binary search while the
    /// queue is in sequence order, by a pass while a message that came
    /// back out of order is queued. A rendezvous (`zero`) queues nothing:
    /// the messages of waiting senders are not admitted yet (they have no
    /// sequence number), so a peek shows none of them.
    fn peek(
        &self,
        _viewer: ConnectionId,
        after: Option<u64>,
        limit: usize,
        _ledger: &Ledger,
    ) -> (Vec<Message>, bool) {
        if self.queue.is_unsorted() {
            page(after_in_order(self.queue.messages(), after), limit)
        } else {
            page(self.queue.messages_after(after), limit)
        }
    }

    fn waiting_receivers(&self) -> usize {
        self.receivers.len()
    }

    fn drain_receives(&mut self) -> Vec<WaitingReceive> {
        self.receivers.drain()
    }

    fn drain_queued(&mut self, _next_sequence: u64) -> Vec<Message> {
        self.queue.drain()
    }

    #[cfg(test)]
    fn check_invariants(
        &self,
        settings: &MailboxSettings,
        _: &Ledger,
        senders: &Line<WaitingSend>,
    ) -> u64 {
        let Self { queue, receivers } = self;
        let bytes = queue.check_invariants();
        assert!(
            queue.is_empty() || receivers.len() == 0,
            "receiver waits beside a message"
        );
        if !senders.is_empty() {
            match settings.capacity {
                Capacity::Zero => assert!(receivers.len() == 0),
                Capacity::Bounded(n) => assert!(queue.len() >= n as usize),
                Capacity::Unbounded => panic!("sender waits on unbounded"),
            }
        }
        receivers.check_order();
        bytes
    }
}
