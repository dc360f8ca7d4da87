//! The core's timers: deadlines of waiting requests, expiries of messages
//! with a time-to-live and wakes mailboxes asked for, each a heap the
//! caller learns the earliest time of ([`Core::next_deadline`]) and fires
//! ([`Core::expire`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::mailbox::Context;
use crate::types::{Place, Ticket};
use crate::{error, Clock, Core, ErrorKind, Outcome};

/// Below this many deadlines the heap is never swept.
const MIN_DEADLINES_BEFORE_COMPACTING: usize = 1024;

/// The three heaps of times, earliest first.
#[derive(Debug)]
pub(crate) struct Timers {
    /// Deadlines of waiting requests; those of waits that ended otherwise
    /// stay until they pass or the heap is compacted.
    deadlines: BinaryHeap<Reverse<Deadline>>,
    /// Times-to-live of queued messages.
    expiries: BinaryHeap<Reverse<Expiry>>,
    /// Times mailboxes asked to be woken at.
    wakes: BinaryHeap<Reverse<Wake>>,
    /// The serial of the next wait (see `Waiting::serial`).
    next_serial: u64,
    /// Heap size at which stale deadlines are swept out next.
    compact_deadlines_at: usize,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            deadlines: BinaryHeap::new(),
            expiries: BinaryHeap::new(),
            wakes: BinaryHeap::new(),
            next_serial: 0,
            compact_deadlines_at: MIN_DEADLINES_BEFORE_COMPACTING,
        }
    }
}

impl Timers {
    /// A serial for a new wait of `ticket` (see `Waiting::serial`), with
    /// its deadline if it has one.
    pub fn add_wait(&mut self, ticket: Ticket, deadline: Option<Instant>) -> u64 {
        let serial = self.next_serial;
        self.next_serial += 1;
        if let Some(at) = deadline {
            self.deadlines
                .push(Reverse(Deadline { at, serial, ticket }));
        }
        serial
    }

    /// Expires message `sequence` of `place` at `at`.
    pub fn add_expiry(&mut self, at: Instant, place: Place, sequence: u64) {
        self.expiries.push(Reverse(Expiry {
            at,
            place,
            sequence,
        }));
    }

    /// Wakes the mailbox at `place` at `at`.
    pub fn add_wake(&mut self, at: Instant, place: Place) {
        self.wakes.push(Reverse(Wake { at, place }));
    }

    /// Whether a message's time-to-live is up at `now`.
    #[inline]
    pub fn expiry_due(&self, now: Instant) -> bool {
        self.expiries
            .peek()
            .is_some_and(|Reverse(expiry)| expiry.at <= now)
    }

    /// Whether a mailbox asked to be woken at or before `now`.
    #[inline]
    pub fn wake_due(&self, now: Instant) -> bool {
        self.wakes
            .peek()
            .is_some_and(|Reverse(wake)| wake.at <= now)
    }
}

/// When a waiting request times out.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: Instant,
    serial: u64,
    ticket: Ticket,
}

/// When a queued message's time-to-live is up.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Expiry {
    at: Instant,
    place: Place,
    sequence: u64,
}

/// A time a mailbox asked to be woken at (`Effect::Wake`): at most one
/// live per mailbox, plus stale ones that do nothing when they fire.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Wake {
    at: Instant,
    place: Place,
}

impl Core {
    /// Whether `deadline` is that of a wait that still waits (not one that
    /// ended otherwise, or an earlier wait with the same request id).
    fn is_live(&self, deadline: &Deadline) -> bool {
        self.connections
            .get(&deadline.ticket.connection)
            .and_then(|state| state.waiting.get(&deadline.ticket.request))
            .is_some_and(|waiting| waiting.serial == deadline.serial)
    }

    /// The earliest deadline of a waiting operation or of a message's
    /// time-to-live, if any.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let mut next = None;
        while let Some(Reverse(deadline)) = self.timers.deadlines.peek() {
            if self.is_live(deadline) {
                next = Some(deadline.at);
                break;
            }
            self.timers.deadlines.pop();
        }
        let expiry = self.timers.expiries.peek().map(|Reverse(expiry)| expiry.at);
        let wake = self.timers.wakes.peek().map(|Reverse(wake)| wake.at);
        [next, expiry, wake].into_iter().flatten().min()
    }

    /// Fails every waiting operation whose deadline is at or before
    /// `clock.now` with `Timeout` (a timed-out send is withdrawn: it was
    /// never admitted, so it can never be delivered later), and retires
    /// every queued message whose time-to-live is up.
    pub fn expire(&mut self, clock: &Clock, out: &mut Outcome) {
        self.expire_messages(clock, out);
        self.wake_mailboxes(clock, out);
        while let Some(Reverse(deadline)) = self.timers.deadlines.peek() {
            if deadline.at > clock.now {
                break;
            }
            let Some(Reverse(deadline)) = self.timers.deadlines.pop() else {
                break;
            };
            if !self.is_live(&deadline) {
                continue;
            }
            let mark = out.replies.len();
            self.end_wait(
                deadline.ticket,
                // `end_wait` says what the timeout means for what waited.
                error(ErrorKind::Timeout, "the wait ran out"),
                clock,
                out,
            );
            self.carry_out(clock, out);
            self.settle(out, mark, None);
        }
    }

    pub(crate) fn expire_messages(&mut self, clock: &Clock, out: &mut Outcome) {
        let mark = out.replies.len();
        while let Some(Reverse(expiry)) = self.timers.expiries.peek() {
            if expiry.at > clock.now {
                break;
            }
            let Some(Reverse(expiry)) = self.timers.expiries.pop() else {
                break;
            };
            let mut ctx = Context {
                out,
                budget: &mut self.budget,
                clock,
                names: &self.names,
            };
            if let Some(mailbox) = self.places.get_mut(&expiry.place) {
                mailbox.expire(expiry.sequence, &mut ctx);
            }
        }
        self.carry_out(clock, out);
        self.settle(out, mark, None);
    }

    /// Wakes every mailbox whose asked-for time has come (acknowledgement
    /// deadlines, slow subscribers; see `Mailbox::wake`).
    pub(crate) fn wake_mailboxes(&mut self, clock: &Clock, out: &mut Outcome) {
        let mark = out.replies.len();
        // Only the wakes due when this starts: a mailbox asks for its next
        // one later than now, but even if one asked for now, this call
        // would end (and the timer fire again) rather than spin.
        let mut due = Vec::new();
        while self.timers.wake_due(clock.now) {
            if let Some(Reverse(wake)) = self.timers.wakes.pop() {
                due.push(wake);
            }
        }
        for wake in due {
            let mut ctx = Context {
                out,
                budget: &mut self.budget,
                clock,
                names: &self.names,
            };
            if let Some(mailbox) = self.places.get_mut(&wake.place) {
                mailbox.wake(wake.at, &mut ctx);
            }
            self.carry_out(clock, out);
        }
        self.settle(out, mark, None);
    }

    /// Sweeps the deadlines of waits that ended otherwise out of the heap.
    pub(crate) fn compact_deadlines(&mut self) {
        // Deadlines of waits that ended otherwise stay in the heap until they
        // pass; rebuild it each time it doubles past what was live at the
        // last rebuild, so it stays proportional to the waits that exist at
        // amortised constant cost (counting the waits on every request would
        // cost a pass over all connections).
        if self.timers.deadlines.len() > self.timers.compact_deadlines_at {
            let live: Vec<_> = std::mem::take(&mut self.timers.deadlines)
                .into_iter()
                .filter(|Reverse(d)| self.is_live(d))
                .collect();
            self.timers.compact_deadlines_at =
                (2 * live.len()).max(MIN_DEADLINES_BEFORE_COMPACTING);
            self.timers.deadlines = live.into();
        }
    }
}
