//! `mailboxctl`: create, inspect and use the mailboxes of `mailboxd` from a
//! shell.
//!
//! This file parses arguments, calls the blocking client once per step and
//! prints. It owns the command line's interface: the output formats, the
//! exit codes ([`exit_code`], the one table) and the one-line failure
//! messages ([`describe`]). It has no protocol logic of its own.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mailbox_client::blocking::Client;
use mailbox_client::{
    parse_duration, wait_at_most, BrokerStatus, Bytes, Capacity, DeliveryPolicy, Error, ErrorKind,
    MailboxInfo, MailboxSettings, Message, Wait, DEFAULT_MAX_MESSAGE_SIZE,
};
use serde_json::json;

/// Control and use the mailboxes of the mailboxd broker.
///
/// The broker's socket is --socket, else $MAILBOX_SOCKET, else
/// $XDG_RUNTIME_DIR/mailbox/mailboxd.sock, else /run/mailbox/mailboxd.sock.
///
/// Exit codes: 0 success; 1 other failure; 2 usage; 65 message or settings
/// refused; 66 no such mailbox; 69 broker unreachable; 73 mailbox exists with
/// other settings; 75 would block (mailbox full or empty); 77 permission
/// denied; 124 timed out.
#[derive(Debug, Parser)]
#[command(name = "mailboxctl", version, verbatim_doc_comment)]
struct Cli {
    /// The broker's socket.
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print one JSON object per line on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a mailbox (succeeds without change if it exists with the same settings).
    Create {
        /// The mailbox's name: 1 to 255 of letters, digits and . _ / -
        name: String,
        /// How many messages it buffers: zero (rendezvous), a number, or unbounded.
        #[arg(long, default_value = "unbounded")]
        capacity: Capacity,
        /// Who gets each message: round-robin (one receiver) or broadcast (every subscriber).
        #[arg(long, default_value = "round-robin")]
        policy: DeliveryPolicy,
        /// Largest message accepted, in bytes (suffixes KiB and MiB allowed).
        #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_MESSAGE_SIZE, value_parser = parse_size)]
        max_size: u32,
        /// Accept only messages of exactly this size, in bytes.
        #[arg(long, value_name = "BYTES", value_parser = parse_size)]
        fixed_size: Option<u32>,
    },
    /// Delete a mailbox; whoever waits on it gets an error.
    Delete {
        /// The mailbox's name.
        name: String,
    },
    /// List every mailbox.
    List,
    /// Show everything about one mailbox.
    Info {
        /// The mailbox's name.
        name: String,
    },
    /// Send one message: MESSAGE's bytes, or all of stdin.
    Send {
        /// The mailbox's name.
        name: String,
        /// The message; when absent, stdin is read to its end and sent as one message.
        message: Option<OsString>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Receive messages and write their bytes to stdout exactly as sent.
    ///
    /// Payloads are written back to back, with no separator. With --json each
    /// message is one line: {"mailbox", "sequence", "sender_pid",
    /// "sender_uid", "sender_gid", "sender_connection",
    /// "accepted_at_unix_nanos", "payload", "payload_base64"}, where
    /// "payload_base64" always holds the exact bytes (standard alphabet,
    /// padded) and "payload" is the same bytes as a string when they are
    /// valid UTF-8, else null.
    ///
    /// On a broadcast mailbox this subscribes first, so it only sees messages
    /// sent after it started.
    #[command(verbatim_doc_comment)]
    Recv {
        /// The mailbox's name.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
        /// Receive this many messages, then exit.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "follow")]
        count: u64,
        /// Keep receiving until killed.
        #[arg(long)]
        follow: bool,
    },
    /// Show the broker's figures.
    Status,
}

#[derive(Debug, Args)]
struct WaitArgs {
    /// Fail at once instead of waiting (exit 75).
    #[arg(long, conflicts_with = "timeout")]
    nonblock: bool,
    /// Wait at most this long, like 500ms, 2s, 1.5s or 1m (exit 124).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
}

impl WaitArgs {
    fn wait(&self) -> Wait {
        match (self.nonblock, self.timeout) {
            (true, _) => Wait::Never,
            (false, Some(timeout)) => wait_at_most(timeout),
            (false, None) => Wait::Forever,
        }
    }
}

impl Command {
    /// The mailbox the command is about, for failure messages.
    fn mailbox(&self) -> Option<&str> {
        match self {
            Command::Create { name, .. }
            | Command::Delete { name }
            | Command::Info { name }
            | Command::Send { name, .. }
            | Command::Recv { name, .. } => Some(name),
            Command::List | Command::Status => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Exit codes: the one table.

/// Exit codes of `mailboxctl` (after sysexits.h where one fits). Part of its
/// interface: scripts match on them.
mod exit {
    /// Anything not listed below (including MailboxDeleted and BrokerFull).
    pub const FAILURE: u8 = 1;
    /// Usage error; clap exits with it itself.
    #[allow(dead_code)]
    pub const USAGE: u8 = 2;
    /// The broker refused the message, name or settings (EX_DATAERR).
    pub const REFUSED: u8 = 65;
    /// No such mailbox (EX_NOINPUT).
    pub const NO_SUCH_MAILBOX: u8 = 66;
    /// The broker cannot be reached or ended the connection (EX_UNAVAILABLE).
    pub const UNREACHABLE: u8 = 69;
    /// A mailbox of that name exists with other settings (EX_CANTCREAT).
    pub const EXISTS: u8 = 73;
    /// Would block: mailbox full or empty (EX_TEMPFAIL).
    pub const WOULD_BLOCK: u8 = 75;
    /// Permission denied (EX_NOPERM).
    pub const PERMISSION_DENIED: u8 = 77;
    /// Timed out (as timeout(1)).
    pub const TIMEOUT: u8 = 124;
}

/// The exit code for a client error.
fn exit_code(error: &Error) -> u8 {
    match error {
        Error::Connect { .. } | Error::Disconnected | Error::Rejected(_) => exit::UNREACHABLE,
        Error::Io(_) | Error::Protocol(_) => exit::FAILURE,
        Error::Broker(error) | Error::Partial { error, .. } => match error.kind {
            ErrorKind::InvalidName
            | ErrorKind::InvalidSettings
            | ErrorKind::MessageTooLarge
            | ErrorKind::WrongMessageSize => exit::REFUSED,
            ErrorKind::NoSuchMailbox => exit::NO_SUCH_MAILBOX,
            ErrorKind::BrokerShuttingDown => exit::UNREACHABLE,
            ErrorKind::MailboxExists => exit::EXISTS,
            ErrorKind::WouldBlock => exit::WOULD_BLOCK,
            ErrorKind::PermissionDenied => exit::PERMISSION_DENIED,
            ErrorKind::Timeout => exit::TIMEOUT,
            ErrorKind::MailboxDeleted
            | ErrorKind::BrokerFull
            | ErrorKind::NotSubscribed
            | ErrorKind::NotBroadcast
            | ErrorKind::Cancelled
            | ErrorKind::DuplicateRequestId
            | ErrorKind::TooManyRequests
            | ErrorKind::ProtocolViolation
            | ErrorKind::UnsupportedVersion
            | ErrorKind::Internal => exit::FAILURE,
        },
    }
}

/// A failure to report: one line (`<what happened>; <what to do>`) and an exit code.
#[derive(Debug)]
struct Failure {
    line: String,
    code: u8,
}

impl Failure {
    fn new(code: u8, what: impl AsRef<str>, todo: impl AsRef<str>) -> Self {
        Self {
            line: format!("{}; {}", one_line(what.as_ref()), one_line(todo.as_ref())),
            code,
        }
    }

    fn client(error: Error, command: &Command) -> Self {
        Self {
            line: one_line(&describe(&error, command)),
            code: exit_code(&error),
        }
    }

    fn stdout(error: io::Error) -> Self {
        Self::new(
            exit::FAILURE,
            format!("cannot write to standard output: {error}"),
            "check where mailboxctl's output goes (the message is lost if it was received)",
        )
    }
}

/// Keeps a failure on one line whatever the broker put in its message.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// What happened and what to do about it, for a client error.
fn describe(error: &Error, command: &Command) -> String {
    let name = command.mailbox().unwrap_or("?");
    let waited = match command {
        Command::Send { wait, .. } | Command::Recv { wait, .. } => wait.timeout,
        _ => None,
    };
    // The broker's own message, up to its own advice (which ours replaces).
    let broker_message =
        |error: &mailbox_client::BrokerError| match error.message.split("; ").next().map(str::trim)
        {
            Some(said) if !said.is_empty() => said.to_owned(),
            _ => error.kind.to_string(),
        };
    let bug = "this looks like a bug; please report it with the broker's log";
    match error {
        Error::Connect { .. } => error.to_string(),
        Error::Disconnected => {
            "the broker closed the connection; check that mailboxd is still running and read its log".to_owned()
        }
        Error::Io(io) => {
            format!("i/o error talking to the broker: {io}; check that mailboxd is still running")
        }
        Error::Protocol(what) => format!(
            "the broker sent something unexpected ({what}); \
             use the mailboxctl that came with this mailboxd"
        ),
        Error::Rejected(refusal) => match refusal.kind {
            ErrorKind::BrokerShuttingDown => {
                "the broker is shutting down; retry once mailboxd runs again".to_owned()
            }
            ErrorKind::UnsupportedVersion => format!(
                "the broker refused this client's protocol version ({}); \
                 use the mailboxctl that came with this mailboxd",
                broker_message(refusal)
            ),
            _ => format!(
                "the broker ended the connection ({}); read the broker's log",
                broker_message(refusal)
            ),
        },
        // mailboxctl sends no batches; described for completeness.
        Error::Partial { admitted, .. } => format!(
            "{error}; send the messages after the first {admitted} of the batch again"
        ),
        Error::Broker(refusal) => {
            let said = broker_message(refusal);
            match refusal.kind {
                ErrorKind::InvalidName => format!(
                    "invalid mailbox name {name:?}; \
                     use 1 to 255 of letters, digits and . _ / -"
                ),
                ErrorKind::InvalidSettings => format!(
                    "invalid mailbox settings ({said}); \
                     fix the options (see `mailboxctl create --help`)"
                ),
                ErrorKind::MessageTooLarge => format!(
                    "message refused: {said}; send a smaller message or create the mailbox \
                     with a larger --max-size"
                ),
                ErrorKind::WrongMessageSize => format!(
                    "message refused: {said}; send exactly the mailbox's fixed size \
                     (see `mailboxctl info {name}`)"
                ),
                ErrorKind::NoSuchMailbox => {
                    format!("no mailbox named {name}; create it with `mailboxctl create {name}`")
                }
                ErrorKind::MailboxExists => format!(
                    "{said}; compare with `mailboxctl info {name}` or delete it first with \
                     `mailboxctl delete {name}`"
                ),
                ErrorKind::WouldBlock => match command {
                    Command::Recv { .. } => format!(
                        "mailbox {name} is empty; try again later or drop --nonblock to wait"
                    ),
                    _ => format!(
                        "mailbox {name} has no room now (or, with capacity zero, no receiver \
                         is waiting); try again later or drop --nonblock to wait"
                    ),
                },
                ErrorKind::Timeout => {
                    let within = waited.map(|d| format!(" within {d:?}")).unwrap_or_default();
                    match command {
                        Command::Recv { .. } => format!(
                            "no message arrived in {name}{within}; try again or raise --timeout"
                        ),
                        _ => format!(
                            "no room in {name}{within}, so the message was withdrawn and will \
                             not be delivered; try again or raise --timeout"
                        ),
                    }
                }
                ErrorKind::MailboxDeleted => format!(
                    "mailbox {name} was deleted while waiting; recreate it with \
                     `mailboxctl create {name}`"
                ),
                ErrorKind::BrokerFull => format!(
                    "the broker's memory budget is spent ({said}); receive queued messages \
                     first or restart mailboxd with a larger --memory-budget"
                ),
                ErrorKind::BrokerShuttingDown => {
                    "the broker is shutting down; retry once mailboxd runs again".to_owned()
                }
                ErrorKind::PermissionDenied => format!(
                    "permission denied ({said}); run as a user the broker allows or ask its \
                     administrator"
                ),
                ErrorKind::NotBroadcast => format!(
                    "mailbox {name} is not a broadcast mailbox; receive from it without \
                     subscribing"
                ),
                ErrorKind::Cancelled => "the request was cancelled; try again".to_owned(),
                ErrorKind::NotSubscribed
                | ErrorKind::DuplicateRequestId
                | ErrorKind::TooManyRequests
                | ErrorKind::ProtocolViolation
                | ErrorKind::UnsupportedVersion
                | ErrorKind::Internal => format!("the broker refused the request ({said}); {bug}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Commands.

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("mailboxctl: {}", failure.line);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let command = &cli.command;
    // Read stdin before connecting, so a slow producer holds no connection.
    let stdin_payload = match command {
        Command::Send { message: None, .. } => Some(read_stdin()?),
        _ => None,
    };
    let fail = |error| Failure::client(error, command);
    let mut client = match &cli.socket {
        Some(path) => Client::connect(path),
        None => Client::connect_default(),
    }
    .map_err(fail)?;
    let mut out = Output::new(cli.json);
    match command {
        Command::Create {
            name,
            capacity,
            policy,
            max_size,
            fixed_size,
        } => {
            let settings = MailboxSettings {
                capacity: *capacity,
                policy: *policy,
                max_message_size: *max_size,
                fixed_size: *fixed_size,
            };
            let created = client.create(name, settings).map_err(fail)?;
            out.emit(
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
        Command::Delete { name } => {
            client.delete(name).map_err(fail)?;
            out.emit(
                || json!({ "name": name, "deleted": true }),
                || format!("deleted {name}\n"),
            )
        }
        Command::List => {
            let mailboxes = client.list().map_err(fail)?;
            if cli.json {
                for info in &mailboxes {
                    out.emit(|| mailbox_json(info), String::new)?;
                }
                Ok(())
            } else {
                out.text(&mailbox_table(&mailboxes))
            }
        }
        Command::Info { name } => {
            let info = client.info(name).map_err(fail)?;
            out.emit(|| mailbox_json(&info), || mailbox_text(&info))
        }
        Command::Status => {
            let status = client.status().map_err(fail)?;
            out.emit(|| status_json(&status), || status_text(&status))
        }
        Command::Send {
            name,
            message,
            wait,
        } => {
            let payload = match (message, stdin_payload) {
                (Some(message), _) => Bytes::from(message.clone().into_vec()),
                (None, Some(payload)) => payload,
                (None, None) => Bytes::new(),
            };
            let receipt = client.send_with(name, payload, wait.wait()).map_err(fail)?;
            if receipt.recipients == 0 {
                eprintln!("note: no subscribers; nobody will receive it");
            }
            if cli.json {
                out.emit(
                    || json!({ "sequence": receipt.sequence, "recipients": receipt.recipients }),
                    String::new,
                )?;
            }
            Ok(())
        }
        Command::Recv {
            name,
            wait,
            count,
            follow,
        } => {
            // Broadcast mailboxes need a subscription; on others the broker
            // says NotBroadcast and there is nothing to do.
            match client.subscribe(name) {
                Ok(_) => {}
                Err(error) if error.kind() == Some(ErrorKind::NotBroadcast) => {}
                Err(error) => return Err(fail(error)),
            }
            let mut received = 0u64;
            while *follow || received < *count {
                let message = client.receive_with(name, wait.wait()).map_err(fail)?;
                received += 1;
                if cli.json {
                    out.emit(|| message_json(name, &message), String::new)?;
                } else {
                    out.raw(&message.payload)?;
                }
            }
            Ok(())
        }
    }
}

fn read_stdin() -> Result<Bytes, Failure> {
    let mut payload = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut payload)
        .map_err(|error| {
            Failure::new(
                exit::FAILURE,
                format!("cannot read the message from standard input: {error}"),
                "pass the message as an argument instead",
            )
        })?;
    Ok(Bytes::from(payload))
}

/// Standard output, flushed after every record so that a pipe sees each
/// message as soon as it is received.
struct Output {
    json: bool,
    stdout: io::Stdout,
}

impl Output {
    fn new(json: bool) -> Self {
        Self {
            json,
            stdout: io::stdout(),
        }
    }

    /// Prints `json()` as one line with --json, else `text()`.
    fn emit(
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

    fn text(&mut self, text: &str) -> Result<(), Failure> {
        self.raw(text.as_bytes())
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let mut lock = self.stdout.lock();
        lock.write_all(bytes)
            .and_then(|()| lock.flush())
            .map_err(Failure::stdout)
    }
}

// ---------------------------------------------------------------------------
// Formats.

fn fixed_size_text(settings: &MailboxSettings) -> String {
    settings
        .fixed_size
        .map_or_else(|| "none".to_owned(), |size| size.to_string())
}

fn mailbox_json(info: &MailboxInfo) -> serde_json::Value {
    json!({
        "name": info.name,
        "capacity": info.settings.capacity.to_string(),
        "policy": info.settings.policy.to_string(),
        "max_message_size": info.settings.max_message_size,
        "fixed_size": info.settings.fixed_size,
        "queued_messages": info.queued_messages,
        "queued_bytes": info.queued_bytes,
        "waiting_senders": info.waiting_senders,
        "waiting_receivers": info.waiting_receivers,
        "subscribers": info.subscribers,
        "messages_accepted": info.messages_accepted,
        "messages_delivered": info.messages_delivered,
    })
}

fn mailbox_text(info: &MailboxInfo) -> String {
    let rows = [
        ("name", info.name.clone()),
        ("capacity", info.settings.capacity.to_string()),
        ("policy", info.settings.policy.to_string()),
        (
            "max message size",
            human_bytes(u64::from(info.settings.max_message_size)),
        ),
        ("fixed size", fixed_size_text(&info.settings)),
        ("queued messages", info.queued_messages.to_string()),
        ("queued bytes", human_bytes(info.queued_bytes)),
        ("waiting senders", info.waiting_senders.to_string()),
        ("waiting receivers", info.waiting_receivers.to_string()),
        ("subscribers", info.subscribers.to_string()),
        ("messages accepted", info.messages_accepted.to_string()),
        ("messages delivered", info.messages_delivered.to_string()),
    ];
    key_values(&rows)
}

fn key_values(rows: &[(&str, String)]) -> String {
    let mut text = String::new();
    for (key, value) in rows {
        let _ = writeln!(text, "{key}: {value}");
    }
    text
}

fn mailbox_table(mailboxes: &[MailboxInfo]) -> String {
    let header = [
        "NAME",
        "CAPACITY",
        "POLICY",
        "QUEUED",
        "WAITING SENDERS",
        "WAITING RECEIVERS",
        "SUBSCRIBERS",
    ];
    let rows: Vec<[String; 7]> = mailboxes
        .iter()
        .map(|info| {
            [
                info.name.clone(),
                info.settings.capacity.to_string(),
                info.settings.policy.to_string(),
                info.queued_messages.to_string(),
                info.waiting_senders.to_string(),
                info.waiting_receivers.to_string(),
                info.subscribers.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut text = String::new();
    let mut line = |cells: [&str; 7]| {
        let mut row = String::new();
        for (column, (cell, width)) in cells.iter().zip(widths).enumerate() {
            // Names and words to the left, counts to the right.
            let _ = match column {
                0..=2 => write!(row, "{cell:<width$}  "),
                _ => write!(row, "{cell:>width$}  "),
            };
        }
        text.push_str(row.trim_end());
        text.push('\n');
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    text
}

fn status_json(status: &BrokerStatus) -> serde_json::Value {
    json!({
        "broker_version": status.broker_version,
        "protocol_version": status.protocol_version,
        "pid": status.pid,
        "uptime_millis": status.uptime_millis,
        "connections": status.connections,
        "mailboxes": status.mailboxes,
        "queued_messages": status.queued_messages,
        "queued_bytes": status.queued_bytes,
        "memory_budget_bytes": status.memory_budget_bytes,
    })
}

fn status_text(status: &BrokerStatus) -> String {
    let used = if status.memory_budget_bytes == 0 {
        String::new()
    } else {
        format!(
            " ({:.1}% of the budget)",
            status.queued_bytes as f64 * 100.0 / status.memory_budget_bytes as f64
        )
    };
    let rows = [
        ("broker version", status.broker_version.clone()),
        ("protocol version", status.protocol_version.to_string()),
        ("pid", status.pid.to_string()),
        ("uptime", human_uptime(status.uptime_millis)),
        ("connections", status.connections.to_string()),
        ("mailboxes", status.mailboxes.to_string()),
        ("queued messages", status.queued_messages.to_string()),
        (
            "queued bytes",
            format!("{}{used}", human_bytes(status.queued_bytes)),
        ),
        ("memory budget", human_bytes(status.memory_budget_bytes)),
    ];
    key_values(&rows)
}

fn message_json(mailbox: &str, message: &Message) -> serde_json::Value {
    let metadata = &message.metadata;
    json!({
        "mailbox": mailbox,
        "sequence": metadata.sequence,
        "sender_pid": metadata.sender_pid,
        "sender_uid": metadata.sender_uid,
        "sender_gid": metadata.sender_gid,
        "sender_connection": metadata.sender_connection,
        "accepted_at_unix_nanos": metadata.accepted_at_unix_nanos,
        "payload": std::str::from_utf8(&message.payload).ok(),
        "payload_base64": base64(&message.payload),
    })
}

/// `1048576 (1.0 MiB)`; small sizes as plain bytes.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{bytes} B ({value:.1} {})", UNITS[unit])
}

/// `3d 4h 5m 6s`, leading zero units left out.
fn human_uptime(millis: u64) -> String {
    let seconds = millis / 1000;
    let parts = [
        (seconds / 86_400, "d"),
        (seconds / 3600 % 24, "h"),
        (seconds / 60 % 60, "m"),
    ];
    let mut text = String::new();
    for (amount, unit) in parts {
        if amount > 0 || !text.is_empty() {
            let _ = write!(text, "{amount}{unit} ");
        }
    }
    let _ = write!(text, "{}s", seconds % 60);
    text
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// A size in bytes: a number, optionally followed by `KiB` or `MiB`.
fn parse_size(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let (number, multiplier) = if let Some(number) = text.strip_suffix("MiB") {
        (number, 1024 * 1024)
    } else if let Some(number) = text.strip_suffix("KiB") {
        (number, 1024)
    } else {
        (text.strip_suffix('B').unwrap_or(text), 1)
    };
    number
        .trim()
        .parse::<u32>()
        .ok()
        .and_then(|number| number.checked_mul(multiplier))
        .ok_or_else(|| {
            format!("{text:?} is not a size; write a number of bytes, like 4096, 64KiB or 1MiB")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailbox_client::BrokerError;

    fn broker(kind: ErrorKind) -> Error {
        Error::Broker(BrokerError::new(kind, "the broker's words"))
    }

    fn recv(name: &str) -> Command {
        Command::Recv {
            name: name.into(),
            wait: WaitArgs {
                nonblock: true,
                timeout: None,
            },
            count: 1,
            follow: false,
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn exit_codes_follow_the_table() {
        let cases = [
            (broker(ErrorKind::MessageTooLarge), 65),
            (broker(ErrorKind::WrongMessageSize), 65),
            (broker(ErrorKind::InvalidName), 65),
            (broker(ErrorKind::InvalidSettings), 65),
            (broker(ErrorKind::NoSuchMailbox), 66),
            (broker(ErrorKind::NotSubscribed), 1),
            (broker(ErrorKind::NotBroadcast), 1),
            (Error::Disconnected, 69),
            (
                Error::Rejected(BrokerError::new(ErrorKind::UnsupportedVersion, "v2")),
                69,
            ),
            (broker(ErrorKind::BrokerShuttingDown), 69),
            (
                Error::Connect {
                    path: "/x".into(),
                    source: io::ErrorKind::NotFound.into(),
                },
                69,
            ),
            (broker(ErrorKind::MailboxExists), 73),
            (broker(ErrorKind::WouldBlock), 75),
            (broker(ErrorKind::PermissionDenied), 77),
            (broker(ErrorKind::Timeout), 124),
            (broker(ErrorKind::MailboxDeleted), 1),
            (broker(ErrorKind::BrokerFull), 1),
            (Error::Protocol("?".into()), 1),
        ];
        for (error, code) in cases {
            assert_eq!(exit_code(&error), code, "{error:?}");
        }
    }

    #[test]
    fn failures_are_one_line_of_what_and_what_to_do() {
        let line = Failure::client(broker(ErrorKind::NoSuchMailbox), &recv("jobs")).line;
        assert_eq!(
            line,
            "no mailbox named jobs; create it with `mailboxctl create jobs`"
        );
        let line = Failure::client(broker(ErrorKind::WouldBlock), &recv("jobs")).line;
        assert!(line.starts_with("mailbox jobs is empty; "), "{line}");
        let sneaky = Error::Broker(BrokerError::new(ErrorKind::Internal, "two\nlines"));
        let line = Failure::client(sneaky, &Command::List).line;
        assert!(!line.contains('\n') && line.contains("; "), "{line}");
    }

    #[test]
    fn base64_matches_rfc_4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10B"), Ok(10));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("4096MiB").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn humans_get_readable_figures() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1536 B (1.5 KiB)");
        assert_eq!(human_uptime(999), "0s");
        assert_eq!(human_uptime(3_723_000), "1h 2m 3s");
        assert_eq!(human_uptime(90_061_000), "1d 1h 1m 1s");
    }

    #[test]
    fn the_list_table_lines_up() {
        let info = MailboxInfo {
            name: "jobs".into(),
            settings: MailboxSettings::default(),
            queued_messages: 12,
            queued_bytes: 100,
            waiting_senders: 0,
            waiting_receivers: 3,
            subscribers: 0,
            messages_accepted: 12,
            messages_delivered: 0,
        };
        let table = mailbox_table(&[info]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("NAME  CAPACITY   POLICY"), "{table}");
        assert!(
            lines[1].starts_with("jobs  unbounded  round-robin"),
            "{table}"
        );
    }

    #[test]
    fn json_messages_keep_every_byte() {
        let message = Message {
            metadata: mailbox_client::Metadata {
                sequence: 1,
                sender_pid: 2,
                sender_uid: 3,
                sender_gid: 4,
                sender_connection: 5,
                accepted_at_unix_nanos: 6,
            },
            payload: Bytes::from_static(&[0xff, b'a']),
        };
        let value = message_json("jobs", &message);
        assert_eq!(value["payload"], serde_json::Value::Null);
        assert_eq!(value["payload_base64"], "/2E=");
        assert_eq!(value["sequence"], 1);
    }
}
