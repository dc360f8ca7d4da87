//! Well-known names: claim, release and list, and what the core does when a
//! name changes hands (the registry itself is `names.rs`).

use mailbox_proto::{BrokerError, ErrorKind, NameInfo, Response, Wait};

use crate::names::{Claim, NameChange, NameEntry, MAX_NAMES_PER_CONNECTION};
use crate::types::Place;
use crate::waits::WaitPlan;
use crate::{check_name, error, Clock, ConnectionId, Core, Outcome, Ticket};

impl Core {
    /// `ClaimName`: the name is the caller's if it is free; otherwise the
    /// claim waits in the name's queue, or is refused if it may not wait.
    pub(crate) fn claim_name(
        &mut self,
        ticket: Ticket,
        name: String,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        if let Some(caller) = self.caller(ticket.connection) {
            self.policy.check_name(&caller, &name)?;
        }
        check_name(&name)?;
        if !self.names.may_claim(ticket.connection, &name) {
            return Err(error(
                ErrorKind::TooManyRequests,
                format!(
                    "this connection holds or waits for {MAX_NAMES_PER_CONNECTION} names, the most one may; release one before claiming {name}"
                ),
            ));
        }
        let plan = WaitPlan::new(wait, clock.now);
        match self.names.claim(&name, ticket.connection) {
            Claim::Claimed => {
                if let Some(state) = self.connections.get_mut(&ticket.connection) {
                    state.names.push(name);
                }
                Ok(Some(Response::NameClaimed))
            }
            Claim::Owned => Ok(Some(Response::NameClaimed)),
            Claim::Taken { owner } => {
                if !plan.may_wait {
                    let peer = self.connections.get(&owner).map(|c| c.peer);
                    return Err(error(
                        ErrorKind::NameTaken,
                        format!(
                            "the name {name} is held by process {}{}; wait for it or choose another",
                            owner.0,
                            peer.map_or(String::new(), |peer| format!(
                                " (pid {}, uid {})",
                                peer.pid, peer.uid
                            ))
                        ),
                    ));
                }
                self.names.queue(&name, ticket);
                let mark = out.replies.len();
                self.start_wait(ticket, Place::Name(name), plan, None, mark, clock, out)
            }
        }
    }

    /// `ReleaseName`: the caller lets a name it holds go.
    pub(crate) fn release_name(
        &mut self,
        connection: ConnectionId,
        name: &str,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
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
        Ok(Some(Response::NameReleased))
    }

    /// The owner of `name` let it go: the first queued claimer gets it, or
    /// it is free.
    pub(crate) fn pass_name_on(&mut self, name: &str, out: &mut Outcome) {
        let connections = &self.connections;
        let change = self
            .names
            .release(name, |claimer| connections.contains_key(&claimer));
        if let Some(change) = change {
            self.name_changed(change, out);
        }
    }

    /// Acts on a name that changed hands: the waiting claim that got it no
    /// longer waits, holds it, and is answered.
    pub(crate) fn name_changed(&mut self, change: NameChange, out: &mut Outcome) {
        let Some(next) = change.new_owner else {
            return;
        };
        let Some(state) = self.connections.get_mut(&next.connection) else {
            return;
        };
        let waited = state.waiting.remove(&next.request);
        debug_assert!(matches!(
            waited,
            Some(crate::waits::Waiting {
                place: Place::Name(_),
                ..
            })
        ));
        state.names.push(change.name);
        out.reply(next, Ok(Response::NameClaimed));
    }

    /// `ListNames`: every claimed name, in one frame.
    pub(crate) fn list_names(&self) -> Result<Option<Response>, BrokerError> {
        Ok(Some(Response::Names(self.name_list()?)))
    }

    /// `ListNamePage`: one page of them.
    pub(crate) fn list_name_page(
        &self,
        after: Option<&str>,
        max: u32,
    ) -> Result<Option<Response>, BrokerError> {
        let (names, next) = self.name_page(after, max);
        Ok(Some(Response::NamePage { names, next }))
    }

    /// What `ListNames` and `ListNamePage` show of one claimed name.
    pub(crate) fn name_info(&self, name: &str, entry: &NameEntry) -> NameInfo {
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
