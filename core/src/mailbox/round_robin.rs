//! Round-robin: one queue, one line of receivers, first come first served;
//! each message goes to one receiver, the one at the front of the line. On
//! `zero` (a rendezvous) nothing is queued: messages go straight from the
//! waiting senders to the waiting receiver, and both complete at once.
//!
//! The queue's rules are written once, generic over the line of receivers
//! ([`ReceiverLine`]): a plain [`Line`] here, a ranked line for priority
//! mailboxes (`priority.rs`).
//!
//! Invariants: receivers wait only while the queue is empty; senders wait
//! only while the queue is full (on `zero`: while no receiver waits).

use std::collections::VecDeque;

use mailbox_proto::{BrokerError, Capacity, MailboxSettings, Message};

use super::batch::{admit_batch, after_in_order, batch_len, page};
use super::ledger::Ledger;
use super::policy::{room, DeliveryRules};
use super::waiters::{Context, WaitingReceive, WaitingSend};
use crate::line::{step, Line};
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

/// First come, first served.
impl ReceiverLine for Line<WaitingReceive> {
    #[inline]
    fn push(&mut self, receive: WaitingReceive) {
        Line::push_back(self, receive);
    }

    #[inline]
    fn pop_front(&mut self) -> Option<WaitingReceive> {
        Line::pop_front(self)
    }

    #[inline]
    fn contains(&self, ticket: Ticket) -> bool {
        Line::contains(self, ticket)
    }

    #[inline]
    fn remove(&mut self, ticket: Ticket) -> Option<WaitingReceive> {
        Line::remove(self, ticket)
    }

    #[inline]
    fn len(&self) -> usize {
        Line::len(self)
    }

    #[inline]
    fn drain(&mut self) -> Vec<WaitingReceive> {
        Line::drain(self).collect()
    }

    #[cfg(test)]
    fn check_order(&self) {}
}

/// A queue of messages and a line of receivers.
#[derive(Debug, Default)]
pub(super) struct QueueLines<R> {
    queue: VecDeque<Message>,
    receivers: R,
    /// A message came back out of sequence order (a nack to the tail,
    /// returns in another order): until the queue empties, finding a
    /// message by its sequence number takes a pass instead of a binary
    /// search.
    unsorted: bool,
}

/// The lines of a round-robin mailbox.
pub(super) type RoundRobinLines = QueueLines<Line<WaitingReceive>>;

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
        let Self {
            queue,
            receivers,
            unsorted,
        } = self;
        loop {
            let space = room(capacity, queue.len());
            let mut moved = ledger.admit_queued(senders, space, ctx, |m| queue.push_back(m));
            while !queue.is_empty() {
                let Some(receiver) = receivers.pop_front() else {
                    break;
                };
                let take = batch_len(&receiver, queue.iter());
                ledger.hand_over_front(receiver, queue, take, ctx);
                moved = true;
            }
            if queue.is_empty() {
                // Whatever came back out of order has gone: a peek finds
                // its place by a binary search again.
                *unsorted = false;
            }
            if capacity == Capacity::Zero {
                // Rendezvous: messages go straight from waiting senders to
                // the waiting receiver, and both complete now.
                while !senders.is_empty() {
                    let Some(receiver) = receivers.pop_front() else {
                        break;
                    };
                    let (messages, bytes) = admit_batch(ledger, senders, &receiver, ctx);
                    ledger.hand_over(receiver, messages, bytes, ctx);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn take_queued(&mut self, sequence: u64) -> Option<Message> {
        let queue = &mut self.queue;
        if queue.is_empty() {
            self.unsorted = false;
        }
        if self.unsorted {
            let index = queue.iter().position(|m| m.metadata.sequence == sequence)?;
            return queue.remove(index);
        }
        // In sequence order: an expiry of a message already delivered (the
        // common case) costs a binary search.
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

    fn put_back(&mut self, message: Message, to_tail: bool) -> bool {
        let sequence = message.metadata.sequence;
        if to_tail {
            if self
                .queue
                .back()
                .is_some_and(|m| m.metadata.sequence > sequence)
            {
                self.unsorted = true;
            }
            self.queue.push_back(message);
        } else {
            if self
                .queue
                .front()
                .is_some_and(|m| m.metadata.sequence < sequence)
            {
                self.unsorted = true;
            }
            self.queue.push_front(message);
        }
        true
    }

    fn queued_messages(&self) -> Box<dyn Iterator<Item = &Message> + '_> {
        Box::new(self.queue.iter())
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
        match after {
            Some(after) if self.unsorted => {
                page(after_in_order(self.queue.iter(), Some(after)), limit)
            }
            _ => {
                let start = after.map_or(0, |after| {
                    self.queue.partition_point(|m| {
                        step(1);
                        m.metadata.sequence <= after
                    })
                });
                page(self.queue.range(start..), limit)
            }
        }
    }

    fn waiting_receivers(&self) -> usize {
        self.receivers.len()
    }

    fn drain_receives(&mut self) -> Vec<WaitingReceive> {
        self.receivers.drain()
    }

    fn drain_queued(&mut self, _next_sequence: u64) -> Vec<Message> {
        self.queue.drain(..).collect()
    }

    #[cfg(test)]
    fn check_invariants(
        &self,
        settings: &MailboxSettings,
        _: &Ledger,
        senders: &Line<WaitingSend>,
    ) -> u64 {
        let Self {
            queue,
            receivers,
            unsorted,
        } = self;
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
        if !senders.is_empty() {
            match settings.capacity {
                Capacity::Zero => assert!(receivers.len() == 0),
                Capacity::Bounded(n) => assert!(queue.len() >= n as usize),
                Capacity::Unbounded => panic!("sender waits on unbounded"),
            }
        }
        receivers.check_order();
        queue.iter().map(|m| m.payload.len() as u64).sum()
    }
}
