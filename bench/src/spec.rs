//! The benchmark's vocabulary, straight from `WORKLOADS.md`: the workloads
//! with their shapes (processes, message counts and sizes, mailbox
//! capacities) and the systems measured side by side.
//!
//! Pure data: nothing here starts a process or touches a socket.

use std::fmt;

use clap::ValueEnum;

/// One workload of the spec's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Workload {
    /// 1 producer -> 1 consumer, 64 B, bounded 1024.
    Stream,
    /// Request and reply, one in flight; latency percentiles.
    Rtt,
    /// 1 producer -> 8 subscribers, every subscriber gets every message.
    Fanout,
    /// 4 producers -> 4 consumers sharing one mailbox.
    Workq,
    /// Zero capacity: every send completes only when the consumer took it.
    Rendezvous,
    /// 1 MiB messages, bounded 16.
    Large,
    /// 1 MiB messages to 8 subscribers, bounded 16, broadcast.
    FanoutLarge,
    /// 10,000 connections each blocked in a receive; then one message each.
    Conns,
    /// Broker RSS with 1,000,000 messages of 64 B queued in one unbounded
    /// mailbox (beyond the spec's table: the memory targets).
    Memory,
    /// Broker RSS per idle mailbox, after creating 10,000 (beyond the
    /// spec's table: the memory targets).
    IdleMailboxes,
}

/// One system measured on the workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum System {
    /// The broker under test, through `mailbox-client`, payloads inline.
    Mailboxd,
    /// The same broker with every payload a sealed memory file, written
    /// in place by the producer (`FileWriter`, `send_file`): the
    /// shared-memory form of the large workloads (`large`,
    /// `fanout-large`); small-message workloads stay inline, so this
    /// system skips them.
    MailboxdFiles,
    /// A plain Unix socket between the two processes, no broker.
    UdsDirect,
    /// The same, through a process that only copies bytes: the floor of
    /// any broker in the middle.
    UdsRelay,
    /// POSIX message queues (`mq_open`, `mq_send`, `mq_receive`).
    PosixMq,
    /// Redis 7 lists over its Unix socket (`LPUSH` / `BRPOP`).
    Redis,
    /// Core NATS over loopback TCP (`nats-server`, the `async-nats` client).
    Nats,
}

impl Workload {
    /// Every workload, in the spec's order.
    pub const ALL: [Workload; 10] = [
        Workload::Stream,
        Workload::Rtt,
        Workload::Fanout,
        Workload::Workq,
        Workload::Rendezvous,
        Workload::Large,
        Workload::FanoutLarge,
        Workload::Conns,
        Workload::Memory,
        Workload::IdleMailboxes,
    ];

    /// The spec's id, as it appears in the JSON output.
    pub fn id(self) -> &'static str {
        match self {
            Workload::Stream => "stream",
            Workload::Rtt => "rtt",
            Workload::Fanout => "fanout",
            Workload::Workq => "workq",
            Workload::Rendezvous => "rendezvous",
            Workload::Large => "large",
            Workload::FanoutLarge => "fanout-large",
            Workload::Conns => "conns",
            Workload::Memory => "memory",
            Workload::IdleMailboxes => "idle-mailboxes",
        }
    }

    /// Whether every consumer gets every message (a broadcast mailbox).
    pub fn is_fanout(self) -> bool {
        matches!(self, Workload::Fanout | Workload::FanoutLarge)
    }

    /// Whether the workload measures a broker's own memory, which only a
    /// system with a server process can show.
    pub fn measures_broker_memory(self) -> bool {
        matches!(self, Workload::Memory | Workload::IdleMailboxes)
    }

    /// The workload's shape at `scale` (message counts times `scale`, never
    /// below [`MIN_COUNT`]).
    pub fn shape(self, scale: f64) -> Shape {
        let scaled = |count: u64| scale_count(count, scale);
        let base = Shape {
            producers: 1,
            consumers: 1,
            messages: 0,
            warmup: 0,
            size: 64,
            capacity: 1024,
        };
        match self {
            Workload::Stream => Shape {
                messages: scaled(1_000_000),
                ..base
            },
            Workload::Rtt => Shape {
                messages: scaled(100_000),
                warmup: scaled(10_000),
                capacity: 1,
                ..base
            },
            Workload::Fanout => Shape {
                consumers: 8,
                messages: scaled(200_000),
                ..base
            },
            Workload::Workq => Shape {
                producers: 4,
                consumers: 4,
                messages: scaled(1_000_000),
                ..base
            },
            Workload::Rendezvous => Shape {
                messages: scaled(100_000),
                capacity: 0,
                ..base
            },
            Workload::Large => Shape {
                messages: scaled(2_000),
                size: 1024 * 1024,
                capacity: 16,
                ..base
            },
            Workload::FanoutLarge => Shape {
                consumers: 8,
                messages: scaled(500),
                size: 1024 * 1024,
                capacity: 16,
                ..base
            },
            Workload::Conns => Shape {
                consumers: scaled(10_000) as u32,
                messages: scaled(10_000),
                capacity: 1,
                ..base
            },
            // Filled by the producer, then drained (and verified) by the
            // consumer once the broker's memory was read.
            Workload::Memory => Shape {
                messages: scaled(1_000_000),
                capacity: UNBOUNDED,
                ..base
            },
            // `messages` counts the mailboxes the producer creates.
            Workload::IdleMailboxes => Shape {
                consumers: 0,
                messages: scaled(10_000),
                capacity: UNBOUNDED,
                ..base
            },
        }
    }
}

impl System {
    /// Every system, the broker first.
    pub const ALL: [System; 7] = [
        System::Mailboxd,
        System::MailboxdFiles,
        System::UdsDirect,
        System::UdsRelay,
        System::PosixMq,
        System::Redis,
        System::Nats,
    ];

    /// The system's id, as it appears in the JSON output.
    pub fn id(self) -> &'static str {
        match self {
            System::Mailboxd => "mailboxd",
            System::MailboxdFiles => "mailboxd-files",
            System::UdsDirect => "uds-direct",
            System::UdsRelay => "uds-relay",
            System::PosixMq => "posix-mq",
            System::Redis => "redis",
            System::Nats => "nats",
        }
    }
}

impl System {
    /// The two forms of the broker under test, whose figures the tables
    /// divide by the baselines'.
    pub const OURS: [System; 2] = [System::Mailboxd, System::MailboxdFiles];

    /// Every baseline, in [`System::ALL`]'s order.
    pub const BASELINES: [System; 5] = [
        System::UdsDirect,
        System::UdsRelay,
        System::PosixMq,
        System::Redis,
        System::Nats,
    ];

    /// Whether this is `mailboxd` in one of its forms (a broker the bench
    /// starts and owns).
    pub fn is_mailboxd(self) -> bool {
        matches!(self, System::Mailboxd | System::MailboxdFiles)
    }

    /// The payload form a mailboxd system uses: `inline` bytes in the
    /// frames or sealed memory `file`s; `None` for the baselines.
    pub fn form(self) -> Option<&'static str> {
        match self {
            System::Mailboxd => Some("inline"),
            System::MailboxdFiles => Some("file"),
            _ => None,
        }
    }
}

impl Workload {
    /// Whether the workload's messages are large enough to travel as
    /// memory files (the ones `mailboxd-files` runs).
    pub fn is_large(self) -> bool {
        matches!(self, Workload::Large | Workload::FanoutLarge)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// [`Shape::capacity`] of an unbounded mailbox.
pub const UNBOUNDED: u32 = u32::MAX;

/// Smallest message count any workload runs with, whatever the scale.
pub const MIN_COUNT: u64 = 100;

/// `count` times `scale`, rounded, at least [`MIN_COUNT`].
pub fn scale_count(count: u64, scale: f64) -> u64 {
    let scaled = (count as f64 * scale).round();
    if scaled.is_finite() && scaled > MIN_COUNT as f64 {
        scaled as u64
    } else {
        MIN_COUNT
    }
}

/// Processes, counts and mailbox settings of one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Producer processes (for `conns`: the one sender).
    pub producers: u32,
    /// Consumer processes (for `conns`: the number of waiting connections).
    pub consumers: u32,
    /// Messages in all (for `rtt`: measured round trips).
    pub messages: u64,
    /// Round trips before measuring (`rtt` only).
    pub warmup: u64,
    /// Payload bytes per message.
    pub size: usize,
    /// Mailbox capacity in messages; 0 is rendezvous, [`UNBOUNDED`] none.
    pub capacity: u32,
}

impl Shape {
    /// How many of `messages` producer `index` sends: an even split, the
    /// first producers taking one more when it does not divide.
    pub fn per_producer(&self, index: u32) -> u64 {
        split(self.messages, self.producers, index)
    }
}

/// The share of `total` that part `index` of `parts` gets.
pub fn split(total: u64, parts: u32, index: u32) -> u64 {
    let parts = u64::from(parts.max(1));
    let index = u64::from(index);
    total / parts + u64::from(index < total % parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_scale_with_a_floor() {
        assert_eq!(scale_count(1_000_000, 1.0), 1_000_000);
        assert_eq!(scale_count(1_000_000, 0.01), 10_000);
        assert_eq!(scale_count(10_000, 0.001), MIN_COUNT);
        assert_eq!(scale_count(2_000, 0.0), MIN_COUNT);
        assert_eq!(scale_count(2_000, f64::NAN), MIN_COUNT);
    }

    #[test]
    fn shares_add_up() {
        for (total, parts) in [(10, 4), (1_000_000, 4), (3, 4), (7, 1)] {
            let sum: u64 = (0..parts).map(|i| split(total, parts, i)).sum();
            assert_eq!(sum, total);
        }
        assert_eq!(split(10, 4, 0), 3);
        assert_eq!(split(10, 4, 3), 2);
    }

    #[test]
    fn the_table_of_the_spec() {
        let stream = Workload::Stream.shape(1.0);
        assert_eq!(
            (stream.messages, stream.size, stream.capacity),
            (1_000_000, 64, 1024)
        );
        let workq = Workload::Workq.shape(1.0);
        assert_eq!((workq.producers, workq.consumers), (4, 4));
        assert_eq!(Workload::Rendezvous.shape(1.0).capacity, 0);
        assert_eq!(Workload::Large.shape(1.0).size, 1 << 20);
        assert_eq!(Workload::Conns.shape(0.001).consumers, 100);
        let memory = Workload::Memory.shape(1.0);
        assert_eq!(
            (memory.messages, memory.size, memory.capacity),
            (1_000_000, 64, UNBOUNDED)
        );
        assert_eq!(Workload::IdleMailboxes.shape(1.0).messages, 10_000);
        assert_eq!(Workload::IdleMailboxes.shape(0.001).messages, MIN_COUNT);
        assert!(Workload::Memory.measures_broker_memory());
        assert!(!Workload::Conns.measures_broker_memory());
    }

    #[test]
    fn ours_and_baselines_cover_every_system_once() {
        let mut both: Vec<System> = System::OURS.into_iter().chain(System::BASELINES).collect();
        both.sort();
        assert_eq!(both, System::ALL.to_vec());
        assert!(System::OURS.into_iter().all(System::is_mailboxd));
        assert!(!System::BASELINES.into_iter().any(System::is_mailboxd));
    }
}
