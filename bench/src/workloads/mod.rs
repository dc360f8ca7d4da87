//! The orchestrator's side of each workload: which role processes to start
//! in which order, when to tell producers to go, how to turn the roles'
//! reports into the spec's figures, and when a run must fail instead.
//!
//! - [`one_way`]: the producer -> consumer shapes (stream, fanout, workq,
//!   rendezvous, large).
//! - [`rtt`]: request and reply, latency percentiles.
//! - [`conns`]: many waiting connections, server memory and wake-up time.
//! - [`memory`]: the broker's memory per queued message, per idle mailbox.
//!
//! A workload never touches a socket itself: the system's `Running`
//! prepares the server side, the roles do the rest.

mod conns;
mod memory;
mod one_way;
mod rtt;

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::process::{Deadline, RoleProcess};
use crate::report::Record;
use crate::roles::{Fault, Role, RoleArgs};
use crate::spec::{Shape, System, Workload};
use crate::systems::{self, Setup};

/// One workload on one system, being run.
pub struct Run<'a> {
    /// Which workload.
    pub workload: Workload,
    /// On which system.
    pub system: System,
    /// Its shape at the run's scale.
    pub shape: Shape,
    /// Where it runs.
    pub setup: &'a Setup,
    /// The payloads' seed.
    pub seed: u64,
    /// When it counts as hung.
    pub deadline: Deadline,
    /// A fault consumer 0 injects (self-test of verification).
    pub fault: Option<Fault>,
}

impl Run<'_> {
    /// The arguments of role `role` number `index`.
    pub fn role_args(&self, role: Role, index: u32, socket: Option<&Path>) -> RoleArgs {
        RoleArgs {
            role,
            system: self.system,
            workload: self.workload,
            index,
            producers: self.shape.producers,
            consumers: self.shape.consumers,
            messages: self.shape.messages,
            warmup: self.shape.warmup,
            size: self.shape.size,
            capacity: self.shape.capacity,
            window: self.setup.window,
            seed: self.seed,
            dir: self.setup.dir.clone(),
            tag: self.setup.tag.clone(),
            socket: socket.map(Path::to_path_buf),
            processes: 1,
            mailboxd_api: self.setup.mailboxd_api,
            batch: self.setup.batch,
            batches: self.setup.batches,
            fault: self.fault,
        }
    }

    /// Starts a role process.
    pub fn spawn(&self, args: &RoleArgs) -> Result<RoleProcess> {
        let name = format!(
            "{} #{} of {} on {}",
            role_name(args.role),
            args.index,
            self.workload,
            self.system
        );
        RoleProcess::spawn(name, args.to_args())
    }

    /// A record for this run, with the figures every workload has.
    pub fn record(&self, messages: u64, seconds: f64) -> Record {
        let mut record = Record::new(self.workload, self.system);
        record.messages = Some(messages);
        record.bytes = Some(self.shape.size);
        record.seconds = Some(seconds);
        record
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Producer => "producer",
        Role::Consumer => "consumer",
        Role::RttClient => "rtt client",
        Role::RttEcho => "rtt echo",
        Role::ConnsWaiter => "conns waiter",
        Role::ConnsSender => "conns sender",
        Role::MailboxCreator => "mailbox creator",
    }
}

/// The shape of `workload` at `scale`, with `--size` (when given) as the
/// payload size of the large workloads.
pub fn shape(workload: Workload, scale: f64, size: Option<usize>) -> Shape {
    let mut shape = workload.shape(scale);
    if let Some(size) = size.filter(|_| workload.is_large()) {
        shape.size = size;
    }
    shape
}

/// Runs `workload` on `system`: a record with figures, a skipped record,
/// or an error (the run failed: lost, duplicated or corrupted messages, a
/// crashed or hung process).
pub fn run(
    workload: Workload,
    system: System,
    scale: f64,
    setup: &Setup,
    seed: u64,
    timeout: Duration,
    fault: Option<Fault>,
) -> Result<Record> {
    let shape = shape(workload, scale, setup.size);
    if let Some(why) = systems::unsupported(system, workload, &shape, setup) {
        return Ok(Record::skipped(workload, system, why));
    }
    let mut running = systems::prepare(system, workload, &shape, setup)?;
    let run = Run {
        workload,
        system,
        shape,
        setup,
        seed,
        deadline: Deadline::after(timeout),
        fault,
    };
    let mut record = match workload {
        Workload::Rtt => rtt::measure(&run, running.as_mut()),
        Workload::Conns => conns::measure(&run, running.as_mut()),
        Workload::Memory | Workload::IdleMailboxes => memory::measure(&run, running.as_mut()),
        _ => one_way::measure(&run, running.as_mut()),
    }?;
    record.notes.extend(running.notes());
    running.stop()?;
    Ok(record)
}

/// A role's report field as an unsigned number.
pub fn field_u64(report: &Value, name: &str) -> Result<u64> {
    report[name]
        .as_u64()
        .ok_or_else(|| anyhow!("a report lacks {name}: {report}"))
}

/// A role's report field as a number.
pub fn field_f64(report: &Value, name: &str) -> Result<f64> {
    report[name]
        .as_f64()
        .ok_or_else(|| anyhow!("a report lacks {name}: {report}"))
}

/// Fails when a role reported verification problems.
pub fn no_problems(who: &str, report: &Value) -> Result<()> {
    match report["problems"].as_str() {
        Some(problems) => bail!("verification failed at {who}: {problems}"),
        None => Ok(()),
    }
}

/// Starts every role of `args` and waits until each is ready.
pub fn start_all(run: &Run<'_>, args: &[RoleArgs]) -> Result<Vec<RoleProcess>> {
    let mut processes = args
        .iter()
        .map(|args| run.spawn(args))
        .collect::<Result<Vec<_>>>()?;
    for process in &mut processes {
        process.wait_ready(run.deadline)?;
    }
    Ok(processes)
}
