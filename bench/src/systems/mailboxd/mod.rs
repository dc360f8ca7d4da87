//! `mailboxd`, the system under test, driven through `mailbox-client` the
//! way a user who wants throughput drives it: batches (`send_stream` /
//! `receive_stream`), several in flight, and requests that can travel
//! together written together.
//!
//! | workload | mailboxes (as the spec's table) | producer | consumer |
//! |---|---|---|---|
//! | stream, large | one, bounded 1024 / 16, round-robin | blocking client, `send_stream` | `receive_stream` |
//! | fanout | one, bounded 1024, broadcast | `send_stream` (each batch receipt must name 8 recipients) | subscribes before the producer starts, then `receive_stream` |
//! | workq | one shared, bounded 1024, round-robin | 4 x `send_stream` | 4 x `receive_stream` of batches of 64, 128 posted each, so that each keeps its turn (receivers take turns by connection); the producers go once every consumer's receives wait (`info`); the orchestrator deletes the drained mailbox to end them (`MailboxDeleted`) |
//! | rendezvous | one, zero capacity | blocking `send`, one in flight (each completes before the next, by definition) | `receive_stream` of single messages with 2 receives posted, so that a send completes as soon as it reaches the broker |
//! | rtt | `req` and `rep`, bounded 1 | blocking client, `exchange`: a quiet `send(req)` and `receive(rep)` leave in one write, one answer read | blocking client, `exchange`: a quiet `send(rep)` and the next `receive(req)` in one write, so a receive is always posted |
//! | conns | one bounded-1 mailbox per connection, created by it | async client, one connection, a task per send | async client per connection, one `receive` each |
//! | memory | one, unbounded | `send_stream` fills it; the broker's RSS is read | then `receive_stream` drains it, verifying |
//! | idle-mailboxes | created by one connection, default settings (unbounded) | - | - |
//!
//! Batch sizes and batches in flight per workload: [`Batching::plan`]
//! (`--batch`, `--batches` override them). With `--mailboxd-api
//! pipelined` the one-way workloads go one request per message instead
//! (`send_pipelined` / `receive_pipelined`, window min(`--window`,
//! capacity)), `rtt` is a blocking `send(req)` then `receive(rep)` (and
//! `receive(req)` then `send(rep)`), and the rendezvous consumer a blocking
//! `receive` at a time.
//!
//! `mailboxd-files` is the same broker with the payloads of the large
//! workloads as sealed memory files ([`files`]): the producer writes each
//! message straight into a fresh memory file (`FileWriter`), seals it and
//! sends it (`send_file`, one in flight: the client has no pipelined file
//! send); each consumer keeps single receives posted (`receive_pipelined`:
//! `ReceiveMany` answers carry files inline, `Receive` answers carry the
//! file), maps what arrives read-only, checks it as every system does and
//! also reads every byte once.
//!
//! Each run starts its own broker on a fresh socket in the run's directory,
//! stops it with SIGTERM, and kills it if the run fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use mailbox_client::blocking::Client;
use mailbox_client::{Capacity, DeliveryPolicy, ErrorKind, MailboxSettings, Message, Wait};
use serde_json::{json, Value};

use super::{Deliveries, Echo, Requester, Running, Setup, Sink, Source};
use crate::payload::Payloads;
use crate::process::{now_ns, Daemon, Deadline};
use crate::roles::{ConnsCheck, MailboxdApi, RoleArgs};
use crate::spec::{Shape, System, Workload, UNBOUNDED};

mod batching;
mod files;

use batching::batching;
pub use batching::Batching;

/// The mailbox a one-way workload uses.
fn mailbox_of(workload: Workload) -> &'static str {
    workload.id()
}

/// The mailbox of connection `index` in `conns`.
fn conns_mailbox(index: u64) -> String {
    format!("c{index}")
}

/// Mailbox number `index` of `idle-mailboxes`.
fn idle_mailbox(index: u64) -> String {
    format!("idle{index}")
}

/// Connections each `conns` waiter process opens at once while setting up.
const CONNECT_CONCURRENCY: usize = 64;

fn settings(capacity: u32, policy: DeliveryPolicy, size: usize) -> Result<MailboxSettings> {
    Ok(MailboxSettings {
        capacity: match capacity {
            0 => Capacity::Zero,
            UNBOUNDED => Capacity::Unbounded,
            n => Capacity::Bounded(n),
        },
        policy,
        max_message_size: u32::try_from(size)?.max(mailbox_client::DEFAULT_MAX_MESSAGE_SIZE),
        ..MailboxSettings::default()
    })
}

/// A broker started for one workload, with a connection to set it up.
pub struct Server {
    daemon: Option<Daemon>,
    admin: Option<Client>,
    socket: PathBuf,
    workload: Workload,
    /// Receives the consumers keep posted in all (`workq`'s start waits
    /// for them).
    consumer_receives: u64,
    notes: Vec<String>,
}

impl Server {
    /// Starts `mailboxd` on a fresh socket and creates the workload's
    /// mailboxes, for `system`'s form of the payloads.
    pub fn start(
        system: System,
        workload: Workload,
        shape: &Shape,
        setup: &Setup,
    ) -> Result<Server> {
        let binary = setup
            .mailboxd
            .as_ref()
            .ok_or_else(|| anyhow!("no mailboxd binary"))?;
        let socket = setup.dir.join("mailboxd.sock");
        let mut command = Command::new(binary);
        command
            .arg("--socket")
            .arg(&socket)
            .args(["--log-level", "warn"])
            // Every party runs as one uid: the conns workload's 10,000
            // clients are past the default per-uid share (1024) unless
            // that uid is root.
            .args(["--max-connections-per-uid", "16384"]);
        let daemon = Daemon::start("mailboxd", command, &socket)?;
        let mut admin = Client::connect(&socket)?;
        let mut create = |name: &str, policy| -> Result<()> {
            admin
                .create(name, settings(shape.capacity, policy, shape.size)?)
                .with_context(|| format!("creating mailbox {name}"))?;
            Ok(())
        };
        match workload {
            Workload::Rtt => {
                create("req", DeliveryPolicy::RoundRobin)?;
                create("rep", DeliveryPolicy::RoundRobin)?;
            }
            Workload::Fanout | Workload::FanoutLarge => {
                create(mailbox_of(workload), DeliveryPolicy::Broadcast)?
            }
            // Each connection creates its own; the creator makes them all.
            Workload::Conns | Workload::IdleMailboxes => {}
            _ => create(mailbox_of(workload), DeliveryPolicy::RoundRobin)?,
        }
        let window = match shape.capacity {
            0 => 1,
            capacity => setup.window.min(capacity as usize).max(1),
        };
        let plan = Batching::plan(workload, shape, setup.batch, setup.batches);
        let note = match (workload, setup.mailboxd_api) {
            _ if system == System::MailboxdFiles => files::describe(workload, shape),
            (Workload::Conns, _) => "async client, one connection per waiter".to_owned(),
            (Workload::IdleMailboxes, _) => {
                "default settings (unbounded, round-robin), created by one connection".to_owned()
            }
            (Workload::Rtt, MailboxdApi::Batched) => "blocking client, exchange: A's quiet \
                send(req) + receive(rep) in one write, B's quiet send(rep) + the next \
                receive(req) in one write; one answer read per step"
                .to_owned(),
            (Workload::Rtt, MailboxdApi::Pipelined) => "blocking client: send(req) then \
                receive(rep); B receive(req) then send(rep)"
                .to_owned(),
            (Workload::Rendezvous, MailboxdApi::Pipelined) => {
                "blocking send / receive, one in flight".to_owned()
            }
            (_, MailboxdApi::Pipelined) => {
                format!("send_pipelined / receive_pipelined, window {window}")
            }
            (_, MailboxdApi::Batched) => plan.describe(workload),
        };
        let per_consumer = match setup.mailboxd_api {
            _ if system == System::MailboxdFiles => files::receive_window(workload, shape.capacity),
            MailboxdApi::Batched => plan.receive_window,
            MailboxdApi::Pipelined => window,
        };
        let consumer_receives = u64::from(shape.consumers) * per_consumer as u64;
        Ok(Server {
            daemon: Some(daemon),
            admin: Some(admin),
            socket,
            workload,
            consumer_receives,
            notes: vec![note],
        })
    }

    fn admin(&mut self) -> Result<&mut Client> {
        self.admin
            .as_mut()
            .ok_or_else(|| anyhow!("the set-up connection is closed"))
    }
}

impl Running for Server {
    fn socket(&self) -> Option<&Path> {
        Some(&self.socket)
    }

    fn end_shared_queue(
        &mut self,
        _shape: &Shape,
        _window: usize,
        deadline: Deadline,
    ) -> Result<()> {
        let mailbox = mailbox_of(self.workload);
        let admin = self.admin()?;
        // Every send was acknowledged, so every message is admitted; once
        // none is buffered, each has been handed to a receive, and deleting
        // the mailbox only ends the receives still waiting.
        deadline.wait_until("the shared mailbox to drain", || {
            let info = admin.info(mailbox)?;
            Ok(info.queued_messages == 0 && info.waiting_senders == 0)
        })?;
        admin.delete(mailbox)?;
        Ok(())
    }

    fn wait_for_consumers(&mut self, deadline: Deadline) -> Result<()> {
        let (mailbox, expected) = (mailbox_of(self.workload), self.consumer_receives);
        let admin = self.admin()?;
        deadline.wait_until("every consumer's receives to wait", || {
            Ok(u64::from(admin.info(mailbox)?.waiting_receivers) >= expected)
        })
    }

    fn wait_for_waiting(&mut self, count: u64, deadline: Deadline) -> Result<()> {
        let admin = self.admin()?;
        for index in 0..count {
            let name = conns_mailbox(index);
            deadline.wait_until("every connection's receive to wait", || {
                Ok(admin
                    .info(&name)
                    .map(|info| info.waiting_receivers >= 1)
                    .unwrap_or(false))
            })?;
        }
        Ok(())
    }

    fn server_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn stop(mut self: Box<Self>) -> Result<()> {
        drop(self.admin.take());
        match self.daemon.take() {
            Some(daemon) => daemon.stop(),
            None => Ok(()),
        }
    }
}

fn connect(args: &RoleArgs) -> Result<Client> {
    Ok(Client::connect(args.socket()?)?)
}

struct PipelinedSink {
    client: Client,
    mailbox: &'static str,
    window: usize,
    /// Broadcast: every receipt must name this many recipients.
    recipients: Option<u32>,
}

impl Sink for PipelinedSink {
    fn send_all(&mut self, payloads: &Payloads) -> Result<()> {
        let messages = (0..payloads.count()).map(|sequence| payloads.bytes(sequence));
        let receipts = self
            .client
            .send_pipelined(self.mailbox, messages, self.window, Wait::Forever)
            .map_err(|error| anyhow!("pipelined send failed: {error}"))?;
        if receipts.len() as u64 != payloads.count() {
            bail!("{} receipts for {} sends", receipts.len(), payloads.count());
        }
        if let Some(expected) = self.recipients {
            if let Some(short) = receipts.iter().find(|r| r.recipients != expected) {
                bail!(
                    "message #{} reached {} subscribers, not {expected}",
                    short.sequence,
                    short.recipients
                );
            }
        }
        Ok(())
    }
}

/// Batches (`SendMany`), several in flight.
struct BatchedSink {
    client: Client,
    mailbox: &'static str,
    batch: usize,
    batches_in_flight: usize,
    recipients: Option<u32>,
}

impl Sink for BatchedSink {
    fn send_all(&mut self, payloads: &Payloads) -> Result<()> {
        let messages = (0..payloads.count()).map(|sequence| payloads.bytes(sequence));
        let receipt = self
            .client
            .send_stream(
                self.mailbox,
                messages,
                self.batch,
                self.batches_in_flight,
                Wait::Forever,
            )
            .map_err(|error| anyhow!("streamed send failed: {error}"))?;
        if receipt.accepted as u64 != payloads.count() {
            bail!(
                "{} of {} sends accepted",
                receipt.accepted,
                payloads.count()
            );
        }
        if let Some(expected) = self.recipients {
            if let Some(short) = receipt.batches.iter().find(|b| b.recipients != expected) {
                bail!(
                    "batch from #{} reached {} subscribers, not {expected}",
                    short.first_sequence,
                    short.recipients
                );
            }
        }
        Ok(())
    }
}

/// Rendezvous: one blocking send at a time (each must complete, that is be
/// taken, before the next).
struct OneByOneSink {
    client: Client,
    mailbox: &'static str,
}

impl Sink for OneByOneSink {
    fn send_all(&mut self, payloads: &Payloads) -> Result<()> {
        for sequence in 0..payloads.count() {
            self.client.send(self.mailbox, payloads.bytes(sequence))?;
        }
        Ok(())
    }
}

/// The producer's way out for `args`' workload.
pub fn sink(args: &RoleArgs) -> Result<Box<dyn Sink>> {
    if args.system == System::MailboxdFiles {
        return files::sink(args);
    }
    let client = connect(args)?;
    let mailbox = mailbox_of(args.workload);
    let recipients = args.workload.is_fanout().then_some(args.consumers);
    Ok(match (args.workload, args.mailboxd_api) {
        (Workload::Rendezvous, _) => Box::new(OneByOneSink { client, mailbox }),
        (_, MailboxdApi::Pipelined) => Box::new(PipelinedSink {
            client,
            mailbox,
            window: args.window(),
            recipients,
        }),
        (_, MailboxdApi::Batched) => {
            let plan = batching(args);
            Box::new(BatchedSink {
                client,
                mailbox,
                batch: plan.send_batch,
                batches_in_flight: plan.send_window,
                recipients,
            })
        }
    })
}

/// What ends a consumer's stream without an error: a shared queue (no
/// known count) ends when the orchestrator deletes it, drained. A receive
/// waiting then is answered `MailboxDeleted`; one the stream posts just
/// after (its window refilled as an answer came in) finds `NoSuchMailbox`.
/// Both are the end; a mailbox that never existed would leave the
/// consumers without messages, which verification reports.
fn ended(received: Result<usize, mailbox_client::Error>, expected: Option<u64>) -> Result<()> {
    match received {
        Ok(_) => Ok(()),
        Err(error)
            if expected.is_none()
                && matches!(
                    error.kind(),
                    Some(ErrorKind::MailboxDeleted | ErrorKind::NoSuchMailbox)
                ) =>
        {
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// The messages to ask for: all of them, or until the stream ends.
fn wanted(expected: Option<u64>) -> Result<usize> {
    Ok(match expected {
        Some(count) => usize::try_from(count)?,
        None => usize::MAX,
    })
}

struct PipelinedSource {
    client: Client,
    mailbox: &'static str,
    window: usize,
}

impl Source for PipelinedSource {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        let received = self.client.receive_pipelined(
            self.mailbox,
            wanted(expected)?,
            self.window,
            Wait::Forever,
            |message| {
                // Every message is an answer of its own.
                into.message(&message.payload);
                into.batch_end();
            },
        );
        ended(received, expected)
    }
}

/// Where one `ReceiveMany` answer begins, seen from the messages alone
/// (`receive_stream` hands them over one by one): the messages of one
/// answer are consecutive in the mailbox's sequence, so a message that
/// does not follow the previous one starts a new answer. (Two answers
/// that happen to be consecutive count as one: the consumer then takes
/// one timestamp fewer, never a wrong one.)
#[derive(Debug, Default)]
struct AnswerStarts {
    next: Option<u64>,
}

impl AnswerStarts {
    /// Whether the message with mailbox sequence `sequence` begins an answer.
    fn starts(&mut self, sequence: u64) -> bool {
        let starts = self.next != Some(sequence);
        self.next = sequence.checked_add(1);
        starts
    }
}

/// Batches (`ReceiveMany`), several in flight; a clock read per answer,
/// not per message.
struct BatchedSource {
    client: Client,
    mailbox: &'static str,
    max: u32,
    batches_in_flight: usize,
}

impl Source for BatchedSource {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        let mut answers = AnswerStarts::default();
        let received = self.client.receive_stream(
            self.mailbox,
            wanted(expected)?,
            self.max,
            self.batches_in_flight,
            Wait::Forever,
            |message: Message| {
                if answers.starts(message.metadata.sequence) {
                    into.batch_end();
                }
                into.message(&message.payload);
            },
        );
        if received.is_ok() {
            // The last answer was handed over just now.
            into.batch_end();
        }
        ended(received, expected)
    }
}

/// Rendezvous with `--mailboxd-api pipelined`: one blocking receive at a time.
struct OneByOneSource {
    client: Client,
    mailbox: &'static str,
}

impl Source for OneByOneSource {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        let count = expected.ok_or_else(|| anyhow!("a rendezvous has a known count"))?;
        for _ in 0..count {
            let message = self.client.receive(self.mailbox)?;
            into.message(&message.payload);
            into.batch_end();
        }
        Ok(())
    }
}

/// The consumer's way in for `args`' workload (subscribed, for fanout).
pub fn source(args: &RoleArgs) -> Result<Box<dyn Source>> {
    if args.system == System::MailboxdFiles {
        return files::source(args);
    }
    let mut client = connect(args)?;
    let mailbox = mailbox_of(args.workload);
    if args.workload.is_fanout() {
        client.subscribe(mailbox)?;
    }
    Ok(match (args.workload, args.mailboxd_api) {
        (Workload::Rendezvous, MailboxdApi::Pipelined) => {
            Box::new(OneByOneSource { client, mailbox })
        }
        (_, MailboxdApi::Pipelined) => Box::new(PipelinedSource {
            client,
            mailbox,
            window: args.window(),
        }),
        (_, MailboxdApi::Batched) => {
            let plan = batching(args);
            Box::new(BatchedSource {
                client,
                mailbox,
                max: plan.receive_max,
                batches_in_flight: plan.receive_window,
            })
        }
    })
}

/// `rtt` requester, `--mailboxd-api pipelined`: blocking send, then
/// blocking receive of the reply (two turns with the broker).
struct BlockingRttClient {
    client: Client,
}

impl Requester for BlockingRttClient {
    fn round_trip(&mut self, request: &mailbox_client::Bytes, reply: &mut Vec<u8>) -> Result<()> {
        self.client.send("req", request.clone())?;
        let message = self.client.receive("rep")?;
        reply.clear();
        reply.extend_from_slice(&message.payload);
        Ok(())
    }
}

/// `rtt` requester, by default: the send of the request and the receive of
/// the reply leave in one write (`exchange`), as Redis's `LPUSH` +
/// `BRPOP`; the send is quiet, so only the reply is read, as Redis's
/// `CLIENT REPLY SKIP`.
struct JoinedRttClient {
    client: Client,
}

impl Requester for JoinedRttClient {
    fn round_trip(&mut self, request: &mailbox_client::Bytes, reply: &mut Vec<u8>) -> Result<()> {
        let (sent, received) = self.client.exchange("req", request.clone(), "rep");
        sent.context("sending the request")?;
        let message = received.context("receiving the reply")?;
        reply.clear();
        reply.extend_from_slice(&message.payload);
        Ok(())
    }
}

/// The `rtt` requester.
pub fn requester(args: &RoleArgs) -> Result<Box<dyn Requester>> {
    let client = connect(args)?;
    Ok(match args.mailboxd_api {
        MailboxdApi::Pipelined => Box::new(BlockingRttClient { client }),
        MailboxdApi::Batched => Box::new(JoinedRttClient { client }),
    })
}

/// `rtt` echo, `--mailboxd-api pipelined`: receive, then reply.
struct BlockingRttEcho {
    client: Client,
}

impl Echo for BlockingRttEcho {
    fn serve(&mut self, count: u64) -> Result<()> {
        for _ in 0..count {
            let message = self.client.receive("req")?;
            self.client.send("rep", message.payload)?;
        }
        Ok(())
    }
}

/// `rtt` echo, by default: each reply leaves in one write with the receive
/// of the next request (`exchange`), so a receive is always posted
/// when a request arrives; the first receive and the last reply go alone.
struct JoinedRttEcho {
    client: Client,
}

impl Echo for JoinedRttEcho {
    fn serve(&mut self, count: u64) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        let mut request = self.client.receive("req")?;
        for _ in 1..count {
            let (sent, received) = self.client.exchange("rep", request.payload, "req");
            sent.context("sending a reply")?;
            request = received.context("receiving a request")?;
        }
        self.client.send("rep", request.payload)?;
        Ok(())
    }
}

/// The `rtt` echo.
pub fn echo(args: &RoleArgs) -> Result<Box<dyn Echo>> {
    let client = connect(args)?;
    Ok(match args.mailboxd_api {
        MailboxdApi::Pipelined => Box::new(BlockingRttEcho { client }),
        MailboxdApi::Batched => Box::new(JoinedRttEcho { client }),
    })
}

/// `idle-mailboxes`: creates the run's mailboxes (default settings) on one
/// connection, checks that the broker lists them all, and leaves them idle.
pub fn create_idle(args: &RoleArgs) -> Result<Value> {
    let mut client = connect(args)?;
    let count = args.messages;
    let started = now_ns();
    for index in 0..count {
        let name = idle_mailbox(index);
        let created = client
            .create(&name, MailboxSettings::default())
            .with_context(|| format!("creating {name}"))?;
        ensure!(created, "mailbox {name} existed already");
    }
    let end_ns = now_ns();
    let listed = client.list()?.len() as u64;
    ensure!(
        listed == count,
        "the broker lists {listed} mailboxes, {count} were created"
    );
    Ok(json!({ "created": count, "start_ns": started, "end_ns": end_ns }))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `conns`: opens this process's share of the connections, each with its
/// own bounded-1 mailbox and one waiting receive; says ready once every
/// receive is issued; then waits for every message.
pub fn conns_waiter(args: &RoleArgs) -> Result<Value> {
    let check = Arc::new(ConnsCheck::new(args)?);
    let socket = args.socket()?.clone();
    let settings = settings(1, DeliveryPolicy::RoundRobin, args.size)?;
    let range = args.waiter_range();
    runtime()?.block_on(async move {
        let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
        let (set_up, set_up_results) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        for index in range.clone() {
            let (socket, check, connecting) = (socket.clone(), check.clone(), connecting.clone());
            let set_up = set_up.clone();
            let settings = settings.clone();
            tasks.spawn(async move {
                let name = conns_mailbox(index);
                let created = async {
                    let _permit = connecting.acquire_owned().await?;
                    let client = mailbox_client::Client::connect(&socket).await?;
                    client.create(&name, settings).await?;
                    anyhow::Ok(client)
                };
                let client = match created.await {
                    Ok(client) => client,
                    Err(error) => {
                        let _ = set_up.send(Err(format!("connection {index}: {error:#}")));
                        return Err(error);
                    }
                };
                let receive = client.receive(&name);
                // The receive is queued on its first poll, before this task
                // yields, so it is on its way once everyone has reported.
                let _ = set_up.send(Ok(()));
                let message = receive.await?;
                let at = now_ns();
                let problem = check.problem(index, &message.payload);
                anyhow::Ok((at, problem, client))
            });
        }
        drop(set_up);
        crate::roles::ready_then_collect(set_up_results, range, &mut tasks).await
    })
}

/// `conns`: one connection sends one message to each connection's mailbox,
/// all in flight at once.
pub fn conns_sender(args: &RoleArgs) -> Result<Value> {
    let socket = args.socket()?.clone();
    let count = u64::from(args.consumers);
    let payloads = Payloads::new(args.seed, args.size, 0, count)?;
    runtime()?.block_on(async move {
        let client = mailbox_client::Client::connect(&socket).await?;
        let mut tasks = tokio::task::JoinSet::new();
        let start_ns = now_ns();
        for index in 0..count {
            let (client, payload) = (client.clone(), payloads.bytes(index));
            tasks.spawn(async move { client.send(&conns_mailbox(index), payload).await });
        }
        while let Some(joined) = tasks.join_next().await {
            joined??;
        }
        Ok(json!({ "sent": count, "start_ns": start_ns, "end_ns": now_ns() }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_settings_follow_the_spec() {
        let zero = settings(0, DeliveryPolicy::RoundRobin, 64).unwrap();
        assert_eq!(zero.capacity, Capacity::Zero);
        let large = settings(16, DeliveryPolicy::RoundRobin, 1 << 20).unwrap();
        assert_eq!(large.capacity, Capacity::Bounded(16));
        assert!(large.max_message_size >= 1 << 20);
        let memory = settings(UNBOUNDED, DeliveryPolicy::RoundRobin, 64).unwrap();
        assert_eq!(memory.capacity, Capacity::Unbounded);
    }

    #[test]
    fn answers_start_where_the_sequence_jumps() {
        let mut answers = AnswerStarts::default();
        let starts: Vec<bool> = [1, 2, 3, 7, 8, 20, 21, 22, 23]
            .into_iter()
            .map(|sequence| answers.starts(sequence))
            .collect();
        assert_eq!(
            starts,
            [true, false, false, true, false, true, false, false, false]
        );
        let mut last = AnswerStarts::default();
        assert!(last.starts(u64::MAX));
        assert!(last.starts(0), "no overflow past the largest sequence");
    }
}
