//! `[access]`: the admin group, default modes, reserved names and
//! prefixes, and the mailboxes open to every owner's dead letters.

use mailbox_proto::accounts;
use mailbox_proto::MailboxName;
use toml::Value;

use super::file::{Document, RawAccess, Result};
use crate::core::{AccessPolicy, Reservation};

impl Document<'_> {
    pub(super) fn access(&self, raw: &RawAccess) -> Result<AccessPolicy> {
        let mut policy = AccessPolicy {
            admin_group: self.optional("access.admin_group", &raw.admin_group, Self::group)?,
            ..AccessPolicy::default()
        };
        if let Some(mode) = self.optional("access.default_mode", &raw.default_mode, Self::mode)? {
            policy.default_mode = mode;
        }
        for (name, users) in &raw.names {
            let key = format!("access.names.{name}");
            if let Err(why) = MailboxName::validate(name) {
                return Err(self.error(users.span(), &key, format!("not a valid name: {why}")));
            }
            let Value::Array(items) = users.get_ref() else {
                return Err(self.error(
                    users.span(),
                    &key,
                    "expected a list of users (names or uids), like [1000, \"alice\"]",
                ));
            };
            let mut uids = Vec::with_capacity(items.len());
            for item in items {
                uids.push(self.user_value(&key, users.span(), item)?);
            }
            policy.reserved_names.insert(name.clone(), uids);
        }
        if let Some(mode) = self.optional(
            "access.default_inbox_mode",
            &raw.default_inbox_mode,
            Self::mode,
        )? {
            policy.default_inbox_mode = mode;
        }
        for (prefix, holders) in &raw.reserved_prefixes {
            let key = format!("access.reserved_prefixes.{prefix}");
            if prefix.is_empty() {
                return Err(self.error(holders.span(), &key, "a prefix may not be empty"));
            }
            // A single user or group may stand alone; several go in a list.
            let items = match holders.get_ref() {
                Value::Array(items) => items.clone(),
                one => vec![one.clone()],
            };
            let mut reservation = Reservation::default();
            for item in &items {
                match item {
                    Value::String(text) if text.starts_with('@') => {
                        let group = Value::String(text[1..].to_owned());
                        reservation.gids.push(self.principal(
                            &key,
                            holders.span(),
                            &group,
                            "group",
                            "gid",
                            accounts::group_id,
                        )?);
                    }
                    _ => reservation
                        .uids
                        .push(self.user_value(&key, holders.span(), item)?),
                }
            }
            policy.reserved_prefixes.insert(prefix.clone(), reservation);
        }
        if let Some(targets) = &raw.dead_letter_targets {
            let key = "access.dead_letter_targets";
            let Value::Array(items) = targets.get_ref() else {
                return Err(self.error(
                    targets.span(),
                    key,
                    "expected a list of mailbox names, like [\"dead.letters\"]",
                ));
            };
            for item in items {
                let Value::String(name) = item else {
                    return Err(self.error(
                        targets.span(),
                        key,
                        "expected mailbox names in quotes",
                    ));
                };
                if let Err(why) = MailboxName::validate(name) {
                    return Err(self.error(
                        targets.span(),
                        key,
                        format!("{name:?} is not a valid mailbox name: {why}"),
                    ));
                }
                policy.dead_letter_targets.insert(name.clone());
            }
        }
        Ok(policy)
    }
}
