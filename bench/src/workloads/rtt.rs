//! `rtt`: A sends a request, B receives it and replies, A receives the
//! reply; one request in flight. The echo starts first; the client builds
//! its payloads, is told to go, makes the warm-up round trips, then times
//! each of the measured ones into a vector of nanoseconds and reports the
//! percentiles. Every reply is verified (it must be the request, in order).

use anyhow::{ensure, Result};

use super::{field_f64, field_u64, no_problems, Run};
use crate::report::Record;
use crate::roles::Role;
use crate::systems::Running;

/// Runs `rtt` and reports p50, p99 and p99.9.
pub fn measure(run: &Run<'_>, running: &mut dyn Running) -> Result<Record> {
    let socket = running.socket();
    let mut echo = run.spawn(&run.role_args(Role::RttEcho, 0, socket))?;
    echo.wait_ready(run.deadline)?;
    let mut client = run.spawn(&run.role_args(Role::RttClient, 0, socket))?;
    client.wait_ready(run.deadline)?;
    client.go()?;
    let report = &client.report(run.deadline)?;
    echo.report(run.deadline)?;
    no_problems("the rtt client", report)?;
    let trips = field_u64(report, "round_trips")?;
    ensure!(
        trips == run.shape.messages,
        "{trips} round trips measured, {} expected",
        run.shape.messages
    );
    let mut record = run.record(trips, field_f64(report, "seconds")?);
    for name in ["p50_us", "p99_us", "p999_us"] {
        record.figure(name, field_f64(report, name)?);
    }
    record
        .notes
        .push(format!("{} warm-up round trips", run.shape.warmup));
    Ok(record)
}
