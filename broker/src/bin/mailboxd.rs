//! `mailboxd`: the mailbox broker daemon.
//!
//! Parses arguments, binds the socket (or takes the one systemd passed, see
//! [`mailbox_broker::systemd`]), and hands it to
//! [`mailbox_broker::server::run`] until SIGTERM or SIGINT.

use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use mailbox_broker::core::Limits;
use mailbox_broker::server::{self, Config};
use mailbox_broker::systemd::{self, journal::JournalFormat, Notifier};
use mailbox_proto::socket_path;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

/// The mailbox IPC broker: named mailboxes over a Unix socket.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Socket to listen on [default: $MAILBOX_SOCKET, else
    /// $XDG_RUNTIME_DIR/mailbox/mailboxd.sock, else /run/mailbox/mailboxd.sock]
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Log level or tracing filter (error, warn, info, debug, trace, or e.g.
    /// `mailbox_broker=debug`); RUST_LOG overrides it.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,

    /// Payload bytes the broker may hold in all mailboxes together; sends
    /// beyond it fail with BrokerFull. Accepts K, M, G suffixes (powers of 1024).
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = parse_bytes)]
    memory_budget: u64,

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

    /// Messages the broker may hold in all mailboxes together (each costs
    /// memory for its metadata even when empty); sends beyond it fail with
    /// BrokerFull.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_queued_messages)]
    max_queued_messages: u64,

    /// Requests one connection may have waiting at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_waiting_per_connection)]
    max_waiting_per_connection: usize,
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((index, _)) => text.split_at(index),
        None => (text, ""),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count like 1048576, 512K, 64M or 1G"))?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}; use K, M or G")),
    };
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Sets up logging to stderr; in the journal's format when stderr is the
/// journal (returns whether it is).
fn init_logging(level: &str) -> bool {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let journal = systemd::journal::stderr_is_journal();
    if journal {
        builder.with_ansi(false).event_format(JournalFormat).init();
    } else {
        builder.init();
    }
    journal
}

/// The listener, and the path to remove at exit when we bound it ourselves:
/// a socket passed by systemd belongs to systemd and stays.
fn listen(
    socket: Option<PathBuf>,
    activated: Option<StdUnixListener>,
) -> anyhow::Result<(UnixListener, Option<PathBuf>)> {
    let Some(activated) = activated else {
        let path = socket_path::resolve(socket);
        let listener = server::bind(&path)?;
        return Ok((listener, Some(path)));
    };
    let listener = UnixListener::from_std(activated)
        .context("cannot use the socket passed by the service manager")?;
    let path = local_path(&listener);
    if let Some(requested) = socket.filter(|r| Some(r) != path.as_ref()) {
        warn!(
            requested = %requested.display(),
            "ignoring --socket: the service manager passed the socket to listen on"
        );
    }
    info!("using the socket passed by the service manager (socket activation); it stays when mailboxd exits");
    Ok((listener, None))
}

/// The path `listener` is bound to, if it has one.
fn local_path(listener: &UnixListener) -> Option<PathBuf> {
    let address = listener.local_addr().ok()?;
    address.as_pathname().map(PathBuf::from)
}

async fn serve(args: Args, activated: Option<StdUnixListener>) -> anyhow::Result<()> {
    let (listener, bound) = listen(args.socket, activated)?;
    let shown = local_path(&listener).map_or_else(
        || "(unnamed socket)".to_owned(),
        |path| path.display().to_string(),
    );
    // Install the handlers before announcing readiness, so a signal sent as
    // soon as the socket answers is not lost.
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => info!("SIGTERM received"),
            _ = interrupt.recv() => info!("SIGINT received"),
        }
    };
    let config = Config {
        limits: Limits {
            memory_budget: args.memory_budget,
            max_queued_messages: args.max_queued_messages,
            max_waiting_per_connection: args.max_waiting_per_connection,
            ..Limits::default()
        },
        spin: std::time::Duration::from_micros(args.spin_us),
        notifier: Notifier::from_env(),
        ..Config::default()
    };
    info!(socket = %shown, pid = std::process::id(), "mailboxd listening");
    let result = server::run(listener, config, shutdown).await;
    if let Some(path) = bound {
        if let Err(error) = std::fs::remove_file(&path) {
            error!(%error, socket = %path.display(), "cannot remove the socket");
        }
    }
    result.with_context(|| format!("serving {shown}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let journal = init_logging(&args.log_level);
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
            eprintln!("mailboxd: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args, activated)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(journal, &error),
    }
}

/// Reports a fatal error: one `<3>` line when stderr is the journal, else a
/// log event and a plain line (seen even when logging is filtered out).
fn fail(journal: bool, error: &anyhow::Error) -> ExitCode {
    if journal {
        eprintln!("<3>mailboxd: {error:#}");
    } else {
        error!("{error:#}");
        eprintln!("mailboxd: {error:#}");
    }
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("512K"), Ok(512 << 10));
        assert_eq!(parse_bytes("64M"), Ok(64 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert!(parse_bytes("1T").is_err());
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("99999999999G").is_err());
    }
}
