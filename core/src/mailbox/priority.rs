//! Priority: a round-robin queue (`round_robin.rs`) whose receivers are
//! served by their priority (higher first), then first come first served.
//!
//! Invariant: the line of receivers is in priority order.

use super::round_robin::{QueueLines, ReceiverLine};
use super::waiters::WaitingReceive;
use crate::line::RankedLine;
use crate::types::Ticket;

/// The lines of a priority mailbox.
pub(super) type PriorityLines = QueueLines<Box<RankedLine<WaitingReceive>>>;

/// Higher priority first, then first come.
impl ReceiverLine for Box<RankedLine<WaitingReceive>> {
    fn push(&mut self, receive: WaitingReceive) {
        RankedLine::push(self, receive.priority, receive);
    }

    fn pop_front(&mut self) -> Option<WaitingReceive> {
        RankedLine::pop_front(self)
    }

    fn contains(&self, ticket: Ticket) -> bool {
        RankedLine::contains(self, ticket)
    }

    fn remove(&mut self, ticket: Ticket) -> Option<WaitingReceive> {
        RankedLine::remove(self, ticket)
    }

    fn len(&self) -> usize {
        RankedLine::len(self)
    }

    fn drain(&mut self) -> Vec<WaitingReceive> {
        RankedLine::drain(self).collect()
    }

    #[cfg(test)]
    fn check_order(&self) {
        let receivers: Vec<&WaitingReceive> = RankedLine::iter(self).collect();
        for pair in receivers.windows(2) {
            assert!(pair[0].priority >= pair[1].priority, "priority order");
        }
    }
}
