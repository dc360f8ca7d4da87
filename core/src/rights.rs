//! Who may do what, for the handlers: the credentials of a connection
//! checked against a mailbox's permissions and the access policy
//! (`access.rs` has the rules themselves).

use mailbox_proto::{BrokerError, ErrorKind};

use crate::access::Caller;
use crate::connections::Connection;
use crate::{error, AccessPolicy, ConnectionId, ConnectionMap, Core, Peer, Permissions, Right};

impl Core {
    /// The credentials of `connection`, for access checks.
    pub(crate) fn caller(&self, connection: ConnectionId) -> Option<Caller<'_>> {
        self.connections.get(&connection).map(|state| Caller {
            peer: state.peer,
            groups: &state.groups,
        })
    }

    /// `Ok` when `connection` has `right` on mailbox `name` (or the mailbox
    /// does not exist: the operation itself then says so).
    pub(crate) fn check(
        &self,
        connection: ConnectionId,
        name: &str,
        right: Right,
    ) -> Result<(), BrokerError> {
        match (self.places.mailboxes.get(name), self.caller(connection)) {
            (Some(mailbox), Some(caller)) => {
                mailbox
                    .permissions()
                    .check(&caller, right, &self.policy, name)
            }
            _ => Ok(()),
        }
    }

    /// `Ok` when a caller other than root is a member of `gid` (primary or
    /// supplementary), as `chown(2)` requires to give a file to a group.
    pub(crate) fn check_group_member(
        &self,
        connection: ConnectionId,
        gid: u32,
        what: &str,
    ) -> Result<(), BrokerError> {
        let Some(caller) = self.caller(connection) else {
            return Ok(());
        };
        if caller.peer.uid == 0 || caller.in_group(gid) {
            return Ok(());
        }
        Err(error(
            ErrorKind::PermissionDenied,
            format!(
                "uid {} is not a member of group {gid}, so it may not give {what} to that group",
                caller.peer.uid
            ),
        ))
    }

    /// `Ok` when a mailbox owned by `owner` may retire messages into
    /// `target`: only into a mailbox of the same owner, or one the
    /// administrator named in `access.dead_letter_targets`. A target that
    /// does not exist yet passes here and is checked again at each move.
    pub(crate) fn check_dead_letter_target(
        &self,
        owner: u32,
        target: &str,
    ) -> Result<(), BrokerError> {
        let Some(mailbox) = self.places.mailboxes.get(target) else {
            return Ok(());
        };
        let target_owner = mailbox.permissions().owner;
        if target_owner == owner || self.policy.dead_letter_targets.contains(target) {
            return Ok(());
        }
        Err(error(
            ErrorKind::PermissionDenied,
            format!(
                "dead letters of a mailbox owned by uid {owner} may not go to {target}, owned by uid {target_owner}; use a mailbox of the same owner or one listed in access.dead_letter_targets"
            ),
        ))
    }

    /// Whether `connection` (of `peer`) may fill the budget's reserve and
    /// has no per-uid share: root, the uid the broker runs as, and members
    /// of the admin group.
    pub(crate) fn privileged(&self, connection: ConnectionId, peer: Peer) -> bool {
        if peer.uid == 0 || self.service_uid == Some(peer.uid) {
            return true;
        }
        let Some(admin) = self.policy.admin_group else {
            return false;
        };
        peer.gid == admin
            || self
                .connections
                .get(&connection)
                .is_some_and(|state| state.groups.contains(&admin))
    }
}

/// `Ok` when the connection of `peer` has `right` on a mailbox with
/// `permissions`. The common cases (root, the owner, a right every user has)
/// are decided from `peer` alone; only a group check looks the connection's
/// supplementary groups up.
#[allow(clippy::too_many_arguments)]
pub(crate) fn allowed(
    permissions: &Permissions,
    connections: &ConnectionMap<Box<Connection>>,
    peer: Peer,
    connection: ConnectionId,
    right: Right,
    policy: &AccessPolicy,
    name: &str,
) -> Result<(), BrokerError> {
    // Without supplementary groups the class (owner, group, others) is
    // certain only for root, the owner and members by primary group.
    let class_known =
        peer.uid == 0 || peer.uid == permissions.owner || peer.gid == permissions.group;
    let no_groups = Caller { peer, groups: &[] };
    if class_known {
        return permissions.check(&no_groups, right, policy, name);
    }
    let groups = connections
        .get(&connection)
        .map_or(&[][..], |state| &state.groups[..]);
    permissions.check(&Caller { peer, groups }, right, policy, name)
}

/// `Ok` for a mode of permission bits only (`0o000` to `0o777`).
pub(crate) fn check_mode(mode: Option<u32>) -> Result<(), BrokerError> {
    match mode {
        Some(mode) if mode > 0o777 => Err(error(
            ErrorKind::InvalidSettings,
            format!("mode {mode:o} has bits above 0o777"),
        )),
        _ => Ok(()),
    }
}
