//! The file's shape as serde reads it (every leaf a spanned TOML value,
//! converted by the sibling modules), and the [`Document`] that turns spans
//! into `FILE:LINE: KEY:` errors.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::{Spanned, Value};

use super::ConfigError;

// ---------------------------------------------------------------------------
// The file's shape. Every leaf is a spanned value converted by the sibling
// modules.

pub(super) type Field = Option<Spanned<Value>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a configuration file")]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) socket: RawSocket,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) access: RawAccess,
    #[serde(default)]
    pub(super) mailbox: Vec<Spanned<RawMailbox>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [socket] table")]
pub(super) struct RawSocket {
    pub(super) path: Field,
    pub(super) mode: Field,
    pub(super) group: Field,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [limits] table")]
pub(super) struct RawLimits {
    pub(super) memory_budget: Field,
    pub(super) max_queued_messages: Field,
    pub(super) max_requests_in_flight: Field,
    pub(super) max_connections: Field,
    pub(super) max_connections_per_uid: Field,
    pub(super) max_mailboxes_per_uid: Field,
    pub(super) max_queued_bytes_per_mailbox: Field,
    pub(super) max_queued_bytes_per_uid: Field,
    pub(super) max_queued_messages_per_uid: Field,
    pub(super) admin_reserve_bytes: Field,
    pub(super) admin_reserve_messages: Field,
    pub(super) max_message_size: Field,
    pub(super) max_region_size: Field,
    pub(super) max_regions_per_uid: Field,
    pub(super) max_file_size: Field,
    pub(super) max_frame_size: Field,
    pub(super) handshake_timeout: Field,
    pub(super) max_unread_reply_bytes: Field,
    pub(super) reserved_connections: Field,
    pub(super) max_buffered_bytes: Field,
    pub(super) max_buffered_bytes_per_uid: Field,
    pub(super) frame_timeout: Field,
    pub(super) write_timeout: Field,
    pub(super) max_held_files: Field,
    pub(super) max_held_files_per_uid: Field,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [access] table")]
pub(super) struct RawAccess {
    pub(super) admin_group: Field,
    pub(super) default_mode: Field,
    pub(super) default_inbox_mode: Field,
    pub(super) dead_letter_targets: Field,
    #[serde(default)]
    pub(super) names: BTreeMap<String, Spanned<Value>>,
    #[serde(default)]
    pub(super) reserved_prefixes: BTreeMap<String, Spanned<Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[mailbox]] table")]
pub(super) struct RawMailbox {
    pub(super) name: Field,
    pub(super) capacity: Field,
    pub(super) policy: Field,
    pub(super) max_message_size: Field,
    pub(super) fixed_size: Field,
    pub(super) max_deliveries: Field,
    pub(super) dead_letter: Field,
    pub(super) ttl: Field,
    pub(super) ack_timeout: Field,
    pub(super) cut_slow_subscribers_after: Field,
    pub(super) owner: Field,
    pub(super) group: Field,
    pub(super) mode: Field,
}

// ---------------------------------------------------------------------------
// Conversion, with errors located.

/// The file being converted, to turn spans into lines.
pub(super) struct Document<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

pub(super) type Result<T, E = ConfigError> = std::result::Result<T, E>;

impl Document<'_> {
    pub(super) fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(super) fn error(
        &self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            line: Some(self.line(span.start)),
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    /// A parse or shape error from toml/serde: its line from its span, its
    /// key found by looking the span up in the document.
    pub(super) fn toml_error(&self, error: &toml::de::Error) -> ConfigError {
        let message = error
            .message()
            .trim()
            .replace('\n', "; ")
            .replace("unknown field", "unknown key")
            .replace("missing field", "missing key");
        ConfigError {
            path: self.path.to_owned(),
            line: error.span().map(|span| self.line(span.start)),
            key: error.span().and_then(|span| key_at(self.text, span.start)),
            message,
        }
    }
}

/// The dotted key at byte `offset` of `text` (`limits.max_connections`,
/// `mailbox[1].capacity`), found in the parsed document.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let document = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    find_in_table(document.get_ref(), offset, &mut path).then(|| path.join("."))
}

fn find_in_table(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        if find_in_value(value, offset, path)
            || key.span().contains(&offset)
            || value.span().contains(&offset)
        {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut Vec<String>) -> bool {
    match value.get_ref() {
        DeValue::Table(table) => find_in_table(table, offset, path),
        DeValue::Array(items) => {
            let Some(name) = path.pop() else {
                return false;
            };
            for (index, item) in items.iter().enumerate() {
                path.push(format!("{name}[{index}]"));
                if find_in_value(item, offset, path) || item.span().contains(&offset) {
                    return true;
                }
                path.pop();
            }
            path.push(name);
            false
        }
        _ => false,
    }
}
