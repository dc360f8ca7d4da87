//! The producer -> consumer workloads: `stream`, `fanout`, `workq`,
//! `rendezvous` and `large`.
//!
//! Order of events: consumers start (and subscribe, bind or connect) and
//! say ready; on `workq`, where the server can tell, the orchestrator
//! waits until every consumer's receives wait in it; producers start, build their payloads and say ready; all
//! producers are told to go at once. The clock is the consumers': from the
//! earliest first receive to the latest last receive. After the producers
//! finish, a shared queue (`workq`) is ended the system's way. Then every
//! consumer's verification must be clean, and for `workq` the consumers'
//! received sets must cover every message exactly once.

use anyhow::{bail, ensure, Context as _, Result};

use super::{field_u64, no_problems, start_all, Run};
use crate::process::{self, seconds_between};
use crate::report::Record;
use crate::roles::Role;
use crate::spec::Workload;
use crate::stats;
use crate::systems::Running;
use crate::verify::{exactly_once, Seen};

/// Runs one one-way workload and computes its figure.
pub fn measure(run: &Run<'_>, running: &mut dyn Running) -> Result<Record> {
    let shape = run.shape;
    let socket = running.socket();
    let consumer_args: Vec<_> = (0..shape.consumers)
        .map(|index| run.role_args(Role::Consumer, index, socket))
        .collect();
    let producer_args: Vec<_> = (0..shape.producers)
        .map(|index| run.role_args(Role::Producer, index, socket))
        .collect();
    let mut consumers = start_all(run, &consumer_args)?;
    if run.workload == Workload::Workq {
        running
            .wait_for_consumers(run.deadline)
            .context("waiting for the consumers' receives")?;
    }
    let mut producers = start_all(run, &producer_args)?;
    // The broker's CPU from the go to the last delivery: only its work for
    // these messages (connections and mailboxes are set up by now).
    let broker = run
        .system
        .is_mailboxd()
        .then(|| running.server_pid())
        .flatten();
    let broker_cpu_before = broker.map(process::cpu_ns).transpose()?;
    for producer in &mut producers {
        producer.go()?;
    }
    for (index, producer) in producers.iter_mut().enumerate() {
        let report = producer.report(run.deadline)?;
        let sent = field_u64(&report, "sent")?;
        let share = shape.per_producer(index as u32);
        ensure!(
            sent == share,
            "producer {index} sent {sent} of {share} messages"
        );
    }
    if run.workload == Workload::Workq {
        running
            .end_shared_queue(&shape, run.setup.window, run.deadline)
            .context("ending the shared queue")?;
    }
    let mut received = Vec::new();
    let mut first_ns = u64::MAX;
    let mut last_ns = 0;
    for (index, consumer) in consumers.iter_mut().enumerate() {
        let report = consumer.report(run.deadline)?;
        no_problems(&format!("consumer {index}"), &report)?;
        let count = field_u64(&report, "received")?;
        if count > 0 {
            first_ns = first_ns.min(field_u64(&report, "first_ns")?);
            last_ns = last_ns.max(field_u64(&report, "last_ns")?);
        }
        received.push(count);
    }
    let broker_cpu_ns = match (broker, broker_cpu_before) {
        (Some(pid), Some(before)) => Some(process::cpu_ns(pid)?.saturating_sub(before)),
        _ => None,
    };
    let total: u64 = received.iter().sum();
    if run.workload == Workload::Workq {
        check_exactly_once(run)?;
    } else if let Some((index, &count)) = received
        .iter()
        .enumerate()
        .find(|(_, &count)| count != shape.messages)
    {
        bail!(
            "consumer {index} received {count} of {} messages",
            shape.messages
        );
    }
    ensure!(total > 0, "no consumer received anything");
    let seconds = seconds_between(first_ns, last_ns);
    let mut record = run.record(shape.messages, seconds);
    match run.workload {
        Workload::Fanout | Workload::FanoutLarge => {
            record.figure("deliveries_per_s", stats::rate(total as f64, seconds))
        }
        Workload::Large => {
            let bytes = shape.messages as f64 * shape.size as f64;
            record.figure(
                "gib_per_s",
                stats::rate(bytes / f64::from(1 << 30), seconds),
            );
        }
        Workload::Workq => {
            record.figure("msgs_per_s", stats::rate(total as f64, seconds));
            match stats::fairness(&received) {
                Some(fairness) => record.figure("fairness", fairness),
                None => record
                    .notes
                    .push(format!("a consumer received nothing: {received:?}")),
            }
            record.notes.push(format!("per consumer: {received:?}"));
        }
        _ => record.figure("msgs_per_s", stats::rate(total as f64, seconds)),
    }
    if let Some(cpu_ns) = broker_cpu_ns {
        record.figure(
            "broker_cpu_us_per_msg",
            cpu_ns as f64 / 1e3 / shape.messages.max(1) as f64,
        );
    }
    Ok(record)
}

/// `workq`: every message at exactly one consumer.
fn check_exactly_once(run: &Run<'_>) -> Result<()> {
    let args = run.role_args(Role::Consumer, 0, None);
    let sent = args.sent_per_producer();
    let seen = (0..run.shape.consumers)
        .map(|consumer| {
            let path = args.seen_file(consumer);
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            Seen::from_bytes(sent.clone(), &bytes)
        })
        .collect::<Result<Vec<_>>>()?;
    exactly_once(&sent, &seen).context("verification failed across consumers")
}
