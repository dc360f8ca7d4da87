//! Opens that wait for a mailbox to be created (`OpenMailbox` with a
//! wait): for each name not yet a mailbox, the requests waiting for it, in
//! arrival order.
//!
//! [`Openings`] owns those lines and nothing else: it never answers a
//! request. When a mailbox is created the core takes the name's line
//! ([`Openings::take`]) and answers each request there, with the rights of
//! that moment (`Core::opened`); a cancel, a timeout or a disconnect takes
//! one request out ([`Openings::leave`]).

use std::collections::HashMap;

use crate::line::Line;
use crate::Ticket;

/// The waiting opens, by the name they wait for.
#[derive(Debug, Default)]
pub(crate) struct Openings {
    lines: HashMap<String, Line<Ticket>>,
}

impl Openings {
    /// `ticket` waits for mailbox `name` to be created.
    pub fn wait(&mut self, name: &str, ticket: Ticket) {
        self.lines
            .entry(name.to_owned())
            .or_default()
            .push_back(ticket);
    }

    /// `ticket` no longer waits for `name` (a cancel, a timeout, a
    /// disconnect); a line left empty goes.
    pub fn leave(&mut self, name: &str, ticket: Ticket) {
        if let Some(line) = self.lines.get_mut(name) {
            line.remove(ticket);
            if line.is_empty() {
                self.lines.remove(name);
            }
        }
    }

    /// Mailbox `name` was created: every open that waited for it, in
    /// arrival order, to be answered now.
    pub fn take(&mut self, name: &str) -> Vec<Ticket> {
        self.lines
            .remove(name)
            .map(|mut line| line.drain().collect())
            .unwrap_or_default()
    }

    /// Empties every line (shutdown), returning the opens that waited.
    pub fn drain(&mut self) -> Vec<Ticket> {
        self.lines
            .drain()
            .flat_map(|(_, mut line)| line.drain().collect::<Vec<_>>())
            .collect()
    }

    /// How many opens wait, for all names.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.lines.values().map(Line::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnectionId;

    fn ticket(connection: u64, request: u64) -> Ticket {
        Ticket {
            connection: ConnectionId(connection),
            request,
        }
    }

    #[test]
    fn a_created_mailbox_takes_its_line_in_arrival_order_and_no_other() {
        let mut openings = Openings::default();
        openings.wait("jobs", ticket(1, 1));
        openings.wait("news", ticket(2, 1));
        openings.wait("jobs", ticket(3, 9));
        assert_eq!(openings.take("jobs"), [ticket(1, 1), ticket(3, 9)]);
        assert!(openings.take("jobs").is_empty());
        assert_eq!(openings.waiting(), 1);
    }

    #[test]
    fn an_open_that_leaves_is_not_answered_and_an_empty_line_goes() {
        let mut openings = Openings::default();
        openings.wait("jobs", ticket(1, 1));
        openings.wait("jobs", ticket(2, 1));
        openings.leave("jobs", ticket(1, 1));
        openings.leave("absent", ticket(1, 1));
        assert_eq!(openings.take("jobs"), [ticket(2, 1)]);
        openings.wait("news", ticket(1, 2));
        openings.leave("news", ticket(1, 2));
        assert!(openings.lines.is_empty());
        openings.wait("a", ticket(1, 3));
        openings.wait("b", ticket(1, 4));
        assert_eq!(openings.drain().len(), 2);
        assert_eq!(openings.waiting(), 0);
    }
}
