//! `mailboxd`, the system under test, driven through `mailbox-client` as a
//! user would drive it on the fast path.
//!
//! | workload | mailboxes (as the spec's table) | producer | consumer |
//! |---|---|---|---|
//! | stream, large | one, bounded 1024 / 16, round-robin | blocking client, `send_pipelined` (window = min(--window, capacity)) | `receive_pipelined`, same window |
//! | fanout | one, bounded 1024, broadcast | `send_pipelined` (each receipt must name 8 recipients) | subscribes before the producer starts, then `receive_pipelined` |
//! | workq | one shared, bounded 1024, round-robin | 4 x `send_pipelined` | 4 x `receive_pipelined`; the orchestrator deletes the drained mailbox to end them (`MailboxDeleted`) |
//! | rendezvous | one, zero capacity | blocking `send`, one in flight | blocking `receive`, one in flight |
//! | rtt | `req` and `rep`, bounded 1 | `send(req)` then `receive(rep)` | `receive(req)` then `send(rep)` |
//! | conns | one bounded-1 mailbox per connection, created by it | async client, one connection, a task per send | async client per connection, one `receive` each |
//!
//! With `--mailboxd-api batched` the one-way producers and consumers use
//! `send_stream` / `receive_stream` instead (batches of `--batch` messages,
//! as many batches in flight as make up the window).
//!
//! Each run starts its own broker on a fresh socket in the run's directory,
//! stops it with SIGTERM, and kills it if the run fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use mailbox_client::blocking::Client;
use mailbox_client::{Capacity, DeliveryPolicy, ErrorKind, MailboxSettings, Wait};
use serde_json::{json, Value};

use super::{Deliveries, Echo, Requester, Running, Setup, Sink, Source};
use crate::payload::Payloads;
use crate::process::{announce_ready, now_ns, Daemon, Deadline};
use crate::roles::{ConnsCheck, MailboxdApi, RoleArgs};
use crate::spec::{Shape, Workload};

/// The mailbox a one-way workload uses.
fn mailbox_of(workload: Workload) -> &'static str {
    workload.id()
}

/// The mailbox of connection `index` in `conns`.
fn conns_mailbox(index: u64) -> String {
    format!("c{index}")
}

/// Connections each `conns` waiter process opens at once while setting up.
const CONNECT_CONCURRENCY: usize = 64;

fn settings(capacity: u32, policy: DeliveryPolicy, size: usize) -> Result<MailboxSettings> {
    Ok(MailboxSettings {
        capacity: match capacity {
            0 => Capacity::Zero,
            n => Capacity::Bounded(n),
        },
        policy,
        max_message_size: u32::try_from(size)?.max(mailbox_client::DEFAULT_MAX_MESSAGE_SIZE),
        fixed_size: None,
    })
}

/// A broker started for one workload, with a connection to set it up.
pub struct Server {
    daemon: Option<Daemon>,
    admin: Option<Client>,
    socket: PathBuf,
    workload: Workload,
    notes: Vec<String>,
}

impl Server {
    /// Starts `mailboxd` on a fresh socket and creates the workload's mailboxes.
    pub fn start(workload: Workload, shape: &Shape, setup: &Setup) -> Result<Server> {
        let binary = setup
            .mailboxd
            .as_ref()
            .ok_or_else(|| anyhow!("no mailboxd binary"))?;
        let socket = setup.dir.join("mailboxd.sock");
        let mut command = Command::new(binary);
        command
            .arg("--socket")
            .arg(&socket)
            .args(["--log-level", "warn"]);
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
            Workload::Fanout => create(mailbox_of(workload), DeliveryPolicy::Broadcast)?,
            // Each connection creates its own.
            Workload::Conns => {}
            _ => create(mailbox_of(workload), DeliveryPolicy::RoundRobin)?,
        }
        let window = match shape.capacity {
            0 => 1,
            capacity => setup.window.min(capacity as usize).max(1),
        };
        let batch = setup.batch.clamp(1, window);
        let note = match (workload, setup.mailboxd_api) {
            (Workload::Rtt, _) => "blocking send(req) then receive(rep)".to_owned(),
            (Workload::Rendezvous, _) => "blocking send / receive, one in flight".to_owned(),
            (Workload::Conns, _) => "async client, one connection per waiter".to_owned(),
            (_, MailboxdApi::Pipelined) => {
                format!("send_pipelined / receive_pipelined, window {window}")
            }
            (_, MailboxdApi::Batched) => format!(
                "send_stream / receive_stream, batches of {batch}, {} in flight",
                (window / batch).max(1)
            ),
        };
        Ok(Server {
            daemon: Some(daemon),
            admin: Some(admin),
            socket,
            workload,
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

/// Rendezvous: one blocking send at a time.
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
    let client = connect(args)?;
    let mailbox = mailbox_of(args.workload);
    let recipients = (args.workload == Workload::Fanout).then_some(args.consumers);
    Ok(match (args.workload, args.mailboxd_api) {
        (Workload::Rendezvous, _) => Box::new(OneByOneSink { client, mailbox }),
        (_, MailboxdApi::Pipelined) => Box::new(PipelinedSink {
            client,
            mailbox,
            window: args.window(),
            recipients,
        }),
        (_, MailboxdApi::Batched) => {
            let (batch, batches_in_flight) = batching(args);
            Box::new(BatchedSink {
                client,
                mailbox,
                batch,
                batches_in_flight,
                recipients,
            })
        }
    })
}

struct PipelinedSource {
    client: Client,
    mailbox: &'static str,
    window: usize,
}

impl Source for PipelinedSource {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        let count = match expected {
            Some(count) => usize::try_from(count)?,
            None => usize::MAX,
        };
        let received = self.client.receive_pipelined(
            self.mailbox,
            count,
            self.window,
            Wait::Forever,
            |message| {
                into.message(&message.payload);
                into.batch_end();
            },
        );
        match received {
            Ok(_) => Ok(()),
            // The end of a shared queue: the orchestrator deleted it, drained.
            Err(error) if expected.is_none() && error.kind() == Some(ErrorKind::MailboxDeleted) => {
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Batches (`ReceiveMany`), several in flight.
struct BatchedSource {
    client: Client,
    mailbox: &'static str,
    batch: u32,
    batches_in_flight: usize,
}

impl Source for BatchedSource {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        let count = match expected {
            Some(count) => usize::try_from(count)?,
            None => usize::MAX,
        };
        let received = self.client.receive_stream(
            self.mailbox,
            count,
            self.batch,
            self.batches_in_flight,
            Wait::Forever,
            |message| {
                // The callback does not show batch boundaries: a clock read
                // per message (a vDSO call) keeps "last receive" exact.
                into.message(&message.payload);
                into.batch_end();
            },
        );
        match received {
            Ok(_) => Ok(()),
            Err(error) if expected.is_none() && error.kind() == Some(ErrorKind::MailboxDeleted) => {
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Rendezvous: one blocking receive at a time.
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
    let mut client = connect(args)?;
    let mailbox = mailbox_of(args.workload);
    if args.workload == Workload::Fanout {
        client.subscribe(mailbox)?;
    }
    Ok(match (args.workload, args.mailboxd_api) {
        (Workload::Rendezvous, _) => Box::new(OneByOneSource { client, mailbox }),
        (_, MailboxdApi::Pipelined) => Box::new(PipelinedSource {
            client,
            mailbox,
            window: args.window(),
        }),
        (_, MailboxdApi::Batched) => {
            let (batch, batches_in_flight) = batching(args);
            Box::new(BatchedSource {
                client,
                mailbox,
                batch: u32::try_from(batch)?,
                batches_in_flight,
            })
        }
    })
}

/// The batched path's batch size (at most the window, so at most the
/// capacity) and how many batches keep the window's worth in flight.
fn batching(args: &RoleArgs) -> (usize, usize) {
    let window = args.window();
    let batch = args.batch.clamp(1, window);
    (batch, (window / batch).max(1))
}

struct RttClient {
    client: Client,
}

impl Requester for RttClient {
    fn round_trip(&mut self, request: &mailbox_client::Bytes, reply: &mut Vec<u8>) -> Result<()> {
        self.client.send("req", request.clone())?;
        let message = self.client.receive("rep")?;
        reply.clear();
        reply.extend_from_slice(&message.payload);
        Ok(())
    }
}

/// The `rtt` requester.
pub fn requester(args: &RoleArgs) -> Result<Box<dyn Requester>> {
    Ok(Box::new(RttClient {
        client: connect(args)?,
    }))
}

struct RttEcho {
    client: Client,
}

impl Echo for RttEcho {
    fn serve(&mut self, count: u64) -> Result<()> {
        for _ in 0..count {
            let message = self.client.receive("req")?;
            self.client.send("rep", message.payload)?;
        }
        Ok(())
    }
}

/// The `rtt` echo.
pub fn echo(args: &RoleArgs) -> Result<Box<dyn Echo>> {
    Ok(Box::new(RttEcho {
        client: connect(args)?,
    }))
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
        let (set_up, mut set_up_results) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        for index in range.clone() {
            let (socket, check, connecting) = (socket.clone(), check.clone(), connecting.clone());
            let set_up = set_up.clone();
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
    }
}
