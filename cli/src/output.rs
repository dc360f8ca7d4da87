//! What mailboxctl prints on stdout: [`Output`] writes each record as it
//! comes (text, or one JSON object a line with `--json`), and the modules
//! below turn the broker's answers into those records, one module per
//! thing shown: a mailbox (its info and the listing), a message, the
//! claimed names, the broker's status; [`text`] holds the layout they share
//! (tables, key-value lines, sizes and durations for humans), [`payload`]
//! what follows each message's bytes.
//!
//! One convention for every command: a query prints its answer; a command
//! that changes something (create, chmod, chown, purge, delete, send)
//! prints nothing on success, its receipt with `-v` (text) or `--json`.
//!
//! Failures go to stderr, and are [`crate::failure`]'s.

pub(crate) mod mailbox;
pub(crate) mod message;
pub(crate) mod names;
pub(crate) mod payload;
pub(crate) mod region;
pub(crate) mod status;
pub(crate) mod text;

use std::io::{self, IsTerminal, Write};

use crate::args::Command;
use crate::failure::Failure;
use payload::Separator;

/// Standard output, flushed after every record so that a pipe sees each
/// message as soon as it is received.
pub(crate) struct Output {
    json: bool,
    verbose: bool,
    separator: Separator,
    stdout: io::Stdout,
}

impl Output {
    /// Standard output for `command`: JSON lines when `json`, receipts
    /// when it asks for them, and the separator of its messages.
    pub(crate) fn new(json: bool, command: &Command) -> Self {
        let stdout = io::stdout();
        Self {
            json,
            verbose: command.verbose(),
            separator: Separator::choose(command.framing(), stdout.is_terminal()),
            stdout,
        }
    }

    /// Whether records are JSON lines (`--json`).
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Prints `json()` as one line with --json, else `text()`.
    pub(crate) fn emit(
        &mut self,
        json: impl FnOnce() -> serde_json::Value,
        text: impl FnOnce() -> String,
    ) -> Result<(), Failure> {
        if self.json {
            let mut line = json().to_string();
            line.push('\n');
            self.raw(line.as_bytes())
        } else {
            self.raw(text().as_bytes())
        }
    }

    /// A command's receipt: `json()` with --json, `text()` with -v, else
    /// nothing (quiet on success).
    pub(crate) fn receipt(
        &mut self,
        json: impl FnOnce() -> serde_json::Value,
        text: impl FnOnce() -> String,
    ) -> Result<(), Failure> {
        match (self.json, self.verbose) {
            (false, false) => Ok(()),
            _ => self.emit(json, text),
        }
    }

    /// A message's bytes, followed by what separates messages
    /// ([`payload`]), in one flush.
    pub(crate) fn payload(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let mut lock = self.stdout.lock();
        lock.write_all(bytes)
            .and_then(|()| lock.write_all(self.separator.after(bytes)))
            .and_then(|()| lock.flush())
            .map_err(Failure::stdout)
    }

    /// Prints `text` as it is, whatever the format (for what builds its
    /// own lines).
    pub(crate) fn text(&mut self, text: &str) -> Result<(), Failure> {
        self.raw(text.as_bytes())
    }

    /// Writes `bytes` exactly and flushes them.
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let mut lock = self.stdout.lock();
        lock.write_all(bytes)
            .and_then(|()| lock.flush())
            .map_err(Failure::stdout)
    }
}
