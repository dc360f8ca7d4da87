//! The line of receivers of a round-robin mailbox: receivers take turns,
//! one message (or one batch) per turn, whatever number of receives each
//! keeps waiting.
//!
//! A receiver is a connection. Served request by request, a connection
//! that keeps sixteen receives posted would take sixteen turns in a row
//! and one that keeps two would wait behind them; and a consumer whose
//! process is off its CPU when its turn would come has no receive waiting
//! and loses it. Served connection by connection, a consumer that keeps a
//! few receives posted never loses its turn, and turns go round in the
//! order the connections started waiting.
//!
//! Layout: `turns` holds at most one receive per connection (its turn, in
//! rotation order, a [`Line`] with its O(1) removal); a connection's other
//! receives wait in `more`, oldest first. When a turn is served, the
//! connection's next receive joins the back of `turns`. With one receive
//! per connection (the usual case) this is exactly a [`Line`]: `more` is
//! never made and nothing is hashed.
//!
//! What it deliberately does not do: rank receives (priority mailboxes keep
//! a `RankedLine`) or decide how many messages a turn takes (the pump).

use std::collections::{HashMap, HashSet};

use super::waiters::WaitingReceive;
use crate::line::Line;
use crate::types::{ConnectionId, Ticket};

/// Turns kept without a set of holders: a scan of this many is cheaper
/// than hashing, and a short line costs no table.
const FEW: usize = 8;

/// Receives waiting on a round-robin queue, served a connection at a time.
#[derive(Debug, Default)]
pub(crate) struct TurnLine {
    /// One receive per connection that waits: its turn.
    turns: Line<WaitingReceive>,
    /// What only a crowded line needs (a connection waiting with two
    /// receives, or more than [`FEW`] turns): made on first use and given
    /// back when no longer needed, so the many mailboxes with one receiver
    /// pay one pointer over a plain [`Line`].
    crowd: Option<Box<Crowd>>,
}

#[derive(Debug, Default)]
struct Crowd {
    /// The other receives of connections that hold a turn, oldest first
    /// (each a [`Line`], so one connection's 50,000 receives still leave
    /// one by one at O(1)).
    more: HashMap<ConnectionId, Line<WaitingReceive>>,
    /// Receives in `more`.
    extra: usize,
    /// The connections that hold a turn, kept while `turns` is longer than
    /// [`FEW`].
    holders: Option<HashSet<ConnectionId>>,
}

impl TurnLine {
    /// Whether `connection` holds a turn.
    fn holds_turn(&self, connection: ConnectionId) -> bool {
        match self.crowd.as_ref().and_then(|c| c.holders.as_ref()) {
            Some(holders) => holders.contains(&connection),
            None => self
                .turns
                .iter()
                .any(|receive| receive.ticket.connection == connection),
        }
    }

    fn crowd(&mut self) -> &mut Crowd {
        self.crowd.get_or_insert_with(Default::default)
    }

    /// Gives the crowd back once nothing in it is needed.
    fn tidy(&mut self) {
        let turns_empty = self.turns.is_empty();
        if let Some(crowd) = &mut self.crowd {
            if turns_empty {
                crowd.holders = None;
            }
            if crowd.extra == 0 && crowd.holders.is_none() {
                self.crowd = None;
            }
        }
    }

    /// Gives `receive` a turn at the back.
    fn add_turn(&mut self, receive: WaitingReceive) {
        let connection = receive.ticket.connection;
        self.turns.push_back(receive);
        let long = self.turns.len() > FEW;
        match self.crowd.as_mut().and_then(|c| c.holders.as_mut()) {
            Some(holders) => {
                holders.insert(connection);
            }
            None if long => {
                let holders = self.turns.iter().map(|r| r.ticket.connection).collect();
                self.crowd().holders = Some(holders);
            }
            None => {}
        }
    }

    /// No turn of `connection` is left in `turns`.
    fn forget_holder(&mut self, connection: ConnectionId) {
        if let Some(holders) = self.crowd.as_mut().and_then(|c| c.holders.as_mut()) {
            holders.remove(&connection);
        }
    }

    /// Takes `connection`'s oldest receive out of `more`.
    fn next_of(&mut self, connection: ConnectionId) -> Option<WaitingReceive> {
        let crowd = self.crowd.as_mut()?;
        let waiting = crowd.more.get_mut(&connection)?;
        let next = waiting.pop_front();
        if waiting.is_empty() {
            crowd.more.remove(&connection);
        }
        if next.is_some() {
            crowd.extra -= 1;
        }
        next
    }

    /// `connection`'s turn was served: its next receive, if any, takes a
    /// turn at the back.
    fn turn_ended(&mut self, connection: ConnectionId) {
        match self.next_of(connection) {
            // Still a holder: only its place in the rotation changes.
            Some(next) => self.turns.push_back(next),
            None => self.forget_holder(connection),
        }
        self.tidy();
    }

    pub(crate) fn push(&mut self, receive: WaitingReceive) {
        let connection = receive.ticket.connection;
        if self.holds_turn(connection) {
            let crowd = self.crowd();
            crowd.more.entry(connection).or_default().push_back(receive);
            crowd.extra += 1;
        } else {
            self.add_turn(receive);
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<WaitingReceive> {
        let receive = self.turns.pop_front()?;
        self.turn_ended(receive.ticket.connection);
        Some(receive)
    }

    pub(crate) fn contains(&self, ticket: Ticket) -> bool {
        self.turns.contains(ticket)
            || self.crowd.as_ref().is_some_and(|crowd| {
                crowd
                    .more
                    .get(&ticket.connection)
                    .is_some_and(|waiting| waiting.contains(ticket))
            })
    }

    pub(crate) fn remove(&mut self, ticket: Ticket) -> Option<WaitingReceive> {
        if self.turns.contains(ticket) {
            // The connection still waits: its next receive, if any, keeps
            // its place in the rotation.
            let receive = match self.next_of(ticket.connection) {
                Some(next) => self.turns.replace(ticket, next).ok(),
                None => {
                    self.forget_holder(ticket.connection);
                    self.turns.remove(ticket)
                }
            };
            self.tidy();
            return receive;
        }
        let crowd = self.crowd.as_mut()?;
        let waiting = crowd.more.get_mut(&ticket.connection)?;
        let receive = waiting.remove(ticket);
        if receive.is_some() {
            crowd.extra -= 1;
        }
        if waiting.is_empty() {
            crowd.more.remove(&ticket.connection);
        }
        self.tidy();
        receive
    }

    pub(crate) fn len(&self) -> usize {
        self.turns.len() + self.crowd.as_ref().map_or(0, |crowd| crowd.extra)
    }

    /// Every receive: each turn in rotation order, followed by the other
    /// receives of its connection.
    pub(crate) fn drain(&mut self) -> Vec<WaitingReceive> {
        let mut crowd = self.crowd.take();
        let mut all = Vec::with_capacity(self.len());
        for receive in self.turns.drain() {
            let connection = receive.ticket.connection;
            all.push(receive);
            if let Some(mut waiting) = crowd.as_mut().and_then(|c| c.more.remove(&connection)) {
                all.extend(waiting.drain());
            }
        }
        all
    }

    /// Panics unless every connection holds at most one turn, every
    /// receive in `more` belongs to a holder, and the counts agree.
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let mut seen = HashSet::new();
        for receive in self.turns.iter() {
            assert!(
                seen.insert(receive.ticket.connection),
                "a connection holds two turns"
            );
        }
        let Some(crowd) = &self.crowd else {
            return;
        };
        if let Some(holders) = &crowd.holders {
            assert_eq!(*holders, seen, "the set of holders is stale");
        }
        assert!(
            crowd.extra > 0 || crowd.holders.is_some(),
            "an empty crowd is kept"
        );
        let mut extra = 0;
        for (connection, waiting) in &crowd.more {
            assert!(seen.contains(connection), "receives wait without a turn");
            assert!(!waiting.is_empty(), "an empty entry is kept");
            assert!(waiting.iter().all(|r| r.ticket.connection == *connection));
            extra += waiting.len();
        }
        assert_eq!(extra, crowd.extra, "the count of other receives");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(connection: u64, request: u64) -> WaitingReceive {
        WaitingReceive::plain(
            Ticket {
                connection: ConnectionId(connection),
                request,
            },
            Some(64),
        )
    }

    fn served(line: &mut TurnLine) -> Vec<(u64, u64)> {
        let mut order = Vec::new();
        while let Some(r) = line.pop_front() {
            line.check();
            order.push((r.ticket.connection.0, r.ticket.request));
        }
        order
    }

    #[test]
    fn a_line_costs_one_pointer_over_a_plain_line() {
        // Round-robin mailboxes are the many idle ones (conns: 10,000).
        assert_eq!(
            std::mem::size_of::<TurnLine>(),
            std::mem::size_of::<Line<WaitingReceive>>() + std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn connections_take_turns_whatever_each_keeps_waiting() {
        let mut line = TurnLine::default();
        for request in 1..=3 {
            line.push(receive(1, request));
        }
        line.push(receive(2, 1));
        line.push(receive(3, 1));
        line.push(receive(3, 2));
        line.check();
        assert_eq!(line.len(), 6);
        assert_eq!(
            served(&mut line),
            [(1, 1), (2, 1), (3, 1), (1, 2), (3, 2), (1, 3)]
        );
        assert_eq!(line.len(), 0);
    }

    #[test]
    fn one_receive_per_connection_is_first_come_first_served() {
        let mut line = TurnLine::default();
        for connection in (1..=20).rev() {
            line.push(receive(connection, 1));
        }
        line.check();
        let order: Vec<u64> = served(&mut line).into_iter().map(|(c, _)| c).collect();
        assert_eq!(order, (1..=20).rev().collect::<Vec<_>>());
        assert!(line.crowd.is_none());
    }

    #[test]
    fn a_withdrawn_turn_passes_to_the_connections_next_receive_in_its_place() {
        let mut line = TurnLine::default();
        line.push(receive(1, 1));
        line.push(receive(1, 2));
        line.push(receive(2, 1));
        assert!(line.contains(receive(1, 2).ticket));
        let withdrawn = line.remove(receive(1, 1).ticket).map(|r| r.ticket);
        assert_eq!(withdrawn, Some(receive(1, 1).ticket));
        line.check();
        assert_eq!(line.remove(receive(1, 1).ticket), None);
        assert_eq!(served(&mut line), [(1, 2), (2, 1)]);
    }

    #[test]
    fn a_long_line_keeps_places_through_its_index() {
        let mut line = TurnLine::default();
        for connection in 0..20 {
            line.push(receive(connection, 1));
        }
        line.push(receive(5, 2));
        assert!(line.remove(receive(5, 1).ticket).is_some());
        line.check();
        assert!(line.contains(receive(5, 2).ticket));
        let order: Vec<(u64, u64)> = served(&mut line);
        assert_eq!(order[5], (5, 2));
        assert_eq!(order.len(), 20);
    }

    #[test]
    fn a_waiting_receive_leaves_from_the_middle() {
        let mut line = TurnLine::default();
        for request in 1..=4 {
            line.push(receive(7, request));
        }
        assert_eq!(
            line.remove(receive(7, 3).ticket).map(|r| r.ticket.request),
            Some(3)
        );
        line.check();
        assert!(!line.contains(receive(7, 3).ticket));
        assert_eq!(served(&mut line), [(7, 1), (7, 2), (7, 4)]);
        assert!(line.crowd.is_none());
    }

    #[test]
    fn one_connections_many_receives_are_found_and_leave_without_a_scan() {
        let mut line = TurnLine::default();
        let count = 20_000;
        for request in 0..count {
            line.push(receive(1, request));
        }
        let before = crate::line::steps();
        for request in 0..count {
            assert!(line.contains(receive(1, request).ticket));
        }
        for request in (0..count).rev() {
            assert!(line.remove(receive(1, request).ticket).is_some());
        }
        let steps = crate::line::steps() - before;
        assert!(steps < 20 * count, "{steps} slots looked at");
        assert_eq!(line.len(), 0);
        line.check();
    }

    #[test]
    fn many_connections_keep_a_set_of_holders_that_stays_true() {
        let mut line = TurnLine::default();
        for connection in 0..40 {
            line.push(receive(connection, 1));
            line.push(receive(connection, 2));
        }
        line.check();
        assert!(line.crowd.as_ref().is_some_and(|c| c.holders.is_some()));
        for connection in (0..40).step_by(3) {
            assert!(line.remove(receive(connection, 1).ticket).is_some());
            line.check();
        }
        let drained = line.drain();
        assert_eq!(drained.len(), 80 - 14);
        assert_eq!(line.len(), 0);
        line.check();
    }
}
