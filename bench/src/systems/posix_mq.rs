//! `posix-mq`: the kernel's own mailbox (`mq_open`, `mq_send`,
//! `mq_receive` through `libc`). One system call per message and per
//! queue; nothing to batch.
//!
//! | workload | queues (created by the orchestrator, unlinked after) | how |
//! |---|---|---|
//! | stream, large | one, depth 1024 / 16 | `mq_send` / `mq_receive` |
//! | fanout | one per subscriber | the producer sends each message to all 8 |
//! | workq | one shared | 4 senders, 4 receivers; after the producers finish the orchestrator sends one empty message per consumer, which ends it |
//! | rendezvous | `data` and `ack`, depth 1 | send, then wait for the consumer's acknowledgement on `ack` |
//! | rtt | `req` and `rep`, depth 1 | send then receive, one in flight |
//! | conns | not run: no broker process to measure |
//!
//! Queue depth is bounded by `fs.mqueue.msg_max` (10 by default) and
//! message size by `fs.mqueue.msgsize_max` (8 KiB). As root, [`LimitsGuard`]
//! raises both for the run (and `RLIMIT_MSGQUEUE`, the per-user byte quota
//! that 16 x 1 MiB exceeds) and restores the old values when dropped, on
//! failure too; otherwise the depth used is what the system allows, and the
//! `note` says so.

use std::ffi::CString;
use std::io;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use mailbox_client::Bytes;

use super::{Deliveries, Echo, Requester, Running, Setup, Sink, Source};
use crate::payload::Payloads;
use crate::process::{is_root, Deadline};
use crate::roles::RoleArgs;
use crate::spec::{Shape, Workload};

const MSG_MAX: &str = "/proc/sys/fs/mqueue/msg_max";
const MSGSIZE_MAX: &str = "/proc/sys/fs/mqueue/msgsize_max";

/// The queue limits in force for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deepest queue allowed (`fs.mqueue.msg_max`).
    pub msg_max: u64,
    /// Largest message allowed (`fs.mqueue.msgsize_max`).
    pub msgsize_max: u64,
    /// Bytes all queues of the user may take (`RLIMIT_MSGQUEUE`, as the
    /// kernel counts them: see [`queue_cost`]).
    pub quota: u64,
    /// How the limits came about.
    pub note: String,
}

/// The bytes the kernel charges to `RLIMIT_MSGQUEUE` for a queue of `depth`
/// messages of `size` bytes (`mqueue_get_inode`: a `msg_msg` header per
/// message, a priority tree node per message up to `MQ_PRIO_MAX`, and the
/// payload space), with a margin for other kernels' struct sizes.
pub fn queue_cost(depth: u64, size: u64) -> u64 {
    const MSG_MSG: u64 = 48;
    const TREE_NODE: u64 = 48;
    const MQ_PRIO_MAX: u64 = 32_768;
    let exact = depth * (MSG_MSG + size) + depth.min(MQ_PRIO_MAX) * TREE_NODE;
    exact + exact / 16
}

/// One queue of a workload: its label, depth and message size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePlan {
    /// Its name within the run (`q`, `q3`, `req`, `ack`).
    pub label: String,
    /// The capacity of the mailbox it stands for (0: rendezvous).
    pub capacity: u32,
    /// The depth it gets.
    pub depth: u64,
    /// Its message size.
    pub size: usize,
}

impl Limits {
    /// The depth of a queue standing for a mailbox of `capacity`: the
    /// capacity (1 for rendezvous), capped by `msg_max`.
    pub fn depth(&self, capacity: u32) -> u64 {
        u64::from(capacity.max(1)).min(self.msg_max.max(1))
    }

    /// The queues of `workload`, as deep as the spec's capacities where the
    /// kernel allows, shallower (all alike) where `msg_max` or the byte
    /// quota does not; or why the workload cannot run on queues here.
    pub fn plan(&self, workload: Workload, shape: &Shape) -> Result<Vec<QueuePlan>, String> {
        if shape.size as u64 > self.msgsize_max {
            return Err(format!(
                "{}-byte messages exceed fs.mqueue.msgsize_max = {} ({})",
                shape.size, self.msgsize_max, self.note
            ));
        }
        let mut queues: Vec<QueuePlan> = layout(workload, shape)
            .into_iter()
            .map(|(label, capacity, size)| QueuePlan {
                label,
                capacity,
                depth: self.depth(capacity),
                size,
            })
            .collect();
        let cost = |queues: &[QueuePlan], cap: u64| -> u64 {
            queues
                .iter()
                .map(|q| queue_cost(q.depth.min(cap), q.size as u64))
                .sum()
        };
        let deepest = queues.iter().map(|q| q.depth).max().unwrap_or(1);
        if cost(&queues, deepest) > self.quota {
            if cost(&queues, 1) > self.quota {
                return Err(format!(
                    "even one {}-byte message per queue exceeds RLIMIT_MSGQUEUE = {} bytes ({})",
                    shape.size, self.quota, self.note
                ));
            }
            // The deepest cap that fits: cost grows with the cap.
            let (mut fits, mut too_deep) = (1, deepest);
            while too_deep - fits > 1 {
                let middle = (fits + too_deep) / 2;
                if cost(&queues, middle) <= self.quota {
                    fits = middle;
                } else {
                    too_deep = middle;
                }
            }
            for queue in &mut queues {
                queue.depth = queue.depth.min(fits);
            }
        }
        Ok(queues)
    }

    /// Why a workload cannot run on queues here, if it cannot.
    pub fn unsupported(&self, workload: Workload, shape: &Shape) -> Option<String> {
        self.plan(workload, shape).err()
    }
}

/// Raises the kernel's queue limits for the run (as root) and puts the old
/// values back when dropped.
#[derive(Debug)]
pub struct LimitsGuard {
    restore: Vec<(&'static str, String)>,
    limits: Limits,
}

impl LimitsGuard {
    /// Raises `msg_max` to `depth` and `msgsize_max` to `size` where they are
    /// lower, if this process may.
    pub fn raise(depth: u64, size: u64) -> LimitsGuard {
        let mut guard = LimitsGuard {
            restore: Vec::new(),
            limits: Limits {
                msg_max: read_limit(MSG_MAX).unwrap_or(10),
                msgsize_max: read_limit(MSGSIZE_MAX).unwrap_or(8192),
                quota: msgqueue_quota(),
                note: String::new(),
            },
        };
        let before = guard.limits.clone();
        if !is_root() {
            guard.limits.note = format!(
                "not root: kernel limits left at msg_max {}, msgsize_max {}, \
                 RLIMIT_MSGQUEUE {}",
                before.msg_max,
                before.msgsize_max,
                quota_text(before.quota)
            );
            return guard;
        }
        let mut raised = Vec::new();
        let mut remarks = Vec::new();
        raise_msgqueue_quota();
        guard.limits.quota = msgqueue_quota();
        if guard.limits.quota < u64::MAX {
            remarks.push(format!(
                "RLIMIT_MSGQUEUE {} (no CAP_SYS_RESOURCE to raise it)",
                quota_text(guard.limits.quota)
            ));
        }
        for (path, wanted, current) in [
            (MSG_MAX, depth, before.msg_max),
            (MSGSIZE_MAX, size, before.msgsize_max),
        ] {
            if current >= wanted {
                continue;
            }
            match std::fs::write(path, wanted.to_string()) {
                Ok(()) => {
                    guard.restore.push((path, current.to_string()));
                    raised.push(format!("{} {current} -> {wanted}", short(path)));
                }
                Err(error) => remarks.push(format!("cannot raise {}: {error}", short(path))),
            }
        }
        guard.limits.msg_max = read_limit(MSG_MAX).unwrap_or(before.msg_max);
        guard.limits.msgsize_max = read_limit(MSGSIZE_MAX).unwrap_or(before.msgsize_max);
        if !raised.is_empty() {
            remarks.insert(
                0,
                format!("raised for the run and restored: {}", raised.join(", ")),
            );
        }
        guard.limits.note = if remarks.is_empty() {
            "kernel limits already sufficient".into()
        } else {
            remarks.join(", ")
        };
        guard
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

impl Drop for LimitsGuard {
    fn drop(&mut self) {
        for (path, value) in self.restore.drain(..).rev() {
            if let Err(error) = std::fs::write(path, &value) {
                eprintln!("mailbox-bench: cannot restore {path} to {value}: {error}");
            }
        }
    }
}

fn short(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn read_limit(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The per-user byte quota of queues in force (`u64::MAX`: unlimited).
fn msgqueue_quota() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_MSGQUEUE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        limit.rlim_cur
    }
}

fn quota_text(quota: u64) -> String {
    if quota == u64::MAX {
        "unlimited".into()
    } else {
        format!("{} KiB", quota / 1024)
    }
}

/// Lifts the per-user byte quota of queues, as far as allowed.
fn raise_msgqueue_quota() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `unlimited` is a valid rlimit; failure leaves the quota as it was.
    if unsafe { libc::setrlimit(libc::RLIMIT_MSGQUEUE, &unlimited) } == 0 {
        return;
    }
    // Without CAP_SYS_RESOURCE only the soft limit can rise, to the hard one.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit; then a valid one is set.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MSGQUEUE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_MSGQUEUE, &limit);
        }
    }
}

/// One open queue, closed when dropped.
#[derive(Debug)]
struct Queue {
    descriptor: libc::mqd_t,
    name: String,
    message_size: usize,
}

fn os_error(what: &str, name: &str) -> anyhow::Error {
    anyhow!("{what} {name}: {}", io::Error::last_os_error())
}

impl Queue {
    fn create(name: &str, depth: u64, message_size: usize) -> Result<Queue> {
        let c_name = CString::new(name)?;
        // SAFETY: an all-zero mq_attr is valid (it is plain integers).
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = libc::c_long::try_from(depth)?;
        attr.mq_msgsize = libc::c_long::try_from(message_size)?;
        // SAFETY: `c_name` is a NUL-terminated string and `attr` a valid
        // mq_attr, both alive for the call; mode and attr are the two
        // variadic arguments O_CREAT requires.
        let descriptor = unsafe {
            libc::mq_open(
                c_name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                0o600 as libc::mode_t,
                &mut attr as *mut libc::mq_attr,
            )
        };
        if descriptor == -1 {
            return Err(os_error("mq_open (create)", name))
                .with_context(|| format!("depth {depth}, message size {message_size}"));
        }
        Ok(Queue {
            descriptor,
            name: name.to_owned(),
            message_size,
        })
    }

    fn open(name: &str) -> Result<Queue> {
        let c_name = CString::new(name)?;
        // SAFETY: `c_name` is a NUL-terminated string alive for the call.
        let descriptor = unsafe { libc::mq_open(c_name.as_ptr(), libc::O_RDWR) };
        if descriptor == -1 {
            return Err(os_error("mq_open", name));
        }
        // SAFETY: as above, an all-zero mq_attr is valid.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        // SAFETY: `descriptor` is open and `attr` writable.
        if unsafe { libc::mq_getattr(descriptor, &mut attr) } != 0 {
            let error = os_error("mq_getattr", name);
            // SAFETY: `descriptor` is open and closed only here.
            unsafe { libc::mq_close(descriptor) };
            return Err(error);
        }
        Ok(Queue {
            descriptor,
            name: name.to_owned(),
            message_size: usize::try_from(attr.mq_msgsize)?,
        })
    }

    fn send(&self, payload: &[u8]) -> Result<()> {
        loop {
            // SAFETY: `payload` is valid for `payload.len()` bytes.
            let sent = unsafe {
                libc::mq_send(self.descriptor, payload.as_ptr().cast(), payload.len(), 0)
            };
            if sent == 0 {
                return Ok(());
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return Err(os_error("mq_send", &self.name));
            }
        }
    }

    /// Receives one message into `buffer` (at least the queue's message
    /// size); returns its length.
    fn receive(&self, buffer: &mut [u8]) -> Result<usize> {
        loop {
            // SAFETY: `buffer` is writable for `buffer.len()` bytes, which is
            // at least the queue's message size.
            let received = unsafe {
                libc::mq_receive(
                    self.descriptor,
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    std::ptr::null_mut(),
                )
            };
            if let Ok(len) = usize::try_from(received) {
                return Ok(len);
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return Err(os_error("mq_receive", &self.name));
            }
        }
    }

    fn buffer(&self) -> Vec<u8> {
        vec![0; self.message_size]
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: the descriptor is open and closed only here.
        unsafe { libc::mq_close(self.descriptor) };
    }
}

fn unlink(name: &str) {
    if let Ok(c_name) = CString::new(name) {
        // SAFETY: `c_name` is a NUL-terminated string alive for the call.
        unsafe { libc::mq_unlink(c_name.as_ptr()) };
    }
}

/// The queues of `workload`: label, the capacity it stands for, message size.
fn layout(workload: Workload, shape: &Shape) -> Vec<(String, u32, usize)> {
    let one = |label: &str, capacity: u32, size: usize| (label.to_owned(), capacity, size);
    match workload {
        Workload::Rtt => vec![one("req", 1, shape.size), one("rep", 1, shape.size)],
        Workload::Rendezvous => vec![one("data", 1, shape.size), one("ack", 1, 1)],
        Workload::Fanout | Workload::FanoutLarge => (0..shape.consumers)
            .map(|i| one(&format!("q{i}"), shape.capacity, shape.size))
            .collect(),
        _ => vec![one("q", shape.capacity, shape.size)],
    }
}

/// The depths used, for the note; and where they fall short of the spec.
fn describe(plan: &[QueuePlan]) -> String {
    let mut text = match plan {
        [queue] => format!("queue depth {}", queue.depth),
        [first, rest @ ..] if rest.iter().all(|q| q.depth == first.depth) => {
            format!("{} queues of depth {}", plan.len(), first.depth)
        }
        _ => {
            let each: Vec<String> = plan
                .iter()
                .map(|q| format!("{} {}", q.label, q.depth))
                .collect();
            format!("queue depths {}", each.join(", "))
        }
    };
    if let Some(short) = plan.iter().find(|q| q.depth < u64::from(q.capacity.max(1))) {
        text.push_str(&format!(
            " (not the spec's {}: kernel limits)",
            short.capacity
        ));
    }
    text
}

/// The system-wide name of queue `label` of the run tagged `tag`.
fn queue_name(tag: &str, label: &str) -> String {
    format!("/mailbox-bench-{tag}-{label}")
}

/// The queues of one workload, unlinked when stopped or dropped.
pub struct Queues {
    names: Vec<String>,
    tag: String,
    notes: Vec<String>,
}

impl Queues {
    /// Creates the queues of `workload`.
    pub fn create(workload: Workload, shape: &Shape, setup: &Setup) -> Result<Queues> {
        let mut queues = Queues {
            names: Vec::new(),
            tag: setup.tag.clone(),
            notes: Vec::new(),
        };
        let plan = setup.mq.plan(workload, shape).map_err(|why| anyhow!(why))?;
        for queue in &plan {
            let name = queue_name(&setup.tag, &queue.label);
            unlink(&name);
            drop(Queue::create(&name, queue.depth, queue.size)?);
            queues.names.push(name);
        }
        queues.notes.push(describe(&plan));
        queues.notes.push(setup.mq.note.clone());
        match workload {
            Workload::Rendezvous => queues
                .notes
                .push("each message acknowledged on a second queue".into()),
            Workload::Fanout | Workload::FanoutLarge => queues
                .notes
                .push(format!("one queue per subscriber ({})", shape.consumers)),
            Workload::Workq => queues
                .notes
                .push("one shared queue, ended by one empty message per consumer".into()),
            _ => {}
        }
        Ok(queues)
    }
}

impl Running for Queues {
    fn socket(&self) -> Option<&Path> {
        None
    }

    fn end_shared_queue(&mut self, shape: &Shape, _window: usize, _: Deadline) -> Result<()> {
        let queue = Queue::open(&queue_name(&self.tag, "q"))?;
        for _ in 0..shape.consumers {
            queue.send(&[])?;
        }
        Ok(())
    }

    fn wait_for_waiting(&mut self, _: u64, _: Deadline) -> Result<()> {
        bail!("posix-mq has no waiting connections to count")
    }

    fn server_pid(&self) -> Option<u32> {
        None
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn stop(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

impl Drop for Queues {
    fn drop(&mut self) {
        for name in &self.names {
            unlink(name);
        }
    }
}

fn open(args: &RoleArgs, label: &str) -> Result<Queue> {
    Queue::open(&queue_name(&args.tag, label))
}

/// Sends every message to every queue (one queue: plain stream).
struct QueueSink {
    queues: Vec<Queue>,
}

impl Sink for QueueSink {
    fn send_all(&mut self, payloads: &Payloads) -> Result<()> {
        let mut scratch = Vec::new();
        for sequence in 0..payloads.count() {
            let payload = payloads.get(sequence, &mut scratch);
            for queue in &self.queues {
                queue.send(payload)?;
            }
        }
        Ok(())
    }
}

/// Rendezvous: send, then wait for the acknowledgement.
struct AcknowledgedSink {
    data: Queue,
    ack: Queue,
}

impl Sink for AcknowledgedSink {
    fn send_all(&mut self, payloads: &Payloads) -> Result<()> {
        let mut scratch = Vec::new();
        let mut ack = self.ack.buffer();
        for sequence in 0..payloads.count() {
            self.data.send(payloads.get(sequence, &mut scratch))?;
            self.ack.receive(&mut ack)?;
        }
        Ok(())
    }
}

/// The producer's way out.
pub fn sink(args: &RoleArgs) -> Result<Box<dyn Sink>> {
    Ok(match args.workload {
        Workload::Rendezvous => Box::new(AcknowledgedSink {
            data: open(args, "data")?,
            ack: open(args, "ack")?,
        }),
        Workload::Fanout | Workload::FanoutLarge => Box::new(QueueSink {
            queues: (0..args.consumers)
                .map(|i| open(args, &format!("q{i}")))
                .collect::<Result<_>>()?,
        }),
        _ => Box::new(QueueSink {
            queues: vec![open(args, "q")?],
        }),
    })
}

struct QueueSource {
    queue: Queue,
    /// Rendezvous: acknowledge each message here.
    ack: Option<Queue>,
}

impl Source for QueueSource {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        let mut buffer = self.queue.buffer();
        let limit = expected.unwrap_or(u64::MAX);
        let mut received = 0;
        while received < limit {
            let len = self.queue.receive(&mut buffer)?;
            if len == 0 && expected.is_none() {
                // The end of the shared queue.
                break;
            }
            into.message(&buffer[..len]);
            into.batch_end();
            if let Some(ack) = &self.ack {
                ack.send(&[1])?;
            }
            received += 1;
        }
        Ok(())
    }
}

/// The consumer's way in.
pub fn source(args: &RoleArgs) -> Result<Box<dyn Source>> {
    Ok(Box::new(match args.workload {
        Workload::Rendezvous => QueueSource {
            queue: open(args, "data")?,
            ack: Some(open(args, "ack")?),
        },
        Workload::Fanout | Workload::FanoutLarge => QueueSource {
            queue: open(args, &format!("q{}", args.index))?,
            ack: None,
        },
        _ => QueueSource {
            queue: open(args, "q")?,
            ack: None,
        },
    }))
}

struct RttClient {
    request: Queue,
    reply: Queue,
    buffer: Vec<u8>,
}

impl Requester for RttClient {
    fn round_trip(&mut self, request: &Bytes, reply: &mut Vec<u8>) -> Result<()> {
        self.request.send(request)?;
        let len = self.reply.receive(&mut self.buffer)?;
        reply.clear();
        reply.extend_from_slice(&self.buffer[..len]);
        Ok(())
    }
}

/// The `rtt` requester.
pub fn requester(args: &RoleArgs) -> Result<Box<dyn Requester>> {
    let reply = open(args, "rep")?;
    Ok(Box::new(RttClient {
        request: open(args, "req")?,
        buffer: reply.buffer(),
        reply,
    }))
}

struct RttEcho {
    request: Queue,
    reply: Queue,
}

impl Echo for RttEcho {
    fn serve(&mut self, count: u64) -> Result<()> {
        let mut buffer = self.request.buffer();
        for _ in 0..count {
            let len = self.request.receive(&mut buffer)?;
            self.reply.send(&buffer[..len])?;
        }
        Ok(())
    }
}

/// The `rtt` echo.
pub fn echo(args: &RoleArgs) -> Result<Box<dyn Echo>> {
    Ok(Box::new(RttEcho {
        request: open(args, "req")?,
        reply: open(args, "rep")?,
    }))
}

/// The largest message and deepest queue the selected workloads need.
pub fn needs(shapes: impl Iterator<Item = Shape>) -> (u64, u64) {
    shapes.fold((1, 1), |(depth, size), shape| {
        (
            depth.max(u64::from(shape.capacity)),
            size.max(shape.size as u64),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(msg_max: u64, msgsize_max: u64, quota: u64) -> Limits {
        Limits {
            msg_max,
            msgsize_max,
            quota,
            note: String::new(),
        }
    }

    #[test]
    fn depth_is_the_capacity_capped_by_the_kernel() {
        let limits = limits(10, 8192, u64::MAX);
        assert_eq!(limits.depth(1024), 10);
        assert_eq!(limits.depth(0), 1);
        assert_eq!(limits.depth(4), 4);
        let large = Workload::Large.shape(1.0);
        assert!(limits.unsupported(Workload::Large, &large).is_some());
        let stream = Workload::Stream.shape(1.0);
        assert!(limits.unsupported(Workload::Stream, &stream).is_none());
    }

    #[test]
    fn depths_shrink_alike_to_fit_the_byte_quota() {
        // The default 800 KiB quota cannot hold 8 queues of 1024 x 64 B.
        let limits = limits(1024, 1 << 20, 819_200);
        let fanout = Workload::Fanout.shape(1.0);
        let plan = limits.plan(Workload::Fanout, &fanout).unwrap();
        assert_eq!(plan.len(), 8);
        let depth = plan[0].depth;
        assert!(plan.iter().all(|q| q.depth == depth));
        assert!(depth < 1024 && depth > 100, "{depth}");
        assert!(8 * queue_cost(depth, 64) <= 819_200);
        assert!(8 * queue_cost(depth + 1, 64) > 819_200);
        assert!(describe(&plan).contains("not the spec's 1024"));
        // One queue of 1024 fits.
        let stream = Workload::Stream.shape(1.0);
        assert_eq!(
            limits.plan(Workload::Stream, &stream).unwrap()[0].depth,
            1024
        );
        // Not even one 1 MiB message fits.
        let large = Workload::Large.shape(1.0);
        let why = limits.plan(Workload::Large, &large).unwrap_err();
        assert!(why.contains("RLIMIT_MSGQUEUE"), "{why}");
    }

    #[test]
    fn a_queue_carries_messages_and_the_empty_end_marker() {
        let name = queue_name(&format!("test-{}", std::process::id()), "q");
        unlink(&name);
        let queue = Queue::create(&name, 4, 64).unwrap();
        let other = Queue::open(&name).unwrap();
        queue.send(b"hello").unwrap();
        queue.send(&[]).unwrap();
        let mut buffer = other.buffer();
        assert_eq!(other.receive(&mut buffer).unwrap(), 5);
        assert_eq!(&buffer[..5], b"hello");
        assert_eq!(other.receive(&mut buffer).unwrap(), 0);
        unlink(&name);
    }
}
