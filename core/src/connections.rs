//! The connection table: each connection's credentials, its waiting
//! requests and what it holds, subscribes to and owns; admission against
//! the connection limits, and what a disconnect ends.

use std::collections::BTreeSet;

use mailbox_proto::{Address, BrokerError, Capacity, ErrorKind, DEFAULT_INBOX_CAPACITY};

use crate::mailbox::Context;
use crate::types::{Place, SparseList};
use crate::waiting::WaitingRequests;
use crate::waits::Waiting;
use crate::{check_name, error, Clock, ConnectionId, Core, Outcome, Peer, Ticket};

/// One open connection: who it is and what it has in the broker.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) peer: Peer,
    /// Supplementary groups, for group rights.
    pub(crate) groups: Box<[u32]>,
    pub(crate) waiting: WaitingRequests<Waiting>,
    /// Broadcast mailboxes it subscribes to and hash mailboxes whose pool
    /// it is in.
    pub(crate) subscriptions: Vec<String>,
    /// Where it received with manual acknowledgement (what it may hold).
    pub(crate) holds: BTreeSet<Place>,
    /// Well-known names it holds.
    pub(crate) names: Vec<String>,
    /// Capacity of its inbox.
    pub(crate) inbox_capacity: Capacity,
    /// Mode of its inbox (who may send to it).
    pub(crate) inbox_mode: u32,
    /// Group of its inbox.
    pub(crate) inbox_group: u32,
    /// Broadcast mailboxes that cut its subscription off as a slow
    /// consumer and have not told it yet: its next receive there does.
    pub(crate) cut_from: SparseList<String>,
    /// Senders a receive on its inbox waited for (`receive_from` an
    /// address; a receive from a name outlives any holder), so that its
    /// entries in `Core::awaited_by` go when it does.
    pub(crate) awaits: SparseList<ConnectionId>,
    /// It sent `AcceptFiles`: memory-file payloads reach it as files.
    pub(crate) accepts_files: bool,
}

impl Core {
    /// Whether a new connection of `peer` is within the connection limits;
    /// the error says which one it would break.
    pub fn may_connect(&self, peer: &Peer) -> Result<(), BrokerError> {
        self.may_connect_with_groups(peer, &[])
    }

    /// Like [`Core::may_connect`], knowing the peer's supplementary groups
    /// (a member of the admin group may use the reserved connections).
    pub fn may_connect_with_groups(&self, peer: &Peer, groups: &[u32]) -> Result<(), BrokerError> {
        let total = self.connections.len();
        if total >= self.limits.max_connections {
            return Err(error(
                ErrorKind::TooManyRequests,
                format!(
                    "the broker has its limit of {} connections (limits.max_connections)",
                    self.limits.max_connections
                ),
            ));
        }
        let root = peer.uid == 0;
        let admin = self
            .policy
            .admin_group
            .is_some_and(|gid| peer.gid == gid || groups.contains(&gid));
        let reserved = self
            .limits
            .reserved_connections
            .min(self.limits.max_connections / 4);
        if !root && !admin && total >= self.limits.max_connections - reserved {
            return Err(error(
                ErrorKind::TooManyRequests,
                format!(
                    "the broker has {total} connections; the last {reserved} of its {} are kept \
                     for root and the admin group (limits.reserved_connections)",
                    self.limits.max_connections
                ),
            ));
        }
        let of_uid = self.connections_of.get(&peer.uid).copied().unwrap_or(0);
        if !root && of_uid >= self.limits.max_connections_per_uid {
            return Err(error(
                ErrorKind::TooManyRequests,
                format!(
                    "uid {} has its limit of {} connections (limits.max_connections_per_uid)",
                    peer.uid, self.limits.max_connections_per_uid
                ),
            ));
        }
        Ok(())
    }

    /// Registers a new connection with its peer credentials.
    pub fn connect(&mut self, connection: ConnectionId, peer: Peer) {
        self.connect_with_groups(connection, peer, Vec::new());
    }

    /// Registers a new connection with its peer credentials and
    /// supplementary groups.
    pub fn connect_with_groups(&mut self, connection: ConnectionId, peer: Peer, groups: Vec<u32>) {
        *self.connections_of.entry(peer.uid).or_default() += 1;
        self.connections.insert(
            connection,
            Box::new(Connection {
                peer,
                groups: groups.into_boxed_slice(),
                waiting: WaitingRequests::default(),
                subscriptions: Vec::new(),
                holds: BTreeSet::new(),
                names: Vec::new(),
                inbox_capacity: DEFAULT_INBOX_CAPACITY,
                inbox_mode: self.policy.default_inbox_mode,
                inbox_group: peer.gid,
                cut_from: SparseList::default(),
                awaits: SparseList::default(),
                accepts_files: false,
            }),
        );
    }

    /// Forgets a connection: its waiting sends are withdrawn (never delivered
    /// later), its waiting receives cancelled (no message is handed to it),
    /// the messages it held unacknowledged go back to the head of their
    /// mailboxes, its subscriptions and pool memberships end, its names pass
    /// to the next in line, its inbox goes (waiting senders learn
    /// `NoSuchProcess`), and callers whose requests it held get `NoReply`.
    /// Replies in `out` go only to other connections.
    pub fn disconnect(&mut self, connection: ConnectionId, clock: &Clock, out: &mut Outcome) {
        let Some(state) = self.connections.remove(&connection) else {
            return;
        };
        if let Some(count) = self.connections_of.get_mut(&state.peer.uid) {
            *count -= 1;
            if *count == 0 {
                self.connections_of.remove(&state.peer.uid);
            }
        }
        let mark = out.replies.len();
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
            names: &self.names,
        };
        // Its queued claims leave their queues once the mailboxes are done
        // with `ctx` (which reads the names registry).
        let mut claims = Vec::new();
        for (request, waiting) in state.waiting.into_entries() {
            let ticket = Ticket {
                connection,
                request,
            };
            if let Some(call) = waiting.call {
                self.calls.close(call);
            }
            match waiting.place {
                Place::Name(name) => claims.push((name, ticket)),
                Place::Opening(name) => self.openings.leave(&name, ticket),
                place => {
                    if let Some(mailbox) = self.places.get_mut(&place) {
                        // An admitted message whose sender waited for a
                        // later stage stays: only the wait ends.
                        mailbox.withdraw(ticket, false, &mut ctx);
                    }
                }
            }
        }
        for place in &state.holds {
            if let Some(mailbox) = self.places.get_mut(place) {
                mailbox.return_held(connection, &mut ctx);
            }
        }
        for name in state.subscriptions {
            if let Some(mailbox) = self.places.mailboxes.get_mut(&name) {
                // It may be a newer mailbox of the same name that this
                // connection never subscribed to: then there is nothing to end.
                let _ = mailbox.unsubscribe(connection, false, &mut ctx);
            }
        }
        if let Some(inbox) = self.places.inboxes.remove(&connection) {
            inbox.delete(
                Some(error(
                    ErrorKind::NoSuchProcess,
                    format!(
                        "process {} left; what waited in its inbox is gone",
                        connection.0
                    ),
                )),
                &mut ctx,
            );
        }
        for sender in state.awaits.iter() {
            if let Some(inboxes) = self.awaited_by.get_mut(sender) {
                inboxes.remove(&connection);
                if inboxes.is_empty() {
                    self.awaited_by.remove(sender);
                }
            }
        }
        for owner in self.awaited_by.remove(&connection).unwrap_or_default() {
            if let Some(inbox) = self.places.inboxes.get_mut(&owner) {
                inbox.sender_left(connection, &mut ctx);
            }
        }
        for (name, ticket) in claims {
            self.names.leave_queue(&name, ticket);
        }
        for name in state.names {
            self.pass_name_on(&name, out);
        }
        self.carry_out(clock, out);
        self.calls_lost_with(connection, out);
        self.settle(out, mark, None);
    }

    /// The connection a process address or well-known name stands for.
    pub(crate) fn resolve(&self, address: &Address) -> Result<ConnectionId, BrokerError> {
        match address {
            Address::Process(id) => {
                let id = ConnectionId(*id);
                if self.connections.contains_key(&id) {
                    Ok(id)
                } else {
                    Err(error(
                        ErrorKind::NoSuchProcess,
                        format!("no live process has address {}", id.0),
                    ))
                }
            }
            Address::Name(name) => match self.names.owner(name) {
                Some(owner) => Ok(owner),
                None => {
                    check_name(name)?;
                    Err(error(
                        ErrorKind::NoSuchProcess,
                        format!("no live process holds the name {name}"),
                    ))
                }
            },
        }
    }

    /// Notes that a receive on `owner`'s inbox waits for `sender` alone.
    pub(crate) fn await_sender(&mut self, owner: ConnectionId, sender: ConnectionId) {
        if self.awaited_by.entry(sender).or_default().insert(owner) {
            if let Some(state) = self.connections.get_mut(&owner) {
                state.awaits.push(sender);
            }
        }
    }
}
