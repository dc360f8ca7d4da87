//! The role processes: what a producer, a consumer, the two ends of `rtt`
//! and the two sides of `conns` do once the orchestrator started them, the
//! same for every system. They time and verify; the system's
//! [`Sink`](crate::systems::Sink) or [`Source`](crate::systems::Source)
//! moves the bytes.
//!
//! A role learns everything from its [`RoleArgs`] (the hidden `role`
//! subcommand), speaks the line protocol of [`crate::process`], and exits
//! non-zero on any error. Verification problems are reported, not hidden:
//! the orchestrator fails the run on them.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context as _, Result};
use clap::ValueEnum;
use serde_json::{json, Value};

use crate::payload::{Payloads, Pool};
use crate::process::{announce_ready, emit_report, now_ns, wait_for_go};
use crate::spec::{split, System, Workload};
use crate::stats;
use crate::systems::{self, Deliveries};
use crate::verify::{Order, PayloadCheck, Verifier};

/// What a role process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Sends its share of the messages.
    Producer,
    /// Receives, verifies and times.
    Consumer,
    /// `rtt`: sends requests one at a time and times each round trip.
    RttClient,
    /// `rtt`: answers each request.
    RttEcho,
    /// `conns`: many connections, each waiting for one message.
    ConnsWaiter,
    /// `conns`: sends one message to each waiting connection.
    ConnsSender,
    /// `idle-mailboxes`: creates the mailboxes, then leaves them idle.
    MailboxCreator,
}

/// A fault a consumer injects into what it received, before verifying, to
/// prove that verification fails the run (`--inject-fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fault {
    /// Forget the second message.
    Drop,
    /// Take the second message twice.
    Duplicate,
    /// Flip the last byte of the second message.
    Corrupt,
    /// Swap the second and third messages.
    Reorder,
}

/// Which path of `mailbox-client` the mailboxd roles use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum MailboxdApi {
    /// The fast path a user who wants throughput takes: `send_stream` /
    /// `receive_stream` (`SendMany` / `ReceiveMany` batches, sized per
    /// workload, see `systems::mailboxd::Batching`); `rtt` with the request
    /// and the next receive written together; `rendezvous` with a receive
    /// posted ahead.
    #[default]
    Batched,
    /// One request per message: `send_pipelined` / `receive_pipelined`, up
    /// to the window in flight; `rtt` and `rendezvous` one blocking call at
    /// a time.
    Pipelined,
}

/// Everything a role needs to know, passed on its command line.
#[derive(Debug, Clone, clap::Args)]
pub struct RoleArgs {
    /// What to do.
    #[arg(long, value_enum)]
    pub role: Role,
    /// Which system to use.
    #[arg(long, value_enum)]
    pub system: System,
    /// Which workload this is part of.
    #[arg(long, value_enum)]
    pub workload: Workload,
    /// This producer's or consumer's number, from 0.
    #[arg(long, default_value_t = 0)]
    pub index: u32,
    /// Producers of the workload.
    #[arg(long)]
    pub producers: u32,
    /// Consumers of the workload (conns: waiting connections).
    #[arg(long)]
    pub consumers: u32,
    /// Messages of the workload, in all.
    #[arg(long)]
    pub messages: u64,
    /// `rtt`: round trips before measuring.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Payload bytes.
    #[arg(long)]
    pub size: usize,
    /// Mailbox capacity of the workload (0: rendezvous).
    #[arg(long)]
    pub capacity: u32,
    /// Pipelining window, for the systems that pipeline.
    #[arg(long)]
    pub window: usize,
    /// The run's seed for the payloads.
    #[arg(long)]
    pub seed: u64,
    /// The run's private directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// A name unique to the run (POSIX queue names).
    #[arg(long)]
    pub tag: String,
    /// The server's socket (mailboxd, redis).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// How many processes share this role (conns waiters).
    #[arg(long, default_value_t = 1)]
    pub processes: u32,
    /// The mailboxd client path.
    #[arg(long, value_enum, default_value_t)]
    pub mailboxd_api: MailboxdApi,
    /// Messages per batch with `--mailboxd-api batched` (else per workload).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Batches in flight with `--mailboxd-api batched` (else per workload).
    #[arg(long)]
    pub batches: Option<usize>,
    /// Consumer 0 damages what it received (a self-test of verification).
    #[arg(long, value_enum)]
    pub fault: Option<Fault>,
}

impl RoleArgs {
    /// The arguments that reproduce `self` after `mailbox-bench role`.
    pub fn to_args(&self) -> Vec<OsString> {
        let value = |v: &dyn ToString| OsString::from(v.to_string());
        let enum_name = |v: Option<clap::builder::PossibleValue>| {
            OsString::from(v.map(|v| v.get_name().to_owned()).unwrap_or_default())
        };
        let mut args = vec![
            "--role".into(),
            enum_name(self.role.to_possible_value()),
            "--system".into(),
            enum_name(self.system.to_possible_value()),
            "--workload".into(),
            enum_name(self.workload.to_possible_value()),
            "--index".into(),
            value(&self.index),
            "--producers".into(),
            value(&self.producers),
            "--consumers".into(),
            value(&self.consumers),
            "--messages".into(),
            value(&self.messages),
            "--warmup".into(),
            value(&self.warmup),
            "--size".into(),
            value(&self.size),
            "--capacity".into(),
            value(&self.capacity),
            "--window".into(),
            value(&self.window),
            "--seed".into(),
            value(&self.seed),
            "--dir".into(),
            self.dir.clone().into_os_string(),
            "--tag".into(),
            value(&self.tag),
            "--processes".into(),
            value(&self.processes),
            "--mailboxd-api".into(),
            enum_name(self.mailboxd_api.to_possible_value()),
        ];
        if let Some(batch) = self.batch {
            args.push("--batch".into());
            args.push(value(&batch));
        }
        if let Some(batches) = self.batches {
            args.push("--batches".into());
            args.push(value(&batches));
        }
        if let Some(socket) = &self.socket {
            args.push("--socket".into());
            args.push(socket.clone().into_os_string());
        }
        if let Some(fault) = self.fault {
            args.push("--fault".into());
            args.push(enum_name(fault.to_possible_value()));
        }
        args
    }

    /// The server socket, which this system needs.
    pub fn socket(&self) -> Result<&PathBuf> {
        self.socket
            .as_ref()
            .ok_or_else(|| anyhow!("{} needs --socket", self.system))
    }

    /// How many messages each producer sends.
    pub fn sent_per_producer(&self) -> Vec<u64> {
        (0..self.producers)
            .map(|producer| split(self.messages, self.producers, producer))
            .collect()
    }

    /// The window for a mailbox of this workload's capacity: never more
    /// requests in flight than the mailbox holds, at least one.
    pub fn window(&self) -> usize {
        match self.capacity {
            0 => 1,
            capacity => self.window.min(capacity as usize).max(1),
        }
    }

    /// `conns`: the mailbox numbers this waiter process serves.
    pub fn waiter_range(&self) -> std::ops::Range<u64> {
        let total = u64::from(self.consumers);
        let first: u64 = (0..self.index)
            .map(|k| split(total, self.processes, k))
            .sum();
        first..first + split(total, self.processes, self.index)
    }

    /// Where a `workq` consumer leaves its received set.
    pub fn seen_file(&self, consumer: u32) -> PathBuf {
        self.dir.join(format!("seen-{consumer}.bin"))
    }
}

/// Runs the role `args` names.
pub fn run(args: &RoleArgs) -> Result<()> {
    let report = match args.role {
        Role::Producer => producer(args),
        Role::Consumer => consumer(args),
        Role::RttClient => rtt_client(args),
        Role::RttEcho => rtt_echo(args),
        Role::ConnsWaiter => match args.system {
            System::Mailboxd => systems::mailboxd::conns_waiter(args),
            System::Redis => systems::redis::conns_waiter(args),
            System::Nats => systems::nats::conns_waiter(args),
            other => Err(anyhow!("{other} has no conns waiter")),
        },
        Role::ConnsSender => match args.system {
            System::Mailboxd => systems::mailboxd::conns_sender(args),
            System::Redis => systems::redis::conns_sender(args),
            System::Nats => systems::nats::conns_sender(args),
            other => Err(anyhow!("{other} has no conns sender")),
        },
        Role::MailboxCreator => match args.system {
            System::Mailboxd => systems::mailboxd::create_idle(args),
            other => Err(anyhow!("{other} has no idle mailboxes")),
        },
    }
    .with_context(|| {
        format!(
            "{:?} {} of {}/{}",
            args.role, args.index, args.workload, args.system
        )
    })?;
    emit_report(&report)
}

fn producer(args: &RoleArgs) -> Result<Value> {
    let mut sink = systems::sink(args)?;
    let count = split(args.messages, args.producers, args.index);
    let payloads = Payloads::new(args.seed, args.size, args.index, count)?;
    announce_ready()?;
    wait_for_go()?;
    let start_ns = now_ns();
    sink.send_all(&payloads)?;
    let end_ns = now_ns();
    Ok(json!({ "sent": count, "start_ns": start_ns, "end_ns": end_ns }))
}

/// A consumer's bookkeeping: verification and first/last receive times.
struct Receiver {
    verifier: Verifier,
    first_ns: Option<u64>,
    last_ns: u64,
    /// The fault to inject, if any, and the messages taken so far.
    fault: Option<Fault>,
    taken: u64,
    held: Option<Vec<u8>>,
}

impl Receiver {
    fn new(verifier: Verifier, fault: Option<Fault>) -> Receiver {
        Receiver {
            verifier,
            first_ns: None,
            last_ns: 0,
            fault,
            taken: 0,
            held: None,
        }
    }

    /// Verifies `payload`, damaged as the injected fault says.
    fn observe(&mut self, payload: &[u8]) {
        let position = self.taken;
        self.taken += 1;
        match (self.fault, position) {
            (None, _) => {
                self.verifier.observe(payload);
            }
            (Some(Fault::Drop), 1) => {}
            (Some(Fault::Duplicate), 1) => {
                self.verifier.observe(payload);
                self.verifier.observe(payload);
            }
            (Some(Fault::Corrupt), 1) => {
                let mut damaged = payload.to_vec();
                if let Some(last) = damaged.last_mut() {
                    *last ^= 0xff;
                }
                self.verifier.observe(&damaged);
            }
            (Some(Fault::Reorder), 1) => self.held = Some(payload.to_vec()),
            (Some(Fault::Reorder), 2) => {
                self.verifier.observe(payload);
                if let Some(held) = self.held.take() {
                    self.verifier.observe(&held);
                }
            }
            (Some(_), _) => {
                self.verifier.observe(payload);
            }
        }
    }
}

impl Deliveries for Receiver {
    fn message(&mut self, payload: &[u8]) {
        if self.first_ns.is_none() {
            self.first_ns = Some(now_ns());
        }
        self.observe(payload);
    }

    fn batch_end(&mut self) {
        self.last_ns = now_ns();
    }
}

fn consumer(args: &RoleArgs) -> Result<Value> {
    let mut source = systems::source(args)?;
    let shared_queue = args.workload == Workload::Workq;
    let order = if shared_queue {
        Order::Increasing
    } else {
        Order::GapFree
    };
    let pool = Pool::new(args.seed, args.size)?;
    let fault = args.fault.filter(|_| args.index == 0);
    let verifier = Verifier::new(pool, order, args.sent_per_producer());
    let mut receiver = Receiver::new(verifier, fault);
    announce_ready()?;
    let expected = (!shared_queue).then_some(args.messages);
    source.receive_all(expected, &mut receiver)?;
    let received = receiver.verifier.received();
    let (problems, seen) = receiver.verifier.finish();
    if let Some(seen) = seen {
        let path = args.seen_file(args.index);
        std::fs::write(&path, seen.to_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(json!({
        "received": received,
        "first_ns": receiver.first_ns,
        "last_ns": receiver.last_ns,
        "problems": (!problems.is_empty()).then(|| problems.to_string()),
    }))
}

fn rtt_client(args: &RoleArgs) -> Result<Value> {
    let mut requester = systems::requester(args)?;
    let total = args.warmup + args.messages;
    let payloads = Payloads::new(args.seed, args.size, 0, total)?;
    let pool = Pool::new(args.seed, args.size)?;
    let mut verifier = Verifier::new(pool, Order::GapFree, vec![total]);
    let mut samples: Vec<u32> = Vec::with_capacity(usize::try_from(args.messages)?);
    let mut reply = Vec::with_capacity(args.size);
    announce_ready()?;
    wait_for_go()?;
    let mut measured_ns: u64 = 0;
    for sequence in 0..total {
        let request = payloads.bytes(sequence);
        let started = Instant::now();
        requester.round_trip(&request, &mut reply)?;
        let took = started.elapsed().as_nanos();
        if sequence >= args.warmup {
            let took = u32::try_from(took).unwrap_or(u32::MAX);
            measured_ns += u64::from(took);
            samples.push(took);
        }
        verifier.observe(&reply);
    }
    let (problems, _) = verifier.finish();
    let latency = stats::latency(&mut samples).ok_or_else(|| anyhow!("no round trips"))?;
    Ok(json!({
        "round_trips": args.messages,
        "seconds": measured_ns as f64 / 1e9,
        "p50_us": latency.p50_us,
        "p99_us": latency.p99_us,
        "p999_us": latency.p999_us,
        "problems": (!problems.is_empty()).then(|| problems.to_string()),
    }))
}

fn rtt_echo(args: &RoleArgs) -> Result<Value> {
    let mut echo = systems::echo(args)?;
    announce_ready()?;
    let total = args.warmup + args.messages;
    echo.serve(total)?;
    Ok(json!({ "served": total }))
}

/// `conns`: what each waiting connection checks: one sound message, the
/// one meant for mailbox `index`.
#[derive(Debug)]
pub struct ConnsCheck {
    check: PayloadCheck,
}

impl ConnsCheck {
    /// The check for payloads of `args`' run.
    pub fn new(args: &RoleArgs) -> Result<ConnsCheck> {
        Ok(ConnsCheck {
            check: PayloadCheck::new(Pool::new(args.seed, args.size)?, 1),
        })
    }

    /// What is wrong with `payload`, received on connection `index`.
    pub fn problem(&self, index: u64, payload: &[u8]) -> Option<String> {
        match self.check.check(payload) {
            Ok(header) if header.sequence == index => None,
            Ok(header) => Some(format!(
                "connection {index} received message #{}, meant for another",
                header.sequence
            )),
            Err(defect) => Some(format!("connection {index}: {defect}")),
        }
    }
}

/// `conns`: once every connection of `range` reported that it is set up
/// (its receive on its way), says ready, then [`collect_waiters`]. The
/// senders of `set_up` must be gone once the tasks are spawned, so that a
/// task that ended early is noticed.
pub async fn ready_then_collect<T: 'static>(
    mut set_up: tokio::sync::mpsc::UnboundedReceiver<Result<(), String>>,
    range: std::ops::Range<u64>,
    tasks: &mut tokio::task::JoinSet<Result<(u64, Option<String>, T)>>,
) -> Result<Value> {
    for _ in range {
        match set_up.recv().await {
            Some(Ok(())) => {}
            Some(Err(error)) => anyhow::bail!("setting up: {error}"),
            None => anyhow::bail!("a connection task ended while setting up"),
        }
    }
    crate::process::announce_ready()?;
    collect_waiters(tasks).await
}

/// `conns`: waits for every connection's task (the time it got its
/// message, what was wrong with it, the connection itself); the report of
/// a waiter process.
pub async fn collect_waiters<T: 'static>(
    tasks: &mut tokio::task::JoinSet<Result<(u64, Option<String>, T)>>,
) -> Result<Value> {
    let mut last_ns = 0;
    let mut received = 0;
    let mut problems = Vec::new();
    // Every connection stays open until all are served.
    let mut connections = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (at, problem, connection) = joined??;
        received += 1;
        last_ns = last_ns.max(at);
        problems.extend(problem);
        connections.push(connection);
    }
    Ok(conns_report(received, last_ns, &problems))
}

/// `conns`: a waiter process's report.
fn conns_report(received: u64, last_ns: u64, problems: &[String]) -> Value {
    let shown: Vec<&String> = problems.iter().take(5).collect();
    json!({
        "received": received,
        "last_ns": last_ns,
        "problems": (!problems.is_empty()).then(|| format!(
            "{} problem(s): {}",
            problems.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; ")
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: RoleArgs,
    }

    fn sample() -> RoleArgs {
        RoleArgs {
            role: Role::ConnsWaiter,
            system: System::PosixMq,
            workload: Workload::Conns,
            index: 2,
            producers: 1,
            consumers: 10,
            messages: 10,
            warmup: 0,
            size: 64,
            capacity: 1,
            window: 512,
            seed: 7,
            dir: PathBuf::from("/tmp/x"),
            tag: "t".into(),
            socket: Some(PathBuf::from("/tmp/x/s.sock")),
            processes: 3,
            mailboxd_api: MailboxdApi::Batched,
            batch: Some(64),
            batches: None,
            fault: Some(Fault::Reorder),
        }
    }

    #[test]
    fn role_args_survive_the_command_line() {
        let args = sample();
        let mut argv = vec![OsString::from("role")];
        argv.extend(args.to_args());
        let parsed = Wrapper::try_parse_from(argv).unwrap().args;
        assert_eq!(format!("{parsed:?}"), format!("{args:?}"));
    }

    #[test]
    fn every_injected_fault_is_caught() {
        let payloads = Payloads::new(5, 64, 0, 10).unwrap();
        for fault in [
            Fault::Drop,
            Fault::Duplicate,
            Fault::Corrupt,
            Fault::Reorder,
        ] {
            let verifier = Verifier::new(Pool::new(5, 64).unwrap(), Order::GapFree, vec![10]);
            let mut receiver = Receiver::new(verifier, Some(fault));
            for sequence in 0..10 {
                receiver.message(&payloads.bytes(sequence));
            }
            let (problems, _) = receiver.verifier.finish();
            assert!(!problems.is_empty(), "{fault:?} went unnoticed");
        }
        let verifier = Verifier::new(Pool::new(5, 64).unwrap(), Order::GapFree, vec![10]);
        let mut clean = Receiver::new(verifier, None);
        for sequence in 0..10 {
            clean.message(&payloads.bytes(sequence));
        }
        assert!(clean.verifier.finish().0.is_empty());
    }

    #[test]
    fn waiters_split_the_connections() {
        let mut args = sample();
        let ranges: Vec<_> = (0..3)
            .map(|index| {
                args.index = index;
                args.waiter_range()
            })
            .collect();
        assert_eq!(ranges, [0..4, 4..7, 7..10]);
    }

    #[test]
    fn windows_never_exceed_the_capacity() {
        let mut args = sample();
        args.capacity = 16;
        assert_eq!(args.window(), 16);
        args.capacity = 1024;
        assert_eq!(args.window(), 512);
        args.capacity = 0;
        assert_eq!(args.window(), 1);
    }
}
