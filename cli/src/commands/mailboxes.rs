//! The commands that manage mailboxes: `create`, `chmod`, `chown`,
//! `purge`, `delete`, `list` and `info`. Each is one request. Those that
//! change something print nothing on success, their receipt with `-v` or
//! `--json` ([`crate::output::Output::receipt`]); `list` and `info` show
//! mailboxes ([`crate::output::mailbox`]).

use std::fmt::Write as _;

use mailbox_client::MailboxSettings;
use serde_json::json;

use super::Invocation;
use crate::args::Owner;
use crate::failure::Failure;
use crate::output;

/// `create`: succeeds without change if the mailbox exists with the same
/// settings.
pub(super) fn create(
    invocation: &mut Invocation,
    name: &str,
    settings: MailboxSettings,
    mode: Option<u32>,
    group: Option<u32>,
) -> Result<(), Failure> {
    let created = invocation
        .client
        .create_with(name, settings, mode, group)
        .map_err(invocation.fail())?;
    invocation.out.receipt(
        || json!({ "name": name, "created": created }),
        || {
            if created {
                format!("created {name}\n")
            } else {
                format!("{name} already exists with the same settings\n")
            }
        },
    )
}

/// `chmod`.
pub(super) fn chmod(invocation: &mut Invocation, name: &str, mode: u32) -> Result<(), Failure> {
    invocation
        .client
        .set_permissions(name, None, None, Some(mode))
        .map_err(invocation.fail())?;
    invocation.out.receipt(
        || json!({ "name": name, "mode": format!("{mode:04o}") }),
        || format!("mode of {name} is now {mode:04o}\n"),
    )
}

/// `chown`: the owner, the group, or both.
pub(super) fn chown(invocation: &mut Invocation, name: &str, owner: Owner) -> Result<(), Failure> {
    invocation
        .client
        .set_permissions(name, owner.user, owner.group, None)
        .map_err(invocation.fail())?;
    invocation.out.receipt(
        || json!({ "name": name, "owner_uid": owner.user, "group_gid": owner.group }),
        || {
            let mut text = format!("{name}:");
            if let Some(uid) = owner.user {
                let _ = write!(text, " owner is now uid {uid}");
            }
            if let Some(gid) = owner.group {
                let sep = if owner.user.is_some() { "," } else { "" };
                let _ = write!(text, "{sep} group is now gid {gid}");
            }
            text.push('\n');
            text
        },
    )
}

/// `purge`: the queued messages, not those a receiver holds.
pub(super) fn purge(invocation: &mut Invocation, name: &str) -> Result<(), Failure> {
    let purged = invocation.client.purge(name).map_err(invocation.fail())?;
    invocation.out.receipt(
        || json!({ "name": name, "purged": purged }),
        || match purged {
            1 => format!("purged 1 queued message from {name}\n"),
            n => format!("purged {n} queued messages from {name}\n"),
        },
    )
}

/// `delete`.
pub(super) fn delete(invocation: &mut Invocation, name: &str) -> Result<(), Failure> {
    invocation.client.delete(name).map_err(invocation.fail())?;
    invocation.out.receipt(
        || json!({ "name": name, "deleted": true }),
        || format!("deleted {name}\n"),
    )
}

/// `list`: every mailbox.
pub(super) fn list(invocation: &mut Invocation) -> Result<(), Failure> {
    let mailboxes = invocation.client.list().map_err(invocation.fail())?;
    if invocation.out.json() {
        // One write for the lot: a listing may have many thousands.
        invocation
            .out
            .text(&output::mailbox::json_lines(&mailboxes))
    } else {
        invocation.out.text(&output::mailbox::table(&mailboxes))
    }
}

/// `info`: one mailbox, everything about it.
pub(super) fn info(invocation: &mut Invocation, name: &str) -> Result<(), Failure> {
    let info = invocation.client.info(name).map_err(invocation.fail())?;
    invocation.out.emit(
        || output::mailbox::json(&info),
        || output::mailbox::text(&info),
    )
}
