//! The invariants every test checks after every step.

use std::collections::HashMap;

use crate::{Core, Usage};

impl Core {
    /// Checks every invariant of every mailbox and of the budget.
    pub(crate) fn check_invariants(&self) {
        let mut held = 0;
        let mut messages = 0;
        let mut waits = 0;
        let mut watched = std::collections::HashSet::new();
        let mut sending = std::collections::HashSet::new();
        let mut charges = HashMap::new();
        for mailbox in self.places.all() {
            mailbox.charges(&mut charges);
            mailbox.check_invariants();
            let (in_flight_bytes, in_flight) = mailbox.in_flight_bytes();
            held += mailbox.queued_bytes() + mailbox.waiting_payload_bytes() + in_flight_bytes;
            messages +=
                mailbox.info().queued_messages + mailbox.waiting_message_count() + in_flight;
            let info = mailbox.info();
            waits += (info.waiting_senders + info.waiting_receivers) as usize;
            watched.extend(mailbox.watched_tickets());
            sending.extend(mailbox.sender_tickets());
        }
        // A region's bytes are charged to its owner for its whole life.
        for region in self.regions.by_name().values() {
            held += region.size;
            let usage: &mut Usage = charges.entry(region.permissions.owner).or_default();
            usage.bytes += region.size;
        }
        assert_eq!(
            held,
            self.budget.held(),
            "budget out of step with the mailboxes and regions"
        );
        assert_eq!(
            messages,
            self.budget.messages(),
            "message count out of step with the mailboxes"
        );
        charges.retain(|_, usage: &mut Usage| *usage != Usage::default());
        let usages: HashMap<u32, Usage> = self.budget.usages().collect();
        assert_eq!(
            charges, usages,
            "per-uid charges out of step with the mailboxes"
        );
        waits += watched.len();
        waits += self.names.queued();
        waits += self.openings.waiting();
        // A call waits as its request's send until that is admitted (a full
        // mailbox, a zero-capacity inbox), then as a watch or on its own.
        waits += self
            .calls
            .open_calls()
            .filter(|call| !watched.contains(&call.caller) && !sending.contains(&call.caller))
            .count();
        assert_eq!(
            waits,
            self.waiting_count(),
            "waits out of step with the mailboxes"
        );
        for (name, entry) in self.names.entries() {
            let owner = self.connections.get(&entry.owner);
            assert!(
                owner.is_some_and(|c| c.names.contains(name)),
                "name {name} owned by a connection that does not list it"
            );
        }
    }
}
