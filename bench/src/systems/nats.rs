//! `nats`: core NATS (no JetStream) through its official Rust client,
//! `async-nats`, against a private `nats-server` on loopback TCP (NATS has
//! no Unix socket listener). Subjects play the mailboxes; each role process
//! runs the client on its own single-threaded tokio runtime.
//!
//! | workload | subjects | how |
//! |---|---|---|
//! | stream, large | `stream` | the producer publishes with its acknowledgement subject as the reply subject; the consumer subscribes |
//! | fanout | `fanout` | one publish per message; the 8 subscribers each get it from the server (NATS's own fan-out) |
//! | workq | `workq`, `workq.end` | 4 publishers; 4 subscribers in one queue group (the server hands each message to one of them); after the producers finish, one publish on `workq.end`, which every consumer also subscribes to, ends them |
//! | conns | `c<N>` per connection | every connection (its own client) subscribes to its own subject; once all are subscribed (flushed), one connection publishes one message to each subject |
//! | rtt | `rtt`, A's inbox | A subscribes once to an inbox of its own and publishes each request with it as the reply subject, then waits on that subscription (faster than `Client::request`: see `bench/README.md`); B subscribes and publishes each request back to its reply subject |
//!
//! Flow control: a core NATS publish completes when the client has the
//! message, and the server drops (or disconnects) a subscriber that falls
//! behind: there is no back-pressure. So every producer keeps at most a
//! window of messages unacknowledged (the run's `--window`, capped by the
//! workload's capacity, as the other pipelining systems): each consumer
//! publishes a small acknowledgement (its number and how many it took) to
//! the message's reply subject every quarter window, and whenever it has
//! read everything that had arrived. Fanout's producer counts against its
//! slowest subscriber; workq's against all consumers together. A producer
//! returns once every message it sent is acknowledged, so a lost message is
//! a failed run, never a quietly shorter one.
//!
//! `rendezvous`, `memory` and `idle-mailboxes` are not run: see
//! [`unsupported`].

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{anyhow, ensure, Context as _, Result};
use async_nats::{Client, Message, Subject, Subscriber};
use futures_util::{FutureExt as _, StreamExt as _};
use mailbox_client::Bytes;
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use super::{Deliveries, Echo, Requester, Running, Setup, Sink, Source};
use crate::payload::Payloads;
use crate::process::{now_ns, Daemon, Deadline};
use crate::roles::{ConnsCheck, RoleArgs};
use crate::spec::{Shape, Workload};

/// The queue group of `workq`'s consumers.
const QUEUE_GROUP: &str = "consumers";

/// A consumer acknowledges after this fraction of a window (and whenever
/// it has read all that arrived).
const ACKS_PER_WINDOW: usize = 4;

/// Why core NATS cannot run `workload`, if it cannot.
pub fn unsupported(workload: Workload) -> Option<&'static str> {
    match workload {
        Workload::Stream
        | Workload::Fanout
        | Workload::FanoutLarge
        | Workload::Workq
        | Workload::Large
        | Workload::Rtt
        | Workload::Conns => None,
        Workload::Rendezvous => Some(
            "core NATS has no send that completes when the receiver took the message (its \
             emulation, a request answered on take, is what rtt measures)",
        ),
        Workload::Memory | Workload::IdleMailboxes => Some(
            "core NATS queues nothing in the server (a message without a subscriber is \
             dropped): there is no mailbox whose memory could be measured",
        ),
    }
}

/// The subject a one-way workload publishes on.
fn subject(workload: Workload) -> String {
    workload.id().to_owned()
}

/// Where `workq`'s consumers learn that the producers are done.
fn end_subject(workload: Workload) -> String {
    format!("{}.end", workload.id())
}

/// Where producer `index`'s messages are acknowledged.
fn ack_subject(workload: Workload, index: u32) -> String {
    format!("{}.ack.{index}", workload.id())
}

/// A single-threaded runtime for one role's client.
fn runtime() -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A role's runtime and the client objects that live on it, dropped
/// inside it (an `async-nats` subscription unsubscribes from a task it
/// spawns when dropped).
struct OnRuntime<T> {
    runtime: Runtime,
    live: Option<T>,
}

impl<T> OnRuntime<T> {
    fn new(runtime: Runtime, live: T) -> OnRuntime<T> {
        OnRuntime {
            runtime,
            live: Some(live),
        }
    }

    /// The runtime, and the objects to use on it.
    fn parts(&mut self) -> (&Runtime, &mut T) {
        let live = self.live.as_mut().expect("live until dropped");
        (&self.runtime, live)
    }
}

impl<T> Drop for OnRuntime<T> {
    fn drop(&mut self) {
        let _inside = self.runtime.enter();
        self.live.take();
    }
}

/// The server's address, from the file [`Server`] wrote.
fn address(args: &RoleArgs) -> Result<String> {
    let file = args.socket()?;
    let address = std::fs::read_to_string(file)
        .with_context(|| format!("reading the NATS address from {}", file.display()))?;
    Ok(address.trim().to_owned())
}

async fn connect(address: &str) -> Result<Client> {
    async_nats::ConnectOptions::new()
        // No `request` of ours may time out under a loaded machine: the run's
        // own deadline is the limit.
        .request_timeout(None)
        .connect(address)
        .await
        .with_context(|| format!("connecting to nats at {address}"))
}

/// A `nats-server` started for one workload.
pub struct Server {
    daemon: Option<Daemon>,
    /// The file holding `nats://127.0.0.1:PORT`, passed to the roles as
    /// their `--socket`.
    address_file: PathBuf,
    address: String,
    workload: Workload,
}

impl Server {
    /// Starts `nats-server` on a free loopback port, logging to the run's
    /// directory.
    pub fn start(workload: Workload, shape: &Shape, setup: &Setup) -> Result<Server> {
        let binary = setup
            .nats_server
            .as_ref()
            .ok_or_else(|| anyhow!("nats-server is not installed"))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let socket_address = SocketAddr::from(([127, 0, 0, 1], port));
        // The payload limit must admit `large`'s 1 MiB (plus nothing: NATS
        // counts the payload only).
        let max_payload = shape.size.max(1 << 20);
        let config = setup.dir.join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: \"{socket_address}\"\nmax_payload: {max_payload}\nlog_file: \"{}\"\n",
                setup.dir.join("nats.log").display()
            ),
        )?;
        let mut command = Command::new(binary);
        command.arg("-c").arg(&config);
        let daemon = Daemon::start_until("nats-server", command, || {
            TcpStream::connect(socket_address).is_ok()
        })?;
        let address = format!("nats://{socket_address}");
        let address_file = setup.dir.join("nats.address");
        std::fs::write(&address_file, &address)?;
        Ok(Server {
            daemon: Some(daemon),
            address_file,
            address,
            workload,
        })
    }
}

impl Running for Server {
    fn socket(&self) -> Option<&Path> {
        Some(&self.address_file)
    }

    fn end_shared_queue(&mut self, _: &Shape, _: usize, _: Deadline) -> Result<()> {
        // Every message was acknowledged before its producer returned, so
        // nothing is in flight: one message to every consumer ends them.
        let runtime = runtime()?;
        runtime.block_on(async {
            let client = connect(&self.address).await?;
            client
                .publish(end_subject(self.workload), Bytes::new())
                .await?;
            client.flush().await?;
            anyhow::Ok(())
        })
    }

    fn wait_for_waiting(&mut self, _: u64, _: Deadline) -> Result<()> {
        // A waiter says ready once the server confirmed (flush) every one of
        // its subscriptions: they all wait already.
        Ok(())
    }

    fn server_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = vec!["core NATS over loopback TCP (nats-server has no Unix socket)".into()];
        notes.push(match self.workload {
            Workload::Conns => "one client and one subscription per connection".into(),
            Workload::Rtt => "publish with a fixed reply subscription's subject to an echo that \
                              publishes each request to it"
                .into(),
            Workload::Fanout | Workload::FanoutLarge => {
                "one publish per message, the server copies it to 8 \
                                 subscribers; the producer keeps a window unacknowledged by \
                                 the slowest"
                    .into()
            }
            Workload::Workq => "one queue group of 4 subscribers; each producer keeps a window \
                                unacknowledged"
                .into(),
            _ => "no back-pressure in NATS: the producer keeps a window unacknowledged by the \
                  consumer"
                .into(),
        });
        notes
    }

    fn stop(mut self: Box<Self>) -> Result<()> {
        match self.daemon.take() {
            Some(daemon) => daemon.stop_with(libc::SIGINT),
            None => Ok(()),
        }
    }
}

/// An acknowledgement: the consumer's number and how many more messages of
/// this producer it took.
fn ack_payload(consumer: u32, taken: u64) -> Bytes {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&consumer.to_le_bytes());
    out.extend_from_slice(&taken.to_le_bytes());
    Bytes::from(out)
}

fn parse_ack(payload: &[u8]) -> Result<(u32, u64)> {
    ensure!(
        payload.len() == 12,
        "an acknowledgement of {} bytes",
        payload.len()
    );
    let consumer = u32::from_le_bytes(payload[..4].try_into()?);
    let taken = u64::from_le_bytes(payload[4..].try_into()?);
    Ok((consumer, taken))
}

/// Publishes with at most a window unacknowledged.
struct WindowedSink {
    client: Client,
    subject: Subject,
    ack_subject: Subject,
    acks: Subscriber,
    window: u64,
    /// Fanout: acknowledgements are counted per subscriber and the slowest
    /// decides; otherwise they add up.
    per_subscriber: Option<usize>,
}

impl Sink for OnRuntime<WindowedSink> {
    fn send_all(&mut self, payloads: &Payloads) -> Result<()> {
        let (runtime, sink) = self.parts();
        let count = payloads.count();
        let mut acked_by = vec![0u64; sink.per_subscriber.unwrap_or(1)];
        let per_subscriber = sink.per_subscriber.is_some();
        let (client, acks) = (&sink.client, &mut sink.acks);
        let (subject, ack_subject, window) = (&sink.subject, &sink.ack_subject, sink.window);
        runtime.block_on(async move {
            let mut next = 0;
            loop {
                let acked = acked_by.iter().copied().min().unwrap_or(0);
                if acked >= count {
                    return Ok(());
                }
                while next < count && next - acked < window {
                    client
                        .publish_with_reply(
                            subject.clone(),
                            ack_subject.clone(),
                            payloads.bytes(next),
                        )
                        .await?;
                    next += 1;
                }
                let mut ack = acks.next().await;
                while let Some(message) = ack {
                    let (consumer, taken) = parse_ack(&message.payload)?;
                    let slot = if per_subscriber { consumer as usize } else { 0 };
                    *acked_by
                        .get_mut(slot)
                        .ok_or_else(|| anyhow!("an acknowledgement from consumer {consumer}"))? +=
                        taken;
                    ack = acks.next().now_or_never().flatten();
                }
            }
        })
    }
}

/// The producer's way out.
pub fn sink(args: &RoleArgs) -> Result<Box<dyn Sink>> {
    let runtime = runtime()?;
    let address = address(args)?;
    let workload = args.workload;
    let ack_subject = ack_subject(workload, args.index);
    let (client, acks) = runtime.block_on(async {
        let client = connect(&address).await?;
        let acks = client.subscribe(ack_subject.clone()).await?;
        // The server has the subscription before the producer says ready.
        client.flush().await?;
        anyhow::Ok((client, acks))
    })?;
    Ok(Box::new(OnRuntime::new(
        runtime,
        WindowedSink {
            client,
            subject: Subject::from(subject(workload)),
            ack_subject: Subject::from(ack_subject),
            acks,
            window: args.window() as u64,
            per_subscriber: workload.is_fanout().then_some(args.consumers as usize),
        },
    )))
}

/// Subscribes (workq: in the queue group, and to the end subject).
struct SubscribedSource {
    client: Client,
    index: u32,
    messages: Subscriber,
    end: Option<Subscriber>,
    ack_every: u64,
}

/// Acknowledgements owed, per reply subject (one per producer).
#[derive(Default)]
struct Owed(Vec<(Subject, u64)>);

impl Owed {
    /// Counts `message`; its subject's count when that is due.
    fn count(&mut self, message: &Message, due_at: u64) -> Option<(Subject, u64)> {
        let reply = message.reply.as_ref()?;
        let position = match self.0.iter().position(|(subject, _)| subject == reply) {
            Some(position) => position,
            None => {
                self.0.push((reply.clone(), 0));
                self.0.len() - 1
            }
        };
        let entry = &mut self.0[position];
        entry.1 += 1;
        (entry.1 >= due_at).then(|| (entry.0.clone(), std::mem::take(&mut entry.1)))
    }

    /// Every count not yet acknowledged.
    fn drain(&mut self) -> impl Iterator<Item = (Subject, u64)> + '_ {
        self.0
            .iter_mut()
            .filter(|(_, owed)| *owed > 0)
            .map(|(subject, owed)| (subject.clone(), std::mem::take(owed)))
    }
}

impl Source for OnRuntime<SubscribedSource> {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        let limit = expected.unwrap_or(u64::MAX);
        let (runtime, source) = self.parts();
        let (client, index, ack_every) = (&source.client, source.index, source.ack_every);
        let (messages, end) = (&mut source.messages, &mut source.end);
        runtime.block_on(async move {
            let mut owed = Owed::default();
            let mut received = 0;
            while received < limit {
                let first = match end.as_mut() {
                    Some(end) => tokio::select! {
                        biased;
                        message = messages.next() => message,
                        _ = end.next() => break,
                    },
                    None => messages.next().await,
                };
                let mut message = first;
                while let Some(taken) = message {
                    into.message(&taken.payload);
                    received += 1;
                    if let Some((reply, count)) = owed.count(&taken, ack_every) {
                        client.publish(reply, ack_payload(index, count)).await?;
                    }
                    if received == limit {
                        break;
                    }
                    message = messages.next().now_or_never().flatten();
                }
                into.batch_end();
                // Nothing more has arrived: the producers hear of all of it.
                for (reply, count) in owed.drain() {
                    client.publish(reply, ack_payload(index, count)).await?;
                }
            }
            client.flush().await?;
            anyhow::Ok(())
        })
    }
}

/// The consumer's way in.
pub fn source(args: &RoleArgs) -> Result<Box<dyn Source>> {
    let runtime = runtime()?;
    let address = address(args)?;
    let workload = args.workload;
    let (client, messages, end) = runtime.block_on(async {
        let client = connect(&address).await?;
        let (messages, end) = if workload == Workload::Workq {
            let messages = client
                .queue_subscribe(subject(workload), QUEUE_GROUP.to_owned())
                .await?;
            (
                messages,
                Some(client.subscribe(end_subject(workload)).await?),
            )
        } else {
            (client.subscribe(subject(workload)).await?, None)
        };
        // The server has the subscriptions before the consumer says ready:
        // core NATS drops what is published before.
        client.flush().await?;
        anyhow::Ok((client, messages, end))
    })?;
    Ok(Box::new(OnRuntime::new(
        runtime,
        SubscribedSource {
            client,
            index: args.index,
            messages,
            end,
            ack_every: (args.window() / ACKS_PER_WINDOW).max(1) as u64,
        },
    )))
}

/// `rtt`'s requester: one subscription on its own reply subject for all
/// round trips, each request published with it as the reply subject.
struct RttClient {
    client: Client,
    subject: Subject,
    inbox: Subject,
    replies: Subscriber,
}

impl Requester for OnRuntime<RttClient> {
    fn round_trip(&mut self, request: &Bytes, reply: &mut Vec<u8>) -> Result<()> {
        let (runtime, rtt) = self.parts();
        let answer = runtime.block_on(async {
            rtt.client
                .publish_with_reply(rtt.subject.clone(), rtt.inbox.clone(), request.clone())
                .await?;
            rtt.replies
                .next()
                .await
                .ok_or_else(|| anyhow!("the reply subscription ended"))
        })?;
        reply.clear();
        reply.extend_from_slice(&answer.payload);
        Ok(())
    }
}

/// The `rtt` requester.
pub fn requester(args: &RoleArgs) -> Result<Box<dyn Requester>> {
    let runtime = runtime()?;
    let address = address(args)?;
    let (client, inbox, replies) = runtime.block_on(async {
        let client = connect(&address).await?;
        let inbox = Subject::from(client.new_inbox());
        let replies = client.subscribe(inbox.clone()).await?;
        // The server has the subscription before the first request.
        client.flush().await?;
        anyhow::Ok((client, inbox, replies))
    })?;
    Ok(Box::new(OnRuntime::new(
        runtime,
        RttClient {
            client,
            subject: Subject::from(subject(Workload::Rtt)),
            inbox,
            replies,
        },
    )))
}

struct RttEcho {
    client: Client,
    requests: Subscriber,
}

impl Echo for OnRuntime<RttEcho> {
    fn serve(&mut self, count: u64) -> Result<()> {
        let (runtime, echo) = self.parts();
        let (client, requests) = (&echo.client, &mut echo.requests);
        runtime.block_on(async move {
            for _ in 0..count {
                let request = requests
                    .next()
                    .await
                    .ok_or_else(|| anyhow!("the subscription ended"))?;
                let reply = request
                    .reply
                    .ok_or_else(|| anyhow!("a request without a reply subject"))?;
                client.publish(reply, request.payload).await?;
            }
            client.flush().await?;
            anyhow::Ok(())
        })
    }
}

/// The `rtt` echo.
pub fn echo(args: &RoleArgs) -> Result<Box<dyn Echo>> {
    let runtime = runtime()?;
    let address = address(args)?;
    let (client, requests) = runtime.block_on(async {
        let client = connect(&address).await?;
        let requests = client.subscribe(subject(Workload::Rtt)).await?;
        client.flush().await?;
        anyhow::Ok((client, requests))
    })?;
    Ok(Box::new(OnRuntime::new(
        runtime,
        RttEcho { client, requests },
    )))
}

/// Connections each `conns` waiter process opens at once while setting up.
const CONNECT_CONCURRENCY: usize = 64;

fn conns_subject(index: u64) -> String {
    format!("c{index}")
}

/// `conns`: this process's share of the connections, each a client
/// subscribed to its own subject; ready once the server confirmed every
/// subscription.
pub fn conns_waiter(args: &RoleArgs) -> Result<Value> {
    let check = Arc::new(ConnsCheck::new(args)?);
    let address = address(args)?;
    let range = args.waiter_range();
    let runtime = runtime()?;
    runtime.block_on(async move {
        let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
        let (set_up, set_up_results) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        for index in range.clone() {
            let (address, check, connecting) = (address.clone(), check.clone(), connecting.clone());
            let set_up = set_up.clone();
            tasks.spawn(async move {
                let subscribed = async {
                    let _permit = connecting.acquire_owned().await?;
                    let client = connect(&address).await?;
                    let subscriber = client.subscribe(conns_subject(index)).await?;
                    client.flush().await?;
                    anyhow::Ok((client, subscriber))
                };
                let (client, mut subscriber) = match subscribed.await {
                    Ok(pair) => {
                        let _ = set_up.send(Ok(()));
                        pair
                    }
                    Err(error) => {
                        let _ = set_up.send(Err(format!("connection {index}: {error:#}")));
                        return Err(error);
                    }
                };
                let message = subscriber
                    .next()
                    .await
                    .ok_or_else(|| anyhow!("connection {index}: the subscription ended"))?;
                let at = now_ns();
                let problem = check.problem(index, &message.payload);
                anyhow::Ok((at, problem, (client, subscriber)))
            });
        }
        drop(set_up);
        crate::roles::ready_then_collect(set_up_results, range, &mut tasks).await
    })
}

/// `conns`: one connection publishes one message to every connection's
/// subject.
pub fn conns_sender(args: &RoleArgs) -> Result<Value> {
    let count = u64::from(args.consumers);
    let payloads = Payloads::new(args.seed, args.size, 0, count)?;
    let address = address(args)?;
    let runtime = runtime()?;
    runtime.block_on(async move {
        let client = connect(&address).await?;
        let start_ns = now_ns();
        for index in 0..count {
            client
                .publish(conns_subject(index), payloads.bytes(index))
                .await?;
        }
        client.flush().await?;
        let end_ns = now_ns();
        Ok(json!({ "sent": count, "start_ns": start_ns, "end_ns": end_ns }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_round_trip() {
        assert_eq!(parse_ack(&ack_payload(7, 1 << 40)).unwrap(), (7, 1 << 40));
        assert!(parse_ack(b"short").is_err());
    }

    #[test]
    fn the_workloads_core_nats_runs() {
        let runs: Vec<_> = Workload::ALL
            .into_iter()
            .filter(|&w| unsupported(w).is_none())
            .collect();
        assert_eq!(
            runs,
            [
                Workload::Stream,
                Workload::Rtt,
                Workload::Fanout,
                Workload::Workq,
                Workload::Large,
                Workload::FanoutLarge,
                Workload::Conns
            ]
        );
    }
}
