//! The run as a whole: finds the binaries, raises the limits every process
//! inherits (open files; the POSIX mq limits behind a restoring guard),
//! runs each selected workload on each selected system in turn, prints a
//! JSON line per run as soon as it is known, then the table.
//!
//! A failed run (lost, duplicated or corrupted messages, a crashed or hung
//! process) prints an `error` line instead of figures, the remaining runs
//! still happen, and the exit code is non-zero.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::process::{self, find_mailboxd, find_on_path, interrupted, now_ns, raise_fd_limit};
use crate::report::{self, Record};
use crate::roles::{Fault, MailboxdApi};
use crate::spec::{System, Workload};
use crate::systems::posix_mq::{self, LimitsGuard};
use crate::systems::Setup;
use crate::workloads;

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Workloads, in order.
    pub workloads: Vec<Workload>,
    /// Systems, in order (mailboxd first, for the table's sake).
    pub systems: Vec<System>,
    /// Message counts times this.
    pub scale: f64,
    /// Only the JSON lines on stdout.
    pub json_only: bool,
    /// The `mailboxd` binary, if given.
    pub mailboxd: Option<PathBuf>,
    /// The `redis-server` binary, if given.
    pub redis_server: Option<PathBuf>,
    /// The `nats-server` binary, if given.
    pub nats_server: Option<PathBuf>,
    /// Pipelining window.
    pub window: usize,
    /// The mailboxd client path.
    pub mailboxd_api: MailboxdApi,
    /// Messages per batch of the batched mailboxd path, if not per workload.
    pub batch: Option<usize>,
    /// Batches in flight of the batched mailboxd path, if not per workload.
    pub batches: Option<usize>,
    /// Longest a single run may take.
    pub timeout: Duration,
    /// The payloads' seed (random when not given).
    pub seed: Option<u64>,
    /// A fault the first consumer injects (self-test of verification).
    pub fault: Option<Fault>,
}

/// Open files every process may hold: enough for `conns` at full scale.
const FD_LIMIT: u64 = 65_536;

/// Runs the benchmark; the exit code says whether every run passed.
pub fn run(options: &Options) -> Result<ExitCode> {
    process::install_interrupt_handler();
    raise_fd_limit(FD_LIMIT);
    let mailboxd = if options.systems.contains(&System::Mailboxd) {
        Some(find_mailboxd(options.mailboxd.clone())?)
    } else {
        None
    };
    let redis_server = options
        .redis_server
        .clone()
        .or_else(|| find_on_path("redis-server"));
    let nats_server = options
        .nats_server
        .clone()
        .or_else(|| find_on_path("nats-server"));
    // The memory workloads never run on POSIX queues (and are unbounded).
    let shapes = options
        .workloads
        .iter()
        .filter(|w| !w.measures_broker_memory())
        .map(|w| w.shape(options.scale));
    let (depth, size) = posix_mq::needs(shapes);
    // Dropped at the end of this function, on every path: limits restored.
    let mq_guard = options
        .systems
        .contains(&System::PosixMq)
        .then(|| LimitsGuard::raise(depth, size));
    let mq = mq_guard
        .as_ref()
        .map(|guard| guard.limits().clone())
        .unwrap_or_else(|| posix_mq::Limits {
            msg_max: 0,
            msgsize_max: 0,
            quota: 0,
            note: "unused".into(),
        });
    let root = tempfile::Builder::new()
        .prefix("mailbox-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let seed = options.seed.unwrap_or_else(now_ns);
    let mut records = Vec::new();
    let mut failures = 0;
    let started = Instant::now();
    'runs: for &workload in &options.workloads {
        for &system in &options.systems {
            if interrupted() {
                break 'runs;
            }
            let dir = root.path().join(format!("{workload}-{system}"));
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let setup = Setup {
                dir,
                tag: format!("{}-{workload}-{system}", std::process::id()),
                window: options.window,
                mailboxd_api: options.mailboxd_api,
                batch: options.batch,
                batches: options.batches,
                mailboxd: mailboxd.clone(),
                redis_server: redis_server.clone(),
                nats_server: nats_server.clone(),
                mq: mq.clone(),
            };
            eprintln!("mailbox-bench: {workload} on {system}...");
            let outcome = workloads::run(
                workload,
                system,
                options.scale,
                &setup,
                seed,
                options.timeout,
                options.fault,
            );
            let record = outcome.unwrap_or_else(|error| {
                failures += 1;
                eprintln!("mailbox-bench: FAIL {workload} on {system}: {error:#}");
                Record::failed(workload, system, format!("{error:#}"))
            });
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", record.to_json_line())?;
            stdout.flush()?;
            records.push(record);
        }
    }
    if !options.json_only {
        println!();
        print!("{}", report::table(&records));
    }
    eprintln!(
        "mailbox-bench: {} run(s) in {:.1} s, scale {}, seed {seed}",
        records.len(),
        started.elapsed().as_secs_f64(),
        options.scale
    );
    drop(mq_guard);
    if interrupted() {
        eprintln!("mailbox-bench: interrupted");
        return Ok(ExitCode::from(130));
    }
    if failures > 0 {
        eprintln!("mailbox-bench: {failures} run(s) FAILED");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
