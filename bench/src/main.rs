//! `mailbox-bench`: runs the workloads of `WORKLOADS.md` against `mailboxd`
//! and, in the same run, its baselines (`uds-direct`, `uds-relay`,
//! `posix-mq`, `redis`, `nats`), every producer, consumer and server a
//! process of its own.
//!
//! This file only parses the command line. The orchestrator
//! ([`orchestrator`]) re-executes this binary with the hidden `role`
//! subcommand for each producer, consumer, echo or waiter ([`roles`]).
//!
//! Code map: [`spec`] the workload table; [`workloads`] what the
//! orchestrator does per workload; [`roles`] what each role process does;
//! [`systems`] how each system moves messages; [`payload`] and [`verify`]
//! what is sent and how it is checked; [`stats`] and [`report`] the
//! figures and their output, [`plot`] the chart; [`process`] processes,
//! clock and limits; [`machine`] the machine and `--cpus`.

mod machine;
mod orchestrator;
mod payload;
mod plot;
mod process;
mod report;
mod roles;
mod spec;
mod stats;
mod systems;
mod verify;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::spec::{System, Workload};

/// Benchmarks mailboxd against a plain Unix socket, POSIX message queues,
/// Redis and NATS, on the workloads of WORKLOADS.md; prints one JSON line per
/// workload and system, then a table of ratios mailboxd / baseline.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Hidden>,

    /// Workloads to run, comma-separated [default: all]
    #[arg(long, value_enum, value_delimiter = ',')]
    workload: Vec<Workload>,

    /// Systems to measure, comma-separated [default: all]
    #[arg(long, value_enum, value_delimiter = ',')]
    system: Vec<System>,

    /// Multiplies every message count (at least 100 messages remain)
    #[arg(long, default_value_t = 1.0, value_parser = parse_scale)]
    scale: f64,

    /// Print only the JSON lines, not the table
    #[arg(long)]
    json_only: bool,

    /// The mailboxd binary [default: $MAILBOXD_BIN, else beside this binary]
    #[arg(long, value_name = "PATH")]
    mailboxd: Option<PathBuf>,

    /// The redis-server binary [default: redis-server on PATH; skipped if absent]
    #[arg(long, value_name = "PATH")]
    redis_server: Option<PathBuf>,

    /// The nats-server binary [default: nats-server on PATH; skipped if absent]
    #[arg(long, value_name = "PATH")]
    nats_server: Option<PathBuf>,

    /// Messages in flight per pipelining connection (capped by the mailbox
    /// capacity): the baselines, and mailboxd with --mailboxd-api pipelined
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    window: u32,

    /// mailboxd's client path: batches (send_stream / receive_stream; rtt
    /// and rendezvous with a receive posted ahead), or one request per
    /// message (send_pipelined / receive_pipelined; rtt and rendezvous one
    /// blocking call at a time)
    #[arg(long, value_enum, default_value_t)]
    mailboxd_api: roles::MailboxdApi,

    /// Messages per batch (send and receive) with --mailboxd-api batched
    /// [default: per workload; capped by the mailbox capacity]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    batch: Option<u32>,

    /// Batches in flight per connection with --mailboxd-api batched
    /// [default: per workload; batch x batches capped by the capacity]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    batches: Option<u32>,

    /// Payload size of `large` and `fanout-large` in bytes, with an
    /// optional K or M suffix (KiB, MiB), at most 16M [default: 1M, the spec's]
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    size: Option<usize>,

    /// Seconds one workload on one system may take before it counts as hung
    #[arg(long, default_value_t = 600)]
    timeout: u64,

    /// Runs every workload on every system N times, the systems interleaved
    /// (A B C A B C ...); reports min, median and max, ratios of medians
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,

    /// Pins the run and every process it starts to these CPUs, e.g. 0,1 or
    /// 0-3 [default: not pinned]
    #[arg(long, value_name = "LIST", value_parser = machine::parse_cpu_list)]
    cpus: Option<machine::CpuList>,

    /// Draws the table's ratios (medians, min-max whiskers) as an SVG chart
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,

    /// Writes the table (medians, spreads, ratios) as Markdown
    #[arg(long, value_name = "FILE.md")]
    markdown: Option<PathBuf>,

    /// Seed of the random payloads [default: from the clock]
    #[arg(long)]
    seed: Option<u64>,

    /// Self-test: the first consumer of each one-way workload damages what it
    /// receives, so every such run must FAIL
    #[arg(long, value_enum, hide_short_help = true)]
    inject_fault: Option<roles::Fault>,
}

#[derive(Debug, Subcommand)]
enum Hidden {
    /// One producer, consumer, echo or waiter of a run (started by the run itself)
    #[command(hide = true)]
    Role(roles::RoleArgs),
    /// The relay process of `uds-relay` (started by the run itself)
    #[command(hide = true)]
    Relay(systems::relay::RelayArgs),
}

fn parse_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(scale) if scale.is_finite() && scale > 0.0 => Ok(scale),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

/// `--size`: bytes, or KiB / MiB with a K / M suffix; between a payload
/// header and the broker's largest message.
fn parse_size(text: &str) -> Result<usize, String> {
    let (digits, unit) = match text.strip_suffix(['K', 'k']) {
        Some(digits) => (digits, 1024),
        None => match text.strip_suffix(['M', 'm']) {
            Some(digits) => (digits, 1024 * 1024),
            None => (text, 1),
        },
    };
    let largest = mailbox_client::MAX_MESSAGE_SIZE_LIMIT as usize;
    match digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
    {
        Some(size) if (payload::HEADER_LEN..=largest).contains(&size) => Ok(size),
        _ => Err(format!(
            "{text:?} is not a size between {} and {largest} bytes (e.g. 65536, 64K, 16M)",
            payload::HEADER_LEN
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let hidden = match cli.command {
        Some(Hidden::Role(args)) => Some(roles::run(&args)),
        Some(Hidden::Relay(args)) => Some(systems::relay::serve(&args)),
        None => None,
    };
    if let Some(result) = hidden {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("mailbox-bench: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let mut workloads = cli.workload;
    if workloads.is_empty() {
        workloads = Workload::ALL.to_vec();
    }
    let mut systems = cli.system;
    if systems.is_empty() {
        systems = System::ALL.to_vec();
    }
    systems.sort();
    systems.dedup();
    let options = orchestrator::Options {
        workloads,
        systems,
        scale: cli.scale,
        json_only: cli.json_only,
        mailboxd: cli.mailboxd,
        redis_server: cli.redis_server,
        nats_server: cli.nats_server,
        window: cli.window as usize,
        mailboxd_api: cli.mailboxd_api,
        batch: cli.batch.map(|batch| batch as usize),
        batches: cli.batches.map(|batches| batches as usize),
        size: cli.size,
        timeout: Duration::from_secs(cli.timeout),
        seed: cli.seed,
        fault: cli.inject_fault,
        repeat: cli.repeat,
        cpus: cli.cpus.map(|list| list.0),
        plot: cli.plot,
        markdown: cli.markdown,
    };
    match orchestrator::run(&options) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mailbox-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_a_suffix_and_stay_within_the_broker_limit() {
        assert_eq!(parse_size("65536"), Ok(65_536));
        assert_eq!(parse_size("64K"), Ok(65_536));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert!(parse_size("17M").is_err());
        assert!(parse_size("8").is_err());
        assert!(parse_size("lots").is_err());
    }
}
