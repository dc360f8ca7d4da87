//! Who may do what: every mailbox has an owner uid, a group and a mode in
//! the style of file permissions, with three rights per class (owner, group,
//! others): receive (4, like `r`), send (2, like `w`) and manage (1, like
//! `x`: delete, change permissions, purge). Root may do everything; members
//! of the configured admin group may manage everything; an owner may always
//! manage its own mailbox (as a file's owner may always `chmod` it).
//! Well-known names may be reserved to some uids, and name prefixes (for
//! mailboxes and well-known names alike) to some users and groups.
//!
//! ```text
//! mode 0o760: owner receive+send+manage, group receive+send, others nothing
//! ```

use std::collections::{BTreeMap, BTreeSet};

use mailbox_proto::{BrokerError, ErrorKind};

use super::Peer;

/// The default mode of a mailbox created without one: the owner may do
/// everything, its group may send and receive, others nothing.
pub const DEFAULT_MODE: u32 = 0o760;

/// The default mode of a connection's inbox: processes of the same uid (and
/// root) may send to it, nobody else. Its owner opens it to others with
/// `SetInboxPermissions`.
pub const DEFAULT_INBOX_MODE: u32 = 0o600;

/// Who may use the names under a reserved prefix (root always may).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservation {
    /// These uids.
    pub uids: Vec<u32>,
    /// Members of these groups (primary or supplementary).
    pub gids: Vec<u32>,
}
/// A mailbox's owner, group and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// Owner uid (the creator, unless configured).
    pub owner: u32,
    /// Group gid (the creator's primary group, unless configured).
    pub group: u32,
    /// Rights bits, `0o[owner][group][others]`, each receive 4, send 2, manage 1.
    pub mode: u32,
}

/// One of the three rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Take messages (receive, subscribe, join a pool).
    Receive,
    /// Put messages in (send, call).
    Send,
    /// Delete, change permissions, purge.
    Manage,
}

impl Right {
    fn bit(self) -> u32 {
        match self {
            Right::Receive => 4,
            Right::Send => 2,
            Right::Manage => 1,
        }
    }

    /// The verb of this right on a shared-memory region: receive is
    /// read, send is write.
    fn region_verb(self) -> &'static str {
        match self {
            Right::Receive => "read",
            Right::Send => "write",
            Right::Manage => "manage",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Right::Receive => "receive from",
            Right::Send => "send to",
            Right::Manage => "manage",
        }
    }
}

/// Broker-wide access rules from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Members of this group may manage every mailbox.
    pub admin_group: Option<u32>,
    /// Names only these uids may claim (root always may).
    pub reserved_names: BTreeMap<String, Vec<u32>>,
    /// The mode of a mailbox its creator did not give one.
    pub default_mode: u32,
    /// Name prefixes kept for some users and groups: only they (and root)
    /// may create a mailbox or claim a well-known name that starts with one.
    pub reserved_prefixes: BTreeMap<String, Reservation>,
    /// Mailboxes any mailbox may retire messages into, whoever owns them
    /// (otherwise a dead letter may only move between mailboxes of one
    /// owner).
    pub dead_letter_targets: BTreeSet<String>,
    /// The mode of a connection's inbox until its owner sets one.
    pub default_inbox_mode: u32,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        Self {
            admin_group: None,
            reserved_names: BTreeMap::new(),
            default_mode: DEFAULT_MODE,
            reserved_prefixes: BTreeMap::new(),
            dead_letter_targets: BTreeSet::new(),
            default_inbox_mode: DEFAULT_INBOX_MODE,
        }
    }
}

/// Who is asking: credentials from the socket, and supplementary groups.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub peer: Peer,
    pub groups: &'a [u32],
}

impl Caller<'_> {
    /// Whether the caller's primary or a supplementary group is `gid`.
    pub fn in_group(&self, gid: u32) -> bool {
        self.peer.gid == gid || self.groups.contains(&gid)
    }
}

impl Permissions {
    /// The rights bits that apply to `caller` (owner, else group, else others).
    fn bits_for(&self, caller: &Caller<'_>) -> u32 {
        if caller.peer.uid == self.owner {
            (self.mode >> 6) & 7
        } else if caller.in_group(self.group) {
            (self.mode >> 3) & 7
        } else {
            self.mode & 7
        }
    }

    /// Whether `caller` has `right` (root has every right; the admin group
    /// may manage).
    pub fn allows(&self, caller: &Caller<'_>, right: Right, policy: &AccessPolicy) -> bool {
        if caller.peer.uid == 0 {
            return true;
        }
        // An owner who took its own manage bit away can still give it back,
        // as a file's owner can always chmod.
        if right == Right::Manage
            && (caller.peer.uid == self.owner
                || policy.admin_group.is_some_and(|gid| caller.in_group(gid)))
        {
            return true;
        }
        self.bits_for(caller) & right.bit() != 0
    }

    /// Whether `caller` has any right at all (to see the mailbox).
    pub fn visible_to(&self, caller: &Caller<'_>, policy: &AccessPolicy) -> bool {
        [Right::Receive, Right::Send, Right::Manage]
            .into_iter()
            .any(|right| self.allows(caller, right, policy))
    }

    /// `Ok` when `caller` has `right` on mailbox `name`, else `PermissionDenied`.
    pub fn check(
        &self,
        caller: &Caller<'_>,
        right: Right,
        policy: &AccessPolicy,
        name: &str,
    ) -> Result<(), BrokerError> {
        self.check_object(caller, right, policy, right.verb(), "mailbox", name)
    }

    /// `Ok` when `caller` has `right` on shared-memory region `name`, else
    /// `PermissionDenied`: the rules of mailboxes, the three rights read
    /// (4), write (2) and manage (1).
    pub fn check_region(
        &self,
        caller: &Caller<'_>,
        right: Right,
        policy: &AccessPolicy,
        name: &str,
    ) -> Result<(), BrokerError> {
        self.check_object(caller, right, policy, right.region_verb(), "region", name)
    }

    fn check_object(
        &self,
        caller: &Caller<'_>,
        right: Right,
        policy: &AccessPolicy,
        verb: &str,
        what: &str,
        name: &str,
    ) -> Result<(), BrokerError> {
        if self.allows(caller, right, policy) {
            return Ok(());
        }
        Err(BrokerError::new(
            ErrorKind::PermissionDenied,
            format!(
                "uid {} may not {verb} {what} {name} (owner {}, group {}, mode {:03o})",
                caller.peer.uid, self.owner, self.group, self.mode
            ),
        ))
    }
}

impl AccessPolicy {
    /// `Ok` when `caller` may create a mailbox or claim a well-known name
    /// called `name` as far as reserved prefixes go.
    pub fn check_prefix(&self, caller: &Caller<'_>, name: &str) -> Result<(), BrokerError> {
        if caller.peer.uid == 0 {
            return Ok(());
        }
        // Every prefix that `name` starts with must admit the caller: a
        // longer prefix narrows a shorter one, never widens it.
        for (prefix, reservation) in self
            .reserved_prefixes
            .iter()
            .filter(|(prefix, _)| name.starts_with(prefix.as_str()))
        {
            let admitted = reservation.uids.contains(&caller.peer.uid)
                || reservation.gids.iter().any(|&gid| caller.in_group(gid));
            if !admitted {
                return Err(BrokerError::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "names starting with {prefix:?} are reserved (access.reserved_prefixes) to uids {:?} and gids {:?}; uid {} may not use {name}",
                        reservation.uids, reservation.gids, caller.peer.uid
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `Ok` when `caller` may claim `name`.
    pub fn check_name(&self, caller: &Caller<'_>, name: &str) -> Result<(), BrokerError> {
        self.check_prefix(caller, name)?;
        match self.reserved_names.get(name) {
            Some(uids) if caller.peer.uid != 0 && !uids.contains(&caller.peer.uid) => {
                Err(BrokerError::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "the name {name} is reserved to uids {uids:?}; uid {} may not claim it",
                        caller.peer.uid
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(uid: u32, gid: u32, groups: &[u32]) -> Caller<'_> {
        Caller {
            peer: Peer { pid: 1, uid, gid },
            groups,
        }
    }

    #[test]
    fn owner_group_and_others_get_their_own_bits() {
        let perms = Permissions {
            owner: 1000,
            group: 50,
            mode: 0o742,
        };
        let policy = AccessPolicy::default();
        let owner = caller(1000, 1000, &[]);
        let member = caller(1001, 1001, &[50]);
        let other = caller(1002, 1002, &[]);
        for right in [Right::Receive, Right::Send, Right::Manage] {
            assert!(perms.allows(&owner, right, &policy));
        }
        assert!(perms.allows(&member, Right::Receive, &policy));
        assert!(!perms.allows(&member, Right::Send, &policy));
        assert!(!perms.allows(&member, Right::Manage, &policy));
        assert!(perms.allows(&other, Right::Send, &policy));
        assert!(!perms.allows(&other, Right::Receive, &policy));
        assert!(!perms.allows(&other, Right::Manage, &policy));
        assert!(perms.allows(&caller(0, 0, &[]), Right::Manage, &policy));
    }

    #[test]
    fn the_admin_group_may_manage_but_not_read() {
        let perms = Permissions {
            owner: 1000,
            group: 1000,
            mode: 0o700,
        };
        let policy = AccessPolicy {
            admin_group: Some(10),
            ..AccessPolicy::default()
        };
        let admin = caller(1005, 1005, &[10]);
        assert!(perms.allows(&admin, Right::Manage, &policy));
        assert!(!perms.allows(&admin, Right::Receive, &policy));
        let denied = perms
            .check(&admin, Right::Send, &policy, "jobs")
            .unwrap_err();
        assert_eq!(denied.kind, ErrorKind::PermissionDenied);
        assert!(denied.message.contains("mode 700"), "{}", denied.message);
    }

    #[test]
    fn reserved_names_admit_only_their_uids_and_root() {
        let mut policy = AccessPolicy::default();
        policy
            .reserved_names
            .insert("org.example.svc".into(), vec![1000]);
        assert!(policy
            .check_name(&caller(1000, 1, &[]), "org.example.svc")
            .is_ok());
        assert!(policy
            .check_name(&caller(0, 0, &[]), "org.example.svc")
            .is_ok());
        assert!(policy
            .check_name(&caller(1001, 1, &[]), "org.example.svc")
            .is_err());
        assert!(policy.check_name(&caller(1001, 1, &[]), "free").is_ok());
    }

    #[test]
    fn an_owner_may_always_manage_whatever_the_mode() {
        let perms = Permissions {
            owner: 1000,
            group: 1000,
            mode: 0o000,
        };
        let policy = AccessPolicy::default();
        let owner = caller(1000, 1000, &[]);
        assert!(perms.allows(&owner, Right::Manage, &policy));
        assert!(!perms.allows(&owner, Right::Receive, &policy));
        assert!(!perms.allows(&owner, Right::Send, &policy));
        assert!(!perms.allows(&caller(1001, 1000, &[]), Right::Manage, &policy));
    }

    #[test]
    fn reserved_prefixes_admit_their_users_groups_and_root_only() {
        let mut policy = AccessPolicy::default();
        policy.reserved_prefixes.insert(
            "payroll.".into(),
            Reservation {
                uids: vec![1000],
                gids: vec![50],
            },
        );
        policy.reserved_prefixes.insert(
            "payroll.secret.".into(),
            Reservation {
                uids: vec![1000],
                gids: vec![],
            },
        );
        let owner = caller(1000, 1000, &[]);
        let member = caller(1001, 1001, &[50]);
        let stranger = caller(65534, 65534, &[]);
        assert!(policy.check_prefix(&owner, "payroll.jobs").is_ok());
        assert!(policy.check_prefix(&member, "payroll.jobs").is_ok());
        assert!(policy
            .check_prefix(&caller(0, 0, &[]), "payroll.jobs")
            .is_ok());
        let denied = policy.check_prefix(&stranger, "payroll.jobs").unwrap_err();
        assert_eq!(denied.kind, ErrorKind::PermissionDenied);
        assert!(denied.message.contains("payroll."), "{}", denied.message);
        // The longer prefix narrows: the group's member is out.
        assert!(policy.check_prefix(&member, "payroll.secret.x").is_err());
        assert!(policy.check_prefix(&owner, "payroll.secret.x").is_ok());
        // Prefixes hold for well-known names too.
        assert!(policy.check_name(&stranger, "payroll.svc").is_err());
        assert!(policy.check_prefix(&stranger, "payrollx").is_ok());
    }
}
