//! `mailboxd`'s configuration file (`/etc/mailbox/mailboxd.toml` unless
//! `--config` says otherwise): reading, validation and user and group
//! names, with errors that name the file, the line and the key:
//!
//! ```text
//! /etc/mailbox/mailboxd.toml:12: limits.max_connections: expected a number
//! ```
//!
//! The file is TOML read with serde; every table refuses keys it does not
//! know (`deny_unknown_fields`). Each value is read as a spanned
//! [`toml::Value`] and converted here, so that every error can say where it
//! is. Sizes are integers or strings like `"64K"`, `"1M"`, `"1G"`; durations
//! strings like `"5s"`, `"1.5s"` or `"200ms"`; modes octal strings like
//! `"0660"` (the syntaxes of [`mailbox_proto::units`], shared with the
//! command lines); users and groups names (resolved with `getpwnam_r` /
//! `getgrnam_r`) or ids.
//!
//! Nothing here touches the broker: the binary applies a [`FileConfig`] at
//! start and on SIGHUP.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailbox_proto::accounts;
use mailbox_proto::units::{parse_duration, parse_mode, parse_size};
use mailbox_proto::{
    Capacity, DeliveryPolicy, MailboxName, MailboxSettings, DEFAULT_MAX_MESSAGE_SIZE,
    MAX_MESSAGE_SIZE_LIMIT,
};
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::{Spanned, Value};

use crate::core::{AccessPolicy, Limits, Permissions, Reservation};
use crate::server::{BufferLimits, Declaration};

/// Where `mailboxd` looks for its configuration without `--config`.
pub const DEFAULT_PATH: &str = "/etc/mailbox/mailboxd.toml";

/// The frame limit must leave this much room above the largest message, for
/// the request around it.
pub const FRAME_OVERHEAD: u32 = 64 * 1024;

/// The `[socket]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketConfig {
    /// Where to listen (the command line's `--socket` wins).
    pub path: Option<PathBuf>,
    /// Mode bits to give the socket file after binding it.
    pub mode: Option<u32>,
    /// Group (gid) to give the socket file after binding it.
    pub group: Option<u32>,
}

/// A configuration, checked, with every name resolved to an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// The file it was read from; `None` for the built-in defaults.
    pub source: Option<PathBuf>,
    /// `[socket]`.
    pub socket: SocketConfig,
    /// The core's limits (`[limits]`).
    pub limits: Limits,
    /// `limits.max_frame_size`: the largest frame accepted from a client.
    pub max_frame_size: u32,
    /// `limits.handshake_timeout`: how long a new connection may take to
    /// send its hello.
    pub handshake_timeout: Duration,
    /// `limits.max_unread_reply_bytes`: replies a connection may leave
    /// unread before it is cut off (the server's outbox limit).
    pub max_unread_reply_bytes: usize,
    /// `limits.max_buffered_bytes`, `limits.max_buffered_bytes_per_uid`,
    /// `limits.frame_timeout` and `limits.write_timeout`.
    pub buffers: BufferLimits,
    /// `[access]`.
    pub access: AccessPolicy,
    /// `[[mailbox]]`, in file order.
    pub mailboxes: Vec<Declaration>,
}

impl Default for FileConfig {
    fn default() -> Self {
        let server = crate::server::Config::default();
        Self {
            source: None,
            socket: SocketConfig::default(),
            limits: Limits::default(),
            max_frame_size: server.max_frame_size,
            handshake_timeout: server.handshake_timeout,
            max_unread_reply_bytes: server.max_unread_reply_bytes,
            buffers: server.buffers,
            access: AccessPolicy::default(),
            mailboxes: Vec::new(),
        }
    }
}

impl FileConfig {
    /// Where it came from, in words: the file, or the built-in defaults.
    pub fn describe_source(&self) -> String {
        match &self.source {
            Some(path) => path.display().to_string(),
            None => format!("built-in defaults ({DEFAULT_PATH} does not exist)"),
        }
    }
}

/// Why a configuration cannot be used: `FILE[:LINE]: [KEY: ]MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// The line (from 1), when the error is at one.
    pub line: Option<usize>,
    /// The key, dotted (`limits.max_connections`, `mailbox[1].capacity`).
    pub key: Option<String>,
    /// What is wrong, and what is expected.
    pub message: String,
}

impl ConfigError {
    fn file(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            line: None,
            key: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Reads the configuration at `explicit`, or at [`DEFAULT_PATH`]; without
/// `explicit` a missing default file means the built-in defaults (so anyone
/// can run `mailboxd` with no arguments).
pub fn load(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let path = explicit.unwrap_or(Path::new(DEFAULT_PATH));
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| ConfigError::file(path, "not UTF-8 text, so not a TOML file"))?;
            parse(path, &text)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound && explicit.is_none() => {
            Ok(FileConfig::default())
        }
        Err(error) => Err(ConfigError::file(path, format!("cannot read it: {error}"))),
    }
}

/// Parses and checks `text`, read from `path` (named in errors).
pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let document = Document { path, text };
    let raw: RawFile = toml::from_str(text).map_err(|error| document.toml_error(&error))?;
    document.convert(raw)
}

// ---------------------------------------------------------------------------
// The file's shape. Every leaf is a spanned value converted below.

type Field = Option<Spanned<Value>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a configuration file")]
struct RawFile {
    #[serde(default)]
    socket: RawSocket,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    access: RawAccess,
    #[serde(default)]
    mailbox: Vec<Spanned<RawMailbox>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [socket] table")]
struct RawSocket {
    path: Field,
    mode: Field,
    group: Field,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [limits] table")]
struct RawLimits {
    memory_budget: Field,
    max_queued_messages: Field,
    max_requests_in_flight: Field,
    max_connections: Field,
    max_connections_per_uid: Field,
    max_mailboxes_per_uid: Field,
    max_queued_bytes_per_mailbox: Field,
    max_queued_bytes_per_uid: Field,
    max_queued_messages_per_uid: Field,
    admin_reserve_bytes: Field,
    admin_reserve_messages: Field,
    max_message_size: Field,
    max_frame_size: Field,
    handshake_timeout: Field,
    max_unread_reply_bytes: Field,
    reserved_connections: Field,
    max_buffered_bytes: Field,
    max_buffered_bytes_per_uid: Field,
    frame_timeout: Field,
    write_timeout: Field,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [access] table")]
struct RawAccess {
    admin_group: Field,
    default_mode: Field,
    default_inbox_mode: Field,
    dead_letter_targets: Field,
    #[serde(default)]
    names: BTreeMap<String, Spanned<Value>>,
    #[serde(default)]
    reserved_prefixes: BTreeMap<String, Spanned<Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[mailbox]] table")]
struct RawMailbox {
    name: Field,
    capacity: Field,
    policy: Field,
    max_message_size: Field,
    fixed_size: Field,
    max_deliveries: Field,
    dead_letter: Field,
    ttl: Field,
    ack_timeout: Field,
    cut_slow_subscribers_after: Field,
    owner: Field,
    group: Field,
    mode: Field,
}

// ---------------------------------------------------------------------------
// Conversion, with errors located.

/// The file being converted, to turn spans into lines.
struct Document<'a> {
    path: &'a Path,
    text: &'a str,
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

impl Document<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            line: Some(self.line(span.start)),
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    /// A parse or shape error from toml/serde: its line from its span, its
    /// key found by looking the span up in the document.
    fn toml_error(&self, error: &toml::de::Error) -> ConfigError {
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

    fn convert(&self, raw: RawFile) -> Result<FileConfig> {
        let defaults = FileConfig::default();
        let socket = SocketConfig {
            path: self
                .optional("socket.path", &raw.socket.path, Self::string)?
                .map(PathBuf::from),
            mode: self.optional("socket.mode", &raw.socket.mode, Self::mode)?,
            group: self.optional("socket.group", &raw.socket.group, Self::group)?,
        };
        if let (Some(path), Some(field)) = (&socket.path, &raw.socket.path) {
            if path.as_os_str().is_empty() {
                return Err(self.error(field.span(), "socket.path", "must not be empty"));
            }
        }
        let (limits, max_frame_size, handshake_timeout) = self.limits(&raw.limits, &defaults)?;
        let max_unread_reply_bytes = match &raw.limits.max_unread_reply_bytes {
            None => defaults.max_unread_reply_bytes,
            Some(field) => {
                let bytes = self.size("limits.max_unread_reply_bytes", field)?;
                usize::try_from(bytes).map_err(|_| {
                    self.error(
                        field.span(),
                        "limits.max_unread_reply_bytes",
                        "too large for this machine",
                    )
                })?
            }
        };
        let buffers = self.buffers(&raw.limits, &defaults.buffers)?;
        let access = self.access(&raw.access)?;
        let mailboxes = self.mailboxes(&raw.mailbox, &access, &limits)?;
        Ok(FileConfig {
            source: Some(self.path.to_owned()),
            socket,
            limits,
            max_frame_size,
            handshake_timeout,
            max_unread_reply_bytes,
            buffers,
            access,
            mailboxes,
        })
    }

    fn limits(&self, raw: &RawLimits, defaults: &FileConfig) -> Result<(Limits, u32, Duration)> {
        let d = defaults.limits;
        let max = u64::MAX;
        let max_usize = usize::MAX as u64;
        let count = |name: &str, field: &Field, default: u64, ceiling: u64| {
            self.bounded(name, field, Self::count, default, ceiling)
        };
        let size = |name: &str, field: &Field, default: u64, ceiling: u64| {
            self.bounded(name, field, Self::size, default, ceiling)
        };
        let limits = Limits {
            memory_budget: size("memory_budget", &raw.memory_budget, d.memory_budget, max)?,
            max_queued_messages: count(
                "max_queued_messages",
                &raw.max_queued_messages,
                d.max_queued_messages,
                max,
            )?,
            max_waiting_per_connection: count(
                "max_requests_in_flight",
                &raw.max_requests_in_flight,
                d.max_waiting_per_connection as u64,
                max_usize,
            )? as usize,
            max_connections: count(
                "max_connections",
                &raw.max_connections,
                d.max_connections as u64,
                max_usize,
            )? as usize,
            max_connections_per_uid: count(
                "max_connections_per_uid",
                &raw.max_connections_per_uid,
                d.max_connections_per_uid as u64,
                max_usize,
            )? as usize,
            reserved_connections: match &raw.reserved_connections {
                // Zero is a choice here: no reserve.
                Some(field) => usize::try_from(self.count("limits.reserved_connections", field)?)
                    .unwrap_or(usize::MAX),
                None => d.reserved_connections,
            },
            max_mailboxes_per_uid: count(
                "max_mailboxes_per_uid",
                &raw.max_mailboxes_per_uid,
                d.max_mailboxes_per_uid as u64,
                max_usize,
            )? as usize,
            max_queued_bytes_per_mailbox: size(
                "max_queued_bytes_per_mailbox",
                &raw.max_queued_bytes_per_mailbox,
                d.max_queued_bytes_per_mailbox,
                max,
            )?,
            // Absent: derived from the totals (see `Limits::budget`).
            max_queued_bytes_per_uid: match &raw.max_queued_bytes_per_uid {
                None => d.max_queued_bytes_per_uid,
                field => Some(size("max_queued_bytes_per_uid", field, 0, max)?),
            },
            max_queued_messages_per_uid: match &raw.max_queued_messages_per_uid {
                None => d.max_queued_messages_per_uid,
                field => Some(count("max_queued_messages_per_uid", field, 0, max)?),
            },
            admin_reserve_bytes: match &raw.admin_reserve_bytes {
                None => d.admin_reserve_bytes,
                Some(value) => Some(self.size("limits.admin_reserve_bytes", value)?),
            },
            admin_reserve_messages: match &raw.admin_reserve_messages {
                None => d.admin_reserve_messages,
                Some(value) => Some(self.count("limits.admin_reserve_messages", value)?),
            },
            max_message_size: size(
                "max_message_size",
                &raw.max_message_size,
                u64::from(d.max_message_size),
                u64::from(MAX_MESSAGE_SIZE_LIMIT),
            )? as u32,
        };
        let budget = limits.budget();
        for (key, field, reserved, total, total_key) in [
            (
                "limits.admin_reserve_bytes",
                &raw.admin_reserve_bytes,
                budget.reserved_bytes,
                budget.bytes,
                "memory_budget",
            ),
            (
                "limits.admin_reserve_messages",
                &raw.admin_reserve_messages,
                budget.reserved_messages,
                budget.messages,
                "max_queued_messages",
            ),
        ] {
            if let Some(value) = field {
                if reserved >= total {
                    return Err(self.error(
                        value.span(),
                        key,
                        format!(
                            "{reserved} leaves nothing of {total_key} ({total}) to anyone but root and the admin group"
                        ),
                    ));
                }
            }
        }
        let max_frame_size = size(
            "max_frame_size",
            &raw.max_frame_size,
            u64::from(defaults.max_frame_size),
            u64::from(u32::MAX),
        )? as u32;
        let floor = limits.max_message_size.saturating_add(FRAME_OVERHEAD);
        if max_frame_size < floor {
            let message = format!(
                "max_frame_size ({max_frame_size}) must be at least max_message_size ({}) \
                 + 64K ({floor}), so that the largest message fits in a frame",
                limits.max_message_size
            );
            // The defaults fit, so one of the two is in the file.
            return Err(match (&raw.max_frame_size, &raw.max_message_size) {
                (Some(field), _) => self.error(field.span(), "limits.max_frame_size", message),
                (None, Some(field)) => self.error(field.span(), "limits.max_message_size", message),
                (None, None) => ConfigError::file(self.path, message),
            });
        }
        let handshake_timeout = match &raw.handshake_timeout {
            None => defaults.handshake_timeout,
            Some(field) => {
                let timeout = self.duration("limits.handshake_timeout", field)?;
                if timeout.is_zero() {
                    return Err(self.error(
                        field.span(),
                        "limits.handshake_timeout",
                        "must be longer than 0",
                    ));
                }
                timeout
            }
        };
        Ok((limits, max_frame_size, handshake_timeout))
    }

    /// The limits on connection buffers.
    fn buffers(&self, raw: &RawLimits, d: &BufferLimits) -> Result<BufferLimits> {
        let max_usize = usize::MAX as u64;
        let size = |name: &str, field: &Field, default: usize| {
            self.bounded(name, field, Self::size, default as u64, max_usize)
                .map(|n| n as usize)
        };
        let timeout = |name: &str, field: &Field, default: Duration| {
            let key = format!("limits.{name}");
            let Some(value) = field else {
                return Ok(default);
            };
            let timeout = self.duration(&key, value)?;
            if timeout.is_zero() {
                return Err(self.error(value.span(), &key, "must be longer than 0"));
            }
            Ok(timeout)
        };
        Ok(BufferLimits {
            max_buffered_bytes: size(
                "max_buffered_bytes",
                &raw.max_buffered_bytes,
                d.max_buffered_bytes,
            )?,
            max_buffered_bytes_per_uid: size(
                "max_buffered_bytes_per_uid",
                &raw.max_buffered_bytes_per_uid,
                d.max_buffered_bytes_per_uid,
            )?,
            frame_timeout: timeout("frame_timeout", &raw.frame_timeout, d.frame_timeout)?,
            write_timeout: timeout("write_timeout", &raw.write_timeout, d.write_timeout)?,
        })
    }

    fn access(&self, raw: &RawAccess) -> Result<AccessPolicy> {
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

    fn mailboxes(
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

    // -- one value each --------------------------------------------------

    fn optional<T>(
        &self,
        key: &str,
        field: &Field,
        convert: impl Fn(&Self, &str, &Spanned<Value>) -> Result<T>,
    ) -> Result<Option<T>> {
        field
            .as_ref()
            .map(|value| convert(self, key, value))
            .transpose()
    }

    /// A limit between 1 and `ceiling`, or `default` when absent.
    fn bounded(
        &self,
        name: &str,
        field: &Field,
        convert: fn(&Self, &str, &Spanned<Value>) -> Result<u64>,
        default: u64,
        ceiling: u64,
    ) -> Result<u64> {
        let key = format!("limits.{name}");
        let Some(value) = field else {
            return Ok(default);
        };
        let n = convert(self, &key, value)?;
        if n == 0 {
            return Err(self.error(value.span(), &key, "must be at least 1"));
        }
        if n > ceiling {
            return Err(self.error(
                value.span(),
                &key,
                format!("{n} is above the most this limit can be ({ceiling})"),
            ));
        }
        Ok(n)
    }

    fn at_most_u32(&self, key: &str, field: &Field, n: u64) -> Result<u32> {
        u32::try_from(n).map_err(|_| {
            let span = field.as_ref().map_or(0..0, Spanned::span);
            self.error(
                span,
                key,
                format!("{n} is too large (at most {})", u32::MAX),
            )
        })
    }

    fn string(&self, key: &str, value: &Spanned<Value>) -> Result<String> {
        match value.get_ref() {
            Value::String(text) => Ok(text.clone()),
            _ => Err(self.error(value.span(), key, "expected a string in quotes")),
        }
    }

    fn count(&self, key: &str, value: &Spanned<Value>) -> Result<u64> {
        match value.get_ref() {
            Value::Integer(n) => u64::try_from(*n).map_err(|_| {
                self.error(value.span(), key, "expected a number, not a negative one")
            }),
            _ => Err(self.error(value.span(), key, "expected a number")),
        }
    }

    fn size(&self, key: &str, value: &Spanned<Value>) -> Result<u64> {
        let expected =
            "expected a size: a number of bytes, or a string like \"64K\", \"1M\" or \"1G\"";
        match value.get_ref() {
            Value::Integer(n) => {
                u64::try_from(*n).map_err(|_| self.error(value.span(), key, expected))
            }
            Value::String(text) => {
                parse_size(text).map_err(|why| self.error(value.span(), key, why.to_string()))
            }
            _ => Err(self.error(value.span(), key, expected)),
        }
    }

    fn duration(&self, key: &str, value: &Spanned<Value>) -> Result<Duration> {
        match value.get_ref() {
            Value::String(text) => {
                parse_duration(text).map_err(|why| self.error(value.span(), key, why.to_string()))
            }
            _ => Err(self.error(
                value.span(),
                key,
                "expected a duration in quotes, like \"5s\" or \"200ms\"",
            )),
        }
    }

    fn mode(&self, key: &str, value: &Spanned<Value>) -> Result<u32> {
        match value.get_ref() {
            Value::String(text) => {
                parse_mode(text).map_err(|why| self.error(value.span(), key, why.to_string()))
            }
            _ => Err(self.error(
                value.span(),
                key,
                "expected an octal mode in quotes, like \"0660\"",
            )),
        }
    }

    fn capacity(&self, key: &str, value: &Spanned<Value>) -> Result<Capacity> {
        let expected = "expected \"zero\", a number of messages, or \"unbounded\"";
        let text = match value.get_ref() {
            Value::String(text) => text.clone(),
            Value::Integer(n) if *n >= 0 => n.to_string(),
            _ => return Err(self.error(value.span(), key, expected)),
        };
        text.parse()
            .map_err(|_| self.error(value.span(), key, format!("{text:?}: {expected}")))
    }

    fn policy(&self, key: &str, value: &Spanned<Value>) -> Result<DeliveryPolicy> {
        let expected = "expected \"round-robin\", \"broadcast\", \"hash\" or \"priority\"";
        match value.get_ref() {
            Value::String(text) => text
                .parse()
                .map_err(|_| self.error(value.span(), key, format!("{text:?}: {expected}"))),
            _ => Err(self.error(value.span(), key, expected)),
        }
    }

    fn user(&self, key: &str, value: &Spanned<Value>) -> Result<u32> {
        self.user_value(key, value.span(), value.get_ref())
    }

    fn user_value(&self, key: &str, span: Range<usize>, value: &Value) -> Result<u32> {
        self.principal(key, span, value, "user", "uid", accounts::user_id)
    }

    fn group(&self, key: &str, value: &Spanned<Value>) -> Result<u32> {
        self.principal(
            key,
            value.span(),
            value.get_ref(),
            "group",
            "gid",
            accounts::group_id,
        )
    }

    /// A user or group: an id (integer or digits), or a name looked up.
    fn principal(
        &self,
        key: &str,
        span: Range<usize>,
        value: &Value,
        what: &str,
        id: &str,
        lookup: fn(&str) -> io::Result<Option<u32>>,
    ) -> Result<u32> {
        let expected = format!("expected a {what} name in quotes or a {id}");
        match value {
            Value::Integer(n) => u32::try_from(*n)
                .ok()
                .filter(|&n| n != u32::MAX)
                .ok_or_else(|| self.error(span, key, format!("{n} is not a valid {id}"))),
            Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse::<u32>()
                    .ok()
                    .filter(|&n| n != u32::MAX)
                    .ok_or_else(|| self.error(span, key, format!("{text} is not a valid {id}")))
            }
            Value::String(text) => match lookup(text) {
                Ok(Some(id)) => Ok(id),
                Ok(None) => Err(self.error(span, key, format!("no {what} named {text:?}"))),
                Err(error) => Err(self.error(
                    span,
                    key,
                    format!("cannot look up the {what} {text:?}: {error}"),
                )),
            },
            _ => Err(self.error(span, key, expected)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<FileConfig> {
        parse(Path::new("/etc/mailbox/mailboxd.toml"), text)
    }

    fn error_of(text: &str) -> String {
        match parse_text(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let config = parse_text("").unwrap();
        assert_eq!(
            FileConfig {
                source: None,
                ..config
            },
            FileConfig::default()
        );
    }

    #[test]
    fn every_key_is_read() {
        let text = r#"
            [socket]
            path = "/run/mailbox/other.sock"
            mode = "0660"
            group = "root"

            [limits]
            memory_budget = "64M"
            max_queued_messages = 1000
            max_requests_in_flight = 50
            max_connections = 100
            max_connections_per_uid = 10
            max_mailboxes_per_uid = 20
            max_queued_bytes_per_mailbox = "1M"
            max_queued_bytes_per_uid = "16M"
            max_queued_messages_per_uid = 500
            admin_reserve_bytes = "8M"
            admin_reserve_messages = 0
            max_message_size = "64K"
            max_frame_size = "1M"
            handshake_timeout = "200ms"
            max_unread_reply_bytes = "32M"
            reserved_connections = 0
            max_buffered_bytes = "100M"
            max_buffered_bytes_per_uid = "10M"
            frame_timeout = "2s"
            write_timeout = "3s"

            [access]
            admin_group = 10
            default_mode = "0700"

            default_inbox_mode = "0620"
            dead_letter_targets = ["jobs.dead"]

            [access.names]
            "org.example.svc" = [1000, "root", "65534"]

            [access.reserved_prefixes]
            "payroll." = "root"
            "ops." = [1000, "@root", "@7"]

            [[mailbox]]
            name = "jobs"
            capacity = 64
            policy = "priority"
            max_message_size = "4K"
            fixed_size = 16
            max_deliveries = 3
            dead_letter = "jobs.dead"
            ttl = "10m"
            ack_timeout = "30s"
            owner = "root"
            group = 100
            mode = "0764"

            [[mailbox]]
            name = "jobs.dead"
            capacity = "zero"

            [[mailbox]]
            name = "news"
            capacity = 8
            policy = "broadcast"
            cut_slow_subscribers_after = "5s"
        "#;
        let config = parse_text(text).unwrap();
        assert_eq!(
            config.socket,
            SocketConfig {
                path: Some("/run/mailbox/other.sock".into()),
                mode: Some(0o660),
                group: Some(0),
            }
        );
        assert_eq!(
            config.limits,
            Limits {
                memory_budget: 64 << 20,
                max_queued_messages: 1000,
                max_waiting_per_connection: 50,
                max_connections: 100,
                max_connections_per_uid: 10,
                reserved_connections: 0,
                max_mailboxes_per_uid: 20,
                max_queued_bytes_per_mailbox: 1 << 20,
                max_queued_bytes_per_uid: Some(16 << 20),
                max_queued_messages_per_uid: Some(500),
                admin_reserve_bytes: Some(8 << 20),
                admin_reserve_messages: Some(0),
                max_message_size: 64 << 10,
            }
        );
        assert_eq!(config.max_frame_size, 1 << 20);
        assert_eq!(config.handshake_timeout, Duration::from_millis(200));
        assert_eq!(config.max_unread_reply_bytes, 32 << 20);
        assert_eq!(
            config.buffers,
            BufferLimits {
                max_buffered_bytes: 100 << 20,
                max_buffered_bytes_per_uid: 10 << 20,
                frame_timeout: Duration::from_secs(2),
                write_timeout: Duration::from_secs(3),
            }
        );
        assert_eq!(config.access.admin_group, Some(10));
        assert_eq!(config.access.default_mode, 0o700);
        assert_eq!(config.access.default_inbox_mode, 0o620);
        assert!(config.access.dead_letter_targets.contains("jobs.dead"));
        assert_eq!(
            config.access.reserved_prefixes.get("payroll."),
            Some(&Reservation {
                uids: vec![0],
                gids: vec![]
            })
        );
        assert_eq!(
            config.access.reserved_prefixes.get("ops."),
            Some(&Reservation {
                uids: vec![1000],
                gids: vec![0, 7]
            })
        );
        assert_eq!(
            config.access.reserved_names.get("org.example.svc"),
            Some(&vec![1000, 0, 65534])
        );
        assert_eq!(config.mailboxes.len(), 3);
        let jobs = &config.mailboxes[0];
        assert_eq!(jobs.name, "jobs");
        assert_eq!(
            jobs.settings,
            MailboxSettings {
                capacity: Capacity::Bounded(64),
                policy: DeliveryPolicy::Priority,
                max_message_size: 4096,
                fixed_size: Some(16),
                max_deliveries: Some(3),
                dead_letter: Some("jobs.dead".into()),
                ttl_millis: Some(600_000),
                ack_timeout_millis: Some(30_000),
                cut_slow_subscribers_after_millis: None,
            }
        );
        assert_eq!(
            config.mailboxes[2]
                .settings
                .cut_slow_subscribers_after_millis,
            Some(5000)
        );
        assert_eq!(
            jobs.permissions,
            Permissions {
                owner: 0,
                group: 100,
                mode: 0o764,
            }
        );
        let dead = &config.mailboxes[1];
        assert_eq!(dead.settings.capacity, Capacity::Zero);
        // The default size, capped by the broker's limit.
        assert_eq!(dead.settings.max_message_size, 64 << 10);
        // Defaults: the broker's own uid and gid, and [access] default_mode.
        // SAFETY: no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        assert_eq!(
            dead.permissions,
            Permissions {
                owner: uid,
                group: gid,
                mode: 0o700,
            }
        );
    }

    #[test]
    fn a_wrong_type_names_the_file_line_and_key() {
        let text = "[socket]\nmode = \"0666\"\n\n[limits]\nmax_connections = \"lots\"\n";
        assert_eq!(
            error_of(text),
            "/etc/mailbox/mailboxd.toml:5: limits.max_connections: expected a number"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line_and_key() {
        let error = error_of("[limits]\nmax_connections = 5\nmax_conections = 6\n");
        assert!(
            error.starts_with("/etc/mailbox/mailboxd.toml:3: limits.max_conections: unknown key"),
            "{error}"
        );
        let error = error_of("[limit]\nmax_connections = 5\n");
        assert!(
            error.starts_with("/etc/mailbox/mailboxd.toml:1: limit: unknown key `limit`"),
            "{error}"
        );
        let error = error_of("[[mailbox]]\nname = \"a\"\n[[mailbox]]\nname = \"b\"\ncolour = 1\n");
        assert!(
            error.starts_with("/etc/mailbox/mailboxd.toml:5: mailbox[1].colour: unknown key"),
            "{error}"
        );
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let error = error_of("[limits]\nmax_connections = = 5\n");
        assert!(
            error.starts_with("/etc/mailbox/mailboxd.toml:2: "),
            "{error}"
        );
    }

    #[test]
    fn bad_values_are_explained() {
        for (text, expected) in [
            (
                "[limits]\nframe_timeout = \"0s\"\n",
                ":2: limits.frame_timeout: must be longer than 0",
            ),
            (
                "[limits]\nwrite_timeout = 30\n",
                ":2: limits.write_timeout: expected a duration in quotes",
            ),
            (
                "[limits]\nmax_buffered_bytes_per_uid = 0\n",
                ":2: limits.max_buffered_bytes_per_uid: must be at least 1",
            ),
            (
                "[limits]\nmemory_budget = \"64Q\"\n",
                ":2: limits.memory_budget: unknown unit \"Q\" in \"64Q\"; use K, M or G",
            ),
            (
                "[limits]\nmemory_budget = true\n",
                ":2: limits.memory_budget: expected a size",
            ),
            (
                "[limits]\nmax_connections = 0\n",
                ":2: limits.max_connections: must be at least 1",
            ),
            (
                "[limits]\nmax_connections = -3\n",
                ":2: limits.max_connections: expected a number, not a negative one",
            ),
            (
                "[limits]\nhandshake_timeout = 5\n",
                ":2: limits.handshake_timeout: expected a duration in quotes",
            ),
            (
                "[limits]\nhandshake_timeout = \"5\"\n",
                ":2: limits.handshake_timeout: \"5\" needs a unit",
            ),
            (
                "[limits]\nmax_message_size = \"32M\"\n",
                ":2: limits.max_message_size: 33554432 is above the most",
            ),
            (
                "[limits]\nmax_frame_size = \"64K\"\n",
                ":2: limits.max_frame_size: max_frame_size (65536) must be at least",
            ),
            (
                "[socket]\nmode = 660\n",
                ":2: socket.mode: expected an octal mode in quotes",
            ),
            (
                "[socket]\nmode = \"0988\"\n",
                ":2: socket.mode: \"0988\" is not an octal mode",
            ),
            (
                "[socket]\nmode = \"01777\"\n",
                ":2: socket.mode: \"01777\" is not an octal mode",
            ),
            (
                "[socket]\ngroup = \"no-such-group-here\"\n",
                ":2: socket.group: no group named \"no-such-group-here\"",
            ),
            (
                "[access]\nadmin_group = -1\n",
                ":2: access.admin_group: -1 is not a valid gid",
            ),
            (
                "[access.names]\n\"svc\" = 1000\n",
                ":2: access.names.svc: expected a list of users",
            ),
            (
                "[access.names]\n\"svc\" = [\"no-such-user-here\"]\n",
                ":2: access.names.svc: no user named \"no-such-user-here\"",
            ),
            (
                "[access.names]\n\"bad name\" = [1]\n",
                ":2: access.names.bad name: not a valid name",
            ),
            (
                "[[mailbox]]\ncapacity = 3\n",
                ":1: mailbox[0]: missing key `name`",
            ),
            (
                "[[mailbox]]\nname = \"a\"\ncapacity = \"lots\"\n",
                ":3: mailbox[0].capacity: \"lots\": expected \"zero\"",
            ),
            (
                "[[mailbox]]\nname = \"a\"\npolicy = \"fifo\"\n",
                ":3: mailbox[0].policy: \"fifo\": expected \"round-robin\"",
            ),
            (
                "[[mailbox]]\nname = \"a\"\n[[mailbox]]\nname = \"a\"\n",
                ":4: mailbox[1].name: mailbox a is declared twice (first at line 2)",
            ),
            ("[[mailbox]]\nname = \"a b\"\n", ":2: mailbox[0].name: "),
            (
                "[[mailbox]]\nname = \"a\"\nfixed_size = \"2M\"\n",
                ":1: mailbox[0]: fixed size 2097152 is above the max message size",
            ),
            (
                "[limits]\nmax_message_size = \"64K\"\n[[mailbox]]\nname = \"a\"\nmax_message_size = \"1M\"\n",
                ":5: mailbox[0].max_message_size: 1048576 is above limits.max_message_size",
            ),
            (
                "[[mailbox]]\nname = \"a\"\nowner = \"no-such-user-here\"\n",
                ":3: mailbox[0].owner: no user named",
            ),
            (
                "[[mailbox]]\nname = \"a\"\nack_timeout = 30\n",
                ":3: mailbox[0].ack_timeout: expected a duration in quotes",
            ),
            (
                "[[mailbox]]\nname = \"a\"\npolicy = \"broadcast\"\nack_timeout = \"1s\"\n",
                ":1: mailbox[0]: an acknowledgement timeout needs manual acknowledgement",
            ),
            (
                "[[mailbox]]\nname = \"a\"\npolicy = \"broadcast\"\ncut_slow_subscribers_after = \"5s\"\n",
                ":1: mailbox[0]: cutting slow subscribers needs a bounded capacity",
            ),
            (
                "[[mailbox]]\nname = \"a\"\ncapacity = 4\ncut_slow_subscribers_after = \"5s\"\n",
                ":1: mailbox[0]: cutting slow subscribers applies to broadcast, not round-robin",
            ),
            (
                "limits = 5\n",
                ":1: limits: invalid type: integer `5`, expected a [limits] table",
            ),
            (
                "[[mailbox]]\nname = \"a\"\nowner = 1000\ndead_letter = \"b\"\n[[mailbox]]\nname = \"b\"\nowner = 1001\n",
                ":4: mailbox[0].dead_letter: b is owned by uid 1001, a by uid 1000",
            ),
            (
                "[access.reserved_prefixes]\n\"p.\" = \"@no-such-group-here\"\n",
                ":2: access.reserved_prefixes.p.: no group named",
            ),
            (
                "[access]\ndead_letter_targets = \"dead\"\n",
                ":2: access.dead_letter_targets: expected a list of mailbox names",
            ),
        ] {
            let error = error_of(text);
            let expected = format!("/etc/mailbox/mailboxd.toml{expected}");
            assert!(
                error.starts_with(&expected),
                "{text:?}:\n got {error}\nwant {expected}"
            );
        }
    }

    #[test]
    fn a_missing_default_file_is_the_defaults_but_a_missing_named_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("mailboxd.toml");
        let error = load(Some(&missing)).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}: cannot read it", missing.display())),
            "{error}"
        );
        std::fs::write(&missing, "[limits]\nmax_connections = 7\n").unwrap();
        let config = load(Some(&missing)).unwrap();
        assert_eq!(config.limits.max_connections, 7);
        assert_eq!(config.source.as_deref(), Some(missing.as_path()));
    }
}
