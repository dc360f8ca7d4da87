//! Well-known names: a connection claims a name to be reachable by it
//! (`send --to worker`); a name has one owner at a time, and claimers that
//! chose to wait queue for it in order.
//!
//! [`NameRegistry`] owns the names and their queues and nothing else: it
//! knows connections only by id and never answers a request. What changes
//! hands comes back as a [`NameChange`], which the core acts on (the new
//! owner's wait ends, it is answered, its list of names grows), as
//! dbus-broker's name registry does.

use std::collections::BTreeMap;

use crate::line::Line;
use crate::{ConnectionId, Ticket};

/// One claimed name.
#[derive(Debug)]
pub(crate) struct NameEntry {
    pub owner: ConnectionId,
    /// Claims waiting for it, first come first served (any of them may
    /// leave at O(1) cost: a cancel, a timeout, a disconnect).
    pub queue: Line<Ticket>,
}

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The name was free and is the claimer's now.
    Claimed,
    /// The claimer owns it already.
    Owned,
    /// Another connection owns it.
    Taken { owner: ConnectionId },
}

/// A name that changed hands when its owner let it go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameChange {
    /// The name.
    pub name: String,
    /// Who held it.
    pub old_owner: ConnectionId,
    /// The waiting claim that holds it now (`None`: the name is free).
    pub new_owner: Option<Ticket>,
}

/// Every claimed name, ordered so that a listing's page starts where the
/// last one ended (`listing.rs`).
#[derive(Debug, Default)]
pub(crate) struct NameRegistry {
    names: BTreeMap<String, NameEntry>,
}

impl NameRegistry {
    /// The claimed names, in order.
    pub fn entries(&self) -> &BTreeMap<String, NameEntry> {
        &self.names
    }

    /// Who holds `name`, if anyone.
    pub fn owner(&self, name: &str) -> Option<ConnectionId> {
        self.names.get(name).map(|entry| entry.owner)
    }

    /// `claimer` claims `name`: it gets it if it is free.
    pub fn claim(&mut self, name: &str, claimer: ConnectionId) -> Claim {
        match self.names.get(name) {
            None => {
                self.names.insert(
                    name.to_owned(),
                    NameEntry {
                        owner: claimer,
                        queue: Line::default(),
                    },
                );
                Claim::Claimed
            }
            Some(entry) if entry.owner == claimer => Claim::Owned,
            Some(entry) => Claim::Taken { owner: entry.owner },
        }
    }

    /// Queues the waiting claim `ticket` for a name someone holds.
    pub fn queue(&mut self, name: &str, ticket: Ticket) {
        if let Some(entry) = self.names.get_mut(name) {
            entry.queue.push_back(ticket);
        }
    }

    /// Takes a waiting claim out of a name's queue.
    pub fn leave_queue(&mut self, name: &str, ticket: Ticket) {
        if let Some(entry) = self.names.get_mut(name) {
            entry.queue.remove(ticket);
        }
    }

    /// The owner of `name` let it go: the first queued claimer whose
    /// connection is still `live` gets it, or it is free. `None` when no
    /// one held it.
    pub fn release(
        &mut self,
        name: &str,
        mut live: impl FnMut(ConnectionId) -> bool,
    ) -> Option<NameChange> {
        let entry = self.names.get_mut(name)?;
        let old_owner = entry.owner;
        while let Some(next) = entry.queue.pop_front() {
            if !live(next.connection) {
                continue;
            }
            entry.owner = next.connection;
            return Some(NameChange {
                name: name.to_owned(),
                old_owner,
                new_owner: Some(next),
            });
        }
        self.names.remove(name);
        Some(NameChange {
            name: name.to_owned(),
            old_owner,
            new_owner: None,
        })
    }

    /// Empties every queue (shutdown), returning the claims that waited.
    pub fn drain_queues(&mut self) -> Vec<Ticket> {
        self.names
            .values_mut()
            .flat_map(|entry| entry.queue.drain())
            .collect()
    }

    /// How many claims wait, in all queues.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.names.values().map(|entry| entry.queue.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::ticket;

    #[test]
    fn a_free_name_goes_to_its_first_claimer_and_stays_with_it() {
        let mut names = NameRegistry::default();
        assert_eq!(names.claim("worker", ConnectionId(1)), Claim::Claimed);
        assert_eq!(names.claim("worker", ConnectionId(1)), Claim::Owned);
        assert_eq!(
            names.claim("worker", ConnectionId(2)),
            Claim::Taken {
                owner: ConnectionId(1)
            }
        );
        assert_eq!(names.owner("worker"), Some(ConnectionId(1)));
        assert_eq!(names.owner("other"), None);
    }

    #[test]
    fn a_released_name_passes_to_the_first_live_queued_claim() {
        let mut names = NameRegistry::default();
        names.claim("worker", ConnectionId(1));
        names.queue("worker", ticket(2, 7));
        names.queue("worker", ticket(3, 8));
        names.queue("worker", ticket(4, 9));
        // Connection 2 is gone: its claim is skipped.
        let change = names.release("worker", |c| c != ConnectionId(2));
        assert_eq!(
            change,
            Some(NameChange {
                name: "worker".to_owned(),
                old_owner: ConnectionId(1),
                new_owner: Some(ticket(3, 8)),
            })
        );
        assert_eq!(names.owner("worker"), Some(ConnectionId(3)));
        assert_eq!(names.queued(), 1);
    }

    #[test]
    fn a_released_name_nobody_waits_for_is_free() {
        let mut names = NameRegistry::default();
        names.claim("worker", ConnectionId(1));
        names.queue("worker", ticket(2, 7));
        names.leave_queue("worker", ticket(2, 7));
        let change = names.release("worker", |_| true);
        assert_eq!(
            change.map(|change| (change.old_owner, change.new_owner)),
            Some((ConnectionId(1), None))
        );
        assert_eq!(names.owner("worker"), None);
        assert!(names.entries().is_empty());
        assert_eq!(names.release("worker", |_| true), None);
    }

    #[test]
    fn draining_the_queues_returns_every_waiting_claim_and_keeps_the_owners() {
        let mut names = NameRegistry::default();
        names.claim("a", ConnectionId(1));
        names.claim("b", ConnectionId(2));
        names.queue("a", ticket(3, 1));
        names.queue("b", ticket(4, 2));
        names.queue("b", ticket(5, 3));
        let mut drained = names.drain_queues();
        drained.sort();
        assert_eq!(drained, [ticket(3, 1), ticket(4, 2), ticket(5, 3)]);
        assert_eq!(names.queued(), 0);
        assert_eq!(names.owner("b"), Some(ConnectionId(2)));
    }
}
