//! The command line's definition: every subcommand, flag and argument as
//! clap reads them (their help texts are the manual), the checks clap
//! cannot express, and what a parsed command is about (its mailbox, its
//! process, its time limit), which connecting and failure messages need.
//!
//! It runs nothing and prints nothing. How a value is read (sizes,
//! durations, modes, owners, processes) is [`values`]'s.

mod values;

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use mailbox_client::{
    wait_at_most, Address, Capacity, DeliveryPolicy, Stage, Target, Wait, DEFAULT_MAX_MESSAGE_SIZE,
};

use values::{
    parse_ack_timeout, parse_address, parse_cut_after, parse_delimiter, parse_duration,
    parse_group, parse_mode, parse_owner, parse_region_size, parse_size, parse_ttl,
};
pub(crate) use values::{Delimiter, Owner};

/// Control and use the mailboxes of the mailboxd broker.
///
/// The broker's socket is --socket, else $MAILBOX_SOCKET, else the first of
/// $XDG_RUNTIME_DIR/mailbox/mailboxd.sock, /tmp/mailbox-UID/mailboxd.sock
/// and /run/mailbox/mailboxd.sock where a socket exists.
///
/// Exit codes: 0 success; 1 other failure; 2 usage; 65 message, settings or
/// request refused; 66 no such mailbox or region; 68 no such process; 69
/// broker unreachable or not answering; 73 mailbox or region exists with
/// other settings, or name taken; 75 would block (mailbox full or empty); 76 no reply to a
/// call; 77 permission denied; 78 the socket's owner is not a trusted
/// broker; 120 timed out after a receiver took the message; 124 timed out.
#[derive(Debug, Parser)]
#[command(name = "mailboxctl", version, verbatim_doc_comment)]
pub(crate) struct Cli {
    /// The broker's socket.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// Print one JSON object per line on stdout instead of text (commands
    /// that change something print their receipt).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Claim this well-known name for the command's connection first, so
    /// that others reach its inbox by that name (exit 73 if another process
    /// holds it). Before any command, or after send, recv and call.
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) as_name: Option<String>,
    /// Who may send to this command's inbox, as an octal mode (only the
    /// send bits count): the default 0600 admits processes of your own uid
    /// and root; 0622 admits everyone, 0620 your group too. Before any
    /// command, or after recv.
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub(crate) inbox_mode: Option<u32>,
    /// Also accept a broker running as this user (uid or name); by default
    /// only root, the user mailbox and your own uid are (exit 78 for any
    /// other). Default: $MAILBOX_BROKER_UID.
    #[arg(long, global = true, value_name = "USER")]
    pub(crate) broker_uid: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
        #[command(flatten)]
        receipt: Receipt,
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
        #[command(flatten)]
        receipt: Receipt,
    },
    /// Change a mailbox's owner and/or group (needs the manage right).
    Chown {
        /// The mailbox's name.
        name: String,
        /// USER, USER:GROUP or :GROUP; names or numeric ids.
        #[arg(value_name = "[USER][:GROUP]", value_parser = parse_owner)]
        owner: Owner,
        #[command(flatten)]
        receipt: Receipt,
    },
    /// Discard every queued message of a mailbox (not those a receiver
    /// holds unacknowledged); needs the manage right.
    Purge {
        /// The mailbox's name.
        name: String,
        #[command(flatten)]
        receipt: Receipt,
    },
    /// Delete a mailbox; whoever waits on it gets an error.
    Delete {
        /// The mailbox's name.
        name: String,
        #[command(flatten)]
        receipt: Receipt,
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
        /// Send the contents of the file at PATH as a sealed memory file:
        /// copied once into shared memory, then passed by the broker to
        /// each receiver that takes files without being copied again
        /// (others get the bytes). At most the broker's largest message
        /// (16 MiB by default). To a MAILBOX only, with no MESSAGE and no
        /// --wait, --key, --ttl, --nonblock or --timeout.
        #[arg(long, value_name = "PATH")]
        file: Option<std::path::PathBuf>,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        claim: Claim,
        #[command(flatten)]
        receipt: Receipt,
    },
    /// Receive messages and write their bytes to stdout.
    ///
    /// Into a pipe or a file each message's bytes are written exactly as
    /// sent, back to back, with nothing added (so `recv > file` copies a
    /// message byte for byte). On a terminal a newline follows each message
    /// that does not end with one already, so that messages and the prompt
    /// stay apart. --raw (exact bytes even on a terminal), --delimiter STR
    /// and -0 choose for both. With --json each
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
    /// the head otherwise (or dead-lettered after its last delivery, as
    /// the note then says). If sh cannot be started at all, the message is
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
        /// in the inbox; implies --inbox. A name matches what its holder
        /// sent while holding it, and nobody needs to hold it yet: the
        /// receive waits (exit 68 only for an address with no process).
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
        #[command(flatten)]
        framing: Framing,
        #[command(flatten)]
        claim: Claim,
        /// Who may send to this command's inbox, as an octal mode (only the
        /// send bits count): the default 0600 admits processes of your own
        /// uid and root; 0622 admits everyone, 0620 your group too.
        #[arg(long, value_name = "MODE", value_parser = parse_mode)]
        inbox_mode: Option<u32>,
    },
    /// Show queued messages without taking them (needs the right to receive).
    ///
    /// Nothing changes: the messages stay queued for receivers, in the order
    /// shown, which is the order receivers would get them (on a hash mailbox:
    /// by sequence number; on a broadcast mailbox: every message some
    /// subscriber has not read yet). Messages held by receivers that have not
    /// acknowledged them are not queued and not shown; a note on stderr
    /// counts them, and another says where to go on when more are queued
    /// than --count.
    ///
    /// Each message is a header line, `#SEQ` and its metadata, then its
    /// bytes and a newline. With --json each message is one line, as recv
    /// prints it. Nothing queued is no output and exit 0 (a peek shows, it
    /// does not wait; `recv --nonblock` exits 75 on an empty mailbox).
    Peek {
        /// The mailbox's name.
        name: String,
        /// Show at most this many messages (read from the broker in pages).
        #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
        /// Start after the message with this sequence number (the one the
        /// previous peek ended with).
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
    },
    /// Call: send a request message and print the reply's bytes (like recv:
    /// exact bytes into a pipe, a newline added on a terminal if missing).
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
        #[command(flatten)]
        framing: Framing,
        #[command(flatten)]
        claim: Claim,
    },
    /// Named shared-memory regions: create, list, info, delete, and
    /// read or write their bytes.
    ///
    /// A region is memory the broker owns and processes map: its bytes
    /// never pass through the broker. MODE is octal like a mailbox's, each
    /// class the sum of read 4, write 2 and manage 1 (delete).
    Region {
        #[command(subcommand)]
        command: RegionCommand,
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
    /// Print a completion script for a shell (bash, zsh, fish, elvish,
    /// powershell); the README says where to install it.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page of mailboxctl (roff, for `man -l -`); with
    /// --dir, write it and a page per command into a directory instead.
    Manual {
        /// Write mailboxctl.1 and mailboxctl-COMMAND.1 into this directory,
        /// like ~/.local/share/man/man1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `mailboxctl region ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum RegionCommand {
    /// Create a region of --size zero bytes (succeeds without change if you
    /// have it already with that size).
    Create {
        /// The region's name: 1 to 255 of letters, digits and . _ / -
        name: String,
        /// Its size in bytes (suffixes K, M, G: powers of 1024), fixed for
        /// its life; it counts against the broker's memory budget.
        #[arg(long, value_name = "BYTES", value_parser = parse_region_size)]
        size: u64,
        /// Rights in octal, like 0640 (read 4, write 2, manage 1); default:
        /// the broker's default mode.
        #[arg(long, value_name = "MODE", value_parser = parse_mode)]
        mode: Option<u32>,
        /// Group of the region (a name or a gid); default: the creator's.
        #[arg(long, value_name = "GROUP", value_parser = parse_group)]
        group: Option<u32>,
        #[command(flatten)]
        receipt: Receipt,
    },
    /// List every region you have some right on.
    List,
    /// Show one region.
    Info {
        /// The region's name.
        name: String,
    },
    /// Delete a region; processes that mapped it keep their mappings.
    Delete {
        /// The region's name.
        name: String,
        #[command(flatten)]
        receipt: Receipt,
    },
    /// Write all of stdin into a region at --offset (needs the write right).
    Write {
        /// The region's name.
        name: String,
        /// Where to start, in bytes from the region's start.
        #[arg(long, value_name = "BYTES", default_value = "0", value_parser = parse_region_size)]
        offset: u64,
        #[command(flatten)]
        receipt: Receipt,
    },
    /// Copy --len bytes of a region from --offset to stdout (needs the read
    /// right).
    Read {
        /// The region's name.
        name: String,
        /// Where to start, in bytes from the region's start.
        #[arg(long, value_name = "BYTES", default_value = "0", value_parser = parse_region_size)]
        offset: u64,
        /// How many bytes (default: to the region's end).
        #[arg(long, value_name = "BYTES", value_parser = parse_region_size)]
        len: Option<u64>,
    },
}

impl RegionCommand {
    /// The region it is about.
    pub(crate) fn region(&self) -> Option<&str> {
        match self {
            RegionCommand::Create { name, .. }
            | RegionCommand::Info { name }
            | RegionCommand::Delete { name, .. }
            | RegionCommand::Write { name, .. }
            | RegionCommand::Read { name, .. } => Some(name),
            RegionCommand::List => None,
        }
    }
}

/// Where a send or call goes, and its message.
#[derive(Debug, Args)]
pub(crate) struct Addressing {
    /// The mailbox's name; leave it out with --to.
    #[arg(value_name = "MAILBOX")]
    pub(crate) mailbox: Option<OsString>,
    /// The message; when absent, stdin is read to its end and sent as one
    /// message (at most 16 MiB: more fails at once, exit 65).
    #[arg(value_name = "MESSAGE")]
    pub(crate) message: Option<OsString>,
    /// A process's inbox instead of a mailbox: its address (digits) or a
    /// well-known name it holds.
    #[arg(long, value_name = "PROCESS", value_parser = parse_address)]
    pub(crate) to: Option<Address>,
}

impl Addressing {
    /// Checks that exactly one of MAILBOX and --to is given; with --to, the
    /// one argument is the message.
    pub(crate) fn normalize(&mut self) -> Result<(), clap::Error> {
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
    pub(crate) fn mailbox(&self) -> Option<&str> {
        self.mailbox.as_deref().and_then(OsStr::to_str)
    }

    /// Where to, once normalised.
    pub(crate) fn target(&self) -> Target {
        match (&self.to, self.mailbox()) {
            (Some(process), _) => Target::Process(process.clone()),
            (None, mailbox) => Target::mailbox(mailbox.unwrap_or_default()),
        }
    }
}

/// The stages a send may wait for, as `--wait` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StageArg {
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
pub(crate) struct WaitArgs {
    /// Fail at once instead of waiting (exit 75).
    #[arg(long, conflicts_with = "timeout")]
    pub(crate) nonblock: bool,
    /// Wait at most this long, like 500ms, 2s, 1.5s or 1m (exit 124).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,
}

impl WaitArgs {
    /// The wait to ask for: none with --nonblock, at most --timeout, else
    /// forever.
    pub(crate) fn wait(&self) -> Wait {
        match (self.nonblock, self.timeout) {
            (true, _) => Wait::Never,
            (false, Some(timeout)) => wait_at_most(timeout),
            (false, None) => Wait::Forever,
        }
    }
}

/// `-v`: what a command that changes something says once it succeeded.
/// Without it (and without --json) it says nothing, like Unix tools.
#[derive(Debug, Default, Args)]
pub(crate) struct Receipt {
    /// Say what was done, on stdout (--json always prints the receipt).
    #[arg(short, long)]
    pub(crate) verbose: bool,
}

/// `--as` given after the command (it may also come before it).
#[derive(Debug, Default, Args)]
pub(crate) struct Claim {
    /// Claim this well-known name for the command's connection first, so
    /// that others reach its inbox (or find its messages, `recv --from`)
    /// by that name (exit 73 if another process holds it).
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) as_name: Option<String>,
}

/// What `recv` and `call` write after each message's bytes (see
/// [`crate::output::payload`]). At most one of them.
#[derive(Debug, Default, Args)]
#[group(multiple = false)]
pub(crate) struct Framing {
    /// Write each message's bytes exactly, nothing after them, even on a
    /// terminal (what a pipe or a file always gets unless --delimiter or -0).
    #[arg(long)]
    pub(crate) raw: bool,
    /// Write STR after each message, on a terminal or not; \n, \t, \r, \0
    /// and \\ in it stand for a newline, tab, carriage return, NUL and a
    /// backslash.
    #[arg(long, value_name = "STR", value_parser = parse_delimiter)]
    pub(crate) delimiter: Option<Delimiter>,
    /// Write a NUL byte after each message (for `xargs -0`, `read -d ''`).
    #[arg(short = '0', long = "null")]
    pub(crate) null: bool,
}

impl Framing {
    /// Whether any of the three was given.
    fn given(&self) -> bool {
        self.raw || self.null || self.delimiter.is_some()
    }
}

impl Cli {
    /// Parses the command line, usage errors included (exit 2).
    pub(crate) fn parse_checked() -> Self {
        let mut cli = Cli::parse();
        if let Err(error) = cli.check() {
            error.exit();
        }
        cli
    }

    /// The checks clap cannot express: exactly one of MAILBOX and --to;
    /// --as and --inbox-mode once, before or after the command (moved to
    /// [`Cli`]); --raw, --delimiter and -0 only for text output.
    fn check(&mut self) -> Result<(), clap::Error> {
        let usage =
            |text: String| Cli::command().error(clap::error::ErrorKind::ArgumentConflict, text);
        let (claim, inbox_mode, framing) = match &mut self.command {
            Command::Send { to, claim, .. } => {
                to.normalize()?;
                (Some(claim), None, None)
            }
            Command::Call {
                to, claim, framing, ..
            } => {
                to.normalize()?;
                (Some(claim), None, Some(&*framing))
            }
            Command::Recv {
                claim,
                inbox_mode,
                framing,
                exec,
                ..
            } => {
                if exec.is_some() && framing.given() {
                    return Err(usage(
                        "--raw, --delimiter and -0 shape what recv prints; with --exec it                          prints nothing (each message goes to the command's stdin)"
                            .to_owned(),
                    ));
                }
                (Some(claim), Some(inbox_mode), Some(&*framing))
            }
            _ => (None, None, None),
        };
        if self.json && framing.is_some_and(Framing::given) {
            return Err(usage(
                "--raw, --delimiter and -0 shape the text output; --json writes one object                  per line with the exact bytes in payload_base64"
                    .to_owned(),
            ));
        }
        /// Moves a flag given after the command to `before`, once.
        fn merge<T>(
            flag: &str,
            before: &mut Option<T>,
            after: Option<&mut Option<T>>,
        ) -> Result<(), clap::Error> {
            match (before.is_some(), after.and_then(Option::take)) {
                (true, Some(_)) => Err(Cli::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("{flag} given both before and after the command; give it once"),
                )),
                (_, Some(value)) => {
                    *before = Some(value);
                    Ok(())
                }
                (_, None) => Ok(()),
            }
        }
        merge(
            "--as",
            &mut self.as_name,
            claim.map(|claim| &mut claim.as_name),
        )?;
        merge("--inbox-mode", &mut self.inbox_mode, inbox_mode)?;
        Ok(())
    }
}

impl Command {
    /// The command's own time limit: its --timeout, or zero for --nonblock.
    pub(crate) fn time_limit(&self) -> Option<Duration> {
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
    pub(crate) fn mailbox(&self) -> Option<&str> {
        match self {
            Command::Create { name, .. }
            | Command::Delete { name, .. }
            | Command::Info { name }
            | Command::Chmod { name, .. }
            | Command::Chown { name, .. }
            | Command::Purge { name, .. }
            | Command::Peek { name, .. } => Some(name),
            Command::Recv { name, .. } => name.as_deref(),
            Command::Send { to, .. } | Command::Call { to, .. } => match to.to {
                Some(_) => None,
                None => to.mailbox(),
            },
            Command::List
            | Command::Region { .. }
            | Command::Names
            | Command::Status { .. }
            | Command::Top { .. }
            | Command::Completions { .. }
            | Command::Manual { .. } => None,
        }
    }

    /// Whether the command says what it did on success (`-v`).
    pub(crate) fn verbose(&self) -> bool {
        match self {
            Command::Create { receipt, .. }
            | Command::Chmod { receipt, .. }
            | Command::Chown { receipt, .. }
            | Command::Purge { receipt, .. }
            | Command::Delete { receipt, .. }
            | Command::Send { receipt, .. }
            | Command::Region {
                command:
                    RegionCommand::Create { receipt, .. }
                    | RegionCommand::Delete { receipt, .. }
                    | RegionCommand::Write { receipt, .. },
            } => receipt.verbose,
            _ => false,
        }
    }

    /// What `recv` and `call` write after each message's bytes.
    pub(crate) fn framing(&self) -> Option<&Framing> {
        match self {
            Command::Recv { framing, .. } | Command::Call { framing, .. } => Some(framing),
            _ => None,
        }
    }

    /// The process the command is about (`--to`, `--from`), for failure messages.
    pub(crate) fn process(&self) -> Option<&Address> {
        match self {
            Command::Send { to, .. } | Command::Call { to, .. } => to.to.as_ref(),
            Command::Recv { from, .. } => from.as_ref(),
            _ => None,
        }
    }

    /// What the command sends to or receives from, in words.
    pub(crate) fn subject(&self) -> String {
        match (self.mailbox(), self, self.process()) {
            (Some(name), _, _) => format!("mailbox {name}"),
            (None, Command::Recv { .. }, _) => "this connection's inbox".to_owned(),
            (None, _, Some(process)) => format!("the inbox of {process}"),
            (None, _, None) => "?".to_owned(),
        }
    }
}

#[cfg(test)]
impl Cli {
    /// Parses `args` (the program's name left out) as `main` does, usage
    /// checks included.
    pub(crate) fn parse_for_test(args: &[&str]) -> Result<Self, clap::Error> {
        let mut cli =
            Cli::try_parse_from(std::iter::once("mailboxctl").chain(args.iter().copied()))?;
        cli.check()?;
        Ok(cli)
    }
}

#[cfg(test)]
mod tests;
