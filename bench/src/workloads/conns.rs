//! `conns`: many client connections, each blocked in a receive on its own
//! bounded-1 mailbox (a list, for Redis); the server's resident memory is
//! read from `/proc/<pid>/status` once every receive waits in it; then one
//! connection sends one message to each, and the figure is the time from
//! its first send to the last connection's receipt.
//!
//! The connections are spread over a few waiter processes (async, many
//! tasks each). Every process of the run needs file descriptors for its
//! share: the orchestrator raised its own limit at start, and children
//! (the server included) inherit it.

use anyhow::{bail, ensure, Result};

use super::{field_u64, no_problems, start_all, Run};
use crate::process::{raise_fd_limit, rss_mib, seconds_between};
use crate::report::Record;
use crate::roles::Role;
use crate::systems::Running;

/// Connections per waiter process.
const CONNECTIONS_PER_PROCESS: u32 = 5_000;

/// Descriptors a process needs beyond its connections.
const SPARE_FDS: u64 = 256;

/// Runs `conns`: broker RSS with every connection waiting, then delivery time.
pub fn measure(run: &Run<'_>, running: &mut dyn Running) -> Result<Record> {
    let connections = run.shape.consumers;
    let limit = raise_fd_limit(u64::from(connections) + SPARE_FDS);
    if limit < u64::from(connections) + SPARE_FDS {
        bail!(
            "{connections} connections need {} open files per process, the limit is {limit}: \
             raise it (ulimit -n) or run as root",
            u64::from(connections) + SPARE_FDS
        );
    }
    let pid = match running.server_pid() {
        Some(pid) => pid,
        None => bail!("{} has no server process to measure", run.system),
    };
    let socket = running.socket().map(std::path::Path::to_path_buf);
    let socket = socket.as_deref();
    let processes = connections.div_ceil(CONNECTIONS_PER_PROCESS).max(1);
    let waiter_args: Vec<_> = (0..processes)
        .map(|index| {
            let mut args = run.role_args(Role::ConnsWaiter, index, socket);
            args.processes = processes;
            args
        })
        .collect();
    let mut waiters = start_all(run, &waiter_args)?;
    running.wait_for_waiting(u64::from(connections), run.deadline)?;
    let rss = rss_mib(pid)?;
    let mut sender = run.spawn(&run.role_args(Role::ConnsSender, 0, socket))?;
    let sent = sender.report(run.deadline)?;
    let start_ns = field_u64(&sent, "start_ns")?;
    let mut last_ns = 0;
    let mut received = 0;
    for (index, waiter) in waiters.iter_mut().enumerate() {
        let report = waiter.report(run.deadline)?;
        no_problems(&format!("conns waiter {index}"), &report)?;
        received += field_u64(&report, "received")?;
        last_ns = last_ns.max(field_u64(&report, "last_ns")?);
    }
    ensure!(
        received == u64::from(connections),
        "{received} of {connections} connections got their message"
    );
    let deliver_s = seconds_between(start_ns, last_ns);
    let mut record = run.record(u64::from(connections), deliver_s);
    record.figure("rss_mib", rss);
    record.figure("deliver_s", deliver_s);
    record.notes.push(format!(
        "{connections} connections over {processes} waiter process(es); RSS of server pid \
         {pid} while all wait"
    ));
    Ok(record)
}
