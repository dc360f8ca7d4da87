//! `mailboxd`: the mailbox broker daemon.
//!
//! Parses arguments, reads the configuration file (see
//! [`mailbox_broker::config`]), binds the socket (or takes the one systemd
//! passed, see [`mailbox_broker::systemd`]), and hands it to
//! [`mailbox_broker::server::run`] until SIGTERM or SIGINT. SIGHUP reloads
//! the configuration file.

use std::io::IsTerminal as _;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser};
use mailbox_broker::config::{self, FileConfig, SocketConfig};
use mailbox_broker::core::Limits;
use mailbox_broker::server::{
    self, BoundSocket, BufferLimits, Config, Control, DirectoryRule, Reload,
};
use mailbox_broker::systemd::{self, journal::JournalFormat, Notifier};
use mailbox_proto::socket_path;
use mailbox_proto::units::{parse_duration, parse_size, parse_size_at_most, ParseError};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{error, info, warn};

/// The mailbox broker: lets the programs of this machine pass messages
/// through named mailboxes.
///
/// Programs (and mailboxctl, from a shell) connect to mailboxd's Unix
/// socket, create mailboxes and send each other messages through them:
/// work queues, broadcast, request and reply, each with its limits and
/// its owner's permissions. Messages live in memory only: they are gone
/// when mailboxd stops.
///
/// mailboxd runs in the foreground and logs to stderr. With no arguments it
/// serves the socket of the rule below, with the settings of
/// /etc/mailbox/mailboxd.toml when that file exists. SIGTERM or SIGINT
/// stop it; SIGHUP reloads the configuration file.
///
/// The socket: --socket, else socket.path of the configuration file, else
/// $MAILBOX_SOCKET, else $XDG_RUNTIME_DIR/mailbox/mailboxd.sock (when that
/// directory is yours), else
/// /run/mailbox/mailboxd.sock when running as root or allowed to create
/// files in /run/mailbox, else /tmp/mailbox-UID/mailboxd.sock (created
/// with mode 0700). mailboxctl looks in the same places, taking the first
/// where a socket exists.
#[derive(Debug, Parser)]
#[command(name = "mailboxd", version)]
struct Args {
    /// Configuration file [default: /etc/mailbox/mailboxd.toml; built-in
    /// defaults when it does not exist]. SIGHUP reads it again.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Check the configuration file and exit: 0 and "ok: PATH" when it is
    /// good, 1 and the error (FILE:LINE: KEY: what is wrong) when not.
    #[arg(long)]
    check_config: bool,

    /// Socket to listen on [default: socket.path of the configuration, else
    /// $MAILBOX_SOCKET, else a per-user or the system socket: the rule is
    /// in --help's description]
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Log level or tracing filter (error, warn, info, debug, trace, or e.g.
    /// `mailbox_broker=debug`); RUST_LOG overrides it.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,

    /// Worker threads. 1 (the default) runs every connection on one thread:
    /// the mailbox core is serialised anyway, and on a small machine the
    /// clients need the other cores more than the broker does.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,

    /// Keep polling the sockets this many microseconds after handling
    /// requests before sleeping: lower latency for request/reply traffic at
    /// the cost of CPU time (0 = off).
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 0)]
    spin_us: u64,

    /// Print a completion script for a shell (bash, zsh, fish, elvish,
    /// powershell) and exit; the README says where to install it.
    #[arg(long, value_name = "SHELL", help_heading = "Installation")]
    completions: Option<clap_complete::Shell>,

    /// Print this manual page (roff, section 8: `mailboxd --manual | man -l -`)
    /// and exit.
    #[arg(long, help_heading = "Installation")]
    manual: bool,

    #[command(flatten)]
    overrides: Overrides,

    #[command(flatten)]
    buffers: BufferOverrides,
}

/// Limits on connection buffers given on the command line: they win over
/// the configuration file; taken at start only (like the file's).
#[derive(Debug, Clone, Copy, clap::Args)]
struct BufferOverrides {
    /// Bytes all connections together may hold in buffers: replies not yet
    /// read by their clients and frames partly received. K, M, G suffixes
    /// [default: limits.max_buffered_bytes of the configuration, 256M]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    max_buffered_bytes: Option<u64>,

    /// The same for the connections of one uid [default:
    /// limits.max_buffered_bytes_per_uid of the configuration, 64M]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    max_buffered_bytes_per_uid: Option<u64>,

    /// How long a frame may take to arrive once its first bytes did; a
    /// client that misses it gets a Goodbye and is disconnected, like 10s
    /// [default: limits.frame_timeout of the configuration, 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    frame_timeout: Option<Duration>,

    /// How long a client may read none of its replies while some wait to be
    /// written, before it is disconnected, like 30s [default:
    /// limits.write_timeout of the configuration, 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    write_timeout: Option<Duration>,

    /// Memory files of messages (each one of mailboxd's descriptors) the
    /// broker holds at most, all users together; file sends beyond it fail
    /// with BrokerFull [default: limits.max_held_files of the
    /// configuration, 4096]
    #[arg(long, value_name = "N")]
    max_held_files: Option<usize>,

    /// The same for the files one uid sent; root is not limited by it
    /// [default: limits.max_held_files_per_uid of the configuration, 1024]
    #[arg(long, value_name = "N")]
    max_held_files_per_uid: Option<usize>,
}

impl BufferOverrides {
    /// `limits` with the command line's on top.
    fn apply(self, mut limits: BufferLimits) -> BufferLimits {
        let usize_of = |bytes: u64| usize::try_from(bytes).unwrap_or(usize::MAX);
        if let Some(bytes) = self.max_buffered_bytes {
            limits.max_buffered_bytes = usize_of(bytes);
        }
        if let Some(bytes) = self.max_buffered_bytes_per_uid {
            limits.max_buffered_bytes_per_uid = usize_of(bytes);
        }
        if let Some(timeout) = self.frame_timeout {
            limits.frame_timeout = timeout;
        }
        if let Some(timeout) = self.write_timeout {
            limits.write_timeout = timeout;
        }
        if let Some(files) = self.max_held_files {
            limits.max_held_files = files;
        }
        if let Some(files) = self.max_held_files_per_uid {
            limits.max_held_files_per_uid = files;
        }
        limits
    }
}

/// Limits given on the command line: they win over the configuration file,
/// at start and at every reload.
#[derive(Debug, Clone, Copy, clap::Args)]
struct Overrides {
    /// Payload bytes the broker may hold in all mailboxes together; sends
    /// beyond it fail with BrokerFull. Accepts K, M, G suffixes (powers of
    /// 1024) [default: limits.memory_budget of the configuration, 1G]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    memory_budget: Option<u64>,

    /// Messages the broker may hold in all mailboxes together (each costs
    /// memory for its metadata even when empty); sends beyond it fail with
    /// BrokerFull [default: limits.max_queued_messages of the configuration,
    /// 4194304]
    #[arg(long, value_name = "N")]
    max_queued_messages: Option<u64>,

    /// Requests one connection may have waiting at once [default:
    /// limits.max_requests_in_flight of the configuration, 65536]
    #[arg(long, value_name = "N")]
    max_requests_in_flight: Option<usize>,

    /// The old name of --max-requests-in-flight: still accepted, with a
    /// warning in the log.
    #[arg(
        long,
        value_name = "N",
        hide = true,
        conflicts_with = "max_requests_in_flight"
    )]
    max_waiting_per_connection: Option<usize>,

    /// Connections in all, counted from accept (held to what the descriptor
    /// limit leaves room for) [default: limits.max_connections of the
    /// configuration, 16384]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,

    /// Connections of one uid; root is not limited by it [default:
    /// limits.max_connections_per_uid of the configuration, 1024]
    #[arg(long, value_name = "N")]
    max_connections_per_uid: Option<usize>,

    /// Connections only root and the admin group may use, at most a quarter
    /// of --max-connections [default: limits.reserved_connections of the
    /// configuration, 64]
    #[arg(long, value_name = "N")]
    reserved_connections: Option<usize>,

    /// The largest shared-memory region a client may create (its bytes
    /// also count against --memory-budget). Accepts K, M, G suffixes
    /// [default: limits.max_region_size of the configuration, 1G]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    max_region_size: Option<u64>,

    /// The largest memory-file payload (a message sent as a sealed memory
    /// file), in place of --max-message-size for such messages; at most
    /// 1G. Its bytes count against --memory-budget. Accepts K, M, G
    /// suffixes [default: limits.max_file_size of the configuration, 1G]
    #[arg(long, value_name = "BYTES", value_parser = parse_file_size)]
    max_file_size: Option<u64>,

    /// Shared-memory regions one uid may own; root is not limited by it
    /// [default: limits.max_regions_per_uid of the configuration, 64]
    #[arg(long, value_name = "N")]
    max_regions_per_uid: Option<usize>,
}

impl Overrides {
    /// Moves the values given under old flag names to their current names,
    /// returning one warning per old name used (logged once logging is up).
    fn take_deprecated(&mut self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(count) = self.max_waiting_per_connection.take() {
            self.max_requests_in_flight = Some(count);
            warnings.push(deprecated(
                "--max-waiting-per-connection",
                "--max-requests-in-flight",
            ));
        }
        warnings
    }

    /// `limits` with the command line's on top.
    fn apply(self, mut limits: Limits) -> Limits {
        if let Some(bytes) = self.memory_budget {
            limits.memory_budget = bytes;
        }
        if let Some(count) = self.max_queued_messages {
            limits.max_queued_messages = count;
        }
        if let Some(count) = self
            .max_requests_in_flight
            .or(self.max_waiting_per_connection)
        {
            limits.max_requests_in_flight = count;
        }
        if let Some(count) = self.max_connections {
            limits.max_connections = count;
        }
        if let Some(count) = self.max_connections_per_uid {
            limits.max_connections_per_uid = count;
        }
        if let Some(count) = self.reserved_connections {
            limits.reserved_connections = count;
        }
        if let Some(bytes) = self.max_region_size {
            limits.max_region_size = bytes;
        }
        if let Some(count) = self.max_regions_per_uid {
            limits.max_regions_per_uid = count;
        }
        if let Some(bytes) = self.max_file_size {
            limits.max_file_size = bytes;
        }
        limits
    }
}

/// The warning for a flag given under its old name.
fn deprecated(old: &str, new: &str) -> String {
    format!("{old} is deprecated: it is now called {new} (same meaning); the old name will go")
}

/// mailboxd's manual page, in roff: section 8, the daemons'.
fn manual_page() -> std::io::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Args::command())
        .section("8")
        .manual("mailbox")
        .render(&mut page)?;
    Ok(page)
}

/// Writes a completion script or manual page to stdout.
fn print_document(bytes: &[u8]) -> ExitCode {
    use std::io::Write as _;
    match std::io::stdout().write_all(bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mailboxd: cannot write to standard output: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `--check-config`: says whether the configuration is good.
fn check_config(path: Option<&Path>) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            println!("ok: {}", config.describe_source());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up logging to stderr; in the journal's format when stderr is the
/// journal (returns whether it is).
fn init_logging(level: &str) -> bool {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journal = systemd::journal::stderr_is_journal();
    let colour = use_colour(
        journal,
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    if journal {
        builder.event_format(JournalFormat).init();
    } else {
        builder.init();
    }
    journal
}

/// Whether the log is coloured: only on a terminal, never in the journal,
/// and not when `$NO_COLOR` is set to anything but the empty string
/// (<https://no-color.org>). A file or a pipe gets plain text.
fn use_colour(journal: bool, terminal: bool, no_colour: Option<&std::ffi::OsStr>) -> bool {
    !journal && terminal && no_colour.is_none_or(|value| value.is_empty())
}

/// The listener, the socket to remove at exit when we bound it ourselves
/// (a socket passed by systemd belongs to systemd and stays), and which
/// step of the socket rule chose it, in words for the log.
fn listen(
    socket: Option<PathBuf>,
    configured: &SocketConfig,
    activated: Option<StdUnixListener>,
) -> anyhow::Result<(UnixListener, Option<BoundSocket>, String)> {
    let socket = socket.or_else(|| configured.path.clone());
    let Some(activated) = activated else {
        let chosen = socket_path::for_broker(socket);
        let rule = DirectoryRule::for_origin(chosen.origin);
        let (listener, bound) =
            server::bind_with_permissions(&chosen.path, rule, configured.mode, configured.group)?;
        return Ok((listener, Some(bound), chosen.origin.to_string()));
    };
    let listener = UnixListener::from_std(activated)
        .context("cannot use the socket passed by the service manager")?;
    let path = local_path(&listener);
    if let Some(requested) = socket.filter(|r| Some(r) != path.as_ref()) {
        warn!(
            requested = %requested.display(),
            "ignoring --socket / [socket] path: the service manager passed the socket to listen on"
        );
    }
    if configured.mode.is_some() || configured.group.is_some() {
        info!("[socket] mode and group are left to the service manager, which owns the socket (SocketMode=, SocketGroup=)");
    }
    info!("using the socket passed by the service manager (socket activation); it stays when mailboxd exits");
    Ok((listener, None, "the service manager".to_owned()))
}

/// The path `listener` is bound to, if it has one.
fn local_path(listener: &UnixListener) -> Option<PathBuf> {
    let address = listener.local_addr().ok()?;
    address.as_pathname().map(PathBuf::from)
}

async fn serve(
    args: Args,
    file: FileConfig,
    activated: Option<StdUnixListener>,
) -> anyhow::Result<()> {
    let (listener, bound, chosen_by) = listen(args.socket.clone(), &file.socket, activated)?;
    let shown = local_path(&listener).map_or_else(
        || "(unnamed socket)".to_owned(),
        |path| path.display().to_string(),
    );
    // Install the handlers before announcing readiness, so a signal sent as
    // soon as the socket answers is not lost (SIGHUP would even kill us).
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => info!("SIGTERM received"),
            _ = interrupt.recv() => info!("SIGINT received"),
        }
    };
    let control = Control::default();
    let config = Config {
        limits: args.overrides.apply(file.limits),
        access: file.access.clone(),
        mailboxes: file.mailboxes.clone(),
        control: control.clone(),
        max_frame_size: file.max_frame_size,
        handshake_timeout: file.handshake_timeout,
        max_unread_reply_bytes: file.max_unread_reply_bytes,
        buffers: args.buffers.apply(file.buffers),
        spin: std::time::Duration::from_micros(args.spin_us),
        notifier: Notifier::from_env(),
        ..Config::default()
    };
    info!(
        socket = %shown,
        chosen_by = %chosen_by,
        pid = std::process::id(),
        config = %file.describe_source(),
        "mailboxd listening"
    );
    let reloader = Reloader {
        path: args.config.clone(),
        overrides: args.overrides,
        in_force: file,
        bound: bound.clone(),
        control,
    };
    let reloads = tokio::spawn(reloader.run(hangup));
    let result = server::run(listener, config, shutdown).await;
    reloads.abort();
    if let Some(bound) = bound {
        let socket = bound.path().display();
        match bound.remove() {
            Ok(true) => {}
            Ok(false) => warn!(
                %socket,
                "left the socket path alone: the file there is no longer the socket this broker bound"
            ),
            Err(error) => error!(%error, %socket, "cannot remove the socket"),
        }
    }
    result.with_context(|| format!("serving {shown}"))
}

/// Reloads the configuration on SIGHUP.
struct Reloader {
    /// `--config`, if given.
    path: Option<PathBuf>,
    overrides: Overrides,
    /// The configuration in force (settings that need a restart keep their
    /// values from the start).
    in_force: FileConfig,
    /// The socket we bound, whose mode and group we may change.
    bound: Option<BoundSocket>,
    control: Control,
}

impl Reloader {
    async fn run(mut self, mut hangup: Signal) {
        while hangup.recv().await.is_some() {
            info!("SIGHUP received: reloading the configuration");
            let path = self.path.clone();
            // Reading the file and looking up names may block (NSS).
            match tokio::task::spawn_blocking(move || config::load(path.as_deref())).await {
                Ok(Ok(file)) => self.apply(file),
                Ok(Err(error)) => {
                    error!("configuration not reloaded, the current one stays in force: {error}");
                }
                Err(error) => error!(%error, "configuration not reloaded: the reading task failed"),
            }
        }
    }

    fn apply(&mut self, mut file: FileConfig) {
        let old = &self.in_force;
        let mut need_restart = Vec::new();
        if file.socket.path != old.socket.path {
            need_restart.push("socket.path");
        }
        if file.max_frame_size != old.max_frame_size {
            need_restart.push("limits.max_frame_size");
        }
        if file.handshake_timeout != old.handshake_timeout {
            need_restart.push("limits.handshake_timeout");
        }
        if file.max_unread_reply_bytes != old.max_unread_reply_bytes {
            need_restart.push("limits.max_unread_reply_bytes");
        }
        if file.buffers != old.buffers {
            need_restart.push(
                "limits.max_buffered_bytes, max_buffered_bytes_per_uid, frame_timeout, write_timeout",
            );
        }
        if !need_restart.is_empty() {
            warn!(
                "changed settings take effect only when mailboxd restarts: {}",
                need_restart.join(", ")
            );
        }
        file.socket.path.clone_from(&old.socket.path);
        file.max_frame_size = old.max_frame_size;
        file.handshake_timeout = old.handshake_timeout;
        file.max_unread_reply_bytes = old.max_unread_reply_bytes;
        file.buffers = old.buffers;
        if let Some(socket) = self.bound.as_ref().filter(|bound| bound.is_still_there()) {
            let (mode, group) = (file.socket.mode, file.socket.group);
            if (mode, group) != (old.socket.mode, old.socket.group) {
                if let Err(error) = server::set_socket_permissions(socket.path(), mode, group) {
                    error!(%error, "cannot apply the new [socket] mode and group");
                }
            }
        }
        let reload = Reload {
            limits: self.overrides.apply(file.limits),
            access: file.access.clone(),
            mailboxes: file.mailboxes.clone(),
        };
        if self.control.reload(&reload) {
            info!(config = %file.describe_source(), "configuration reloaded");
        } else {
            warn!("configuration not reloaded: the server is not running");
        }
        self.in_force = file;
    }
}

fn main() -> ExitCode {
    let mut args = match parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    if let Some(shell) = args.completions {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Args::command(), "mailboxd", &mut script);
        return print_document(&script);
    }
    if args.manual {
        return match manual_page() {
            Ok(page) => print_document(&page),
            Err(error) => fail(false, &anyhow::Error::new(error)),
        };
    }
    if args.check_config {
        return check_config(args.config.as_deref());
    }
    let journal = init_logging(&args.log_level);
    for warning in args.overrides.take_deprecated() {
        warn!("{warning}");
    }
    raise_descriptor_limit();
    let file = match config::load(args.config.as_deref()) {
        Ok(file) => file,
        Err(error) => return fail(journal, &config_failure(error, args.config.as_deref())),
    };
    // Before the runtime starts any thread: this edits the environment.
    let activated = match systemd::take_listener() {
        Ok(activated) => activated,
        Err(error) => return fail(journal, &anyhow::Error::new(error)),
    };
    let mut builder = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(args.threads);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            let error = anyhow::anyhow!(
                "cannot start the async runtime: {error}; lower --threads, or raise the \
                 process and memory limits of mailboxd's user"
            );
            return fail(journal, &error);
        }
    };
    match runtime.block_on(serve(args, file, activated)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(journal, &error),
    }
}

/// Raises the soft limit on open descriptors to the hard one: each
/// connection takes one, and the soft limit is often 1024 while the hard
/// one allows far more. `limits.max_connections` is then held to what it
/// leaves room for (see the server).
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the calls to read and fill.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur >= limit.rlim_max {
            // Debug only: a start-up failure is one line on stderr, and
            // `status` reports the limit (open_files_limit) anyway.
            tracing::debug!(
                limit = limit.rlim_cur,
                "the descriptor limit (RLIMIT_NOFILE) is already its hard limit"
            );
            return;
        }
        let from = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            info!(
                from,
                to = limit.rlim_max,
                "raised the descriptor limit (RLIMIT_NOFILE)"
            );
        } else {
            warn!(
                error = %std::io::Error::last_os_error(),
                "cannot raise the descriptor limit (RLIMIT_NOFILE)"
            );
        }
    }
}

/// Reports a fatal error on stderr, once: one `<3>` line when stderr is the
/// journal, else one plain line (seen even when logging is filtered out).
fn fail(journal: bool, error: &anyhow::Error) -> ExitCode {
    let line = one_line(error);
    if journal {
        eprintln!("<3>mailboxd: {line}");
    } else {
        eprintln!("mailboxd: {line}");
    }
    ExitCode::FAILURE
}

/// An error and its causes on one line, each cause left out when the text
/// before it already says it (typed errors often show their source in their
/// own message, and anyhow would repeat it).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', "; ")
}

/// A configuration file that cannot be used, with what to do about it.
fn config_failure(error: config::ConfigError, explicit: Option<&Path>) -> anyhow::Error {
    let hint = if error.line.is_none() && explicit.is_some() {
        "give --config a readable TOML file, or leave --config out to use /etc/mailbox/\
         mailboxd.toml or the built-in defaults"
            .to_owned()
    } else {
        format!(
            "fix the file; `mailboxd --check-config --config {}` checks it",
            error.path.display()
        )
    };
    anyhow::anyhow!("{error}; {hint}")
}

/// Parses the command line. A usage error is one line on stderr naming the
/// problem and pointing at --help (exit 2); --help and --version print and
/// exit 0.
fn parse_args() -> Result<Args, ExitCode> {
    use clap::error::ErrorKind;
    match Args::try_parse() {
        Ok(args) => Ok(args),
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            error.exit()
        }
        Err(error) => {
            eprintln!("mailboxd: {}", usage_line(&error.render().to_string()));
            Err(ExitCode::from(2))
        }
    }
}

/// clap's rendering of a usage error (an `error:` line, tips, usage) as one
/// line: the error, its tips, and where to read more.
fn usage_line(rendered: &str) -> String {
    let mut lines = rendered.lines().map(str::trim);
    let first = lines.next().unwrap_or_default();
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    for tip in lines.filter(|line| line.starts_with("tip:")) {
        line.push_str("; ");
        line.push_str(tip);
    }
    line.push_str("; see mailboxd --help");
    line
}

/// `--max-file-size`: a size, at most `MAX_FILE_PAYLOAD` (1G).
fn parse_file_size(input: &str) -> Result<u64, ParseError> {
    parse_size_at_most(input, mailbox_proto::memfile::MAX_FILE_PAYLOAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("mailboxd").chain(line.iter().copied()))
            .expect("a valid command line")
    }

    /// The limit on requests in flight that the flags of `args` set.
    fn max_requests_in_flight(args: &Args) -> usize {
        args.overrides
            .apply(Limits::default())
            .max_requests_in_flight
    }

    #[test]
    fn max_requests_in_flight_is_taken_under_its_name_without_a_warning() {
        let mut args = args(&["--max-requests-in-flight", "9"]);
        assert!(args.overrides.take_deprecated().is_empty());
        assert_eq!(max_requests_in_flight(&args), 9);
    }

    #[test]
    fn the_old_flag_name_still_works_and_warns_naming_the_new_one() {
        let mut args = args(&["--max-waiting-per-connection", "7"]);
        let warnings = args.overrides.take_deprecated();
        assert_eq!(
            warnings,
            [
                "--max-waiting-per-connection is deprecated: it is now called \
              --max-requests-in-flight (same meaning); the old name will go"
            ]
        );
        assert_eq!(max_requests_in_flight(&args), 7);
        // Once moved, the old name is not reported again (reloads reuse them).
        assert!(args.overrides.take_deprecated().is_empty());
        assert_eq!(max_requests_in_flight(&args), 7);
    }

    #[test]
    fn old_and_new_names_together_are_refused() {
        let both = Args::try_parse_from([
            "mailboxd",
            "--max-requests-in-flight",
            "9",
            "--max-waiting-per-connection",
            "7",
        ]);
        assert!(both.is_err());
    }

    #[test]
    fn flags_take_the_units_of_the_configuration() {
        let args = args(&["--max-buffered-bytes", "64K", "--frame-timeout", "1.5s"]);
        let limits = args.buffers.apply(BufferLimits::default());
        assert_eq!(limits.max_buffered_bytes, 64 << 10);
        assert_eq!(limits.frame_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn a_startup_error_is_one_line_without_its_cause_twice() {
        let cause = std::io::Error::from_raw_os_error(libc::EACCES);
        let error = anyhow::Error::new(server::BindError::Directory {
            path: "/run/mailbox".into(),
            source: cause,
        })
        .context("cannot listen");
        let line = one_line(&error);
        assert_eq!(line.matches("Permission denied").count(), 1, "{line}");
        assert!(line.starts_with("cannot listen: cannot create the socket directory /run/mailbox"));
        assert!(line.contains("set MAILBOX_SOCKET or --socket"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_usage_error_is_one_line_pointing_at_help() {
        let error = Args::try_parse_from(["mailboxd", "--threads", "many"]).unwrap_err();
        let line = usage_line(&error.render().to_string());
        assert!(
            line.starts_with("invalid value 'many' for '--threads <N>'"),
            "{line}"
        );
        assert!(line.ends_with("; see mailboxd --help"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn the_log_is_coloured_only_on_a_terminal_outside_the_journal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(false, true, None));
        assert!(use_colour(false, true, Some(OsStr::new(""))));
        assert!(!use_colour(false, false, None), "a file or a pipe");
        assert!(!use_colour(true, true, None), "the journal");
        assert!(!use_colour(false, true, Some(OsStr::new("1"))), "NO_COLOR");
    }

    #[test]
    fn completions_and_the_manual_page_cover_the_flags() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Args::command(), "mailboxd", &mut script);
            let script = String::from_utf8(script).expect("text");
            for flag in ["socket", "check-config", "memory-budget", "manual"] {
                assert!(script.contains(flag), "{shell}: no {flag}");
            }
        }
        let page = String::from_utf8(manual_page().expect("rendered")).expect("text");
        assert!(page.contains(".TH mailboxd 8"), "{page}");
        assert!(page.contains("\\-\\-socket"), "{page}");
    }

    #[test]
    fn version_and_help_name_the_daemon_and_say_what_it_does() {
        let version = Args::command().render_version();
        assert_eq!(
            version.trim(),
            format!("mailboxd {}", env!("CARGO_PKG_VERSION"))
        );
        let help = Args::command().render_long_help().to_string();
        assert!(help.contains("pass messages"), "{help}");
        assert!(help.contains("/tmp/mailbox-UID/mailboxd.sock"), "{help}");
        assert!(!help.contains("tokio"), "{help}");
    }
}
