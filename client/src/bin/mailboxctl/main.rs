//! `mailboxctl`: create, inspect and use the mailboxes of `mailboxd` from a
//! shell.
//!
//! This file parses arguments, calls the blocking client once per step and
//! prints. It owns the command line's interface: the output formats, the
//! exit codes ([`exit_code`], the one table) and the one-line failure
//! messages ([`describe`]). It has no protocol logic of its own.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

mod exec;

mod top;
use mailbox_client::blocking::Client;
use mailbox_client::{
    parse_duration, wait_at_most, Address, BrokerStatus, Bytes, Capacity, ConnectOptions,
    DeliveryPolicy, Error, ErrorKind, Held, MailboxInfo, MailboxSettings, Message, NameInfo,
    ReceiveOptions, SendOptions, Source, Stage, Target, Wait, DEFAULT_MAX_MESSAGE_SIZE,
    MAX_MESSAGE_SIZE_LIMIT,
};
use serde_json::json;

/// Control and use the mailboxes of the mailboxd broker.
///
/// The broker's socket is --socket, else $MAILBOX_SOCKET, else
/// $XDG_RUNTIME_DIR/mailbox/mailboxd.sock, else /run/mailbox/mailboxd.sock.
///
/// Exit codes: 0 success; 1 other failure; 2 usage; 65 message, settings or
/// request refused; 66 no such mailbox; 68 no such process; 69 broker
/// unreachable or not answering; 73 mailbox exists with other settings, or
/// name taken; 75 would block (mailbox full or empty); 76 no reply to a
/// call; 77 permission denied; 78 the socket's owner is not a trusted
/// broker; 120 timed out after a receiver took the message; 124 timed out.
#[derive(Debug, Parser)]
#[command(name = "mailboxctl", version, verbatim_doc_comment)]
struct Cli {
    /// The broker's socket.
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print one JSON object per line on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Claim this well-known name for the command's connection first, so
    /// that others reach its inbox by that name (exit 73 if another process
    /// holds it).
    #[arg(long = "as", global = true, value_name = "NAME")]
    as_name: Option<String>,
    /// Who may send to this command's inbox, as an octal mode (only the
    /// send bits count): the default 0600 admits processes of your own uid
    /// and root; 0622 admits everyone, 0620 your group too.
    #[arg(long, global = true, value_name = "MODE", value_parser = parse_mode)]
    inbox_mode: Option<u32>,
    /// Also accept a broker running as this user (uid or name); by default
    /// only root, the user mailbox and your own uid are (exit 78 for any
    /// other). Default: $MAILBOX_BROKER_UID.
    #[arg(long, global = true, value_name = "USER")]
    broker_uid: Option<String>,
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
        /// Who gets each message: round-robin (one receiver), broadcast (every
        /// subscriber), hash (the same receiver for the same --key) or priority
        /// (the waiting receiver with the highest --priority).
        #[arg(long, default_value = "round-robin")]
        policy: DeliveryPolicy,
        /// Largest message accepted, in bytes (suffixes KiB and MiB allowed).
        #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_MESSAGE_SIZE, value_parser = parse_size)]
        max_size: u32,
        /// Accept only messages of exactly this size, in bytes.
        #[arg(long, value_name = "BYTES", value_parser = parse_size)]
        fixed_size: Option<u32>,
        /// A message delivered this many times with manual acknowledgement
        /// that comes back again is dead-lettered (or dropped) instead.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_deliveries: Option<u32>,
        /// Where dead-lettered and expired messages go (a mailbox); without
        /// it they are dropped and counted.
        #[arg(long, value_name = "NAME")]
        dead_letter: Option<String>,
        /// Time-to-live of every message, like 30s or 5m.
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: Option<u64>,
        /// A message held with manual acknowledgement (`recv --ack`) for
        /// longer than this, like 30s, goes back to the head of the mailbox
        /// with one redelivery more, as if its receiver had left; the late
        /// ack or nack fails. Not on broadcast.
        #[arg(long, value_name = "DURATION", value_parser = parse_ack_timeout)]
        ack_timeout: Option<u64>,
        /// Broadcast with a bounded --capacity: a subscriber whose backlog
        /// stays full for longer than this, like 5s, is cut off (its
        /// receive fails with exit code 121) so that senders and the other
        /// subscribers go on. Without it senders wait for the slowest.
        #[arg(long, value_name = "DURATION", value_parser = parse_cut_after)]
        cut_slow_subscribers_after: Option<u64>,
        /// Rights in octal, like 0760 (see `chmod`); default: the broker's
        /// default mode.
        #[arg(long, value_name = "MODE", value_parser = parse_mode)]
        mode: Option<u32>,
        /// Group of the mailbox (a name or a gid); default: the creator's.
        #[arg(long, value_name = "GROUP", value_parser = parse_group)]
        group: Option<u32>,
    },
    /// Change who may do what with a mailbox (needs the manage right).
    ///
    /// MODE is octal, like file permissions: owner, group, others, each the
    /// sum of receive 4, send 2 and manage 1 (delete, chmod, chown, purge).
    /// 0760: the owner everything, the group send and receive, others nothing.
    Chmod {
        /// The mailbox's name.
        name: String,
        /// The rights, in octal.
        #[arg(value_parser = parse_mode)]
        mode: u32,
    },
    /// Change a mailbox's owner and/or group (needs the manage right).
    Chown {
        /// The mailbox's name.
        name: String,
        /// USER, USER:GROUP or :GROUP; names or numeric ids.
        #[arg(value_name = "[USER][:GROUP]", value_parser = parse_owner)]
        owner: Owner,
    },
    /// Discard every queued message of a mailbox (not those a receiver
    /// holds unacknowledged); needs the manage right.
    Purge {
        /// The mailbox's name.
        name: String,
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
    ///
    /// To a mailbox (MAILBOX), or with --to straight to a process's inbox;
    /// then the only argument is the message.
    Send {
        #[command(flatten)]
        to: Addressing,
        /// How far to wait before exiting: queued (the broker holds the
        /// message), received (a receiver took it) or acknowledged (a
        /// receiver acknowledged it). With --timeout, running out after a
        /// receiver took it exits 120 (the message was not withdrawn).
        #[arg(long = "wait", value_name = "STAGE")]
        stage: Option<StageArg>,
        /// Routing key: on a hash mailbox, messages with the same key go to
        /// the same receiver.
        #[arg(long, value_name = "K")]
        key: Option<String>,
        /// Time-to-live of the message, like 30s (the mailbox's own applies
        /// when shorter).
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: Option<u64>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Receive messages and write their bytes to stdout exactly as sent.
    ///
    /// Payloads are written back to back, with no separator. With --json each
    /// message is one line: {"mailbox", "sequence", "sender_pid",
    /// "sender_uid", "sender_gid", "sender_connection",
    /// "accepted_at_unix_nanos", "redeliveries", "key", "call",
    /// "expires_at_unix_nanos", "dead_letter", "payload", "payload_base64"},
    /// where "payload_base64" always holds the exact bytes (standard
    /// alphabet, padded) and "payload" is the same bytes as a string when
    /// they are valid UTF-8, else null; "mailbox" is null for the inbox.
    ///
    /// On a broadcast mailbox this subscribes first, so it only sees messages
    /// sent after it started.
    ///
    /// With --exec CMD, each message is handed to `sh -c CMD` instead of
    /// being printed: the payload on its stdin, and in its environment
    /// MAILBOX_MAILBOX (unset for the inbox), MAILBOX_SEQUENCE,
    /// MAILBOX_SENDER (the sender's process address), MAILBOX_SENDER_PID,
    /// MAILBOX_SENDER_UID, MAILBOX_SENDER_GID, MAILBOX_REDELIVERIES,
    /// MAILBOX_KEY and MAILBOX_KEY_HEX (when it has one; MAILBOX_KEY is
    /// left out for a key with a NUL byte) and MAILBOX_CALL (when it is a
    /// call). A call is answered with CMD's stdout when CMD exits 0. With
    /// --ack the message is acknowledged when CMD exits 0 and put back at
    /// the head otherwise. If sh cannot be started at all, the message is
    /// put back once at the tail (with --ack) and mailboxctl exits 1. CMD
    /// and what it starts are killed if mailboxctl dies. Without --follow
    /// the exit code is 0 if CMD succeeded for every message, else 1.
    #[command(verbatim_doc_comment)]
    Recv {
        /// The mailbox's name (leave it out with --inbox).
        #[arg(required_unless_present_any = ["inbox", "from"])]
        name: Option<String>,
        /// Receive from this connection's own inbox instead of a mailbox
        /// (with --as NAME, others can send to it by that name).
        #[arg(long, conflicts_with = "name")]
        inbox: bool,
        /// Only messages from this process (its address or well-known name)
        /// in the inbox; implies --inbox.
        #[arg(
            long,
            value_name = "PROCESS",
            conflicts_with = "name",
            value_parser = parse_address
        )]
        from: Option<Address>,
        /// Manual acknowledgement: acknowledge each message only once it was
        /// written to stdout (with --exec: once CMD exits 0). A message not
        /// acknowledged goes back to the head when mailboxctl exits.
        #[arg(long)]
        ack: bool,
        /// On a priority mailbox, waiting receivers with a higher N are
        /// served first.
        #[arg(
            long,
            value_name = "N",
            default_value_t = 0,
            allow_negative_numbers = true
        )]
        priority: i32,
        /// Run CMD with `sh -c` for each message (see above) instead of
        /// printing it.
        #[arg(long, value_name = "CMD")]
        exec: Option<OsString>,
        #[command(flatten)]
        wait: WaitArgs,
        /// Receive this many messages, then exit.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "follow")]
        count: u64,
        /// Keep receiving until killed or the broker goes away.
        #[arg(long)]
        follow: bool,
    },
    /// Call: send a request message and print the reply's bytes (like recv).
    ///
    /// To a mailbox (MAILBOX), or with --to to a process; then the only
    /// argument is the message.
    Call {
        #[command(flatten)]
        to: Addressing,
        /// Wait at most this long for the reply, like 500ms, 2s, 1.5s or 1m
        /// (exit 124); without it, wait as long as it takes.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// Routing key of the request, for hash mailboxes.
        #[arg(long, value_name = "K")]
        key: Option<String>,
    },
    /// List the claimed well-known names and who holds them.
    Names,
    /// Show the broker's figures, the limits in force and every mailbox's
    /// rates (measured over --interval).
    Status {
        /// How long to measure the rates over (0 leaves them out).
        #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
        interval: Duration,
    },
    /// Show the mailboxes live (depth, rates, waiting senders and
    /// receivers), refreshing in the terminal.
    Top {
        /// Time between refreshes.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
        /// Stop after this many refreshes (default: until interrupted).
        #[arg(long, value_name = "N")]
        iterations: Option<u64>,
    },
}

/// Where a send or call goes, and its message.
#[derive(Debug, Args)]
struct Addressing {
    /// The mailbox's name; leave it out with --to.
    #[arg(value_name = "MAILBOX")]
    mailbox: Option<OsString>,
    /// The message; when absent, stdin is read to its end and sent as one
    /// message (at most 16 MiB: more fails at once, exit 65).
    #[arg(value_name = "MESSAGE")]
    message: Option<OsString>,
    /// A process's inbox instead of a mailbox: its address (digits) or a
    /// well-known name it holds.
    #[arg(long, value_name = "PROCESS", value_parser = parse_address)]
    to: Option<Address>,
}

impl Addressing {
    /// Checks that exactly one of MAILBOX and --to is given; with --to, the
    /// one argument is the message.
    fn normalize(&mut self) -> Result<(), clap::Error> {
        let usage = |text: &str| {
            Cli::command().error(clap::error::ErrorKind::ArgumentConflict, text.to_owned())
        };
        match (&self.to, &self.mailbox, &self.message) {
            (Some(_), Some(_), Some(_)) => Err(usage(
                "give either MAILBOX or --to PROCESS, not both (with --to, the only \
                 argument is the message)",
            )),
            (Some(_), _, None) => {
                self.message = self.mailbox.take();
                Ok(())
            }
            (None, None, _) => Err(usage("give a MAILBOX, or --to PROCESS")),
            (None, Some(mailbox), _) if mailbox.to_str().is_none() => Err(usage(
                "the mailbox name is not UTF-8; use 1 to 255 of letters, digits and . _ / -",
            )),
            _ => Ok(()),
        }
    }

    /// The mailbox's name, once normalised.
    fn mailbox(&self) -> Option<&str> {
        self.mailbox.as_deref().and_then(OsStr::to_str)
    }

    /// Where to, once normalised.
    fn target(&self) -> Target {
        match (&self.to, self.mailbox()) {
            (Some(process), _) => Target::Process(process.clone()),
            (None, mailbox) => Target::mailbox(mailbox.unwrap_or_default()),
        }
    }
}

/// The stages a send may wait for, as `--wait` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StageArg {
    /// The broker holds the message.
    Queued,
    /// A receiver took it.
    Received,
    /// A receiver acknowledged it.
    Acknowledged,
}

impl From<StageArg> for Stage {
    fn from(stage: StageArg) -> Self {
        match stage {
            StageArg::Queued => Stage::Queued,
            StageArg::Received => Stage::Received,
            StageArg::Acknowledged => Stage::Acknowledged,
        }
    }
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

impl Cli {
    /// Parses the command line, usage errors included (exit 2).
    fn parse_checked() -> Self {
        let mut cli = Cli::parse();
        if let Err(error) = cli.check() {
            error.exit();
        }
        cli
    }

    /// The checks clap cannot express: exactly one of MAILBOX and --to.
    fn check(&mut self) -> Result<(), clap::Error> {
        match &mut self.command {
            Command::Send { to, .. } | Command::Call { to, .. } => to.normalize(),
            _ => Ok(()),
        }
    }
}

impl Command {
    /// The command's own time limit: its --timeout, or zero for --nonblock.
    fn time_limit(&self) -> Option<Duration> {
        match self {
            Command::Send { wait, .. } | Command::Recv { wait, .. } => match wait.nonblock {
                true => Some(Duration::ZERO),
                false => wait.timeout,
            },
            Command::Call { timeout, .. } => *timeout,
            _ => None,
        }
    }

    /// The mailbox the command is about, for failure messages.
    fn mailbox(&self) -> Option<&str> {
        match self {
            Command::Create { name, .. }
            | Command::Delete { name }
            | Command::Info { name }
            | Command::Chmod { name, .. }
            | Command::Chown { name, .. }
            | Command::Purge { name } => Some(name),
            Command::Recv { name, .. } => name.as_deref(),
            Command::Send { to, .. } | Command::Call { to, .. } => match to.to {
                Some(_) => None,
                None => to.mailbox(),
            },
            Command::List | Command::Names | Command::Status { .. } | Command::Top { .. } => None,
        }
    }

    /// The process the command is about (`--to`, `--from`), for failure messages.
    fn process(&self) -> Option<&Address> {
        match self {
            Command::Send { to, .. } | Command::Call { to, .. } => to.to.as_ref(),
            Command::Recv { from, .. } => from.as_ref(),
            _ => None,
        }
    }

    /// What the command sends to or receives from, in words.
    fn subject(&self) -> String {
        match (self.mailbox(), self, self.process()) {
            (Some(name), _, _) => format!("mailbox {name}"),
            (None, Command::Recv { .. }, _) => "this connection's inbox".to_owned(),
            (None, _, Some(process)) => format!("the inbox of {process}"),
            (None, _, None) => "?".to_owned(),
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
    /// The broker refused the message, name, settings or request (EX_DATAERR).
    pub const REFUSED: u8 = 65;
    /// No such mailbox (EX_NOINPUT).
    pub const NO_SUCH_MAILBOX: u8 = 66;
    /// No process with that address or name (EX_NOHOST).
    pub const NO_SUCH_PROCESS: u8 = 68;
    /// The broker cannot be reached, ended the connection, or did not
    /// answer a timed request within its timeout plus the grace
    /// (EX_UNAVAILABLE).
    pub const UNREACHABLE: u8 = 69;
    /// A mailbox of that name exists with other settings, or the
    /// well-known name is held by another process (EX_CANTCREAT).
    pub const EXISTS: u8 = 73;
    /// Would block: mailbox full or empty (EX_TEMPFAIL).
    pub const WOULD_BLOCK: u8 = 75;
    /// The process handling a call left without replying (EX_PROTOCOL).
    pub const NO_REPLY: u8 = 76;
    /// Permission denied (EX_NOPERM).
    pub const PERMISSION_DENIED: u8 = 77;
    /// The process answering on the socket runs as a user not trusted as
    /// the broker (EX_CONFIG: the socket path or --broker-uid is wrong).
    pub const UNTRUSTED_BROKER: u8 = 78;
    /// Timed out after a receiver took the message but before it
    /// acknowledged it: the message was not withdrawn.
    pub const TIMEOUT_IN_FLIGHT: u8 = 120;
    /// A broadcast subscription was cut off: the subscriber's backlog
    /// stayed full for longer than its mailbox allows.
    pub const SLOW_CONSUMER: u8 = 121;
    /// Timed out (as timeout(1)).
    pub const TIMEOUT: u8 = 124;
}

/// The exit code for a client error.
fn exit_code(error: &Error) -> u8 {
    match error {
        Error::Connect { .. }
        | Error::Disconnected
        | Error::Rejected(_)
        | Error::NoAnswer { .. } => exit::UNREACHABLE,
        Error::UntrustedBroker { .. } => exit::UNTRUSTED_BROKER,
        Error::Io(_) | Error::Protocol(_) => exit::FAILURE,
        Error::Broker(error) | Error::Partial { error, .. } => match error.kind {
            ErrorKind::InvalidName
            | ErrorKind::InvalidSettings
            | ErrorKind::MessageTooLarge
            | ErrorKind::WrongMessageSize
            | ErrorKind::InvalidRequest => exit::REFUSED,
            ErrorKind::NoSuchMailbox => exit::NO_SUCH_MAILBOX,
            ErrorKind::NoSuchProcess => exit::NO_SUCH_PROCESS,
            ErrorKind::BrokerShuttingDown => exit::UNREACHABLE,
            ErrorKind::MailboxExists | ErrorKind::NameTaken => exit::EXISTS,
            ErrorKind::WouldBlock => exit::WOULD_BLOCK,
            ErrorKind::NoReply => exit::NO_REPLY,
            ErrorKind::PermissionDenied => exit::PERMISSION_DENIED,
            ErrorKind::TimeoutInFlight => exit::TIMEOUT_IN_FLIGHT,
            ErrorKind::Timeout => exit::TIMEOUT,
            ErrorKind::SlowConsumer => exit::SLOW_CONSUMER,
            ErrorKind::MailboxDeleted
            | ErrorKind::BrokerFull
            | ErrorKind::NotSubscribed
            | ErrorKind::NotBroadcast
            | ErrorKind::Cancelled
            | ErrorKind::DuplicateRequestId
            | ErrorKind::TooManyRequests
            | ErrorKind::ProtocolViolation
            | ErrorKind::UnsupportedVersion
            | ErrorKind::Internal
            | ErrorKind::Expired
            | ErrorKind::DeadLettered
            | ErrorKind::NotHeld
            | ErrorKind::CallEnded
            | ErrorKind::Purged => exit::FAILURE,
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

    /// A failure of the `--as NAME` claim.
    fn claim(error: Error, name: &str, command: &Command) -> Self {
        let code = exit_code(&error);
        match error.kind() {
            Some(ErrorKind::NameTaken) => Self::new(
                code,
                format!("the name {name} is held by another process"),
                "see who holds it with `mailboxctl names`, or pick another name for --as",
            ),
            Some(ErrorKind::InvalidName) => Self::new(
                code,
                format!("invalid name {name:?} for --as"),
                "use 1 to 255 of letters, digits and . _ / -",
            ),
            _ => Self::client(error, command),
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
    let subject = command.subject();
    let waited = match command {
        Command::Send { wait, .. } | Command::Recv { wait, .. } => wait.timeout,
        Command::Call { timeout, .. } => *timeout,
        _ => None,
    };
    let within = waited.map(|d| format!(" within {d:?}")).unwrap_or_default();
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
        Error::UntrustedBroker { .. } => {
            format!("{error} (or pass --broker-uid); else check --socket and $MAILBOX_SOCKET")
        }
        Error::NoAnswer { waited } => format!(
            "the broker did not answer within {waited:?} (the timeout plus a grace of {:?}); \
             it may be stopped (SIGSTOP) or overloaded: check mailboxd's state and log",
            mailbox_client::ANSWER_GRACE
        ),
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
            ErrorKind::TooManyRequests => format!(
                "the broker refused the connection: {}; close other connections or ask \
                 the administrator to raise the limit in mailboxd.toml",
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
                ErrorKind::InvalidName => match command.process() {
                    Some(Address::Name(process)) if command.mailbox().is_none() => format!(
                        "invalid process name {process:?}; \
                         use 1 to 255 of letters, digits and . _ / -"
                    ),
                    _ => format!(
                        "invalid mailbox name {name:?}; \
                         use 1 to 255 of letters, digits and . _ / -"
                    ),
                },
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
                    Command::Recv { name: None, .. } => format!(
                        "{subject} is empty; try again later or drop --nonblock to wait"
                    ),
                    Command::Recv { .. } => format!(
                        "mailbox {name} is empty; try again later or drop --nonblock to wait"
                    ),
                    _ if command.mailbox().is_none() => format!(
                        "{subject} has no room now; try again later or drop --nonblock to wait"
                    ),
                    _ => format!(
                        "mailbox {name} has no room now (or, with capacity zero, no receiver \
                         is waiting); try again later or drop --nonblock to wait"
                    ),
                },
                ErrorKind::Timeout => match command {
                    Command::Recv { name: None, .. } => format!(
                        "no message arrived in {subject}{within}; try again or raise --timeout"
                    ),
                    Command::Recv { .. } => format!(
                        "no message arrived in {name}{within}; try again or raise --timeout"
                    ),
                    Command::Call { .. } => format!(
                        "no reply arrived{within}; the handler's late reply will be refused; \
                         try again or raise --timeout"
                    ),
                    Command::Send { stage: Some(stage), .. } if *stage != StageArg::Queued => {
                        format!(
                            "no receiver took the message from {subject}{within}, so it was \
                             withdrawn and will not be delivered; try again or raise --timeout"
                        )
                    }
                    _ if command.mailbox().is_none() => format!(
                        "no room in {subject}{within}, so the message was withdrawn and will \
                         not be delivered; try again or raise --timeout"
                    ),
                    _ => format!(
                        "no room in {name}{within}, so the message was withdrawn and will \
                         not be delivered; try again or raise --timeout"
                    ),
                },
                ErrorKind::TimeoutInFlight => format!(
                    "a receiver took the message but did not finish with it{within}; it was \
                     not withdrawn and may still be processed, so check before sending it again"
                ),
                ErrorKind::MailboxDeleted => format!(
                    "mailbox {name} was deleted while waiting; recreate it with \
                     `mailboxctl create {name}`"
                ),
                ErrorKind::BrokerFull => format!(
                    "the broker holds all it may for now ({said}); receive queued messages \
                     first or ask the administrator to raise the limit in mailboxd.toml"
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
                ErrorKind::NoSuchProcess => {
                    let process = command
                        .process()
                        .map_or_else(|| "that process".to_owned(), ToString::to_string);
                    format!(
                        "no {process} is connected ({said}); start it first, or see the \
                         claimed names with `mailboxctl names`"
                    )
                }
                ErrorKind::NameTaken => format!(
                    "{said}; see who holds it with `mailboxctl names`, or pick another name"
                ),
                ErrorKind::NoReply => format!(
                    "the process handling the call left without replying ({said}); \
                     check the handler and call again"
                ),
                ErrorKind::Expired => format!(
                    "the message expired before it was delivered ({said}); send it again or \
                     raise --ttl"
                ),
                ErrorKind::DeadLettered => format!(
                    "the message was dead-lettered after too many deliveries ({said}); see \
                     the mailbox's dead-letter mailbox (`mailboxctl info {name}`)"
                ),
                ErrorKind::InvalidRequest => format!(
                    "the request does not apply to {subject} ({said}); check the options \
                     against its policy (`mailboxctl info {name}`)"
                ),
                ErrorKind::CallEnded => format!(
                    "the caller stopped waiting before the reply ({said}); nothing to do"
                ),
                ErrorKind::NotHeld => format!(
                    "this connection does not hold that message or call ({said}); it was \
                     settled or answered already, or came back after the mailbox's \
                     --ack-timeout"
                ),
                ErrorKind::Purged => format!(
                    "the message was purged from {subject} before a receiver took it ({said}); \
                     send it again"
                ),
                ErrorKind::SlowConsumer => format!(
                    "the subscription was cut off because this subscriber did not keep up \
                     ({said}); read faster or in batches, subscribe again, or ask the owner of \
                     {subject} for a larger --capacity"
                ),
                ErrorKind::TooManyRequests => format!(
                    "a broker limit was reached ({said}); close other connections or \
                     requests, or ask the administrator to raise it (`mailboxctl status` shows \
                     the limits)"
                ),
                ErrorKind::NotSubscribed
                | ErrorKind::DuplicateRequestId
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
    let cli = Cli::parse_checked();
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
        Command::Send { to, .. } | Command::Call { to, .. } if to.message.is_none() => {
            Some(read_stdin()?)
        }
        _ => None,
    };
    let payload = |to: &Addressing| match (&to.message, &stdin_payload) {
        (Some(message), _) => Bytes::from(message.clone().into_vec()),
        (None, Some(payload)) => payload.clone(),
        (None, None) => Bytes::new(),
    };
    let fail = |error| Failure::client(error, command);
    let mut options = ConnectOptions::new();
    if let Some(user) = &cli.broker_uid {
        options = options.broker_user(user.clone());
    }
    // A command with a time limit also bounds connecting by it.
    if let Some(limit) = command.time_limit() {
        options = options.timeout(limit.saturating_add(mailbox_client::ANSWER_GRACE));
    }
    let mut client = match &cli.socket {
        Some(path) => Client::connect_with(path, &options),
        None => Client::connect_default_with(&options),
    }
    .map_err(fail)?;
    // Open the inbox before taking a name, so that nobody reaches the name
    // while the inbox still refuses them.
    if command.time_limit().is_some() {
        client.set_untimed_limit(Some(mailbox_client::ANSWER_GRACE));
    }
    if cli.inbox_mode.is_some() {
        client
            .set_inbox_permissions(cli.inbox_mode, None)
            .map_err(fail)?;
    }
    if let Some(name) = &cli.as_name {
        client
            .claim_name(name)
            .map_err(|error| Failure::claim(error, name, command))?;
    }
    let mut out = Output::new(cli.json);
    match command {
        Command::Create {
            name,
            capacity,
            policy,
            max_size,
            fixed_size,
            max_deliveries,
            dead_letter,
            ttl,
            ack_timeout,
            cut_slow_subscribers_after,
            mode,
            group,
        } => {
            let settings = MailboxSettings {
                capacity: *capacity,
                policy: *policy,
                max_message_size: *max_size,
                fixed_size: *fixed_size,
                max_deliveries: *max_deliveries,
                dead_letter: dead_letter.clone(),
                ttl_millis: *ttl,
                ack_timeout_millis: *ack_timeout,
                cut_slow_subscribers_after_millis: *cut_slow_subscribers_after,
            };
            let created = client
                .create_with(name, settings, *mode, *group)
                .map_err(fail)?;
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
        Command::Chmod { name, mode } => {
            client
                .set_permissions(name, None, None, Some(*mode))
                .map_err(fail)?;
            out.emit(
                || json!({ "name": name, "mode": format!("{mode:04o}") }),
                || format!("mode of {name} is now {mode:04o}\n"),
            )
        }
        Command::Chown { name, owner } => {
            client
                .set_permissions(name, owner.user, owner.group, None)
                .map_err(fail)?;
            out.emit(
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
        Command::Purge { name } => {
            let purged = client.purge(name).map_err(fail)?;
            out.emit(
                || json!({ "name": name, "purged": purged }),
                || format!("purged {purged} queued messages from {name}\n"),
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
                // One write for the lot: a listing may have many thousands.
                let mut lines = String::new();
                for info in &mailboxes {
                    lines.push_str(&mailbox_json(info).to_string());
                    lines.push('\n');
                }
                out.text(&lines)
            } else {
                out.text(&mailbox_table(&mailboxes))
            }
        }
        Command::Info { name } => {
            let info = client.info(name).map_err(fail)?;
            out.emit(|| mailbox_json(&info), || mailbox_text(&info))
        }
        Command::Names => {
            let names = client.names().map_err(fail)?;
            if cli.json {
                for info in &names {
                    out.emit(|| name_json(info), String::new)?;
                }
                Ok(())
            } else {
                out.text(&names_table(&names))
            }
        }
        Command::Status { interval } => {
            let status = client.status().map_err(fail)?;
            let rates = if interval.is_zero() {
                None
            } else {
                let before = client.list().map_err(fail)?;
                let started = std::time::Instant::now();
                std::thread::sleep(*interval);
                let after = client.list().map_err(fail)?;
                Some(top::rates(&before, &after, started.elapsed()))
            };
            out.emit(
                || {
                    let mut value = status_json(&status);
                    if let (Some(rates), Some(object)) = (&rates, value.as_object_mut()) {
                        object.insert("mailbox_rates".into(), top::json(rates));
                    }
                    value
                },
                || {
                    let mut text = status_text(&status);
                    if let Some(rates) = &rates {
                        text.push_str(&format!("rates over {}:\n", humantime_like(*interval)));
                        text.push_str(&top::table(rates));
                    }
                    text
                },
            )
        }
        Command::Top {
            interval,
            iterations,
        } => {
            let clear = std::io::IsTerminal::is_terminal(&io::stdout()) && !cli.json;
            let mut before = client.list().map_err(fail)?;
            let mut last = std::time::Instant::now();
            let mut shown = 0;
            while iterations.is_none_or(|n| shown < n) {
                std::thread::sleep(*interval);
                let status = client.status().map_err(fail)?;
                let after = client.list().map_err(fail)?;
                let rates = top::rates(&before, &after, last.elapsed());
                last = std::time::Instant::now();
                before = after;
                shown += 1;
                if cli.json {
                    out.emit(|| top::json(&rates), String::new)?;
                    continue;
                }
                let mut screen = String::new();
                if clear {
                    // Home and clear, so each refresh replaces the last.
                    screen.push_str("\x1b[H\x1b[2J");
                }
                screen.push_str(&format!(
                    "mailboxd {} pid {}: {} connections, {} mailboxes, {} queued ({})\n\n",
                    status.broker_version,
                    status.pid,
                    status.connections,
                    status.mailboxes,
                    status.queued_messages,
                    human_bytes(status.queued_bytes)
                ));
                screen.push_str(&top::table(&rates));
                if !clear {
                    screen.push('\n');
                }
                out.text(&screen)?;
            }
            Ok(())
        }
        Command::Send {
            to,
            stage,
            key,
            ttl,
            wait,
        } => {
            let payload = payload(to);
            let plain = to.to.is_none() && stage.is_none() && key.is_none() && ttl.is_none();
            let receipt = match to.mailbox() {
                // The protocol's first send, for what it can say.
                Some(mailbox) if plain => client.send_with(mailbox, payload, wait.wait()),
                _ => {
                    let options = SendOptions {
                        stage: stage.map_or(Stage::Queued, Stage::from),
                        key: key.clone(),
                        ttl_millis: *ttl,
                    };
                    client.post(to.target(), payload, options, wait.wait())
                }
            }
            .map_err(fail)?;
            if receipt.recipients == 0 && to.to.is_none() {
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
        Command::Call { to, timeout, key } => {
            let options = SendOptions {
                key: key.clone(),
                ..SendOptions::default()
            };
            let wait = timeout.map_or(Wait::Forever, wait_at_most);
            let reply = client
                .call_with(to.target(), payload(to), options, wait)
                .map_err(fail)?;
            if cli.json {
                out.emit(|| message_json(None, &reply), String::new)
            } else {
                out.raw(&reply.payload)
            }
        }
        Command::Recv { .. } => receive(cli, &mut client, &mut out),
    }
}

/// `recv`: takes messages one by one, prints each or hands it to `--exec`,
/// and settles it when `--ack` asks for that.
fn receive(cli: &Cli, client: &mut Client, out: &mut Output) -> Result<(), Failure> {
    let command = &cli.command;
    let Command::Recv {
        name,
        from,
        ack,
        priority,
        exec,
        wait,
        count,
        follow,
        ..
    } = command
    else {
        return Ok(());
    };
    let fail = |error| Failure::client(error, command);
    let source = match name {
        Some(name) => {
            // Broadcast mailboxes need a subscription; on others the broker
            // says NotBroadcast and there is nothing to do.
            match client.subscribe(name) {
                Ok(_) => {}
                Err(error) if error.kind() == Some(ErrorKind::NotBroadcast) => {}
                Err(error) => return Err(fail(error)),
            }
            Source::Mailbox(name.clone())
        }
        None => Source::Inbox { from: from.clone() },
    };
    let options = ReceiveOptions {
        max: None,
        manual_ack: *ack,
        priority: *priority,
    };
    let mut handled = 0u64;
    let mut failed: Option<(u64, exec::Ran)> = None;
    while *follow || handled < *count {
        let message = match (name, *ack, *priority) {
            // The protocol's first receive, for what it can say.
            (Some(name), false, 0) => client.receive_with(name, wait.wait()),
            _ => fetch_one(client, &source, options, wait.wait()),
        }
        .map_err(fail)?;
        handled += 1;
        let received = Held::from_source(&source, message);
        let Some(cmd) = exec else {
            if cli.json {
                out.emit(
                    || message_json(name.as_deref(), &received.message),
                    String::new,
                )?;
            } else {
                out.raw(&received.message.payload)?;
            }
            // Only once the message is out (written and flushed).
            if *ack {
                client.ack(&received).map_err(fail)?;
            }
            continue;
        };
        let cannot = |error: io::Error| {
            Failure::new(
                exit::FAILURE,
                format!("the command's output or exit was lost: {error}"),
                "check the command; an unacknowledged message goes back at the head",
            )
        };
        let ran = match exec::execute(cmd, name.as_deref(), &received.message).map_err(cannot)? {
            exec::Handed::Ran(ran) => ran,
            exec::Handed::NotStarted(error) => {
                // Nothing ran. Put the message back once, behind the others
                // (counted as a delivery, so --max-deliveries retires it in
                // the end), and take no other: this worker cannot run its
                // command, and retrying would only loop.
                if *ack {
                    client.nack(&received, true).map_err(fail)?;
                }
                return Err(Failure::new(
                    exit::FAILURE,
                    format!(
                        "cannot start the command with sh for message #{}: {error}",
                        received.sequence()
                    ),
                    if *ack {
                        "check that sh is on PATH and processes can be started; the message \
                         was put back at the tail"
                    } else {
                        "check that sh is on PATH and processes can be started; the message \
                         was consumed (use --ack to have it put back)"
                    },
                ));
            }
        };
        let call = received.message.metadata.call();
        if ran.status.success() {
            if let Some(call) = call {
                match client.reply(&received.message, ran.stdout.clone()) {
                    Ok(()) => {}
                    Err(error) if error.kind() == Some(ErrorKind::CallEnded) => {
                        eprintln!("note: the caller of call {call} stopped waiting; reply dropped");
                    }
                    Err(error) => return Err(fail(error)),
                }
            }
            if *ack {
                client.ack(&received).map_err(fail)?;
            }
        } else {
            if *ack {
                client.nack(&received, false).map_err(fail)?;
            }
            if *follow {
                eprintln!(
                    "note: the command failed ({}) for message #{}{}",
                    ran.status,
                    received.sequence(),
                    if *ack {
                        "; it was put back"
                    } else if call.is_some() {
                        "; the call was not answered"
                    } else {
                        ""
                    }
                );
            }
            failed = Some((received.sequence(), ran));
        }
    }
    match failed {
        None => Ok(()),
        Some((sequence, ran)) => Err(Failure::new(
            exit::FAILURE,
            format!(
                "the command failed ({}) for message #{sequence}",
                ran.status
            ),
            if *ack {
                "see its output above; the message was put back at the head"
            } else {
                "see its output above; the message was consumed (use --ack to have it put back)"
            },
        )),
    }
}

/// One message with [`ReceiveOptions`] (`max` of `None`).
fn fetch_one(
    client: &mut Client,
    source: &Source,
    options: ReceiveOptions,
    wait: Wait,
) -> Result<Message, Error> {
    client
        .fetch(source.clone(), options, wait)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Protocol("the broker answered a receive with no message".into()))
}

/// Reads the message from standard input, but never more than the largest
/// message any mailbox accepts ([`MAX_MESSAGE_SIZE_LIMIT`]): past that it
/// stops reading and fails at once (exit 65), so that a runaway producer
/// costs neither memory nor time. (A smaller maximum of the mailbox is the
/// broker's to enforce: it answers `MessageTooLarge`, exit 65 as well.)
fn read_stdin() -> Result<Bytes, Failure> {
    let limit = u64::from(MAX_MESSAGE_SIZE_LIMIT);
    let mut payload = Vec::new();
    io::stdin()
        .lock()
        .take(limit + 1)
        .read_to_end(&mut payload)
        .map_err(|error| {
            Failure::new(
                exit::FAILURE,
                format!("cannot read the message from standard input: {error}"),
                "pass the message as an argument instead",
            )
        })?;
    if payload.len() as u64 > limit {
        return Err(Failure::new(
            exit::REFUSED,
            format!(
                "the message on standard input is larger than {}, the most any mailbox \
                 accepts (stopped reading there)",
                human_bytes(limit)
            ),
            "send a smaller message, or split it into several",
        ));
    }
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
    let settings = &info.settings;
    json!({
        "name": info.name,
        "capacity": settings.capacity.to_string(),
        "policy": settings.policy.to_string(),
        "max_message_size": settings.max_message_size,
        "fixed_size": settings.fixed_size,
        "max_deliveries": settings.max_deliveries,
        "dead_letter": settings.dead_letter,
        "ttl_millis": settings.ttl_millis,
        "ack_timeout_millis": settings.ack_timeout_millis,
        "cut_slow_subscribers_after_millis": settings.cut_slow_subscribers_after_millis,
        "queued_messages": info.queued_messages,
        "queued_bytes": info.queued_bytes,
        "in_flight": info.in_flight,
        "waiting_senders": info.waiting_senders,
        "waiting_receivers": info.waiting_receivers,
        "subscribers": info.subscribers,
        "messages_accepted": info.messages_accepted,
        "messages_delivered": info.messages_delivered,
        "messages_redelivered": info.messages_redelivered,
        "messages_expired": info.messages_expired,
        "messages_dead_lettered": info.messages_dead_lettered,
        "messages_dropped": info.messages_dropped,
        "ack_timeouts": info.ack_timeouts,
        "slow_subscribers_cut": info.slow_subscribers_cut,
        "owner_uid": info.owner_uid,
        "group_gid": info.group_gid,
        "mode": format!("{:04o}", info.mode),
    })
}

fn mailbox_text(info: &MailboxInfo) -> String {
    let settings = &info.settings;
    let none = || "none".to_owned();
    let rows = [
        ("name", info.name.clone()),
        ("capacity", settings.capacity.to_string()),
        ("policy", settings.policy.to_string()),
        (
            "max message size",
            human_bytes(u64::from(settings.max_message_size)),
        ),
        ("fixed size", fixed_size_text(settings)),
        (
            "max deliveries",
            settings.max_deliveries.map_or_else(none, |n| n.to_string()),
        ),
        (
            "dead letter",
            settings.dead_letter.clone().unwrap_or_else(none),
        ),
        (
            "time to live",
            settings.ttl_millis.map_or_else(none, |millis| {
                format!("{:?}", Duration::from_millis(millis))
            }),
        ),
        (
            "ack timeout",
            settings.ack_timeout_millis.map_or_else(none, |millis| {
                format!("{:?}", Duration::from_millis(millis))
            }),
        ),
        (
            "cut slow subscribers after",
            settings
                .cut_slow_subscribers_after_millis
                .map_or_else(none, |millis| {
                    format!("{:?}", Duration::from_millis(millis))
                }),
        ),
        ("queued messages", info.queued_messages.to_string()),
        ("queued bytes", human_bytes(info.queued_bytes)),
        ("in flight", info.in_flight.to_string()),
        ("waiting senders", info.waiting_senders.to_string()),
        ("waiting receivers", info.waiting_receivers.to_string()),
        ("subscribers", info.subscribers.to_string()),
        ("messages accepted", info.messages_accepted.to_string()),
        ("messages delivered", info.messages_delivered.to_string()),
        (
            "messages redelivered",
            info.messages_redelivered.to_string(),
        ),
        ("messages expired", info.messages_expired.to_string()),
        (
            "messages dead-lettered",
            info.messages_dead_lettered.to_string(),
        ),
        ("messages dropped", info.messages_dropped.to_string()),
        ("ack timeouts", info.ack_timeouts.to_string()),
        (
            "slow subscribers cut",
            info.slow_subscribers_cut.to_string(),
        ),
        ("owner", format!("uid {}", info.owner_uid)),
        ("group", format!("gid {}", info.group_gid)),
        ("mode", format!("{:04o}", info.mode)),
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

/// A table with a header; the first `left` columns (names and words) are
/// aligned to the left, the others (counts) to the right.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]], left: usize) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut text = String::new();
    let mut line = |cells: [&str; N]| {
        let mut row = String::new();
        for (column, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let _ = if column < left {
                write!(row, "{cell:<width$}  ")
            } else {
                write!(row, "{cell:>width$}  ")
            };
        }
        text.push_str(row.trim_end());
        text.push('\n');
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
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
    table(header, &rows, 3)
}

fn name_json(info: &NameInfo) -> serde_json::Value {
    json!({
        "name": info.name,
        "process": info.process,
        "pid": info.pid,
        "uid": info.uid,
        "queued_claims": info.queued_claims,
    })
}

fn names_table(names: &[NameInfo]) -> String {
    let header = ["NAME", "PROCESS", "PID", "UID", "QUEUED"];
    let rows: Vec<[String; 5]> = names
        .iter()
        .map(|info| {
            [
                info.name.clone(),
                info.process.to_string(),
                info.pid.to_string(),
                info.uid.to_string(),
                info.queued_claims.to_string(),
            ]
        })
        .collect();
    table(header, &rows, 1)
}

/// `500ms`, `2s`: how an interval is shown.
fn humantime_like(interval: Duration) -> String {
    if interval.subsec_millis() == 0 {
        format!("{}s", interval.as_secs())
    } else {
        format!("{}ms", interval.as_millis())
    }
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
        "limits": status
            .limits
            .iter()
            .map(|limit| (limit.name.clone(), json!(limit.value)))
            .collect::<serde_json::Map<_, _>>(),
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
    let mut text = key_values(&rows);
    let limits: Vec<(&str, String)> = status
        .limits
        .iter()
        .map(|limit| (limit.name.as_str(), limit.value.to_string()))
        .collect();
    if !limits.is_empty() {
        text.push_str("limits:\n");
        text.push_str(&key_values(&limits));
    }
    text
}

/// A message as one JSON object; `mailbox` is `None` for the inbox (and
/// for a call's reply).
fn message_json(mailbox: Option<&str>, message: &Message) -> serde_json::Value {
    let metadata = &message.metadata;
    let details = metadata.details.as_deref();
    json!({
        "mailbox": mailbox,
        "sequence": metadata.sequence,
        "sender_pid": metadata.sender_pid,
        "sender_uid": metadata.sender_uid,
        "sender_gid": metadata.sender_gid,
        "sender_connection": metadata.sender_connection,
        "accepted_at_unix_nanos": metadata.accepted_at_unix_nanos,
        "redeliveries": metadata.redeliveries,
        "key": metadata.key(),
        "call": metadata.call(),
        "expires_at_unix_nanos": details.and_then(|d| d.expires_at_unix_nanos),
        "dead_letter": details.and_then(|d| d.dead_letter.as_ref()).map(|dead| json!({
            "mailbox": dead.mailbox,
            "sequence": dead.sequence,
            "reason": dead.reason,
        })),
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

/// A process: digits are its address, anything else a well-known name.
/// (Explicit, because clap would prefer `Address`'s `From<&str>`, a name.)
fn parse_address(text: &str) -> Result<Address, std::convert::Infallible> {
    text.parse()
}

/// Rights in octal: `0760`, `760` or `0o760`, at most `0777`.
fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        if let Ok(mode) = u32::from_str_radix(digits, 8) {
            if mode <= 0o777 {
                return Ok(mode);
            }
        }
    }
    Err(format!(
        "{text:?} is not a mode; write it in octal like 0760 (owner, group, others; \
         receive 4, send 2, manage 1)"
    ))
}

/// `chown`'s `[USER][:GROUP]`, resolved to ids.
#[derive(Debug, Clone, Copy)]
struct Owner {
    user: Option<u32>,
    group: Option<u32>,
}

fn parse_owner(text: &str) -> Result<Owner, String> {
    let (user, group) = match text.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (text, None),
    };
    let owner = Owner {
        user: Some(user)
            .filter(|user| !user.is_empty())
            .map(parse_user)
            .transpose()?,
        group: group
            .filter(|group| !group.is_empty())
            .map(parse_group)
            .transpose()?,
    };
    if owner.user.is_none() && owner.group.is_none() {
        return Err("give USER, USER:GROUP or :GROUP (names or numeric ids)".to_owned());
    }
    Ok(owner)
}

fn parse_user(text: &str) -> Result<u32, String> {
    principal(text, "user", "uid", mailbox_proto::accounts::user_id)
}

fn parse_group(text: &str) -> Result<u32, String> {
    principal(text, "group", "gid", mailbox_proto::accounts::group_id)
}

/// A numeric id, or a name looked up.
fn principal(
    text: &str,
    what: &str,
    id: &str,
    lookup: fn(&str) -> io::Result<Option<u32>>,
) -> Result<u32, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u32>()
            .ok()
            .filter(|&n| n != u32::MAX)
            .ok_or_else(|| format!("{text} is not a valid {id}"));
    }
    match lookup(text) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(format!(
            "no {what} named {text:?}; give a {what} name or a {id}"
        )),
        Err(error) => Err(format!("cannot look up the {what} {text:?}: {error}")),
    }
}

/// A time-to-live: a duration in whole milliseconds (rounded up), at least 1.
fn parse_ttl(text: &str) -> Result<u64, String> {
    positive_millis(text, "time-to-live")
}

fn parse_ack_timeout(text: &str) -> Result<u64, String> {
    positive_millis(text, "acknowledgement timeout")
}

fn parse_cut_after(text: &str) -> Result<u64, String> {
    positive_millis(text, "time to cut slow subscribers after")
}

/// A duration of at least 1 ms, in whole milliseconds (rounded up).
fn positive_millis(text: &str, what: &str) -> Result<u64, String> {
    let duration = parse_duration(text).map_err(|error| error.to_string())?;
    u64::try_from(duration.as_nanos().div_ceil(1_000_000))
        .ok()
        .filter(|&millis| millis > 0)
        .ok_or_else(|| format!("{text:?} is no {what}; give at least 1ms, like 30s or 5m"))
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

    /// Parses a command line as `main` does, usage checks included.
    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut cli =
            Cli::try_parse_from(std::iter::once("mailboxctl").chain(args.iter().copied()))?;
        cli.check()?;
        Ok(cli)
    }

    fn command(args: &[&str]) -> Command {
        parse(args).expect("valid command line").command
    }

    fn usage_error(args: &[&str]) -> clap::Error {
        parse(args).expect_err("a usage error")
    }

    fn recv(name: &str) -> Command {
        command(&["recv", name, "--nonblock"])
    }

    #[test]
    fn the_command_line_is_consistent() {
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
                    hint: "".into(),
                },
                69,
            ),
            (
                Error::NoAnswer {
                    waited: Duration::from_secs(1),
                },
                69,
            ),
            (
                Error::UntrustedBroker {
                    path: "/x".into(),
                    uid: 65534,
                    pid: 1,
                    named: None,
                },
                78,
            ),
            (broker(ErrorKind::MailboxExists), 73),
            (broker(ErrorKind::WouldBlock), 75),
            (broker(ErrorKind::PermissionDenied), 77),
            (broker(ErrorKind::Timeout), 124),
            (broker(ErrorKind::MailboxDeleted), 1),
            (broker(ErrorKind::BrokerFull), 1),
            (Error::Protocol("?".into()), 1),
            (broker(ErrorKind::NoSuchProcess), 68),
            (broker(ErrorKind::NameTaken), 73),
            (broker(ErrorKind::NoReply), 76),
            (broker(ErrorKind::TimeoutInFlight), 120),
            (broker(ErrorKind::InvalidRequest), 65),
            (broker(ErrorKind::Expired), 1),
            (broker(ErrorKind::DeadLettered), 1),
            (broker(ErrorKind::NotHeld), 1),
            (broker(ErrorKind::CallEnded), 1),
            (broker(ErrorKind::SlowConsumer), 121),
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
            queued_messages: 12,
            queued_bytes: 100,
            waiting_receivers: 3,
            messages_accepted: 12,
            owner_uid: 1000,
            group_gid: 1000,
            mode: 0o760,
            ..MailboxInfo::default()
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
                redeliveries: 0,
                details: None,
            },
            payload: Bytes::from_static(&[0xff, b'a']),
        };
        let value = message_json(Some("jobs"), &message);
        assert_eq!(value["payload"], serde_json::Value::Null);
        assert_eq!(value["payload_base64"], "/2E=");
        assert_eq!(value["sequence"], 1);
    }

    fn call_message(call: Option<u64>, key: Option<&str>) -> Message {
        let details = (call.is_some() || key.is_some()).then(|| {
            Box::new(mailbox_client::Details {
                key: key.map(str::to_owned),
                call,
                ..Default::default()
            })
        });
        Message {
            metadata: mailbox_client::Metadata {
                sequence: 9,
                sender_pid: 100,
                sender_uid: 1000,
                sender_gid: 1001,
                sender_connection: 42,
                accepted_at_unix_nanos: 6,
                redeliveries: 2,
                details,
            },
            payload: Bytes::from_static(b"ping"),
        }
    }

    #[test]
    fn send_goes_to_exactly_one_of_a_mailbox_and_a_process() {
        // A mailbox and a message, as before.
        let Command::Send { to, .. } = command(&["send", "jobs", "hi"]) else {
            panic!("send");
        };
        assert_eq!(to.target(), Target::mailbox("jobs"));
        assert_eq!(to.message.as_deref(), Some(OsStr::new("hi")));

        // With --to, the one argument is the message.
        let Command::Send { to, .. } = command(&["send", "--to", "worker", "hi"]) else {
            panic!("send");
        };
        assert_eq!(to.target(), Target::process("worker"));
        assert_eq!(to.message.as_deref(), Some(OsStr::new("hi")));
        assert_eq!(to.mailbox, None);

        // Digits are a process address; no argument: the message is stdin.
        let Command::Send { to, .. } = command(&["send", "--to", "42"]) else {
            panic!("send");
        };
        assert_eq!(to.target(), Target::Process(Address::Process(42)));
        assert_eq!(to.message, None);

        for args in [
            &["send", "jobs", "hi", "--to", "worker"][..],
            &["send"][..],
            &["send", "--nonblock"][..],
            &["call", "jobs", "ping", "--to", "7"][..],
            &["call"][..],
        ] {
            let error = usage_error(args);
            assert_eq!(error.exit_code(), 2, "{args:?}: {error}");
        }
        let both = usage_error(&["send", "jobs", "hi", "--to", "worker"]).to_string();
        assert!(both.contains("not both"), "{both}");
    }

    #[test]
    fn send_takes_a_stage_a_key_and_a_time_to_live() {
        let Command::Send {
            stage, key, ttl, ..
        } = command(&[
            "send",
            "jobs",
            "hi",
            "--wait",
            "acknowledged",
            "--key",
            "customer-1",
            "--ttl",
            "1.5s",
        ])
        else {
            panic!("send");
        };
        assert_eq!(stage.map(Stage::from), Some(Stage::Acknowledged));
        assert_eq!(key.as_deref(), Some("customer-1"));
        assert_eq!(ttl, Some(1500));
        let Command::Send { stage, ttl, .. } =
            command(&["send", "jobs", "--wait", "received", "--ttl", "0.1ms"])
        else {
            panic!("send");
        };
        assert_eq!(stage, Some(StageArg::Received));
        assert_eq!(ttl, Some(1), "rounded up to whole milliseconds");
        for args in [
            &["send", "jobs", "--wait", "delivered"][..],
            &["send", "jobs", "--ttl", "0ms"][..],
            &["send", "jobs", "--ttl", "10"][..],
        ] {
            assert_eq!(usage_error(args).exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn recv_takes_the_inbox_acks_priorities_and_a_command() {
        let Command::Recv {
            name,
            inbox,
            from,
            ack,
            priority,
            exec,
            follow,
            ..
        } = command(&[
            "recv",
            "--from",
            "7",
            "--ack",
            "--priority",
            "-3",
            "--exec",
            "wc -c",
            "--follow",
        ])
        else {
            panic!("recv");
        };
        assert_eq!(name, None);
        assert!(!inbox, "--from implies it");
        assert!(ack && follow);
        assert_eq!(from, Some(Address::Process(7)));
        assert_eq!(priority, -3);
        assert_eq!(exec.as_deref(), Some(OsStr::new("wc -c")));
        let Command::Recv { priority, ack, .. } = command(&["recv", "jobs"]) else {
            panic!("recv");
        };
        assert_eq!((priority, ack), (0, false));
        assert!(matches!(
            command(&["recv", "--inbox"]),
            Command::Recv {
                name: None,
                inbox: true,
                from: None,
                ..
            }
        ));
        for args in [
            &["recv"][..],
            &["recv", "jobs", "--inbox"][..],
            &["recv", "jobs", "--from", "7"][..],
            &["recv", "jobs", "--count", "2", "--follow"][..],
            &["recv", "jobs", "--priority", "high"][..],
        ] {
            assert_eq!(usage_error(args).exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn call_create_names_and_as_parse() {
        let cli = parse(&[
            "call",
            "--to",
            "svc",
            "ping",
            "--timeout",
            "2s",
            "--as",
            "me",
        ])
        .expect("valid");
        assert_eq!(cli.as_name.as_deref(), Some("me"));
        let Command::Call { to, timeout, key } = cli.command else {
            panic!("call");
        };
        assert_eq!(to.target(), Target::process("svc"));
        assert_eq!(to.message.as_deref(), Some(OsStr::new("ping")));
        assert_eq!(timeout, Some(Duration::from_secs(2)));
        assert_eq!(key, None);

        let Command::Create {
            policy,
            max_deliveries,
            dead_letter,
            ttl,
            ..
        } = command(&[
            "create",
            "jobs",
            "--policy",
            "hash",
            "--max-deliveries",
            "3",
            "--dead-letter",
            "jobs.dead",
            "--ttl",
            "1m",
        ])
        else {
            panic!("create");
        };
        assert_eq!(policy, DeliveryPolicy::Hash);
        assert_eq!(max_deliveries, Some(3));
        assert_eq!(dead_letter.as_deref(), Some("jobs.dead"));
        assert_eq!(ttl, Some(60_000));
        assert!(matches!(
            command(&["create", "p", "--policy", "priority"]),
            Command::Create {
                policy: DeliveryPolicy::Priority,
                ..
            }
        ));
        assert_eq!(
            usage_error(&["create", "jobs", "--max-deliveries", "0"]).exit_code(),
            2
        );
        assert!(matches!(command(&["--as", "me", "names"]), Command::Names));
    }

    #[test]
    fn failures_about_processes_and_names_say_what_to_do() {
        let send = command(&["send", "--to", "worker", "hi"]);
        let line = Failure::client(broker(ErrorKind::NoSuchProcess), &send).line;
        assert!(
            line.starts_with("no process named worker is connected"),
            "{line}"
        );
        assert!(line.contains("mailboxctl names"), "{line}");
        let line = Failure::client(broker(ErrorKind::InvalidName), &send).line;
        assert!(
            line.starts_with("invalid process name \"worker\""),
            "{line}"
        );

        let taken = Failure::claim(broker(ErrorKind::NameTaken), "svc", &Command::Names);
        assert_eq!(taken.code, 73);
        assert_eq!(
            taken.line,
            "the name svc is held by another process; see who holds it with \
             `mailboxctl names`, or pick another name for --as"
        );

        let inbox = command(&["recv", "--inbox", "--nonblock"]);
        let line = Failure::client(broker(ErrorKind::WouldBlock), &inbox).line;
        assert!(
            line.starts_with("this connection's inbox is empty; "),
            "{line}"
        );

        let call = command(&["call", "jobs", "x", "--timeout", "1s"]);
        let line = Failure::client(broker(ErrorKind::Timeout), &call).line;
        assert!(line.starts_with("no reply arrived within 1s"), "{line}");
        let failure = Failure::client(broker(ErrorKind::NoReply), &call);
        assert_eq!(failure.code, 76);

        let acked = command(&[
            "send",
            "jobs",
            "x",
            "--wait",
            "acknowledged",
            "--timeout",
            "1s",
        ]);
        let failure = Failure::client(broker(ErrorKind::TimeoutInFlight), &acked);
        assert_eq!(failure.code, 120);
        assert!(failure.line.contains("not withdrawn"), "{}", failure.line);
        for kind in [
            ErrorKind::Expired,
            ErrorKind::DeadLettered,
            ErrorKind::NotHeld,
            ErrorKind::CallEnded,
            ErrorKind::InvalidRequest,
        ] {
            let line = Failure::client(broker(kind), &acked).line;
            assert!(line.contains("; ") && !line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn exec_gets_the_metadata_in_its_environment() {
        let environment = exec::environment(Some("jobs"), &call_message(Some(5), Some("k1")));
        let get = |name: &str| {
            environment
                .iter()
                .find(|(variable, _)| *variable == name)
                .and_then(|(_, value)| value.clone())
                .map(|value| value.into_string().expect("utf-8"))
        };
        assert_eq!(get("MAILBOX_MAILBOX").as_deref(), Some("jobs"));
        assert_eq!(get("MAILBOX_SEQUENCE").as_deref(), Some("9"));
        assert_eq!(get("MAILBOX_SENDER").as_deref(), Some("42"));
        assert_eq!(get("MAILBOX_SENDER_PID").as_deref(), Some("100"));
        assert_eq!(get("MAILBOX_SENDER_UID").as_deref(), Some("1000"));
        assert_eq!(get("MAILBOX_REDELIVERIES").as_deref(), Some("2"));
        assert_eq!(get("MAILBOX_KEY").as_deref(), Some("k1"));
        assert_eq!(get("MAILBOX_CALL").as_deref(), Some("5"));
        // Unset ones are removed, so that none leaks from mailboxctl's own.
        assert_eq!(get("MAILBOX_KEY_HEX").as_deref(), Some("6b31"));
        let plain = exec::environment(None, &call_message(None, None));
        for name in [
            "MAILBOX_MAILBOX",
            "MAILBOX_KEY",
            "MAILBOX_KEY_HEX",
            "MAILBOX_CALL",
        ] {
            assert!(plain.contains(&(name, None)), "{name} removed");
        }
        // A key no environment variable can hold is left out, and given in
        // hexadecimal; no value holds a NUL byte, so the command can start.
        let poison = exec::environment(None, &call_message(None, Some("a\0b")));
        assert!(poison.contains(&("MAILBOX_KEY", None)));
        assert!(poison.contains(&("MAILBOX_KEY_HEX", Some("610062".into()))));
        for (name, value) in &poison {
            let bytes = value.as_ref().map(|v| v.as_encoded_bytes().to_vec());
            assert!(
                !bytes.unwrap_or_default().contains(&0),
                "{name} holds a NUL"
            );
        }
        let ran = exec::execute(
            OsStr::new("test -z \"$MAILBOX_KEY\" && test \"$MAILBOX_KEY_HEX\" = 610062"),
            None,
            &call_message(None, Some("a\0b")),
        )
        .expect("ran");
        assert!(
            matches!(ran, exec::Handed::Ran(ref ran) if ran.status.success()),
            "{ran:?}"
        );
    }

    #[test]
    fn exec_feeds_the_payload_and_captures_a_calls_reply() {
        let ran = |cmd: &str, message: &Message| match exec::execute(
            OsStr::new(cmd),
            Some("jobs"),
            message,
        )
        .expect("ran")
        {
            exec::Handed::Ran(ran) => ran,
            exec::Handed::NotStarted(error) => panic!("not started: {error}"),
        };
        let ran1 = ran(
            r#"cat; printf ' %s %s' "$MAILBOX_CALL" "$MAILBOX_MAILBOX""#,
            &call_message(Some(5), None),
        );
        assert!(ran1.status.success());
        assert_eq!(ran1.stdout, b"ping 5 jobs");
        // A command that ignores its input and fails.
        let ran = ran("exit 3", &call_message(None, None));
        assert_eq!(ran.status.code(), Some(3));
        assert!(ran.stdout.is_empty(), "not a call: stdout is not captured");
    }

    #[test]
    fn the_names_table_lines_up_and_json_has_every_field() {
        let info = NameInfo {
            name: "resolver".into(),
            process: 12,
            pid: 4242,
            uid: 1000,
            queued_claims: 1,
        };
        let table = names_table(std::slice::from_ref(&info));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "NAME      PROCESS   PID   UID  QUEUED");
        assert_eq!(lines[1], "resolver       12  4242  1000       1");
        let value = name_json(&info);
        assert_eq!(value["process"], 12);
        assert_eq!(value["queued_claims"], 1);
    }

    #[test]
    fn json_messages_carry_the_new_metadata() {
        let value = message_json(None, &call_message(Some(5), Some("k1")));
        assert_eq!(value["mailbox"], serde_json::Value::Null);
        assert_eq!(value["call"], 5);
        assert_eq!(value["key"], "k1");
        assert_eq!(value["redeliveries"], 2);
        assert_eq!(value["dead_letter"], serde_json::Value::Null);
        assert_eq!(value["payload"], "ping");
    }

    #[test]
    fn info_shows_the_new_settings_and_counters() {
        let info = MailboxInfo {
            name: "jobs".into(),
            settings: MailboxSettings {
                max_deliveries: Some(3),
                dead_letter: Some("jobs.dead".into()),
                ttl_millis: Some(1500),
                ack_timeout_millis: Some(30_000),
                ..MailboxSettings::default()
            },
            queued_messages: 0,
            queued_bytes: 0,
            waiting_senders: 0,
            waiting_receivers: 0,
            subscribers: 0,
            messages_accepted: 10,
            messages_delivered: 9,
            in_flight: 2,
            messages_redelivered: 3,
            messages_expired: 4,
            messages_dead_lettered: 5,
            messages_dropped: 6,
            owner_uid: 1000,
            group_gid: 1000,
            mode: 0o760,
            ack_timeouts: 7,
            slow_subscribers_cut: 0,
        };
        let text = mailbox_text(&info);
        for line in [
            "max deliveries: 3",
            "dead letter: jobs.dead",
            "time to live: 1.5s",
            "in flight: 2",
            "messages redelivered: 3",
            "messages expired: 4",
            "messages dead-lettered: 5",
            "messages dropped: 6",
            "ack timeout: 30s",
            "cut slow subscribers after: none",
            "ack timeouts: 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        let value = mailbox_json(&info);
        assert_eq!(value["in_flight"], 2);
        assert_eq!(value["dead_letter"], "jobs.dead");
        assert_eq!(value["messages_dropped"], 6);
        assert_eq!(value["ack_timeout_millis"], 30_000);
        assert_eq!(value["ack_timeouts"], 7);
    }
}
