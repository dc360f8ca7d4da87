//! The run as a whole: finds the binaries, raises the limits every process
//! inherits (open files; the POSIX mq limits behind a restoring guard),
//! runs each selected workload on each selected system in turn (`--repeat`
//! rounds of all systems, interleaved), prints a JSON line per run as soon
//! as it is known (and a summary line per system after the rounds), then
//! the table and, with `--plot`, the chart.
//!
//! A failed run (lost, duplicated or corrupted messages, a crashed or hung
//! process) prints an `error` line instead of figures, the remaining runs
//! still happen, and the exit code is non-zero.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::machine;
use crate::plot;
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
    /// `--size`: the payload size of `large` and `fanout-large`, if not
    /// the spec's 1 MiB.
    pub size: Option<usize>,
    /// Rounds of every workload, the systems interleaved within each.
    pub repeat: u32,
    /// The CPUs every process is pinned to; `None`: not pinned.
    pub cpus: Option<Vec<usize>>,
    /// Where to draw the ratio chart, if anywhere.
    pub plot: Option<PathBuf>,
    /// `--markdown`: where to write the table as Markdown.
    pub markdown: Option<PathBuf>,
}

/// Open files every process may hold: enough for `conns` at full scale.
const FD_LIMIT: u64 = 65_536;

/// Runs the benchmark; the exit code says whether every run passed.
pub fn run(options: &Options) -> Result<ExitCode> {
    process::install_interrupt_handler();
    raise_fd_limit(FD_LIMIT);
    if let Some(cpus) = &options.cpus {
        machine::pin(cpus)?;
    }
    // What the kernel granted (a listed CPU that is offline is dropped).
    let cpus = match &options.cpus {
        Some(_) => machine::format_cpus(&machine::allowed_cpus()?),
        None => format!(
            "unpinned (allowed {})",
            machine::format_cpus(&machine::allowed_cpus().unwrap_or_default())
        ),
    };
    let machine = machine::describe();
    let mailboxd = if options.systems.iter().any(|s| s.is_mailboxd()) {
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
        .map(|&w| workloads::shape(w, options.scale, options.size));
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
    let common = Common {
        root: root.path().to_owned(),
        mailboxd,
        redis_server,
        nats_server,
        mq,
        seed,
    };
    let mut records = Vec::new();
    let mut failures = 0;
    let started = Instant::now();
    // A run header when the figures need their context to be read.
    if options.repeat > 1 || options.cpus.is_some() {
        let header = serde_json::json!({
            "run": {"repeat": options.repeat, "cpus": cpus, "machine": machine,
                    "scale": options.scale, "seed": seed}
        });
        println!("{header}");
    }
    // Per workload: round 1 of every system, then round 2, ..., so that
    // drift over the run hits every system alike.
    'runs: for &workload in &options.workloads {
        for round in 1..=options.repeat {
            for &system in &options.systems {
                if interrupted() {
                    break 'runs;
                }
                let mut record = run_one(options, &common, workload, system, round);
                if record.error.is_some() {
                    failures += 1;
                }
                if options.repeat > 1 {
                    record.round = Some(round);
                }
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{}", record.to_json_line())?;
                stdout.flush()?;
                records.push(record);
            }
        }
        if options.repeat > 1 && !interrupted() {
            let mut stdout = std::io::stdout().lock();
            for &system in &options.systems {
                writeln!(
                    stdout,
                    "{}",
                    report::summary_line(&records, workload, system)
                )?;
            }
            stdout.flush()?;
        }
    }
    if !options.json_only {
        println!();
        print!("{}", report::table(&records));
    }
    if let Some(path) = &options.markdown {
        let written = std::fs::write(path, report::markdown_table(&records))
            .with_context(|| format!("writing {}", path.display()));
        match written {
            Ok(()) => eprintln!(
                "mailbox-bench: Markdown table written to {}",
                path.display()
            ),
            Err(error) => {
                failures += 1;
                eprintln!("mailbox-bench: FAIL the Markdown table: {error:#}");
            }
        }
    }
    if let Some(path) = &options.plot {
        let title = format!(
            "mailboxd / baseline, scale {}, {} round(s); {} cores, {}, Linux {}, cpus {cpus}",
            options.scale,
            options.repeat,
            machine["cores"],
            machine["model"].as_str().unwrap_or("?"),
            machine["kernel"].as_str().unwrap_or("?"),
        );
        let written = plot::ratio_chart(&records, &title).and_then(|svg| {
            std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
        });
        match written {
            Ok(()) => eprintln!("mailbox-bench: chart written to {}", path.display()),
            Err(error) => {
                failures += 1;
                eprintln!("mailbox-bench: FAIL the chart: {error:#}");
            }
        }
    }
    eprintln!(
        "mailbox-bench: {} run(s) in {:.1} s, scale {}, seed {seed}, repeat {}, cpus {cpus}, \
         machine {machine}",
        records.len(),
        started.elapsed().as_secs_f64(),
        options.scale,
        options.repeat,
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

/// What every run shares.
struct Common {
    root: PathBuf,
    mailboxd: Option<PathBuf>,
    redis_server: Option<PathBuf>,
    nats_server: Option<PathBuf>,
    mq: posix_mq::Limits,
    seed: u64,
}

/// One workload on one system, once: its record, failed if it failed.
fn run_one(
    options: &Options,
    common: &Common,
    workload: Workload,
    system: System,
    round: u32,
) -> Record {
    let name = if options.repeat > 1 {
        format!("{workload}-{system}-{round}")
    } else {
        format!("{workload}-{system}")
    };
    let dir = common.root.join(name);
    if let Err(error) = std::fs::create_dir(&dir) {
        let why = format!("creating {}: {error}", dir.display());
        eprintln!("mailbox-bench: FAIL {workload} on {system}: {why}");
        return Record::failed(workload, system, why);
    }
    let setup = Setup {
        dir,
        tag: format!("{}-{workload}-{system}-{round}", std::process::id()),
        window: options.window,
        mailboxd_api: options.mailboxd_api,
        batch: options.batch,
        batches: options.batches,
        mailboxd: common.mailboxd.clone(),
        size: options.size,
        redis_server: common.redis_server.clone(),
        nats_server: common.nats_server.clone(),
        mq: common.mq.clone(),
    };
    if options.repeat > 1 {
        eprintln!(
            "mailbox-bench: {workload} on {system} (round {round} of {})...",
            options.repeat
        );
    } else {
        eprintln!("mailbox-bench: {workload} on {system}...");
    }
    workloads::run(
        workload,
        system,
        options.scale,
        &setup,
        common.seed,
        options.timeout,
        options.fault,
    )
    .unwrap_or_else(|error| {
        eprintln!("mailbox-bench: FAIL {workload} on {system}: {error:#}");
        Record::failed(workload, system, format!("{error:#}"))
    })
}
