//! `[[mailbox]]`: the mailboxes the configuration declares, their settings
//! checked against the limits, and dead letters kept within one owner.

use std::collections::BTreeMap;

use mailbox_proto::{MailboxName, MailboxSettings, DEFAULT_MAX_MESSAGE_SIZE};
use toml::Spanned;

use super::file::{Document, RawMailbox, Result};
use crate::core::{AccessPolicy, Limits, Permissions};
use crate::server::Declaration;

impl Document<'_> {
    pub(super) fn mailboxes(
        &self,
        raw: &[Spanned<RawMailbox>],
        access: &AccessPolicy,
        limits: &Limits,
    ) -> Result<Vec<Declaration>> {
        // SAFETY: geteuid and getegid cannot fail and touch no memory of ours.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let mut declared: Vec<Declaration> = Vec::with_capacity(raw.len());
        let mut lines: BTreeMap<String, usize> = BTreeMap::new();
        for (index, entry) in raw.iter().enumerate() {
            let at = |field: &str| format!("mailbox[{index}].{field}");
            let m = entry.get_ref();
            let Some(name_field) = &m.name else {
                return Err(self.error(
                    entry.span(),
                    &format!("mailbox[{index}]"),
                    "missing key `name`",
                ));
            };
            let name = self.string(&at("name"), name_field)?;
            if let Err(why) = MailboxName::validate(&name) {
                return Err(self.error(name_field.span(), &at("name"), why.to_string()));
            }
            let line = self.line(name_field.span().start);
            if let Some(first) = lines.insert(name.clone(), line) {
                return Err(self.error(
                    name_field.span(),
                    &at("name"),
                    format!("mailbox {name} is declared twice (first at line {first})"),
                ));
            }
            let defaults = MailboxSettings::default();
            let settings = MailboxSettings {
                capacity: self
                    .optional(&at("capacity"), &m.capacity, Self::capacity)?
                    .unwrap_or(defaults.capacity),
                policy: self
                    .optional(&at("policy"), &m.policy, Self::policy)?
                    .unwrap_or(defaults.policy),
                max_message_size: self
                    .optional(&at("max_message_size"), &m.max_message_size, Self::size)?
                    .map(|size| {
                        self.at_most_u32(&at("max_message_size"), &m.max_message_size, size)
                    })
                    .transpose()?
                    .unwrap_or(DEFAULT_MAX_MESSAGE_SIZE.min(limits.max_message_size)),
                fixed_size: self
                    .optional(&at("fixed_size"), &m.fixed_size, Self::size)?
                    .map(|size| self.at_most_u32(&at("fixed_size"), &m.fixed_size, size))
                    .transpose()?,
                max_deliveries: self
                    .optional(&at("max_deliveries"), &m.max_deliveries, Self::count)?
                    .map(|n| self.at_most_u32(&at("max_deliveries"), &m.max_deliveries, n))
                    .transpose()?,
                dead_letter: self.optional(&at("dead_letter"), &m.dead_letter, Self::string)?,
                ttl_millis: self
                    .optional(&at("ttl"), &m.ttl, Self::duration)?
                    .map(|ttl| ttl.as_millis().min(u128::from(u64::MAX)) as u64),
                ack_timeout_millis: self
                    .optional(&at("ack_timeout"), &m.ack_timeout, Self::duration)?
                    .map(|timeout| timeout.as_millis().min(u128::from(u64::MAX)) as u64),
                cut_slow_subscribers_after_millis: self
                    .optional(
                        &at("cut_slow_subscribers_after"),
                        &m.cut_slow_subscribers_after,
                        Self::duration,
                    )?
                    .map(|after| after.as_millis().min(u128::from(u64::MAX)) as u64),
            };
            if let Err(why) = settings.validate() {
                return Err(self.error(entry.span(), &format!("mailbox[{index}]"), why));
            }
            if settings.max_message_size > limits.max_message_size {
                let span = m
                    .max_message_size
                    .as_ref()
                    .map_or(entry.span(), Spanned::span);
                return Err(self.error(
                    span,
                    &at("max_message_size"),
                    format!(
                        "{} is above limits.max_message_size ({})",
                        settings.max_message_size, limits.max_message_size
                    ),
                ));
            }
            let permissions = Permissions {
                owner: self
                    .optional(&at("owner"), &m.owner, Self::user)?
                    .unwrap_or(uid),
                group: self
                    .optional(&at("group"), &m.group, Self::group)?
                    .unwrap_or(gid),
                mode: self
                    .optional(&at("mode"), &m.mode, Self::mode)?
                    .unwrap_or(access.default_mode),
            };
            declared.push(Declaration {
                name,
                settings,
                permissions,
            });
        }
        // A dead-letter target declared here under another owner would
        // refuse every message at run time: say so now.
        for (index, declaration) in declared.iter().enumerate() {
            let Some(target) = &declaration.settings.dead_letter else {
                continue;
            };
            let Some(target_declared) = declared.iter().find(|d| &d.name == target) else {
                continue;
            };
            if target_declared.permissions.owner != declaration.permissions.owner
                && !access.dead_letter_targets.contains(target)
            {
                let span = raw[index]
                    .get_ref()
                    .dead_letter
                    .as_ref()
                    .map_or(raw[index].span(), Spanned::span);
                return Err(self.error(
                    span,
                    &format!("mailbox[{index}].dead_letter"),
                    format!(
                        "{target} is owned by uid {}, {} by uid {}: dead letters move only between mailboxes of one owner; list {target} in access.dead_letter_targets to open it to all",
                        target_declared.permissions.owner,
                        declaration.name,
                        declaration.permissions.owner
                    ),
                ));
            }
        }
        Ok(declared)
    }
}
