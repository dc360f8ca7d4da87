//! A connection's inbox: opened on first use, its capacity and permissions.

use mailbox_proto::{BrokerError, Capacity, ErrorKind, Response, DEFAULT_INBOX_CAPACITY};

use crate::mailbox::{Context, Mailbox};
use crate::rights::check_mode;
use crate::types::Place;
use crate::{error, Clock, ConnectionId, Core, Outcome, Permissions};

impl Core {
    /// `SetInboxPermissions`: who may send to the caller's inbox; the
    /// group only one the caller is in.
    pub(crate) fn set_inbox_permissions(
        &mut self,
        connection: ConnectionId,
        mode: Option<u32>,
        group: Option<u32>,
    ) -> Result<Option<Response>, BrokerError> {
        check_mode(mode)?;
        if let Some(gid) = group {
            self.check_group_member(connection, gid, "this connection's inbox")?;
        }
        let Some(state) = self.connections.get_mut(&connection) else {
            return Err(error(
                ErrorKind::Internal,
                "request from an unknown connection",
            ));
        };
        state.inbox_mode = mode.unwrap_or(state.inbox_mode);
        state.inbox_group = group.unwrap_or(state.inbox_group);
        let permissions = Permissions {
            owner: state.peer.uid,
            group: state.inbox_group,
            mode: state.inbox_mode,
        };
        if let Some(inbox) = self.places.inboxes.get_mut(&connection) {
            inbox.set_permissions(permissions);
        }
        Ok(Some(Response::InboxPermissionsSet))
    }

    /// `SetInboxCapacity`: of the inbox now if it is open, and when it
    /// opens.
    pub(crate) fn set_inbox_capacity(
        &mut self,
        connection: ConnectionId,
        capacity: Capacity,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        if capacity == Capacity::Bounded(0) {
            return Err(error(
                ErrorKind::InvalidSettings,
                "capacity 0 is spelled `zero`",
            ));
        }
        if let Some(state) = self.connections.get_mut(&connection) {
            state.inbox_capacity = capacity;
        }
        if let Some(inbox) = self.places.inboxes.get_mut(&connection) {
            let mut ctx = Context {
                out,
                budget: &mut self.budget,
                clock,
                names: &self.names,
            };
            inbox.set_capacity(capacity, &mut ctx);
        }
        Ok(Some(Response::InboxCapacitySet))
    }

    /// The inbox of `owner`, created (with the capacity the owner set) on
    /// first use.
    pub(crate) fn open_inbox(&mut self, owner: ConnectionId) -> Place {
        let (capacity, permissions) = match self.connections.get(&owner) {
            Some(state) => (
                state.inbox_capacity,
                Permissions {
                    owner: state.peer.uid,
                    group: state.inbox_group,
                    mode: state.inbox_mode,
                },
            ),
            // Not reached: addresses resolve only to live connections.
            None => (
                DEFAULT_INBOX_CAPACITY,
                Permissions {
                    owner: 0,
                    group: 0,
                    mode: 0o600,
                },
            ),
        };
        self.places
            .inboxes
            .entry(owner)
            .or_insert_with(|| Box::new(Mailbox::inbox(owner, capacity, permissions)));
        Place::Inbox(owner)
    }
}
