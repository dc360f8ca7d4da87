//! `redis`: Redis 7 over its Unix socket, lists as mailboxes (`LPUSH` to
//! put, popped from the right, so each list is FIFO), spoken in RESP by
//! hand. Used at its best: Redis 7's batched commands where the workload
//! allows them (a variadic `LPUSH` of up to 64 messages, `BLMPOP ... COUNT`
//! of up to 64), pipelined exactly where `mailboxd`'s client pipelines, and
//! never more than the window (`--window` capped by the capacity) of
//! messages in unanswered commands. `bench/README.md` says why each form is
//! Redis's best.
//!
//! | workload | lists | how |
//! |---|---|---|
//! | stream | one | producer: `LPUSH list m1..m64`, 8 in flight; consumer: `BLMPOP 0 1 list RIGHT COUNT 64`, 8 in flight (never asking for more than is left) |
//! | large | one | the same, one 1 MiB message per command, 16 in flight |
//! | fanout | one per subscriber | each batch of 64 is one variadic `LPUSH` to each of the 8 lists (8 commands per 64 messages), 8 batches in flight; each subscriber as stream's consumer |
//! | workq | one shared | 4 producers and 4 consumers as stream's; after the producers finish the orchestrator pushes one empty message per consumer per window, and a consumer stops asking at the first |
//! | rendezvous | data and ack | producer: `LPUSH data m` + `BRPOP ack` written together per message; consumer: keeps two `BLMOVE data ack RIGHT LEFT 0` posted, so Redis hands a message over the moment it arrives and the move itself answers the producer's `BRPOP` |
//! | rtt | `req`, `rep` | A writes `CLIENT REPLY SKIP` + `LPUSH req` + `BRPOP rep` together; B answers with `CLIENT REPLY SKIP` + `LPUSH rep` + its next `BRPOP req` written together, so a `BRPOP` is always waiting and each side reads only the reply it waits for; one request in flight |
//! | conns | one per connection | every connection blocks in `BRPOP`; one connection then pushes to all, pipelined |
//!
//! Lists have no capacity, so Redis never makes a producer wait: the
//! `note` says so. Each run starts its own `redis-server` on a private
//! socket (`--port 0`, no persistence) and stops it by its pid.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use mailbox_client::Bytes;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::resp::{self, Reply};
use super::{Deliveries, Echo, Requester, Running, Setup, Sink, Source};
use crate::payload::Payloads;
use crate::process::{now_ns, Daemon, Deadline};
use crate::roles::{ConnsCheck, RoleArgs};
use crate::spec::{Shape, Workload};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 256 * 1024;

/// Connections each `conns` waiter process opens at once while setting up.
const CONNECT_CONCURRENCY: usize = 64;

/// The list a one-way workload uses (fanout: one per subscriber).
fn list_of(workload: Workload, subscriber: Option<u32>) -> String {
    match subscriber {
        Some(index) => format!("{}:{index}", workload.id()),
        None => workload.id().to_owned(),
    }
}

fn ack_list(workload: Workload) -> String {
    format!("{}:ack", workload.id())
}

fn conns_list(index: u64) -> String {
    format!("c{index}")
}

/// A blocking RESP connection with its buffers.
struct Connection {
    stream: UnixStream,
    outgoing: Vec<u8>,
    /// Read buffer, zeroed once; bytes `start..end` are read but unparsed.
    incoming: Vec<u8>,
    start: usize,
    end: usize,
}

impl Connection {
    fn connect(path: &Path) -> Result<Connection> {
        let stream = UnixStream::connect(path)
            .with_context(|| format!("connecting to redis at {}", path.display()))?;
        Ok(Connection {
            stream,
            outgoing: Vec::new(),
            incoming: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
        })
    }

    /// Queues a command for the next flush.
    fn queue(&mut self, args: &[&[u8]]) {
        resp::command(&mut self.outgoing, args);
    }

    fn flush(&mut self) -> Result<()> {
        if !self.outgoing.is_empty() {
            self.stream.write_all(&self.outgoing)?;
            self.outgoing.clear();
        }
        Ok(())
    }

    /// The next reply: from what was read already, or (when `block`)
    /// reading until one is complete. Its ranges index [`Self::bytes`] until
    /// the next call.
    fn next(&mut self, block: bool) -> Result<Option<Reply>> {
        loop {
            if let Some((reply, next)) = resp::parse(self.bytes(), self.start)? {
                self.start = next;
                return Ok(Some(reply));
            }
            if !block {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// Reads once, after making room (moving the unparsed bytes to the
    /// front, or growing the buffer for a reply larger than it).
    fn fill(&mut self) -> Result<()> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > 0 && self.incoming.len() - self.end < READ_CHUNK / 4 {
            self.incoming.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.incoming.len() {
            let grown = self.incoming.len() * 2;
            self.incoming.resize(grown, 0);
        }
        let read = loop {
            match self.stream.read(&mut self.incoming[self.end..]) {
                Ok(read) => break read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        };
        if read == 0 {
            bail!("redis closed the connection");
        }
        self.end += read;
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        &self.incoming[..self.end]
    }

    /// One command, one reply.
    fn call(&mut self, args: &[&[u8]]) -> Result<Reply> {
        self.queue(args);
        self.flush()?;
        self.next(true)?
            .ok_or_else(|| anyhow!("no reply from redis"))
    }

    fn expect_integer(&mut self) -> Result<i64> {
        let reply = self.next(true)?.ok_or_else(|| anyhow!("no reply"))?;
        resp::integer(&reply, self.bytes())
    }
}

/// A `redis-server` started for one workload.
pub struct Server {
    daemon: Option<Daemon>,
    socket: PathBuf,
    workload: Workload,
}

impl Server {
    /// Starts `redis-server` on a private socket in the run's directory.
    pub fn start(workload: Workload, shape: &Shape, setup: &Setup) -> Result<Server> {
        let binary = setup
            .redis_server
            .as_ref()
            .ok_or_else(|| anyhow!("redis-server is not installed"))?;
        let socket = setup.dir.join("redis.sock");
        let max_clients = 10_000u32.max(shape.consumers + 100);
        let mut command = Command::new(binary);
        command
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--maxclients"])
            .arg(max_clients.to_string())
            .arg("--dir")
            .arg(&setup.dir)
            .arg("--logfile")
            .arg(setup.dir.join("redis.log"));
        let daemon = Daemon::start("redis-server", command, &socket)?;
        let mut connection = Connection::connect(&socket)?;
        let pong = connection.call(&[b"PING"])?;
        if resp::text(&pong, connection.bytes())? != b"PONG" {
            bail!("redis-server did not answer PING");
        }
        Ok(Server {
            daemon: Some(daemon),
            socket,
            workload,
        })
    }
}

impl Running for Server {
    fn socket(&self) -> Option<&Path> {
        Some(&self.socket)
    }

    fn end_shared_queue(&mut self, shape: &Shape, window: usize, _: Deadline) -> Result<()> {
        // Every BRPOP still outstanding must be answered: at most a window per
        // consumer. The empty messages come after every real one (FIFO).
        let list = list_of(self.workload, None);
        let ends = shape.consumers as usize * window.max(1);
        let mut args: Vec<&[u8]> = vec![b"LPUSH", list.as_bytes()];
        args.extend(std::iter::repeat_n(&b""[..], ends));
        let mut connection = Connection::connect(&self.socket)?;
        let reply = connection.call(&args)?;
        resp::integer(&reply, connection.bytes())?;
        Ok(())
    }

    fn wait_for_waiting(&mut self, count: u64, deadline: Deadline) -> Result<()> {
        let mut connection = Connection::connect(&self.socket)?;
        deadline.wait_until("every connection to block in BRPOP", || {
            let reply = connection.call(&[b"INFO", b"clients"])?;
            let info =
                String::from_utf8_lossy(resp::text(&reply, connection.bytes())?).into_owned();
            let blocked = info
                .lines()
                .find_map(|line| line.strip_prefix("blocked_clients:"))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .ok_or_else(|| anyhow!("INFO clients has no blocked_clients"))?;
            Ok(blocked >= count)
        })
    }

    fn server_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = vec![match self.workload {
            Workload::Conns => "BRPOP on one list per connection".to_owned(),
            Workload::Rtt => "CLIENT REPLY SKIP + LPUSH req + BRPOP rep written together; the \
                              echo's CLIENT REPLY SKIP + LPUSH rep + next BRPOP req likewise"
                .to_owned(),
            Workload::Rendezvous => {
                "a send completes when a posted BLMOVE took it (moved to the ack list)".to_owned()
            }
            _ => "lists are unbounded: producers never wait for room; variadic LPUSH and \
                  BLMPOP COUNT, pipelined"
                .to_owned(),
        }];
        match self.workload {
            Workload::Fanout | Workload::FanoutLarge => notes
                .push("one list per subscriber, a variadic LPUSH of 64 messages to each".into()),
            Workload::Rendezvous => notes.push(
                "LPUSH + BRPOP ack per message; the consumer keeps 2 BLMOVE data ack posted".into(),
            ),
            Workload::Workq => notes.push("one shared list, ended by empty messages".into()),
            _ => {}
        }
        notes
    }

    fn stop(mut self: Box<Self>) -> Result<()> {
        match self.daemon.take() {
            Some(daemon) => daemon.stop(),
            None => Ok(()),
        }
    }
}

fn connect(args: &RoleArgs) -> Result<Connection> {
    Connection::connect(args.socket()?)
}

/// Messages per command and commands in flight on a pipelining
/// connection, for a window of `window` messages (the run's `--window`
/// capped by the capacity): batches of at most 64 (a variadic `LPUSH` or a
/// `BLMPOP ... COUNT`) with 8 commands in flight, so that Redis always has
/// the next command while it answers one (stream, fanout, workq: 64 x 8).
/// Below 64 messages (large: 16 of 1 MiB) one message per command: copying
/// the payload is the cost there, not the command.
fn batching(window: usize) -> (usize, usize) {
    if window < 64 {
        (1, window.max(1))
    } else {
        let batch = (window / 8).min(64);
        (batch, window / batch)
    }
}

/// Variadic `LPUSH` of a batch of messages to every list, pipelined: at
/// most `commands` batches unanswered, so never more than the window of
/// messages in flight.
struct BatchedSink {
    connection: Connection,
    lists: Vec<String>,
    batch: u64,
    commands: usize,
}

impl Sink for BatchedSink {
    fn send_all(&mut self, payloads: &Payloads) -> Result<()> {
        let connection = &mut self.connection;
        let mut scratch = Vec::new();
        let count = payloads.count();
        let mut next = 0;
        let mut in_flight = 0;
        loop {
            while next < count && in_flight < self.commands {
                let taken = self.batch.min(count - next);
                for list in &self.lists {
                    // `LPUSH list m1 m2 ...` pushes m1 first: `BLMPOP RIGHT`
                    // pops them in order.
                    let out = &mut connection.outgoing;
                    resp::array(out, 2 + taken as usize);
                    resp::bulk(out, b"LPUSH");
                    resp::bulk(out, list.as_bytes());
                    for sequence in next..next + taken {
                        resp::bulk(out, payloads.get(sequence, &mut scratch));
                    }
                }
                next += taken;
                in_flight += 1;
            }
            if in_flight == 0 {
                return Ok(());
            }
            connection.flush()?;
            // A batch is answered when all its lists answered.
            let mut block = true;
            let mut answers = 0;
            while let Some(reply) = connection.next(block)? {
                resp::integer(&reply, connection.bytes())?;
                answers += 1;
                if answers == self.lists.len() {
                    answers = 0;
                    in_flight -= 1;
                }
                block = answers > 0;
            }
        }
    }
}

/// Rendezvous: `LPUSH` and the wait for the acknowledgement, per message.
/// The acknowledgement is the message itself, which the consumer's posted
/// `BLMOVE` moved to the ack list when it took it.
struct AcknowledgedSink {
    connection: Connection,
    list: String,
    ack: String,
}

impl Sink for AcknowledgedSink {
    fn send_all(&mut self, payloads: &Payloads) -> Result<()> {
        let connection = &mut self.connection;
        let mut scratch = Vec::new();
        for sequence in 0..payloads.count() {
            let payload = payloads.get(sequence, &mut scratch);
            connection.queue(&[b"LPUSH", self.list.as_bytes(), payload]);
            connection.queue(&[b"BRPOP", self.ack.as_bytes(), b"0"]);
            connection.flush()?;
            connection.expect_integer()?;
            let reply = connection.next(true)?.ok_or_else(|| anyhow!("no reply"))?;
            resp::popped(&reply, connection.bytes())?;
        }
        Ok(())
    }
}

/// The producer's way out.
pub fn sink(args: &RoleArgs) -> Result<Box<dyn Sink>> {
    let connection = connect(args)?;
    let (batch, commands) = batching(args.window());
    let lists = match args.workload {
        Workload::Rendezvous => {
            return Ok(Box::new(AcknowledgedSink {
                connection,
                list: list_of(args.workload, None),
                ack: ack_list(args.workload),
            }))
        }
        Workload::Fanout | Workload::FanoutLarge => (0..args.consumers)
            .map(|i| list_of(args.workload, Some(i)))
            .collect(),
        workload => vec![list_of(workload, None)],
    };
    Ok(Box::new(BatchedSink {
        connection,
        lists,
        batch: batch as u64,
        commands,
    }))
}

/// `BLMPOP 0 1 list RIGHT COUNT n`, pipelined: each answer is whatever the
/// list held, up to `n`, as soon as it holds anything.
struct BatchedSource {
    connection: Connection,
    list: String,
    batch: u64,
    commands: usize,
}

impl Source for BatchedSource {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        let connection = &mut self.connection;
        let limit = expected.unwrap_or(u64::MAX);
        let mut received = 0;
        // The COUNT of every pop in flight, oldest first. Pops are answered
        // in order and each takes up to its COUNT: a pop is asked only for
        // what the earlier ones cannot take, so none of them waits for a
        // message that will never come.
        let mut in_flight = VecDeque::with_capacity(self.commands);
        let mut asked: u64 = 0;
        let mut ended = false;
        let mut count = String::new();
        loop {
            while !ended && received + asked < limit && in_flight.len() < self.commands {
                let n = self.batch.min(limit - received - asked);
                count.clear();
                count.push_str(&n.to_string());
                connection.queue(&[
                    b"BLMPOP",
                    b"0",
                    b"1",
                    self.list.as_bytes(),
                    b"RIGHT",
                    b"COUNT",
                    count.as_bytes(),
                ]);
                in_flight.push_back(n);
                asked += n;
            }
            if in_flight.is_empty() {
                return Ok(());
            }
            connection.flush()?;
            let mut block = true;
            let mut delivered = false;
            while let Some(reply) = connection.next(block)? {
                block = false;
                asked -= in_flight.pop_front().unwrap_or(0);
                for value in resp::popped_many(&reply, connection.bytes())? {
                    if ended || value.is_empty() && expected.is_none() {
                        // The end of the shared list; the rest are ends too.
                        ended = true;
                        continue;
                    }
                    into.message(&connection.bytes()[value]);
                    received += 1;
                    delivered = true;
                }
            }
            if delivered {
                into.batch_end();
            }
        }
    }
}

/// Rendezvous: two `BLMOVE list ack` posted, so that Redis holds a waiting
/// receive whenever the producer pushes: the push is taken at once and its
/// move to the ack list answers the producer's `BRPOP`, without a trip
/// through this process.
struct TakingSource {
    connection: Connection,
    list: String,
    ack: String,
}

/// `BLMOVE`s a rendezvous consumer keeps posted.
const POSTED_TAKES: u64 = 2;

impl Source for TakingSource {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        let count = expected.ok_or_else(|| anyhow!("a rendezvous has a known count"))?;
        let connection = &mut self.connection;
        let take = [
            &b"BLMOVE"[..],
            self.list.as_bytes(),
            self.ack.as_bytes(),
            b"RIGHT",
            b"LEFT",
            b"0",
        ];
        let mut posted = 0;
        while posted < count.min(POSTED_TAKES) {
            connection.queue(&take);
            posted += 1;
        }
        connection.flush()?;
        for _ in 0..count {
            let reply = connection.next(true)?.ok_or_else(|| anyhow!("no reply"))?;
            let value = resp::moved(&reply, connection.bytes())?;
            into.message(&connection.bytes()[value]);
            into.batch_end();
            if posted < count {
                connection.queue(&take);
                connection.flush()?;
                posted += 1;
            }
        }
        Ok(())
    }
}

/// The consumer's way in.
pub fn source(args: &RoleArgs) -> Result<Box<dyn Source>> {
    let connection = connect(args)?;
    let (batch, commands) = batching(args.window());
    let list = match args.workload {
        Workload::Rendezvous => {
            return Ok(Box::new(TakingSource {
                connection,
                list: list_of(args.workload, None),
                ack: ack_list(args.workload),
            }))
        }
        Workload::Fanout | Workload::FanoutLarge => list_of(args.workload, Some(args.index)),
        workload => list_of(workload, None),
    };
    Ok(Box::new(BatchedSource {
        connection,
        list,
        batch: batch as u64,
        commands,
    }))
}

struct RttClient {
    connection: Connection,
}

impl Requester for RttClient {
    fn round_trip(&mut self, request: &Bytes, reply: &mut Vec<u8>) -> Result<()> {
        let connection = &mut self.connection;
        // No reply to the push: it would arrive alone, a wake-up for nothing.
        connection.queue(&[b"CLIENT", b"REPLY", b"SKIP"]);
        connection.queue(&[b"LPUSH", b"req", request]);
        connection.queue(&[b"BRPOP", b"rep", b"0"]);
        connection.flush()?;
        let answer = connection.next(true)?.ok_or_else(|| anyhow!("no reply"))?;
        let value = resp::popped(&answer, connection.bytes())?;
        reply.clear();
        reply.extend_from_slice(&connection.bytes()[value]);
        Ok(())
    }
}

/// The `rtt` requester.
pub fn requester(args: &RoleArgs) -> Result<Box<dyn Requester>> {
    Ok(Box::new(RttClient {
        connection: connect(args)?,
    }))
}

struct RttEcho {
    connection: Connection,
}

impl Echo for RttEcho {
    fn serve(&mut self, count: u64) -> Result<()> {
        let connection = &mut self.connection;
        let mut request = Vec::new();
        if count > 0 {
            connection.queue(&[b"BRPOP", b"req", b"0"]);
            connection.flush()?;
        }
        for served in 1..=count {
            let reply = connection.next(true)?.ok_or_else(|| anyhow!("no reply"))?;
            let value = resp::popped(&reply, connection.bytes())?;
            request.clear();
            request.extend_from_slice(&connection.bytes()[value]);
            // The reply and the next pop leave in one write; the push's own
            // reply is skipped.
            connection.queue(&[b"CLIENT", b"REPLY", b"SKIP"]);
            connection.queue(&[b"LPUSH", b"rep", &request]);
            if served < count {
                connection.queue(&[b"BRPOP", b"req", b"0"]);
            }
            connection.flush()?;
        }
        Ok(())
    }
}

/// The `rtt` echo.
pub fn echo(args: &RoleArgs) -> Result<Box<dyn Echo>> {
    Ok(Box::new(RttEcho {
        connection: connect(args)?,
    }))
}

/// `conns`: this process's share of the connections, each blocked in a
/// `BRPOP` on its own list; ready once every `BRPOP` is written.
pub fn conns_waiter(args: &RoleArgs) -> Result<Value> {
    let check = Arc::new(ConnsCheck::new(args)?);
    let socket = args.socket()?.clone();
    let range = args.waiter_range();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
        let (set_up, set_up_results) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        for index in range.clone() {
            let (socket, check, connecting) = (socket.clone(), check.clone(), connecting.clone());
            let set_up = set_up.clone();
            tasks.spawn(async move {
                let blocked = async {
                    let _permit = connecting.acquire_owned().await?;
                    let mut stream = connect_async(&socket).await?;
                    let mut command = Vec::new();
                    let list = conns_list(index);
                    resp::command(&mut command, &[b"BRPOP", list.as_bytes(), b"0"]);
                    stream.write_all(&command).await?;
                    anyhow::Ok(stream)
                };
                let mut stream = match blocked.await {
                    Ok(stream) => {
                        let _ = set_up.send(Ok(()));
                        stream
                    }
                    Err(error) => {
                        let _ = set_up.send(Err(format!("connection {index}: {error:#}")));
                        return Err(error);
                    }
                };
                let mut incoming = Vec::with_capacity(256);
                let value = loop {
                    if let Some((reply, _)) = resp::parse(&incoming, 0)? {
                        break resp::popped(&reply, &incoming)?;
                    }
                    let mut chunk = [0u8; 512];
                    let read = stream.read(&mut chunk).await?;
                    if read == 0 {
                        bail!("redis closed connection {index}");
                    }
                    incoming.extend_from_slice(&chunk[..read]);
                };
                let at = now_ns();
                let problem = check.problem(index, &incoming[value]);
                anyhow::Ok((at, problem, stream))
            });
        }
        drop(set_up);
        crate::roles::ready_then_collect(set_up_results, range, &mut tasks).await
    })
}

/// Connects, retrying while the server's listen backlog is full.
async fn connect_async(socket: &Path) -> Result<tokio::net::UnixStream> {
    let mut attempts = 0;
    loop {
        match tokio::net::UnixStream::connect(socket).await {
            Ok(stream) => return Ok(stream),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock && attempts < 1000 => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// `conns`: one connection pushes one message to every connection's list,
/// pipelined.
pub fn conns_sender(args: &RoleArgs) -> Result<Value> {
    let count = u64::from(args.consumers);
    let payloads = Payloads::new(args.seed, args.size, 0, count)?;
    let mut connection = connect(args)?;
    let window = args.window.max(1);
    let mut scratch = Vec::new();
    let start_ns = now_ns();
    let mut next = 0;
    let mut in_flight = 0;
    while next < count || in_flight > 0 {
        while next < count && in_flight < window {
            let list = conns_list(next);
            connection.queue(&[b"LPUSH", list.as_bytes(), payloads.get(next, &mut scratch)]);
            next += 1;
            in_flight += 1;
        }
        connection.flush()?;
        let mut block = true;
        while let Some(reply) = connection.next(block)? {
            resp::integer(&reply, connection.bytes())?;
            in_flight -= 1;
            block = false;
        }
    }
    Ok(json!({ "sent": count, "start_ns": start_ns, "end_ns": now_ns() }))
}
