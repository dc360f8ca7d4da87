//! `memory` and `idle-mailboxes`: what the broker's resident memory grows
//! by (`VmRSS` of `/proc/<pid>/status`), for the memory targets of the
//! issue: 1,000,000 queued 64-byte messages in one unbounded mailbox, and
//! an idle mailbox.
//!
//! - `memory`: RSS once the broker is up with its empty mailbox; one
//!   producer fills the mailbox and exits; RSS again (every message is
//!   queued: nobody received yet); then one consumer drains the mailbox and
//!   verifies every message, so the figure belongs to a sound run.
//! - `idle-mailboxes`: RSS once the broker is up; one process creates the
//!   mailboxes, checks that the broker lists them all, and exits; RSS again.
//!
//! Figures: `rss_mib` (the broker's whole RSS at the second reading) and
//! the growth per message (`bytes_per_message`) or per mailbox
//! (`bytes_per_mailbox`). The RSS is read after the filling connection has
//! closed and the broker had a moment to let it go.

use std::time::Duration;

use anyhow::{bail, ensure, Result};

use super::{field_u64, no_problems, start_all, Run};
use crate::process::{rss_mib, seconds_between};
use crate::report::Record;
use crate::roles::Role;
use crate::spec::Workload;
use crate::systems::Running;

/// How long the broker gets to handle a closed connection before its RSS
/// is read.
const SETTLE: Duration = Duration::from_millis(200);

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// The growth per item, in bytes, of an RSS going from `before` to `after`
/// MiB over `count` items (negative growth counts as none).
pub fn bytes_per_item(before_mib: f64, after_mib: f64, count: u64) -> f64 {
    if count == 0 {
        return 0.0;
    }
    ((after_mib - before_mib) * MIB).max(0.0) / count as f64
}

/// Runs `memory` or `idle-mailboxes` and reports the broker's memory.
pub fn measure(run: &Run<'_>, running: &mut dyn Running) -> Result<Record> {
    let pid = match running.server_pid() {
        Some(pid) => pid,
        None => bail!("{} has no server process to measure", run.system),
    };
    let socket = running.socket().map(std::path::Path::to_path_buf);
    let socket = socket.as_deref();
    let count = run.shape.messages;
    std::thread::sleep(SETTLE);
    let before = rss_mib(pid)?;
    let (filler, per_item) = match run.workload {
        Workload::IdleMailboxes => (Role::MailboxCreator, "bytes_per_mailbox"),
        _ => (Role::Producer, "bytes_per_message"),
    };
    let mut filling = start_filler(run, filler, socket)?;
    let report = filling.report(run.deadline)?;
    let done = match filler {
        Role::MailboxCreator => field_u64(&report, "created")?,
        _ => field_u64(&report, "sent")?,
    };
    ensure!(done == count, "{done} of {count} done by the {filler:?}");
    let seconds = seconds_between(
        field_u64(&report, "start_ns")?,
        field_u64(&report, "end_ns")?,
    );
    std::thread::sleep(SETTLE);
    let after = rss_mib(pid)?;
    let mut record = run.record(count, seconds);
    record.figure("rss_mib", after);
    record.figure(per_item, bytes_per_item(before, after, count));
    if run.workload == Workload::IdleMailboxes {
        record.bytes = None;
        record.notes.push(format!(
            "{count} mailboxes; server pid {pid} RSS {before:.1} MiB before, {after:.1} MiB after; \
             seconds: creating them"
        ));
        return Ok(record);
    }
    let consumer_args = [run.role_args(Role::Consumer, 0, socket)];
    let mut consumers = start_all(run, &consumer_args)?;
    let drained = consumers[0].report(run.deadline)?;
    no_problems("the draining consumer", &drained)?;
    let received = field_u64(&drained, "received")?;
    ensure!(
        received == count,
        "the draining consumer received {received} of {count} messages"
    );
    record.notes.push(format!(
        "server pid {pid} RSS {before:.1} MiB with the mailbox empty, {after:.1} MiB with all \
         {count} queued; seconds: filling it; then drained and verified"
    ));
    Ok(record)
}

/// Starts the process that fills the broker, and tells a producer to go.
fn start_filler(
    run: &Run<'_>,
    role: Role,
    socket: Option<&std::path::Path>,
) -> Result<crate::process::RoleProcess> {
    let mut process = run.spawn(&run.role_args(role, 0, socket))?;
    if role == Role::Producer {
        process.wait_ready(run.deadline)?;
        process.go()?;
    }
    Ok(process)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_per_item() {
        assert_eq!(bytes_per_item(10.0, 11.0, 1024), 1024.0);
        assert_eq!(bytes_per_item(10.0, 9.0, 1000), 0.0);
        assert_eq!(bytes_per_item(10.0, 20.0, 0), 0.0);
        let per_message = bytes_per_item(5.0, 5.0 + 100.0, 1_000_000);
        assert!((per_message - 104.8576).abs() < 1e-9, "{per_message}");
    }
}
