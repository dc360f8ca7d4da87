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
//! start and on SIGHUP. The types it fills that the server consumes
//! ([`BufferLimits`], [`Declaration`], the core's [`Limits`] and
//! [`AccessPolicy`]) belong to the server and the core: this module imports
//! them, they never import it.
//!
//! Here: loading and the [`FileConfig`] type; `file.rs` the TOML schema and
//! the spans behind every error; `values.rs` one value of each syntax;
//! `accounts.rs` users and groups; `limits.rs` `[limits]`; `access.rs`
//! `[access]`; `declared.rs` `[[mailbox]]`.

mod access;
mod accounts;
mod declared;
mod file;
mod limits;
mod values;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::{AccessPolicy, Limits};
use crate::server::{BufferLimits, Declaration};
use file::{Document, RawFile, Result};

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

impl Document<'_> {
    /// The whole file: each section converted by its module.
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
}

#[cfg(test)]
mod tests;
