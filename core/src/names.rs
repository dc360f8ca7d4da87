//! Well-known names: a connection claims a name to be reachable by it
//! (`send --to worker`); a name has one owner at a time, and claimers that
//! chose to wait queue for it in order.

use std::collections::BTreeMap;

use mailbox_proto::{ErrorKind, NameInfo, Response, Wait};

use super::line::Line;
use super::{check_name, error, BrokerError, Clock, ConnectionId, Core, Outcome, Place, Ticket};
use super::{WaitPlan, Waiting};

/// One claimed name.
#[derive(Debug)]
pub(super) struct NameEntry {
    pub owner: ConnectionId,
    /// Claims waiting for it, first come first served (any of them may
    /// leave at O(1) cost: a cancel, a timeout, a disconnect).
    pub queue: Line<Ticket>,
}

/// Takes a waiting claim out of a name's queue.
pub(super) fn leave_queue(names: &mut BTreeMap<String, NameEntry>, name: &str, ticket: Ticket) {
    if let Some(entry) = names.get_mut(name) {
        entry.queue.remove(ticket);
    }
}

impl Core {
    pub(super) fn claim_name(
        &mut self,
        ticket: Ticket,
        name: String,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        check_name(&name)?;
        let plan = WaitPlan::new(wait, clock.now);
        match self.names.get_mut(&name) {
            None => {
                self.names.insert(
                    name.clone(),
                    NameEntry {
                        owner: ticket.connection,
                        queue: Line::default(),
                    },
                );
                if let Some(state) = self.connections.get_mut(&ticket.connection) {
                    state.names.push(name);
                }
                Ok(Some(Response::NameClaimed))
            }
            Some(entry) if entry.owner == ticket.connection => Ok(Some(Response::NameClaimed)),
            Some(entry) => {
                if !plan.may_wait {
                    let owner = self.connections.get(&entry.owner).map(|c| c.peer);
                    return Err(error(
                        ErrorKind::NameTaken,
                        format!(
                            "the name {name} is held by process {}{}; wait for it or choose another",
                            entry.owner.0,
                            owner.map_or(String::new(), |peer| format!(
                                " (pid {}, uid {})",
                                peer.pid, peer.uid
                            ))
                        ),
                    ));
                }
                entry.queue.push_back(ticket);
                let mark = out.replies.len();
                self.start_wait(ticket, Place::Name(name), plan, None, mark, clock, out)
            }
        }
    }

    pub(super) fn release_name(
        &mut self,
        connection: ConnectionId,
        name: &str,
        out: &mut Outcome,
    ) -> Result<(), BrokerError> {
        let held = self
            .connections
            .get_mut(&connection)
            .and_then(|state| {
                let index = state.names.iter().position(|held| held == name)?;
                Some(state.names.remove(index))
            })
            .is_some();
        if !held {
            check_name(name)?;
            return Err(error(
                ErrorKind::NotHeld,
                format!("this connection does not hold the name {name}"),
            ));
        }
        self.pass_name_on(name, out);
        Ok(())
    }

    /// The owner of `name` let it go: the first queued claimer gets it, or
    /// it is free.
    pub(super) fn pass_name_on(&mut self, name: &str, out: &mut Outcome) {
        let Some(entry) = self.names.get_mut(name) else {
            return;
        };
        while let Some(next) = entry.queue.pop_front() {
            let Some(state) = self.connections.get_mut(&next.connection) else {
                continue;
            };
            let waited = state.waiting.remove(&next.request);
            debug_assert!(matches!(
                waited,
                Some(Waiting {
                    place: Place::Name(_),
                    ..
                })
            ));
            state.names.push(name.to_owned());
            entry.owner = next.connection;
            out.reply(next, Ok(Response::NameClaimed));
            return;
        }
        self.names.remove(name);
    }

    /// What `ListNames` and `ListNamePage` show of one claimed name.
    pub(super) fn name_info(&self, name: &str, entry: &NameEntry) -> NameInfo {
        let peer = self
            .connections
            .get(&entry.owner)
            .map(|c| c.peer)
            .unwrap_or_default();
        NameInfo {
            name: name.to_owned(),
            process: entry.owner.0,
            pid: peer.pid,
            uid: peer.uid,
            queued_claims: entry.queue.len() as u32,
        }
    }
}
