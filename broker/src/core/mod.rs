//! The mailbox semantics, as a synchronous state machine.
//!
//! [`Core`] owns every mailbox, every waiting operation and every deadline.
//! It has no sockets, no tokio types and no clock: the caller passes each
//! request with the time ([`Clock`]) and gets back an [`Outcome`], the list of
//! replies to deliver (to the caller and to any other connection the request
//! woke). Timeouts are deadlines the caller asks about ([`Core::next_deadline`])
//! and fires ([`Core::expire`]); disconnects and shutdown are operations too.
//! So every rule of the product is a plain unit test here.
//!
//! What it deliberately does not do: framing, I/O, permissions (a later layer),
//! or anything that can block.

mod budget;
mod mailbox;
mod types;

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use mailbox_proto::{
    BrokerError, BrokerStatus, ErrorKind, MailboxName, MailboxSettings, Request, RequestId,
    Response, Wait, PROTOCOL_VERSION,
};

pub use budget::{Budget, Exhausted};
pub use types::{Clock, ConnectionId, Outcome, Peer, Reply, Ticket};

use mailbox::{Batch, Context, Load, Mailbox, Progress, WaitingReceive, WaitingSend, Withdrawn};

/// Limits the core enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Payload bytes the broker may hold in all (buffered and waiting sends).
    pub memory_budget: u64,
    /// Messages the broker may hold in all (buffered and waiting sends);
    /// bounds the memory of many small or empty messages, which cost little
    /// payload but a queue slot and metadata each.
    pub max_queued_messages: u64,
    /// Requests one connection may have waiting at once.
    pub max_waiting_per_connection: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_budget: 1 << 30,
            max_queued_messages: 4 << 20,
            max_waiting_per_connection: 65_536,
        }
    }
}

/// Below this many deadlines the heap is never swept.
const MIN_DEADLINES_BEFORE_COMPACTING: usize = 1024;

/// A request that waits: where, and until when.
#[derive(Debug)]
struct Waiting {
    mailbox: String,
    /// Distinguishes this wait from an earlier one that used the same request
    /// id, so a stale deadline never fires on a newer request.
    serial: u64,
}

#[derive(Debug)]
struct Connection {
    peer: Peer,
    waiting: HashMap<RequestId, Waiting>,
    subscriptions: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: Instant,
    serial: u64,
    ticket: Ticket,
}

/// The broker's state: mailboxes, connections, waiting operations, deadlines.
#[derive(Debug)]
pub struct Core {
    limits: Limits,
    started: Instant,
    mailboxes: HashMap<String, Mailbox>,
    connections: HashMap<ConnectionId, Connection>,
    deadlines: BinaryHeap<Reverse<Deadline>>,
    next_serial: u64,
    /// Heap size at which stale deadlines are swept out next.
    compact_deadlines_at: usize,
    budget: Budget,
    shutting_down: bool,
}

fn error(kind: ErrorKind, message: impl Into<String>) -> BrokerError {
    BrokerError::new(kind, message)
}

fn check_name(name: &str) -> Result<(), BrokerError> {
    MailboxName::validate(name)
        .map_err(|why| error(ErrorKind::InvalidName, format!("{why}: {name:?}")))
}

impl Core {
    /// An empty broker that started at `started`.
    pub fn new(limits: Limits, started: Instant) -> Self {
        Self {
            limits,
            started,
            mailboxes: HashMap::new(),
            connections: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_serial: 0,
            compact_deadlines_at: MIN_DEADLINES_BEFORE_COMPACTING,
            budget: Budget::new(limits.memory_budget, limits.max_queued_messages),
            shutting_down: false,
        }
    }

    /// Registers a new connection with its peer credentials.
    pub fn connect(&mut self, connection: ConnectionId, peer: Peer) {
        self.connections.insert(
            connection,
            Connection {
                peer,
                waiting: HashMap::new(),
                subscriptions: Vec::new(),
            },
        );
    }

    /// Forgets a connection: its waiting sends are withdrawn (never delivered
    /// later), its waiting receives cancelled (no message is handed to it), its
    /// subscriptions ended. Replies in `out` go only to other connections.
    pub fn disconnect(&mut self, connection: ConnectionId, clock: &Clock, out: &mut Outcome) {
        let Some(state) = self.connections.remove(&connection) else {
            return;
        };
        let mark = out.replies.len();
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
        };
        for (request, waiting) in state.waiting {
            if let Some(mailbox) = self.mailboxes.get_mut(&waiting.mailbox) {
                mailbox.withdraw(
                    Ticket {
                        connection,
                        request,
                    },
                    &mut ctx,
                );
            }
        }
        for name in state.subscriptions {
            if let Some(mailbox) = self.mailboxes.get_mut(&name) {
                // It may be a newer mailbox of the same name that this
                // connection never subscribed to: then there is nothing to end.
                let _ = mailbox.unsubscribe(connection, false, &mut ctx);
            }
        }
        self.settle(out, mark, None);
    }

    /// Handles one request of `connection`. Every request gets exactly one
    /// reply, now (in `out`) or later (from another operation, a deadline,
    /// a delete or shutdown).
    pub fn apply(
        &mut self,
        connection: ConnectionId,
        id: RequestId,
        request: Request,
        clock: &Clock,
        out: &mut Outcome,
    ) {
        let ticket = Ticket {
            connection,
            request: id,
        };
        let mark = out.replies.len();
        match self.dispatch(ticket, request, clock, out) {
            Ok(Some(response)) => out.reply(ticket, Ok(response)),
            Ok(None) => {}
            Err(error) => out.reply(ticket, Err(error)),
        }
        self.settle(out, mark, Some(ticket));
    }

    fn dispatch(
        &mut self,
        ticket: Ticket,
        request: Request,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        if self.shutting_down {
            return Err(error(
                ErrorKind::BrokerShuttingDown,
                "the broker is stopping and takes no more requests",
            ));
        }
        let Some(state) = self.connections.get(&ticket.connection) else {
            return Err(error(
                ErrorKind::Internal,
                "request from an unknown connection",
            ));
        };
        if state.waiting.contains_key(&ticket.request) {
            return Err(error(
                ErrorKind::DuplicateRequestId,
                format!(
                    "request id {} is already waiting on this connection; ids must be unique among waiting requests",
                    ticket.request
                ),
            ));
        }
        let peer = state.peer;
        match request {
            Request::CreateMailbox { name, settings } => self.create(name, settings),
            Request::DeleteMailbox { name } => self.delete(&name, clock, out),
            Request::ListMailboxes => {
                let mut list: Vec<_> = self.mailboxes.values().map(Mailbox::info).collect();
                list.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(Some(Response::Mailboxes(list)))
            }
            Request::MailboxInfo { name } => Ok(Some(Response::Info(self.mailbox(&name)?.info()))),
            Request::Send {
                mailbox,
                payload,
                wait,
            } => self.send(ticket, peer, mailbox, Load::One(payload), wait, clock, out),
            Request::SendMany {
                mailbox,
                payloads,
                wait,
            } => {
                let batch = Batch {
                    rest: payloads.into(),
                    ..Batch::default()
                };
                self.send(ticket, peer, mailbox, Load::Many(batch), wait, clock, out)
            }
            Request::Receive { mailbox, wait } => {
                self.receive(ticket, mailbox, None, wait, clock, out)
            }
            Request::ReceiveMany { mailbox, max, wait } => {
                self.receive(ticket, mailbox, Some(max), wait, clock, out)
            }
            Request::Subscribe { mailbox } => {
                let created = self.mailbox_mut(&mailbox)?.subscribe(ticket.connection)?;
                if created {
                    if let Some(state) = self.connections.get_mut(&ticket.connection) {
                        state.subscriptions.push(mailbox);
                    }
                }
                Ok(Some(Response::Subscribed { created }))
            }
            Request::Unsubscribe { mailbox } => {
                let Some(target) = self.mailboxes.get_mut(&mailbox) else {
                    check_name(&mailbox)?;
                    return Err(no_such_mailbox(&mailbox));
                };
                let mut ctx = Context {
                    out,
                    budget: &mut self.budget,
                    clock,
                };
                target.unsubscribe(ticket.connection, true, &mut ctx)?;
                if let Some(state) = self.connections.get_mut(&ticket.connection) {
                    state.subscriptions.retain(|name| *name != mailbox);
                }
                Ok(Some(Response::Unsubscribed))
            }
            Request::Cancel { request } => {
                let target = Ticket {
                    connection: ticket.connection,
                    request,
                };
                let cancelled = self.end_wait(
                    target,
                    error(ErrorKind::Cancelled, "withdrawn at the client's request"),
                    clock,
                    out,
                );
                Ok(Some(Response::CancelResult { cancelled }))
            }
            Request::Status => Ok(Some(Response::Status(self.status(clock)))),
        }
    }

    fn mailbox(&self, name: &str) -> Result<&Mailbox, BrokerError> {
        match self.mailboxes.get(name) {
            Some(mailbox) => Ok(mailbox),
            None => {
                check_name(name)?;
                Err(no_such_mailbox(name))
            }
        }
    }

    fn mailbox_mut(&mut self, name: &str) -> Result<&mut Mailbox, BrokerError> {
        match self.mailboxes.get_mut(name) {
            Some(mailbox) => Ok(mailbox),
            None => {
                check_name(name)?;
                Err(no_such_mailbox(name))
            }
        }
    }

    fn create(
        &mut self,
        name: String,
        settings: MailboxSettings,
    ) -> Result<Option<Response>, BrokerError> {
        check_name(&name)?;
        settings
            .validate()
            .map_err(|why| error(ErrorKind::InvalidSettings, why))?;
        if let Some(existing) = self.mailboxes.get(&name) {
            if *existing.settings() == settings {
                return Ok(Some(Response::Created { created: false }));
            }
            return Err(error(
                ErrorKind::MailboxExists,
                format!(
                    "mailbox {name} exists with other settings ({}); delete it first or use its settings",
                    describe(existing.settings())
                ),
            ));
        }
        self.mailboxes
            .insert(name.clone(), Mailbox::new(name, settings));
        Ok(Some(Response::Created { created: true }))
    }

    fn delete(
        &mut self,
        name: &str,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let Some(mailbox) = self.mailboxes.remove(name) else {
            check_name(name)?;
            return Err(no_such_mailbox(name));
        };
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
        };
        mailbox.delete(&mut ctx);
        for state in self.connections.values_mut() {
            state.subscriptions.retain(|subscribed| subscribed != name);
        }
        Ok(Some(Response::Deleted))
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        ticket: Ticket,
        peer: Peer,
        mailbox_name: String,
        load: Load,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let mark = out.replies.len();
        let Some(mailbox) = self.mailboxes.get_mut(&mailbox_name) else {
            check_name(&mailbox_name)?;
            return Err(no_such_mailbox(&mailbox_name));
        };
        let held = match &load {
            Load::One(payload) => {
                mailbox.check_payload(payload.len())?;
                payload.len() as u64
            }
            Load::Many(batch) => {
                if batch.rest.is_empty() {
                    return Ok(Some(Response::SentMany {
                        first_sequence: mailbox.next_sequence(),
                        admitted: 0,
                        recipients: 0,
                        stopped: None,
                    }));
                }
                let mut total = 0;
                for (index, payload) in batch.rest.iter().enumerate() {
                    mailbox
                        .check_payload(payload.len())
                        .map_err(|mut refused| {
                            refused.message = format!(
                                "message {index} of the batch: {}; nothing was sent",
                                refused.message
                            );
                            refused
                        })?;
                    total += payload.len() as u64;
                }
                total
            }
        };
        let count = match &load {
            Load::One(_) => 1,
            Load::Many(batch) => batch.rest.len() as u64,
        };
        if let Err(exhausted) = self.budget.try_reserve(held, count) {
            let why = match exhausted {
                Exhausted::Bytes => format!(
                    "the broker holds {} of its {} byte budget; receive from some mailboxes or raise --memory-budget",
                    self.budget.held(),
                    self.budget.limit()
                ),
                Exhausted::Messages => format!(
                    "the broker holds {} of its {} message limit; receive from some mailboxes or raise --max-queued-messages",
                    self.budget.messages(),
                    self.budget.max_messages()
                ),
            };
            return Err(error(ErrorKind::BrokerFull, why));
        }
        let send = WaitingSend {
            ticket,
            sender: peer,
            load,
            held,
        };
        let plan = WaitPlan::new(wait, clock.now);
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
        };
        match mailbox.send(send, plan.may_wait, &mut ctx) {
            Ok(Progress::Done) => Ok(None),
            Ok(Progress::Waiting) => self.start_wait(ticket, mailbox_name, plan, mark, clock, out),
            Err(send) => {
                self.budget.release(send.held, send.waiting_count());
                let refused = not_now(wait, &mailbox_name, "full");
                send.failed(refused, mailbox.next_sequence()).map(Some)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn receive(
        &mut self,
        ticket: Ticket,
        mailbox_name: String,
        max: Option<u32>,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let Some(mailbox) = self.mailboxes.get_mut(&mailbox_name) else {
            check_name(&mailbox_name)?;
            return Err(no_such_mailbox(&mailbox_name));
        };
        let plan = WaitPlan::new(wait, clock.now);
        let mark = out.replies.len();
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
        };
        match mailbox.receive(WaitingReceive { ticket, max }, plan.may_wait, &mut ctx)? {
            Some(Progress::Done) => Ok(None),
            Some(Progress::Waiting) => {
                self.start_wait(ticket, mailbox_name, plan, mark, clock, out)
            }
            None => Err(not_now(wait, &mailbox_name, "empty")),
        }
    }

    /// Records a request that now waits in `mailbox`, or takes it back with
    /// `TooManyRequests` when its connection has too many waiting already.
    /// Waits answered since `mark` (a batch send may have fed a receive of
    /// the same connection before waiting) no longer count.
    #[allow(clippy::too_many_arguments)]
    fn start_wait(
        &mut self,
        ticket: Ticket,
        mailbox: String,
        plan: WaitPlan,
        mark: usize,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        self.settle(out, mark, Some(ticket));
        let waiting_now = self
            .connections
            .get(&ticket.connection)
            .map_or(0, |c| c.waiting.len());
        if waiting_now >= self.limits.max_waiting_per_connection {
            let refused = too_many_waiting(self.limits.max_waiting_per_connection);
            let mut ctx = Context {
                out,
                budget: &mut self.budget,
                clock,
            };
            let withdrawn = self
                .mailboxes
                .get_mut(&mailbox)
                .and_then(|m| Some((m.withdraw(ticket, &mut ctx)?, m.next_sequence())));
            return match withdrawn {
                Some((Withdrawn::Send(send), next)) => send.failed(refused, next).map(Some),
                _ => Err(refused),
            };
        }
        self.register_wait(ticket, mailbox, plan.deadline);
        Ok(None)
    }

    fn register_wait(&mut self, ticket: Ticket, mailbox: String, deadline: Option<Instant>) {
        let serial = self.next_serial;
        self.next_serial += 1;
        if let Some(state) = self.connections.get_mut(&ticket.connection) {
            state
                .waiting
                .insert(ticket.request, Waiting { mailbox, serial });
        }
        if let Some(at) = deadline {
            self.deadlines
                .push(Reverse(Deadline { at, serial, ticket }));
        }
    }

    /// Ends a waiting request with `why`: withdraws it and answers it (a
    /// batch send that got partly admitted is answered with what was).
    /// Returns whether it was waiting.
    fn end_wait(
        &mut self,
        target: Ticket,
        why: BrokerError,
        clock: &Clock,
        out: &mut Outcome,
    ) -> bool {
        let Some(waiting) = self
            .connections
            .get_mut(&target.connection)
            .and_then(|state| state.waiting.remove(&target.request))
        else {
            return false;
        };
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
        };
        let Some(mailbox) = self.mailboxes.get_mut(&waiting.mailbox) else {
            return false;
        };
        let result = match mailbox.withdraw(target, &mut ctx) {
            Some(Withdrawn::Send(send)) => send.failed(why, mailbox.next_sequence()),
            Some(Withdrawn::Receive) => Err(why),
            None => return false,
        };
        out.reply(target, result);
        true
    }

    /// Forgets the waits answered by the replies from `mark` on (other than
    /// the request being handled, which never registered one).
    fn settle(&mut self, out: &Outcome, mark: usize, current: Option<Ticket>) {
        for reply in &out.replies[mark..] {
            if Some(reply.ticket) == current {
                continue;
            }
            if let Some(state) = self.connections.get_mut(&reply.ticket.connection) {
                state.waiting.remove(&reply.ticket.request);
            }
        }
        // Deadlines of waits that ended otherwise stay in the heap until they
        // pass; rebuild it each time it doubles past what was live at the
        // last rebuild, so it stays proportional to the waits that exist at
        // amortised constant cost (counting the waits on every request would
        // cost a pass over all connections).
        if self.deadlines.len() > self.compact_deadlines_at {
            let live: Vec<_> = std::mem::take(&mut self.deadlines)
                .into_iter()
                .filter(|Reverse(d)| self.is_live(d))
                .collect();
            self.compact_deadlines_at = (2 * live.len()).max(MIN_DEADLINES_BEFORE_COMPACTING);
            self.deadlines = live.into();
        }
    }

    #[cfg(test)]
    fn waiting_count(&self) -> usize {
        self.connections.values().map(|c| c.waiting.len()).sum()
    }

    fn is_live(&self, deadline: &Deadline) -> bool {
        self.connections
            .get(&deadline.ticket.connection)
            .and_then(|state| state.waiting.get(&deadline.ticket.request))
            .is_some_and(|waiting| waiting.serial == deadline.serial)
    }

    /// The earliest deadline of a waiting operation, if any.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse(deadline)) = self.deadlines.peek() {
            if self.is_live(deadline) {
                return Some(deadline.at);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Fails every waiting operation whose deadline is at or before
    /// `clock.now` with `Timeout`. A timed-out send is withdrawn: it was never
    /// admitted, so it can never be delivered later.
    pub fn expire(&mut self, clock: &Clock, out: &mut Outcome) {
        while let Some(Reverse(deadline)) = self.deadlines.peek() {
            if deadline.at > clock.now {
                break;
            }
            let Some(Reverse(deadline)) = self.deadlines.pop() else {
                break;
            };
            if !self.is_live(&deadline) {
                continue;
            }
            let mark = out.replies.len();
            self.end_wait(
                deadline.ticket,
                error(
                    ErrorKind::Timeout,
                    "timed out waiting; what was not sent or taken by now never will be",
                ),
                clock,
                out,
            );
            self.settle(out, mark, Some(deadline.ticket));
        }
    }

    /// Starts shutdown: every waiting operation is answered with
    /// `BrokerShuttingDown`, and so is every later request.
    pub fn shut_down(&mut self, clock: &Clock, out: &mut Outcome) {
        self.shutting_down = true;
        let stopping = error(ErrorKind::BrokerShuttingDown, "the broker is stopping");
        let mark = out.replies.len();
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
        };
        for mailbox in self.mailboxes.values_mut() {
            mailbox.fail_all_waiters(&stopping, &mut ctx);
        }
        self.settle(out, mark, None);
    }

    /// Broker-wide figures.
    pub fn status(&self, clock: &Clock) -> BrokerStatus {
        let (queued_messages, queued_bytes) = self
            .mailboxes
            .values()
            .map(Mailbox::info)
            .fold((0, 0), |(m, b), info| {
                (m + info.queued_messages, b + info.queued_bytes)
            });
        let _ = queued_bytes;
        BrokerStatus {
            broker_version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol_version: PROTOCOL_VERSION,
            pid: std::process::id(),
            uptime_millis: clock
                .now
                .saturating_duration_since(self.started)
                .as_millis() as u64,
            connections: self.connections.len() as u64,
            mailboxes: self.mailboxes.len() as u64,
            queued_messages,
            queued_bytes: self.budget.held(),
            memory_budget_bytes: self.budget.limit(),
        }
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Number of mailboxes.
    pub fn mailbox_count(&self) -> usize {
        self.mailboxes.len()
    }
}

fn no_such_mailbox(name: &str) -> BrokerError {
    error(
        ErrorKind::NoSuchMailbox,
        format!("no mailbox named {name}; create it first"),
    )
}

fn too_many_waiting(limit: usize) -> BrokerError {
    error(
        ErrorKind::TooManyRequests,
        format!("this connection already has {limit} requests waiting"),
    )
}

/// The answer to an operation that could not complete at once: `WouldBlock`
/// for a non-blocking one, `Timeout` for a zero timeout.
fn not_now(wait: Wait, mailbox: &str, state: &str) -> BrokerError {
    match wait {
        Wait::Timeout { .. } => error(
            ErrorKind::Timeout,
            format!("mailbox {mailbox} is {state} and the timeout is zero"),
        ),
        _ => error(
            ErrorKind::WouldBlock,
            format!(
                "mailbox {mailbox} is {state} (or has no partner waiting); what could not be done at once was not done"
            ),
        ),
    }
}

/// Whether an operation may wait, and until when.
#[derive(Debug, Clone, Copy)]
struct WaitPlan {
    may_wait: bool,
    deadline: Option<Instant>,
}

impl WaitPlan {
    fn new(wait: Wait, now: Instant) -> Self {
        let (may_wait, deadline) = match wait {
            Wait::Forever => (true, None),
            Wait::Never | Wait::Timeout { millis: 0 } => (false, None),
            // A deadline too far to represent is no deadline at all.
            Wait::Timeout { millis } => (true, now.checked_add(Duration::from_millis(millis))),
        };
        Self { may_wait, deadline }
    }
}

fn describe(settings: &MailboxSettings) -> String {
    let mut text = format!(
        "capacity {}, policy {}, max size {}",
        settings.capacity, settings.policy, settings.max_message_size
    );
    if let Some(fixed) = settings.fixed_size {
        text.push_str(&format!(", fixed size {fixed}"));
    }
    text
}

#[cfg(test)]
impl Core {
    /// Checks every invariant of every mailbox and of the budget.
    pub(crate) fn check_invariants(&self) {
        let mut held = 0;
        let mut messages = 0;
        for mailbox in self.mailboxes.values() {
            mailbox.check_invariants();
            held += mailbox.queued_bytes() + mailbox.waiting_payload_bytes();
            messages += mailbox.info().queued_messages + mailbox.waiting_message_count();
        }
        assert_eq!(
            held,
            self.budget.held(),
            "budget out of step with the mailboxes"
        );
        assert_eq!(
            messages,
            self.budget.messages(),
            "message count out of step with the mailboxes"
        );
        let waiting: usize = self
            .mailboxes
            .values()
            .map(|m| {
                let info = m.info();
                (info.waiting_senders + info.waiting_receivers) as usize
            })
            .sum();
        assert_eq!(
            waiting,
            self.waiting_count(),
            "waits out of step with the mailboxes"
        );
    }
}
