//! Well-known names: a connection claims a name to be reachable by it
//! (`send --to worker`); a name has one owner at a time, and claimers that
//! chose to wait queue for it in order.
//!
//! [`NameRegistry`] owns the names and their queues and nothing else: it
//! knows connections only by id and never answers a request. What changes
//! hands comes back as a [`NameChange`], which the core acts on (the new
//! owner's wait ends, it is answered, its list of names grows), as
//! dbus-broker's name registry does.
//!
//! It also keeps, per connection, the names it holds as one shared list
//! ([`HeldNames`]): an inbox stamps each message it accepts with its
//! sender's list (one pointer), so that a receive from a name takes what
//! was sent by whoever held the name when it was sent (`mailbox/inbox.rs`).
//! A connection holds at most [`MAX_NAMES_PER_CONNECTION`] names, counting
//! its queued claims, which bounds what an inbox indexes per message.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::line::Line;
use crate::types::ConnectionMap;
use crate::{ConnectionId, Ticket};

/// The names one connection holds at one moment, shared by the messages
/// an inbox accepted from it then (a new list is made when they change).
pub(crate) type HeldNames = Arc<[Arc<str>]>;

/// How many names one connection may hold, its queued claims included:
/// names are few per process, and each message an inbox accepts is
/// indexed under every name its sender holds.
pub const MAX_NAMES_PER_CONNECTION: usize = 32;

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
    /// The names each connection that holds any holds.
    held: ConnectionMap<HeldNames>,
    /// How many claims each connection has queued, per name.
    queued_claims: ConnectionMap<BTreeMap<String, usize>>,
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

    /// The names `connection` holds (`None`: none).
    pub fn held_by(&self, connection: ConnectionId) -> Option<&HeldNames> {
        self.held.get(&connection)
    }

    /// Whether `connection` may claim `name`: it holds or waits for it
    /// already, or for fewer than [`MAX_NAMES_PER_CONNECTION`] names.
    pub fn may_claim(&self, connection: ConnectionId, name: &str) -> bool {
        let held = self.held.get(&connection);
        let queued = self.queued_claims.get(&connection);
        held.is_some_and(|held| held.iter().any(|n| &**n == name))
            || queued.is_some_and(|queued| queued.contains_key(name))
            || held.map_or(0, |held| held.len()) + queued.map_or(0, BTreeMap::len)
                < MAX_NAMES_PER_CONNECTION
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
                self.gain(claimer, name);
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
            let claims = self.queued_claims.entry(ticket.connection).or_default();
            match claims.get_mut(name) {
                Some(count) => *count += 1,
                None => {
                    claims.insert(name.to_owned(), 1);
                }
            }
        }
    }

    /// Takes a waiting claim out of a name's queue.
    pub fn leave_queue(&mut self, name: &str, ticket: Ticket) {
        if let Some(entry) = self.names.get_mut(name) {
            if entry.queue.remove(ticket).is_some() {
                self.unqueued(ticket.connection, name);
            }
        }
    }

    /// One claim of `connection` left the queue of `name`.
    fn unqueued(&mut self, connection: ConnectionId, name: &str) {
        let Some(claims) = self.queued_claims.get_mut(&connection) else {
            return;
        };
        if let Some(count) = claims.get_mut(name) {
            *count -= 1;
            if *count == 0 {
                claims.remove(name);
            }
        }
        if claims.is_empty() {
            self.queued_claims.remove(&connection);
        }
    }

    /// `connection` holds `name` now: a new list of its names.
    fn gain(&mut self, connection: ConnectionId, name: &str) {
        let mut names: Vec<Arc<str>> = self
            .held
            .get(&connection)
            .map(|held| held.to_vec())
            .unwrap_or_default();
        if names.iter().any(|n| &**n == name) {
            return;
        }
        names.push(Arc::from(name));
        self.held.insert(connection, names.into());
    }

    /// `connection` no longer holds `name`: a new list of its names, or
    /// none. The messages stamped with the old list keep it.
    fn lose(&mut self, connection: ConnectionId, name: &str) {
        let Some(held) = self.held.get(&connection) else {
            return;
        };
        let names: Vec<Arc<str>> = held.iter().filter(|n| &***n != name).cloned().collect();
        if names.is_empty() {
            self.held.remove(&connection);
        } else {
            self.held.insert(connection, names.into());
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
        let mut new_owner = None;
        let mut left = Vec::new();
        while let Some(next) = entry.queue.pop_front() {
            left.push(next.connection);
            if live(next.connection) {
                entry.owner = next.connection;
                new_owner = Some(next);
                break;
            }
        }
        for connection in left {
            self.unqueued(connection, name);
        }
        self.lose(old_owner, name);
        if let Some(next) = new_owner {
            self.gain(next.connection, name);
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
        self.queued_claims.clear();
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

    fn held(names: &NameRegistry, connection: u64) -> Vec<String> {
        let mut held: Vec<String> = names
            .held_by(ConnectionId(connection))
            .map(|held| held.iter().map(|name| name.to_string()).collect())
            .unwrap_or_default();
        held.sort();
        held
    }

    #[test]
    fn each_connection_has_the_list_of_the_names_it_holds_and_old_lists_stay_as_they_were() {
        let mut names = NameRegistry::default();
        names.claim("alice", ConnectionId(1));
        names.claim("bob", ConnectionId(1));
        let before = names.held_by(ConnectionId(1)).cloned().expect("held");
        names.queue("alice", ticket(2, 7));
        names.release("alice", |_| true);
        assert_eq!(held(&names, 1), ["bob"]);
        assert_eq!(held(&names, 2), ["alice"]);
        // A message stamped with the earlier list still says alice and bob.
        assert_eq!(before.len(), 2);
        names.release("bob", |_| true);
        assert_eq!(names.held_by(ConnectionId(1)), None);
        // Claiming a name held already changes nothing.
        names.claim("alice", ConnectionId(2));
        assert_eq!(held(&names, 2), ["alice"]);
    }

    #[test]
    fn held_names_and_names_waited_for_count_against_the_limit_once_each() {
        let mut names = NameRegistry::default();
        for n in 1..MAX_NAMES_PER_CONNECTION {
            names.claim(&format!("svc{n}"), ConnectionId(1));
        }
        names.claim("busy", ConnectionId(2));
        assert!(names.may_claim(ConnectionId(1), "busy"));
        names.queue("busy", ticket(1, 1));
        names.queue("busy", ticket(1, 2));
        // Full: one more name is refused, the ones it has or waits for not.
        assert!(!names.may_claim(ConnectionId(1), "other"));
        assert!(names.may_claim(ConnectionId(1), "busy"));
        assert!(names.may_claim(ConnectionId(1), "svc1"));
        names.leave_queue("busy", ticket(1, 1));
        assert!(!names.may_claim(ConnectionId(1), "other"));
        names.leave_queue("busy", ticket(1, 2));
        assert!(names.may_claim(ConnectionId(1), "other"));
        // A claim that passes over a gone claimer stops counting it too.
        names.queue("busy", ticket(1, 3));
        names.queue("busy", ticket(3, 4));
        names.release("busy", |c| c != ConnectionId(1));
        assert!(names.may_claim(ConnectionId(1), "other"));
        assert_eq!(held(&names, 3), ["busy"]);
    }
}
