//! `redis`: Redis 7 over its Unix socket, lists as mailboxes (`LPUSH` to
//! put, `BRPOP` to take, so each list is FIFO), spoken in RESP by hand.
//! Pipelined exactly where `mailboxd`'s client pipelines: producers and
//! consumers of the one-way workloads keep up to the window of commands in
//! flight; rendezvous and rtt write a send and the next blocking pop
//! together (as mailboxd's rtt does); the conns waiters do not pipeline.
//!
//! | workload | lists | how |
//! |---|---|---|
//! | stream, large | one | pipelined `LPUSH`, pipelined `BRPOP` |
//! | fanout | one per subscriber | pipelined `LPUSH` to each of the 8 lists per message (8 commands) |
//! | workq | one shared | 4 pipelined producers, 4 pipelined consumers; after the producers finish the orchestrator pushes one empty message per consumer per window, and a consumer stops asking at the first |
//! | rendezvous | data and ack | `LPUSH` + `BRPOP ack` written together per message; the consumer answers each with `LPUSH ack` + its next `BRPOP` |
//! | rtt | `req`, `rep` | A writes `LPUSH req` + `BRPOP rep` together; B answers with `LPUSH rep` + its next `BRPOP req` written together, so a `BRPOP` is always waiting; one request in flight |
//! | conns | one per connection | every connection blocks in `BRPOP`; one connection then pushes to all, pipelined |
//!
//! Lists have no capacity, so Redis never makes a producer wait: the
//! `note` says so. Each run starts its own `redis-server` on a private
//! socket (`--port 0`, no persistence) and stops it by its pid.

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
use crate::process::{announce_ready, now_ns, Daemon, Deadline};
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
            Workload::Rtt => "LPUSH req + BRPOP rep written together; the echo's LPUSH rep + \
                              next BRPOP req likewise"
                .to_owned(),
            _ => "lists are unbounded: producers never wait for room".to_owned(),
        }];
        match self.workload {
            Workload::Fanout => {
                notes.push("one list per subscriber, 8 pipelined LPUSH per message".into())
            }
            Workload::Rendezvous => {
                notes.push("LPUSH + BRPOP on an ack list per message, written together".into())
            }
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

/// Pipelined `LPUSH` of every message to every list.
struct PipelinedSink {
    connection: Connection,
    lists: Vec<String>,
    window: usize,
}

impl Sink for PipelinedSink {
    fn send_all(&mut self, payloads: &Payloads) -> Result<()> {
        let connection = &mut self.connection;
        let mut scratch = Vec::new();
        let mut next = 0;
        let mut in_flight = 0;
        loop {
            while next < payloads.count() && in_flight < self.window {
                let payload = payloads.get(next, &mut scratch);
                for list in &self.lists {
                    connection.queue(&[b"LPUSH", list.as_bytes(), payload]);
                    in_flight += 1;
                }
                next += 1;
            }
            if in_flight == 0 {
                return Ok(());
            }
            connection.flush()?;
            let mut block = true;
            while let Some(reply) = connection.next(block)? {
                resp::integer(&reply, connection.bytes())?;
                in_flight -= 1;
                block = false;
            }
        }
    }
}

/// Rendezvous: `LPUSH` and the wait for the acknowledgement, per message.
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
    Ok(match args.workload {
        Workload::Rendezvous => Box::new(AcknowledgedSink {
            connection,
            list: list_of(args.workload, None),
            ack: ack_list(args.workload),
        }),
        Workload::Fanout => Box::new(PipelinedSink {
            connection,
            lists: (0..args.consumers)
                .map(|i| list_of(args.workload, Some(i)))
                .collect(),
            window: args.window(),
        }),
        workload => Box::new(PipelinedSink {
            connection,
            lists: vec![list_of(workload, None)],
            window: args.window(),
        }),
    })
}

/// Pipelined `BRPOP`.
struct PipelinedSource {
    connection: Connection,
    list: String,
    window: usize,
}

impl Source for PipelinedSource {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        let connection = &mut self.connection;
        let limit = expected.unwrap_or(u64::MAX);
        let mut issued = 0;
        let mut in_flight = 0;
        let mut ended = false;
        loop {
            while !ended && issued < limit && in_flight < self.window {
                connection.queue(&[b"BRPOP", self.list.as_bytes(), b"0"]);
                issued += 1;
                in_flight += 1;
            }
            if in_flight == 0 {
                return Ok(());
            }
            connection.flush()?;
            let mut block = true;
            let mut delivered = false;
            while let Some(reply) = connection.next(block)? {
                block = false;
                in_flight -= 1;
                let value = resp::popped(&reply, connection.bytes())?;
                if value.is_empty() && expected.is_none() {
                    // The end of the shared list; the rest are ends too.
                    ended = true;
                    continue;
                }
                into.message(&connection.bytes()[value]);
                delivered = true;
            }
            if delivered {
                into.batch_end();
            }
        }
    }
}

/// Rendezvous: take one, acknowledge it together with the next `BRPOP`.
struct AcknowledgingSource {
    connection: Connection,
    list: String,
    ack: String,
}

impl Source for AcknowledgingSource {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        let count = expected.ok_or_else(|| anyhow!("a rendezvous has a known count"))?;
        let connection = &mut self.connection;
        if count == 0 {
            return Ok(());
        }
        connection.queue(&[b"BRPOP", self.list.as_bytes(), b"0"]);
        connection.flush()?;
        for received in 0..count {
            let reply = connection.next(true)?.ok_or_else(|| anyhow!("no reply"))?;
            let value = resp::popped(&reply, connection.bytes())?;
            into.message(&connection.bytes()[value]);
            into.batch_end();
            connection.queue(&[b"LPUSH", self.ack.as_bytes(), b"1"]);
            if received + 1 < count {
                connection.queue(&[b"BRPOP", self.list.as_bytes(), b"0"]);
            }
            connection.flush()?;
            connection.expect_integer()?;
        }
        Ok(())
    }
}

/// The consumer's way in.
pub fn source(args: &RoleArgs) -> Result<Box<dyn Source>> {
    let connection = connect(args)?;
    Ok(match args.workload {
        Workload::Rendezvous => Box::new(AcknowledgingSource {
            connection,
            list: list_of(args.workload, None),
            ack: ack_list(args.workload),
        }),
        Workload::Fanout => Box::new(PipelinedSource {
            connection,
            list: list_of(args.workload, Some(args.index)),
            window: args.window(),
        }),
        workload => Box::new(PipelinedSource {
            connection,
            list: list_of(workload, None),
            window: args.window(),
        }),
    })
}

struct RttClient {
    connection: Connection,
}

impl Requester for RttClient {
    fn round_trip(&mut self, request: &Bytes, reply: &mut Vec<u8>) -> Result<()> {
        let connection = &mut self.connection;
        connection.queue(&[b"LPUSH", b"req", request]);
        connection.queue(&[b"BRPOP", b"rep", b"0"]);
        connection.flush()?;
        connection.expect_integer()?;
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
            // The reply and the next pop leave in one write.
            connection.queue(&[b"LPUSH", b"rep", &request]);
            if served < count {
                connection.queue(&[b"BRPOP", b"req", b"0"]);
            }
            connection.flush()?;
            connection.expect_integer()?;
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
        let (set_up, mut set_up_results) = tokio::sync::mpsc::unbounded_channel();
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
        for _ in range {
            match set_up_results.recv().await {
                Some(Ok(())) => {}
                Some(Err(error)) => bail!("setting up: {error}"),
                None => bail!("a connection task ended while setting up"),
            }
        }
        announce_ready()?;
        crate::roles::collect_waiters(&mut tasks).await
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
