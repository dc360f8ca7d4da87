//! The systems under measurement, each behind the same small interface so
//! that a workload's logic (who sends what, what is checked, what is timed)
//! is written once.
//!
//! In a role process a system provides a [`Sink`] (a producer's way out), a
//! [`Source`] (a consumer's way in), a [`Requester`] and an [`Echo`] (the two
//! ends of `rtt`). In the orchestrator it provides a [`Running`]: the server
//! and the mailboxes, queues or lists of one workload, set up before the
//! roles start and torn down after. How a system maps each workload onto
//! its own primitives is documented in its module.
//!
//! This module decides nothing about timing or verification; the roles do.

pub mod mailboxd;
pub mod nats;
pub mod posix_mq;
pub mod redis;
pub mod relay;
mod resp;
pub mod uds;

use std::path::{Path, PathBuf};

use anyhow::Result;
use mailbox_client::Bytes;

use crate::payload::Payloads;
use crate::process::Deadline;
use crate::roles::{MailboxdApi, RoleArgs};
use crate::spec::{Shape, System, Workload};

/// Where a consumer's messages go, one by one.
pub trait Deliveries {
    /// One received payload (no clock read, except for the very first).
    fn message(&mut self, payload: &[u8]);
    /// A batch of messages that arrived together (one read, one batch
    /// answer) is being handed over: the consumer takes its "last receive"
    /// timestamp here, once per batch, so that a fast transport is not
    /// slowed by a clock read per message. Called after the batch's
    /// messages, or where the source only sees a batch's start, before
    /// them (and once more when the last one was handed over).
    fn batch_end(&mut self);
}

/// A producer's way out: sends every message, in order.
pub trait Sink {
    /// Sends messages `0..payloads.count()`, as the system's fast path allows.
    fn send_all(&mut self, payloads: &Payloads) -> Result<()>;
}

/// A consumer's way in.
pub trait Source {
    /// Receives until `expected` messages came (when known), or until the
    /// system says the stream ended (the shared queue of `workq`).
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()>;
}

/// The measuring end of `rtt`: one request in flight.
pub trait Requester {
    /// Sends `request` and waits for the reply, which it leaves in `reply`.
    fn round_trip(&mut self, request: &Bytes, reply: &mut Vec<u8>) -> Result<()>;
}

/// The answering end of `rtt`.
pub trait Echo {
    /// Answers `count` requests, each with its own payload.
    fn serve(&mut self, count: u64) -> Result<()>;
}

/// What the orchestrator knows about the run it is preparing.
#[derive(Debug, Clone)]
pub struct Setup {
    /// This run's private directory (sockets, received-set files).
    pub dir: PathBuf,
    /// A name unique to this run, for system-wide names (POSIX queues).
    pub tag: String,
    /// Pipelining window of the systems that pipeline.
    pub window: usize,
    /// The mailboxd client path.
    pub mailboxd_api: MailboxdApi,
    /// Messages per batch of the batched mailboxd path, if not per workload.
    pub batch: Option<usize>,
    /// Batches in flight of the batched mailboxd path, if not per workload.
    pub batches: Option<usize>,
    /// The `mailboxd` binary.
    pub mailboxd: Option<PathBuf>,
    /// `--size`: the payload size of the large workloads, if overridden.
    pub size: Option<usize>,
    /// The `redis-server` binary, when installed.
    pub redis_server: Option<PathBuf>,
    /// The `nats-server` binary, when installed.
    pub nats_server: Option<PathBuf>,
    /// The POSIX mq limits in force for the run.
    pub mq: posix_mq::Limits,
}

/// A system set up for one workload, in the orchestrator.
pub trait Running {
    /// The server's socket, which the roles connect to (none for
    /// `uds-direct` and `posix-mq`).
    fn socket(&self) -> Option<&Path>;

    /// After every producer of a shared queue finished: makes each
    /// consumer's receiving end, once the queue is drained (`workq`).
    fn end_shared_queue(&mut self, shape: &Shape, window: usize, deadline: Deadline) -> Result<()>;

    /// `conns`: waits until `count` receives wait in the server.
    fn wait_for_waiting(&mut self, count: u64, deadline: Deadline) -> Result<()>;

    /// `workq`, before the producers go: waits until every consumer's
    /// receives wait in the server, where the server can tell (so that no
    /// consumer starts late and the run measures the queue shared by all
    /// four). Consumers say ready before their first receive, and a
    /// blocking receive (`BRPOP`, `mq_receive`) is not visible from
    /// outside: by default there is nothing to wait for.
    fn wait_for_consumers(&mut self, _deadline: Deadline) -> Result<()> {
        Ok(())
    }

    /// The server process whose memory `conns` measures.
    fn server_pid(&self) -> Option<u32>;

    /// What explains this system's figures (queue sizes, emulations).
    fn notes(&self) -> Vec<String>;

    /// Stops the server and removes what the workload created.
    fn stop(self: Box<Self>) -> Result<()>;
}

/// Why `system` cannot run `workload` here, if it cannot.
pub fn unsupported(
    system: System,
    workload: Workload,
    shape: &Shape,
    setup: &Setup,
) -> Option<String> {
    match system {
        System::Mailboxd => None,
        System::MailboxdFiles if !workload.is_large() => Some(
            "small messages stay inline (below the client's 64 KiB file threshold): \
             see mailboxd"
                .into(),
        ),
        System::MailboxdFiles => None,
        System::Redis if setup.redis_server.is_none() => {
            Some("redis-server is not installed (not on PATH)".into())
        }
        System::Redis if workload == Workload::IdleMailboxes => {
            Some("a Redis list exists only while it holds an element: there is no idle one".into())
        }
        System::Redis => None,
        System::Nats if setup.nats_server.is_none() => {
            Some("nats-server is not installed (not on PATH)".into())
        }
        System::Nats => nats::unsupported(workload).map(str::to_owned),
        System::UdsDirect | System::UdsRelay | System::PosixMq if workload == Workload::Conns => {
            Some("there is no broker process whose memory and wake-ups could be measured".into())
        }
        System::UdsDirect | System::UdsRelay | System::PosixMq
            if workload.measures_broker_memory() =>
        {
            Some("there is no broker process whose memory could be measured".into())
        }
        System::UdsDirect | System::UdsRelay => None,
        System::PosixMq => setup.mq.unsupported(workload, shape),
    }
}

/// Sets `system` up for `workload`.
pub fn prepare(
    system: System,
    workload: Workload,
    shape: &Shape,
    setup: &Setup,
) -> Result<Box<dyn Running>> {
    Ok(match system {
        System::Mailboxd | System::MailboxdFiles => {
            Box::new(mailboxd::Server::start(system, workload, shape, setup)?)
        }
        System::UdsDirect => Box::new(uds::Direct::new(workload)),
        System::UdsRelay => Box::new(relay::Relay::start(workload, shape, setup)?),
        System::PosixMq => Box::new(posix_mq::Queues::create(workload, shape, setup)?),
        System::Redis => Box::new(redis::Server::start(workload, shape, setup)?),
        System::Nats => Box::new(nats::Server::start(workload, shape, setup)?),
    })
}

/// A producer's sink for the role's system.
pub fn sink(args: &RoleArgs) -> Result<Box<dyn Sink>> {
    match args.system {
        System::Mailboxd | System::MailboxdFiles => mailboxd::sink(args),
        System::UdsDirect | System::UdsRelay => uds::sink(args),
        System::PosixMq => posix_mq::sink(args),
        System::Redis => redis::sink(args),
        System::Nats => nats::sink(args),
    }
}

/// A consumer's source for the role's system.
pub fn source(args: &RoleArgs) -> Result<Box<dyn Source>> {
    match args.system {
        System::Mailboxd | System::MailboxdFiles => mailboxd::source(args),
        System::UdsDirect | System::UdsRelay => uds::source(args),
        System::PosixMq => posix_mq::source(args),
        System::Redis => redis::source(args),
        System::Nats => nats::source(args),
    }
}

/// The `rtt` requester for the role's system.
pub fn requester(args: &RoleArgs) -> Result<Box<dyn Requester>> {
    match args.system {
        System::Mailboxd | System::MailboxdFiles => mailboxd::requester(args),
        System::UdsDirect | System::UdsRelay => uds::requester(args),
        System::PosixMq => posix_mq::requester(args),
        System::Redis => redis::requester(args),
        System::Nats => nats::requester(args),
    }
}

/// The `rtt` echo for the role's system.
pub fn echo(args: &RoleArgs) -> Result<Box<dyn Echo>> {
    match args.system {
        System::Mailboxd | System::MailboxdFiles => mailboxd::echo(args),
        System::UdsDirect | System::UdsRelay => uds::echo(args),
        System::PosixMq => posix_mq::echo(args),
        System::Redis => redis::echo(args),
        System::Nats => nats::echo(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(redis: bool) -> Setup {
        Setup {
            dir: PathBuf::from("/tmp/x"),
            tag: "t".into(),
            window: 512,
            mailboxd_api: MailboxdApi::Batched,
            batch: None,
            batches: None,
            mailboxd: Some(PathBuf::from("/bin/mailboxd")),
            size: None,
            redis_server: redis.then(|| PathBuf::from("/bin/redis-server")),
            nats_server: redis.then(|| PathBuf::from("/bin/nats-server")),
            mq: posix_mq::Limits {
                msg_max: 1024,
                msgsize_max: 1 << 20,
                quota: u64::MAX,
                note: String::new(),
            },
        }
    }

    #[test]
    fn memory_is_measured_where_there_is_a_server() {
        let with_redis = setup(true);
        for workload in [Workload::Memory, Workload::IdleMailboxes] {
            let shape = workload.shape(0.001);
            let runs = |system| unsupported(system, workload, &shape, &with_redis).is_none();
            assert!(runs(System::Mailboxd), "{workload}");
            assert!(!runs(System::UdsDirect), "{workload}");
            assert!(!runs(System::PosixMq), "{workload}");
            assert_eq!(runs(System::Redis), workload == Workload::Memory);
            assert!(!runs(System::Nats), "{workload}");
        }
        let shape = Workload::Memory.shape(0.001);
        let why = unsupported(System::Redis, Workload::Memory, &shape, &setup(false));
        let files = |workload: Workload| {
            let shape = workload.shape(0.001);
            unsupported(System::MailboxdFiles, workload, &shape, &with_redis).is_none()
        };
        assert!(files(Workload::Large) && files(Workload::FanoutLarge));
        assert!(!files(Workload::Stream) && !files(Workload::Rtt));
        assert!(why.is_some_and(|why| why.contains("not installed")));
    }
}
