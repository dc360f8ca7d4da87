//! Mailboxes: create, declare, delete, info, open, list, permissions,
//! purge.

use mailbox_proto::{BrokerError, ErrorKind, MailboxSettings, Response, Wait};

use crate::mailbox::{Context, Mailbox};
use crate::places::missing_mailbox;
use crate::rights::check_mode;
use crate::types::Place;
use crate::waits::WaitPlan;
use crate::{
    check_name, error, Caller, Clock, ConnectionId, Core, Declared, Outcome, Peer, Permissions,
    Right, Ticket,
};

impl Core {
    /// Creates mailbox `name` for the caller, with `mode` and `group` (or
    /// the defaults) set in the same step. An existing mailbox is accepted
    /// (`created: false`) only when the caller owns it and its settings are
    /// equal; `mode` and `group`, when given, are then applied to it (an
    /// owner may always manage its mailbox). Anything else is
    /// `MailboxExists`, saying who owns it but, to a caller with no right on
    /// it, nothing of its settings. Opens waiting for the mailbox are
    /// answered.
    pub(crate) fn create(
        &mut self,
        connection: ConnectionId,
        name: String,
        settings: MailboxSettings,
        mode: Option<u32>,
        group: Option<u32>,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let Some(creator) = self.connections.get(&connection).map(|state| state.peer) else {
            return Err(error(
                ErrorKind::Internal,
                "request from an unknown connection",
            ));
        };
        check_name(&name)?;
        settings
            .validate()
            .map_err(|why| error(ErrorKind::InvalidSettings, why))?;
        if settings.max_message_size > self.limits.max_message_size {
            return Err(error(
                ErrorKind::InvalidSettings,
                format!(
                    "max message size {} is above this broker's limit of {} bytes (limits.max_message_size)",
                    settings.max_message_size, self.limits.max_message_size
                ),
            ));
        }
        check_mode(mode)?;
        if let Some(caller) = self.caller(connection) {
            self.policy.check_prefix(&caller, &name)?;
        }
        if let Some(gid) = group {
            self.check_group_member(connection, gid, &name)?;
        }
        if let Some(target) = &settings.dead_letter {
            self.check_dead_letter_target(creator.uid, target)?;
        }
        if let Some(existing) = self.places.mailboxes.get_mut(&name) {
            let old = *existing.permissions();
            if old.owner != creator.uid {
                let visible = self
                    .connections
                    .get(&connection)
                    .map(|state| Caller {
                        peer: state.peer,
                        groups: &state.groups,
                    })
                    .is_some_and(|caller| old.visible_to(&caller, &self.policy));
                let detail = if visible {
                    format!(" (group {}, mode {:03o})", old.group, old.mode)
                } else {
                    String::new()
                };
                return Err(error(
                    ErrorKind::MailboxExists,
                    format!(
                        "mailbox {name} exists and belongs to uid {}{detail}; uid {} cannot create it",
                        old.owner, creator.uid
                    ),
                ));
            }
            if *existing.settings() != settings {
                return Err(error(
                    ErrorKind::MailboxExists,
                    format!(
                        "mailbox {name} exists with other settings ({}); delete it first or use its settings",
                        describe(existing.settings())
                    ),
                ));
            }
            existing.set_permissions(Permissions {
                owner: old.owner,
                group: group.unwrap_or(old.group),
                mode: mode.unwrap_or(old.mode),
            });
            return Ok(Some(Response::Created { created: false }));
        }
        let owned = self.mailboxes_of.get(&creator.uid).copied().unwrap_or(0);
        if owned >= self.limits.max_mailboxes_per_uid && creator.uid != 0 {
            return Err(error(
                ErrorKind::TooManyRequests,
                format!(
                    "uid {} owns {owned} mailboxes, its limit (limits.max_mailboxes_per_uid); delete some first",
                    creator.uid
                ),
            ));
        }
        let permissions = Permissions {
            owner: creator.uid,
            group: group.unwrap_or(creator.gid),
            mode: mode.unwrap_or(self.policy.default_mode),
        };
        self.adopt_mailbox(name, settings, permissions, out);
        Ok(Some(Response::Created { created: true }))
    }

    /// Makes a mailbox declared in the configuration exist with these
    /// settings and permissions: creates it, or gives an existing one the
    /// permissions. Settings of an existing mailbox are never changed (that
    /// could drop queued messages): the answer says when they differ. A
    /// mailbox created answers the opens waiting for it, in `out`.
    pub fn declare(
        &mut self,
        name: &str,
        settings: MailboxSettings,
        permissions: Permissions,
        out: &mut Outcome,
    ) -> Result<Declared, BrokerError> {
        check_name(name)?;
        settings
            .validate()
            .map_err(|why| error(ErrorKind::InvalidSettings, why))?;
        let Some(mailbox) = self.places.mailboxes.get(name) else {
            self.adopt_mailbox(name.to_owned(), settings, permissions, out);
            return Ok(Declared::Created);
        };
        let differs = *mailbox.settings() != settings;
        let changed = self.give_permissions(name, permissions);
        Ok(match (differs, changed) {
            (true, _) => Declared::SettingsDiffer,
            (false, true) => Declared::PermissionsChanged,
            (false, false) => Declared::Unchanged,
        })
    }

    /// Gives the existing mailbox `name` `permissions`, counting it for its
    /// new owner; whether they changed.
    fn give_permissions(&mut self, name: &str, permissions: Permissions) -> bool {
        let Some(mailbox) = self.places.mailboxes.get_mut(name) else {
            return false;
        };
        let old = *mailbox.permissions();
        mailbox.set_permissions(permissions);
        if old.owner != permissions.owner {
            self.disown(old.owner);
            *self.mailboxes_of.entry(permissions.owner).or_default() += 1;
        }
        old != permissions
    }

    /// Adds a mailbox with `permissions`, counting it for its owner, and
    /// answers the opens that waited for it.
    pub(crate) fn adopt_mailbox(
        &mut self,
        name: String,
        settings: MailboxSettings,
        permissions: Permissions,
        out: &mut Outcome,
    ) {
        *self.mailboxes_of.entry(permissions.owner).or_default() += 1;
        self.places.mailboxes.insert(
            name.clone(),
            Box::new(Mailbox::new(name.clone(), settings, permissions)),
        );
        self.opened(&name, out);
    }

    /// `OpenMailbox`: `MailboxInfo` for a mailbox that exists; for one that
    /// does not, a wait for its creation (as `wait` says), answered by
    /// [`opened`](Self::opened).
    pub(crate) fn open_mailbox(
        &mut self,
        ticket: Ticket,
        name: String,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        check_name(&name)?;
        if self.places.mailboxes.contains_key(&name) {
            return self.mailbox_info(ticket.connection, &name);
        }
        let plan = WaitPlan::new(wait, clock.now);
        if !plan.may_wait {
            return Err(match wait {
                Wait::Timeout { .. } => error(
                    ErrorKind::Timeout,
                    format!("mailbox {name} does not exist and the timeout is zero"),
                ),
                _ => missing_mailbox(&name),
            });
        }
        self.openings.wait(&name, ticket);
        let mark = out.replies.len();
        self.start_wait(ticket, Place::Opening(name), plan, None, mark, clock, out)
    }

    /// Mailbox `name` was just created: each open that waited for it stops
    /// waiting and is answered as `MailboxInfo` would answer it now (the
    /// description, or `PermissionDenied` to a caller with no right on it).
    fn opened(&mut self, name: &str, out: &mut Outcome) {
        for ticket in self.openings.take(name) {
            let waited = self
                .connections
                .get_mut(&ticket.connection)
                .and_then(|state| state.waiting.remove(&ticket.request));
            debug_assert!(matches!(
                waited,
                Some(crate::waits::Waiting {
                    place: Place::Opening(_),
                    ..
                })
            ));
            let answer = self.describe(ticket.connection, name);
            out.reply(ticket, answer);
        }
    }

    /// `DeleteMailbox`: its waiting senders and receivers learn
    /// `MailboxDeleted`, its subscriptions end.
    pub(crate) fn delete_mailbox(
        &mut self,
        connection: ConnectionId,
        name: &str,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        self.check(connection, name, Right::Manage)?;
        let Some(mailbox) = self.places.mailboxes.remove(name) else {
            return Err(missing_mailbox(name));
        };
        self.disown(mailbox.permissions().owner);
        self.dead_letter_refusals_reported.remove(name);
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
            names: &self.names,
        };
        mailbox.delete(None, &mut ctx);
        for state in self.connections.values_mut() {
            state.subscriptions.retain(|subscribed| subscribed != name);
        }
        Ok(Some(Response::Deleted))
    }

    /// `ListMailboxes`: every mailbox the caller has some right on, in one
    /// frame.
    pub(crate) fn list_mailboxes(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<Response>, BrokerError> {
        Ok(Some(Response::Mailboxes(self.mailbox_list(connection)?)))
    }

    /// `ListMailboxPage`: one page of them.
    pub(crate) fn list_mailbox_page(
        &self,
        connection: ConnectionId,
        after: Option<&str>,
        max: u32,
    ) -> Result<Option<Response>, BrokerError> {
        let (mailboxes, next) = self.mailbox_page(connection, after, max);
        Ok(Some(Response::MailboxPage { mailboxes, next }))
    }

    /// `MailboxInfo`: for a caller that may see the mailbox, or else may
    /// receive from it.
    pub(crate) fn mailbox_info(
        &self,
        connection: ConnectionId,
        name: &str,
    ) -> Result<Option<Response>, BrokerError> {
        self.describe(connection, name).map(Some)
    }

    /// The `Info` answer about mailbox `name` to `connection`.
    fn describe(&self, connection: ConnectionId, name: &str) -> Result<Response, BrokerError> {
        let mailbox = self.mailbox(name)?;
        if let Some(caller) = self.caller(connection) {
            if !mailbox.permissions().visible_to(&caller, &self.policy) {
                mailbox
                    .permissions()
                    .check(&caller, Right::Receive, &self.policy, name)?;
            }
        }
        Ok(Response::Info(Box::new(mailbox.info())))
    }

    /// `SetPermissions` (chmod, chown, chgrp): for who may manage it; only
    /// root gives a mailbox away, and only to a group the caller is in.
    pub(crate) fn set_permissions(
        &mut self,
        connection: ConnectionId,
        peer: Peer,
        name: &str,
        owner: Option<u32>,
        group: Option<u32>,
        mode: Option<u32>,
    ) -> Result<Option<Response>, BrokerError> {
        self.check(connection, name, Right::Manage)?;
        let mailbox = self.mailbox(name)?;
        let old = *mailbox.permissions();
        if owner.is_some_and(|owner| owner != old.owner) && peer.uid != 0 {
            return Err(error(
                ErrorKind::PermissionDenied,
                format!("only root may give mailbox {name} to another owner"),
            ));
        }
        check_mode(mode)?;
        if let Some(gid) = group.filter(|&gid| gid != old.group) {
            self.check_group_member(connection, gid, name)?;
        }
        let new = Permissions {
            owner: owner.unwrap_or(old.owner),
            group: group.unwrap_or(old.group),
            mode: mode.unwrap_or(old.mode),
        };
        self.give_permissions(name, new);
        Ok(Some(Response::PermissionsSet))
    }

    /// `Purge`: discards what the mailbox holds queued.
    pub(crate) fn purge(
        &mut self,
        connection: ConnectionId,
        name: &str,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        self.check(connection, name, Right::Manage)?;
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
            names: &self.names,
        };
        let Some(mailbox) = self.places.mailboxes.get_mut(name) else {
            return Err(missing_mailbox(name));
        };
        let discarded = mailbox.purge(&mut ctx);
        Ok(Some(Response::Purged { discarded }))
    }

    /// One mailbox fewer for `owner`.
    pub(crate) fn disown(&mut self, owner: u32) {
        if let Some(count) = self.mailboxes_of.get_mut(&owner) {
            *count -= 1;
            if *count == 0 {
                self.mailboxes_of.remove(&owner);
            }
        }
    }
}

/// The settings of a mailbox in words, for errors.
pub(crate) fn describe(settings: &MailboxSettings) -> String {
    let mut text = format!(
        "capacity {}, policy {}, max size {}",
        settings.capacity, settings.policy, settings.max_message_size
    );
    if let Some(fixed) = settings.fixed_size {
        text.push_str(&format!(", fixed size {fixed}"));
    }
    if let Some(max) = settings.max_deliveries {
        text.push_str(&format!(", max deliveries {max}"));
    }
    if let Some(dead_letter) = &settings.dead_letter {
        text.push_str(&format!(", dead letters to {dead_letter}"));
    }
    if let Some(ttl) = settings.ttl_millis {
        text.push_str(&format!(", ttl {ttl} ms"));
    }
    if let Some(timeout) = settings.ack_timeout_millis {
        text.push_str(&format!(", ack timeout {timeout} ms"));
    }
    if let Some(after) = settings.cut_slow_subscribers_after_millis {
        text.push_str(&format!(", cuts slow subscribers after {after} ms"));
    }
    text
}
