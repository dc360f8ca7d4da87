//! What mailboxctl prints on stdout: [`Output`] writes each record as it
//! comes (text, or one JSON object a line with `--json`), and the modules
//! below turn the broker's answers into those records, one module per
//! thing shown: a mailbox (its info and the listing), a message, the
//! claimed names, the broker's status; [`text`] holds the layout they share
//! (tables, key-value lines, sizes and durations for humans).
//!
//! Failures go to stderr, and are [`crate::failure`]'s.

pub(crate) mod mailbox;
pub(crate) mod message;
pub(crate) mod names;
pub(crate) mod status;
pub(crate) mod text;

use std::io::{self, Write};

use crate::failure::Failure;

/// Standard output, flushed after every record so that a pipe sees each
/// message as soon as it is received.
pub(crate) struct Output {
    json: bool,
    stdout: io::Stdout,
}

impl Output {
    /// Standard output, in JSON lines when `json`.
    pub(crate) fn new(json: bool) -> Self {
        Self {
            json,
            stdout: io::stdout(),
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
