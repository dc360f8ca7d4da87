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
//! It also decides who may do what (`access.rs`: owner, group and mode of
//! each mailbox, from the peer credentials the server passes in at connect).
//! What it deliberately does not do: framing, I/O, reading the clock, or
//! anything that can block. It is a crate of its own so that its dependency
//! list (`mailbox-proto`, `bytes`, `serde`'s trait) enforces that.

mod access;
mod budget;
mod calls;
mod line;
mod listing;
mod mailbox;
mod names;
mod types;
mod waiting;

#[cfg(test)]
mod tests;
#[cfg(test)]
use tests::peer_of as peer_of_test;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use mailbox_proto::{
    validate_key, Address, BrokerError, BrokerStatus, Capacity, DeliveryPolicy, ErrorKind,
    MailboxName, MailboxSettings, ReceiveOptions, Request, RequestId, Response, SendOptions,
    Source, Stage, Target, Wait, DEFAULT_INBOX_CAPACITY, PROTOCOL_VERSION,
};

pub use access::{AccessPolicy, Permissions, Reservation, Right, DEFAULT_INBOX_MODE, DEFAULT_MODE};
pub use budget::{Budget, BudgetLimits, Exhausted, Usage};
pub use types::{Clock, ConnectionId, ConnectionMap, Outcome, Peer, Reply, Ticket};

use access::Caller;
use calls::CallState;
use mailbox::{
    Batch, Context, Load, Mailbox, Progress, SendExtra, Until, WaitingReceive, WaitingSend,
    Withdrawn,
};
use names::NameEntry;
use types::{Effect, Place, SparseList};
use waiting::WaitingRequests;

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
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections of one uid (root is not limited by it, only by
    /// `max_connections`).
    pub max_connections_per_uid: usize,
    /// Of `max_connections`, how many only root and the admin group may
    /// use (at most a quarter of them), so that other users filling the
    /// broker never lock out its administrators.
    pub reserved_connections: usize,
    /// Mailboxes one uid may own.
    pub max_mailboxes_per_uid: usize,
    /// Payload bytes one mailbox may hold queued.
    pub max_queued_bytes_per_mailbox: u64,
    /// Payload bytes the messages one uid sent may hold in the broker, in
    /// all mailboxes and inboxes, queued, waiting or in flight (`None`: a
    /// quarter of `memory_budget`). Root and the admin group have no share.
    pub max_queued_bytes_per_uid: Option<u64>,
    /// Messages one uid sent the broker may hold (`None`: a quarter of
    /// `max_queued_messages`).
    pub max_queued_messages_per_uid: Option<u64>,
    /// Payload bytes at the top of `memory_budget` that only root and the
    /// admin group may fill (`None`: an eighth of it).
    pub admin_reserve_bytes: Option<u64>,
    /// Messages at the top of `max_queued_messages` that only root and the
    /// admin group may fill (`None`: an eighth of it).
    pub admin_reserve_messages: Option<u64>,
    /// The largest maximum message size a mailbox may be created with.
    pub max_message_size: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_budget: 1 << 30,
            max_queued_messages: 4 << 20,
            max_waiting_per_connection: 65_536,
            max_connections: 16_384,
            max_connections_per_uid: 1_024,
            reserved_connections: 64,
            max_mailboxes_per_uid: 65_536,
            max_queued_bytes_per_mailbox: 1 << 30,
            max_queued_bytes_per_uid: None,
            max_queued_messages_per_uid: None,
            admin_reserve_bytes: None,
            admin_reserve_messages: None,
            max_message_size: mailbox_proto::MAX_MESSAGE_SIZE_LIMIT,
        }
    }
}

impl Limits {
    /// What the budget enforces: the totals, each uid's share and the
    /// reserve, with the defaults derived from the totals.
    pub fn budget(&self) -> BudgetLimits {
        BudgetLimits {
            bytes: self.memory_budget,
            messages: self.max_queued_messages,
            bytes_per_uid: self
                .max_queued_bytes_per_uid
                .unwrap_or(self.memory_budget / 4),
            messages_per_uid: self
                .max_queued_messages_per_uid
                .unwrap_or(self.max_queued_messages / 4),
            reserved_bytes: self.admin_reserve_bytes.unwrap_or(self.memory_budget / 8),
            reserved_messages: self
                .admin_reserve_messages
                .unwrap_or(self.max_queued_messages / 8),
        }
    }
}

/// What [`Core::declare`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// The mailbox did not exist and does now.
    Created,
    /// It existed as declared.
    Unchanged,
    /// It existed; its owner, group or mode changed.
    PermissionsChanged,
    /// It exists with other settings, which were kept (its permissions
    /// were applied); delete it to recreate it as declared.
    SettingsDiffer,
}

/// Below this many deadlines the heap is never swept.
const MIN_DEADLINES_BEFORE_COMPACTING: usize = 1024;

/// A request that waits: where, and until when.
#[derive(Debug)]
struct Waiting {
    place: Place,
    /// Distinguishes this wait from an earlier one that used the same request
    /// id, so a stale deadline never fires on a newer request.
    serial: u64,
    /// Set when the request is a call waiting for its reply.
    call: Option<u64>,
}

#[derive(Debug)]
struct Connection {
    peer: Peer,
    /// Supplementary groups, for group rights.
    groups: Box<[u32]>,
    waiting: WaitingRequests<Waiting>,
    /// Broadcast mailboxes it subscribes to and hash mailboxes whose pool
    /// it is in.
    subscriptions: Vec<String>,
    /// Where it received with manual acknowledgement (what it may hold).
    holds: BTreeSet<Place>,
    /// Well-known names it holds.
    names: Vec<String>,
    /// Capacity of its inbox.
    inbox_capacity: Capacity,
    /// Mode of its inbox (who may send to it).
    inbox_mode: u32,
    /// Group of its inbox.
    inbox_group: u32,
    /// Broadcast mailboxes that cut its subscription off as a slow
    /// consumer and have not told it yet: its next receive there does.
    cut_from: SparseList<String>,
    /// Senders a receive on its inbox waited for (`receive_from`), so that
    /// its entries in `Core::awaited_by` go when it does.
    awaits: SparseList<ConnectionId>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: Instant,
    serial: u64,
    ticket: Ticket,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Expiry {
    at: Instant,
    place: Place,
    sequence: u64,
}

/// A time a mailbox asked to be woken at (`Effect::Wake`): at most one
/// live per mailbox, plus stale ones that do nothing when they fire.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Wake {
    at: Instant,
    place: Place,
}

/// Every place messages wait: named mailboxes and connections' inboxes.
#[derive(Debug, Default)]
struct Places {
    // Boxed: a mailbox is a few hundred bytes, and a map keeps spare slots.
    // Ordered, so that a listing's page starts where the last one ended
    // without building the whole list (`listing.rs`).
    mailboxes: BTreeMap<String, Box<Mailbox>>,
    inboxes: ConnectionMap<Box<Mailbox>>,
}

impl Places {
    fn get(&self, place: &Place) -> Option<&Mailbox> {
        match place {
            Place::Mailbox(name) => self.mailboxes.get(name).map(|m| &**m),
            Place::Inbox(owner) => self.inboxes.get(owner).map(|m| &**m),
            Place::Name(_) => None,
        }
    }

    fn get_mut(&mut self, place: &Place) -> Option<&mut Mailbox> {
        match place {
            Place::Mailbox(name) => self.mailboxes.get_mut(name).map(|m| &mut **m),
            Place::Inbox(owner) => self.inboxes.get_mut(owner).map(|m| &mut **m),
            Place::Name(_) => None,
        }
    }

    fn all(&self) -> impl Iterator<Item = &Mailbox> {
        self.mailboxes
            .values()
            .chain(self.inboxes.values())
            .map(|mailbox| &**mailbox)
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut Mailbox> {
        self.mailboxes
            .values_mut()
            .chain(self.inboxes.values_mut())
            .map(|mailbox| &mut **mailbox)
    }
}

/// The broker's state: mailboxes, connections, waiting operations, deadlines.
#[derive(Debug)]
pub struct Core {
    limits: Limits,
    started: Instant,
    places: Places,
    // Boxed like mailboxes: thousands of idle connections, and a map
    // keeps spare slots.
    connections: ConnectionMap<Box<Connection>>,
    names: BTreeMap<String, NameEntry>,
    calls: HashMap<u64, CallState>,
    next_call: u64,
    deadlines: BinaryHeap<Reverse<Deadline>>,
    expiries: BinaryHeap<Reverse<Expiry>>,
    wakes: BinaryHeap<Reverse<Wake>>,
    next_serial: u64,
    /// Heap size at which stale deadlines are swept out next.
    compact_deadlines_at: usize,
    budget: Budget,
    shutting_down: bool,
    policy: AccessPolicy,
    /// Open connections per uid.
    connections_of: HashMap<u32, usize>,
    /// Mailboxes owned per uid.
    mailboxes_of: HashMap<u32, usize>,
    /// Mailboxes whose refused dead letters were reported already (one
    /// warning per mailbox, not one per message).
    dead_letter_refusals_reported: BTreeSet<String>,
    /// For each sender, the inboxes where a receive waited for a message of
    /// that sender alone: the inboxes to tell when it leaves (instead of
    /// every inbox).
    awaited_by: ConnectionMap<BTreeSet<ConnectionId>>,
    /// The uid the broker runs as: its clients are the service's own
    /// (a user's own broker, the service user) and, like root, have no
    /// per-uid share and may fill the reserve.
    service_uid: Option<u32>,
}

fn error(kind: ErrorKind, message: impl Into<String>) -> BrokerError {
    BrokerError::new(kind, message)
}

fn check_name(name: &str) -> Result<(), BrokerError> {
    MailboxName::validate(name)
        .map_err(|why| error(ErrorKind::InvalidName, format!("{why}: {name:?}")))
}

/// A send's target, resolved.
struct SendPlan {
    place: Place,
    extra: Option<Box<SendExtra>>,
    call: Option<u64>,
}

impl Core {
    /// An empty broker that started at `started`.
    pub fn new(limits: Limits, started: Instant) -> Self {
        Self {
            limits,
            started,
            places: Places::default(),
            connections: ConnectionMap::default(),
            names: BTreeMap::new(),
            calls: HashMap::new(),
            next_call: 1,
            deadlines: BinaryHeap::new(),
            expiries: BinaryHeap::new(),
            wakes: BinaryHeap::new(),
            next_serial: 0,
            compact_deadlines_at: MIN_DEADLINES_BEFORE_COMPACTING,
            budget: Budget::with_limits(limits.budget()),
            shutting_down: false,
            policy: AccessPolicy::default(),
            connections_of: HashMap::new(),
            mailboxes_of: HashMap::new(),
            dead_letter_refusals_reported: BTreeSet::new(),
            awaited_by: ConnectionMap::default(),
            service_uid: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Changes the limits (a configuration reload). Nothing held is dropped:
    /// a lower limit only refuses what comes next.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        self.budget.set_limits(limits.budget());
    }

    /// Says which uid the broker runs as (see `privileged`).
    pub fn set_service_uid(&mut self, uid: u32) {
        self.service_uid = Some(uid);
    }

    /// Changes the access rules (a configuration reload).
    pub fn set_access_policy(&mut self, policy: AccessPolicy) {
        self.policy = policy;
    }

    /// Whether a new connection of `peer` is within the connection limits;
    /// the error says which one it would break.
    pub fn may_connect(&self, peer: &Peer) -> Result<(), BrokerError> {
        self.may_connect_with_groups(peer, &[])
    }

    /// Like [`Core::may_connect`], knowing the peer's supplementary groups
    /// (a member of the admin group may use the reserved connections).
    pub fn may_connect_with_groups(&self, peer: &Peer, groups: &[u32]) -> Result<(), BrokerError> {
        let total = self.connections.len();
        if total >= self.limits.max_connections {
            return Err(error(
                ErrorKind::TooManyRequests,
                format!(
                    "the broker has its limit of {} connections (limits.max_connections)",
                    self.limits.max_connections
                ),
            ));
        }
        let root = peer.uid == 0;
        let admin = self
            .policy
            .admin_group
            .is_some_and(|gid| peer.gid == gid || groups.contains(&gid));
        let reserved = self
            .limits
            .reserved_connections
            .min(self.limits.max_connections / 4);
        if !root && !admin && total >= self.limits.max_connections - reserved {
            return Err(error(
                ErrorKind::TooManyRequests,
                format!(
                    "the broker has {total} connections; the last {reserved} of its {} are kept \
                     for root and the admin group (limits.reserved_connections)",
                    self.limits.max_connections
                ),
            ));
        }
        let of_uid = self.connections_of.get(&peer.uid).copied().unwrap_or(0);
        if !root && of_uid >= self.limits.max_connections_per_uid {
            return Err(error(
                ErrorKind::TooManyRequests,
                format!(
                    "uid {} has its limit of {} connections (limits.max_connections_per_uid)",
                    peer.uid, self.limits.max_connections_per_uid
                ),
            ));
        }
        Ok(())
    }

    /// Registers a new connection with its peer credentials.
    pub fn connect(&mut self, connection: ConnectionId, peer: Peer) {
        self.connect_with_groups(connection, peer, Vec::new());
    }

    /// Registers a new connection with its peer credentials and
    /// supplementary groups.
    pub fn connect_with_groups(&mut self, connection: ConnectionId, peer: Peer, groups: Vec<u32>) {
        *self.connections_of.entry(peer.uid).or_default() += 1;
        self.connections.insert(
            connection,
            Box::new(Connection {
                peer,
                groups: groups.into_boxed_slice(),
                waiting: WaitingRequests::default(),
                subscriptions: Vec::new(),
                holds: BTreeSet::new(),
                names: Vec::new(),
                inbox_capacity: DEFAULT_INBOX_CAPACITY,
                inbox_mode: self.policy.default_inbox_mode,
                inbox_group: peer.gid,
                cut_from: SparseList::default(),
                awaits: SparseList::default(),
            }),
        );
    }

    /// Forgets a connection: its waiting sends are withdrawn (never delivered
    /// later), its waiting receives cancelled (no message is handed to it),
    /// the messages it held unacknowledged go back to the head of their
    /// mailboxes, its subscriptions and pool memberships end, its names pass
    /// to the next in line, its inbox goes (waiting senders learn
    /// `NoSuchProcess`), and callers whose requests it held get `NoReply`.
    /// Replies in `out` go only to other connections.
    pub fn disconnect(&mut self, connection: ConnectionId, clock: &Clock, out: &mut Outcome) {
        let Some(state) = self.connections.remove(&connection) else {
            return;
        };
        if let Some(count) = self.connections_of.get_mut(&state.peer.uid) {
            *count -= 1;
            if *count == 0 {
                self.connections_of.remove(&state.peer.uid);
            }
        }
        let mark = out.replies.len();
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
        };
        for (request, waiting) in state.waiting.into_entries() {
            let ticket = Ticket {
                connection,
                request,
            };
            if let Some(call) = waiting.call {
                self.calls.remove(&call);
            }
            match &waiting.place {
                Place::Name(name) => names::leave_queue(&mut self.names, name, ticket),
                place => {
                    if let Some(mailbox) = self.places.get_mut(place) {
                        // An admitted message whose sender waited for a
                        // later stage stays: only the wait ends.
                        mailbox.withdraw(ticket, false, &mut ctx);
                    }
                }
            }
        }
        for place in &state.holds {
            if let Some(mailbox) = self.places.get_mut(place) {
                mailbox.return_held(connection, &mut ctx);
            }
        }
        for name in state.subscriptions {
            if let Some(mailbox) = self.places.mailboxes.get_mut(&name) {
                // It may be a newer mailbox of the same name that this
                // connection never subscribed to: then there is nothing to end.
                let _ = mailbox.unsubscribe(connection, false, &mut ctx);
            }
        }
        if let Some(inbox) = self.places.inboxes.remove(&connection) {
            inbox.delete(
                Some(error(
                    ErrorKind::NoSuchProcess,
                    format!(
                        "process {} left; what waited in its inbox is gone",
                        connection.0
                    ),
                )),
                &mut ctx,
            );
        }
        for sender in state.awaits.iter() {
            if let Some(inboxes) = self.awaited_by.get_mut(sender) {
                inboxes.remove(&connection);
                if inboxes.is_empty() {
                    self.awaited_by.remove(sender);
                }
            }
        }
        for owner in self.awaited_by.remove(&connection).unwrap_or_default() {
            if let Some(inbox) = self.places.inboxes.get_mut(&owner) {
                inbox.sender_left(connection, &mut ctx);
            }
        }
        for name in state.names {
            self.pass_name_on(&name, out);
        }
        self.carry_out(clock, out);
        self.calls_lost_with(connection, out);
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
        // No message whose time is up may be handed out by this request.
        if self
            .expiries
            .peek()
            .is_some_and(|Reverse(expiry)| expiry.at <= clock.now)
        {
            self.expire_messages(clock, out);
        }
        // Nor may a settle be taken after its acknowledgement deadline, or
        // a cut subscriber read on.
        if self
            .wakes
            .peek()
            .is_some_and(|Reverse(wake)| wake.at <= clock.now)
        {
            self.wake_mailboxes(clock, out);
        }
        let mark = out.replies.len();
        let waits = match self.dispatch(ticket, request, clock, out) {
            Ok(Some(response)) => {
                out.reply(ticket, Ok(response));
                false
            }
            Ok(None) => true,
            Err(error) => {
                out.reply(ticket, Err(error));
                false
            }
        };
        self.carry_out(clock, out);
        // A request answered at once never registered a wait, and the reply
        // to a duplicate id must not end the wait that has that id: skip it,
        // unless it registered one and something since answered it.
        let answered_while_waiting = waits
            && out.replies[mark..]
                .iter()
                .any(|reply| reply.ticket == ticket);
        self.settle(out, mark, (!answered_while_waiting).then_some(ticket));
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
            Request::CreateMailbox { name, settings } => {
                self.create(ticket.connection, name, *settings, None, None)
            }
            Request::CreateMailboxWith {
                name,
                settings,
                mode,
                group,
            } => self.create(ticket.connection, name, *settings, mode, group),
            Request::DeleteMailbox { name } => {
                self.check(ticket.connection, &name, Right::Manage)?;
                self.delete(&name, clock, out)
            }
            Request::ListMailboxes => Ok(Some(Response::Mailboxes(
                self.mailbox_list(ticket.connection)?,
            ))),
            Request::ListMailboxPage { after, max } => {
                let (mailboxes, next) = self.mailbox_page(ticket.connection, after.as_deref(), max);
                Ok(Some(Response::MailboxPage { mailboxes, next }))
            }
            Request::ListNamePage { after, max } => {
                let (names, next) = self.name_page(after.as_deref(), max);
                Ok(Some(Response::NamePage { names, next }))
            }
            Request::MailboxInfo { name } => {
                let mailbox = self.mailbox(&name)?;
                if let Some(caller) = self.caller(ticket.connection) {
                    if !mailbox.permissions().visible_to(&caller, &self.policy) {
                        mailbox.permissions().check(
                            &caller,
                            Right::Receive,
                            &self.policy,
                            &name,
                        )?;
                    }
                }
                Ok(Some(Response::Info(Box::new(mailbox.info()))))
            }
            Request::Send {
                mailbox,
                payload,
                wait,
            } => {
                let plan = SendPlan {
                    place: Place::Mailbox(mailbox),
                    extra: None,
                    call: None,
                };
                self.send(ticket, peer, plan, Load::One(payload), wait, clock, out)
            }
            Request::SendMany {
                mailbox,
                payloads,
                wait,
            } => {
                let batch = Batch {
                    rest: payloads.into(),
                    ..Batch::default()
                };
                let plan = SendPlan {
                    place: Place::Mailbox(mailbox),
                    extra: None,
                    call: None,
                };
                self.send(ticket, peer, plan, Load::Many(batch), wait, clock, out)
            }
            Request::SendWith {
                to,
                payload,
                options,
                wait,
            } => {
                let plan = self.plan_send(ticket, &to, *options, wait, None)?;
                self.send(ticket, peer, plan, Load::One(payload), wait, clock, out)
            }
            Request::Call {
                to,
                payload,
                options,
                wait,
            } => self.call(ticket, peer, to, payload, *options, wait, clock, out),
            Request::Reply { call, payload } => self.reply(ticket, peer, call, payload, clock, out),
            Request::Receive { mailbox, wait } => self.receive(
                peer,
                Place::Mailbox(mailbox),
                WaitingReceive::plain(ticket, None),
                wait,
                clock,
                out,
            ),
            Request::ReceiveMany { mailbox, max, wait } => self.receive(
                peer,
                Place::Mailbox(mailbox),
                WaitingReceive::plain(ticket, Some(max)),
                wait,
                clock,
                out,
            ),
            Request::ReceiveWith {
                from,
                options,
                wait,
            } => {
                let (place, receive) = self.plan_receive(ticket, from, options)?;
                self.receive(peer, place, receive, wait, clock, out)
            }
            Request::Settle {
                mailbox,
                sequence,
                verdict,
                redeliveries,
            } => {
                let place = match mailbox {
                    Some(name) => Place::Mailbox(name),
                    None => Place::Inbox(ticket.connection),
                };
                let mut ctx = Context {
                    out,
                    budget: &mut self.budget,
                    clock,
                };
                match self.places.get_mut(&place) {
                    Some(mailbox) => {
                        mailbox.settle(
                            ticket.connection,
                            sequence,
                            redeliveries,
                            verdict,
                            &mut ctx,
                        )?
                    }
                    None => {
                        return Err(error(
                            ErrorKind::NotHeld,
                            format!(
                                "this connection holds no message {sequence} there: the mailbox is gone or was never received from"
                            ),
                        ))
                    }
                }
                Ok(Some(Response::Settled))
            }
            Request::Subscribe { mailbox } => {
                self.check(ticket.connection, &mailbox, Right::Receive)?;
                let created = self.mailbox_mut(&mailbox)?.subscribe(ticket.connection)?;
                if let Some(state) = self.connections.get_mut(&ticket.connection) {
                    if !state.cut_from.is_empty() {
                        state.cut_from.retain(|name| *name != mailbox);
                    }
                    if created {
                        state.subscriptions.push(mailbox);
                    }
                }
                Ok(Some(Response::Subscribed { created }))
            }
            Request::Unsubscribe { mailbox } => {
                let Some(target) = self.places.mailboxes.get_mut(&mailbox) else {
                    check_name(&mailbox)?;
                    return Err(no_such_mailbox(&mailbox));
                };
                let mut ctx = Context {
                    out,
                    budget: &mut self.budget,
                    clock,
                };
                if let Some(state) = self.connections.get_mut(&ticket.connection) {
                    if !state.cut_from.is_empty() {
                        state.cut_from.retain(|name| *name != mailbox);
                    }
                }
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
            Request::Status => Ok(Some(Response::Status(Box::new(self.status(clock))))),
            Request::ClaimName { name, wait } => {
                if let Some(caller) = self.caller(ticket.connection) {
                    self.policy.check_name(&caller, &name)?;
                }
                self.claim_name(ticket, name, wait, clock, out)
            }
            Request::ReleaseName { name } => {
                self.release_name(ticket.connection, &name, out)?;
                Ok(Some(Response::NameReleased))
            }
            Request::ListNames => Ok(Some(Response::Names(self.name_list()?))),
            Request::SetPermissions {
                name,
                owner,
                group,
                mode,
            } => {
                self.check(ticket.connection, &name, Right::Manage)?;
                let mailbox = self.mailbox(&name)?;
                let old = *mailbox.permissions();
                if owner.is_some_and(|owner| owner != old.owner) && peer.uid != 0 {
                    return Err(error(
                        ErrorKind::PermissionDenied,
                        format!("only root may give mailbox {name} to another owner"),
                    ));
                }
                check_mode(mode)?;
                if let Some(gid) = group.filter(|&gid| gid != old.group) {
                    self.check_group_member(ticket.connection, gid, &name)?;
                }
                let new = Permissions {
                    owner: owner.unwrap_or(old.owner),
                    group: group.unwrap_or(old.group),
                    mode: mode.unwrap_or(old.mode),
                };
                let settings = mailbox.settings().clone();
                self.declare(&name, settings, new)?;
                Ok(Some(Response::PermissionsSet))
            }
            Request::Purge { name } => {
                self.check(ticket.connection, &name, Right::Manage)?;
                let mut ctx = Context {
                    out,
                    budget: &mut self.budget,
                    clock,
                };
                let Some(mailbox) = self.places.mailboxes.get_mut(&name) else {
                    check_name(&name)?;
                    return Err(no_such_mailbox(&name));
                };
                let discarded = mailbox.purge(&mut ctx);
                Ok(Some(Response::Purged { discarded }))
            }
            Request::SetInboxPermissions { mode, group } => {
                check_mode(mode)?;
                if let Some(gid) = group {
                    self.check_group_member(ticket.connection, gid, "this connection's inbox")?;
                }
                let Some(state) = self.connections.get_mut(&ticket.connection) else {
                    return Err(error(
                        ErrorKind::Internal,
                        "request from an unknown connection",
                    ));
                };
                state.inbox_mode = mode.unwrap_or(state.inbox_mode);
                state.inbox_group = group.unwrap_or(state.inbox_group);
                let permissions = Permissions {
                    owner: state.peer.uid,
                    group: state.inbox_group,
                    mode: state.inbox_mode,
                };
                if let Some(inbox) = self.places.inboxes.get_mut(&ticket.connection) {
                    inbox.set_permissions(permissions);
                }
                Ok(Some(Response::InboxPermissionsSet))
            }
            Request::SetInboxCapacity { capacity } => {
                if capacity == Capacity::Bounded(0) {
                    return Err(error(
                        ErrorKind::InvalidSettings,
                        "capacity 0 is spelled `zero`",
                    ));
                }
                if let Some(state) = self.connections.get_mut(&ticket.connection) {
                    state.inbox_capacity = capacity;
                }
                if let Some(inbox) = self.places.inboxes.get_mut(&ticket.connection) {
                    let mut ctx = Context {
                        out,
                        budget: &mut self.budget,
                        clock,
                    };
                    inbox.set_capacity(capacity, &mut ctx);
                }
                Ok(Some(Response::InboxCapacitySet))
            }
        }
    }

    /// The credentials of `connection`, for access checks.
    fn caller(&self, connection: ConnectionId) -> Option<Caller<'_>> {
        self.connections.get(&connection).map(|state| Caller {
            peer: state.peer,
            groups: &state.groups,
        })
    }

    /// `Ok` when `connection` has `right` on mailbox `name` (or the mailbox
    /// does not exist: the operation itself then says so).
    fn check(&self, connection: ConnectionId, name: &str, right: Right) -> Result<(), BrokerError> {
        match (self.places.mailboxes.get(name), self.caller(connection)) {
            (Some(mailbox), Some(caller)) => {
                mailbox
                    .permissions()
                    .check(&caller, right, &self.policy, name)
            }
            _ => Ok(()),
        }
    }

    fn mailbox(&self, name: &str) -> Result<&Mailbox, BrokerError> {
        match self.places.mailboxes.get(name) {
            Some(mailbox) => Ok(mailbox),
            None => {
                check_name(name)?;
                Err(no_such_mailbox(name))
            }
        }
    }

    fn mailbox_mut(&mut self, name: &str) -> Result<&mut Mailbox, BrokerError> {
        match self.places.mailboxes.get_mut(name) {
            Some(mailbox) => Ok(mailbox),
            None => {
                check_name(name)?;
                Err(no_such_mailbox(name))
            }
        }
    }

    /// The connection a process address or well-known name stands for.
    fn resolve(&self, address: &Address) -> Result<ConnectionId, BrokerError> {
        match address {
            Address::Process(id) => {
                let id = ConnectionId(*id);
                if self.connections.contains_key(&id) {
                    Ok(id)
                } else {
                    Err(error(
                        ErrorKind::NoSuchProcess,
                        format!("no live process has address {}", id.0),
                    ))
                }
            }
            Address::Name(name) => match self.names.get(name) {
                Some(entry) => Ok(entry.owner),
                None => {
                    check_name(name)?;
                    Err(error(
                        ErrorKind::NoSuchProcess,
                        format!("no live process holds the name {name}"),
                    ))
                }
            },
        }
    }

    /// Checks a `SendWith` or `Call` and finds where it goes.
    fn plan_send(
        &mut self,
        ticket: Ticket,
        to: &Target,
        options: SendOptions,
        wait: Wait,
        call: Option<u64>,
    ) -> Result<SendPlan, BrokerError> {
        if let Some(key) = &options.key {
            validate_key(key).map_err(|why| error(ErrorKind::InvalidRequest, why))?;
        }
        if options.ttl_millis == Some(0) {
            return Err(error(
                ErrorKind::InvalidRequest,
                "a time-to-live must be at least 1 ms",
            ));
        }
        let until = match (call, options.stage) {
            (Some(call), _) => Until::Reply(call),
            (None, Stage::Queued) => Until::Queued,
            (None, Stage::Received) => Until::Received,
            (None, Stage::Acknowledged) => Until::Acknowledged,
        };
        let waits_past_queued = until != Until::Queued;
        if waits_past_queued && !may_wait(wait) {
            return Err(error(
                ErrorKind::InvalidRequest,
                "a send that waits for a receiver (or a reply) cannot be non-blocking; give it a timeout",
            ));
        }
        let place = match to {
            Target::Mailbox(name) => {
                let mailbox = self.mailbox(name)?;
                if mailbox.is_broadcast() && matches!(until, Until::Acknowledged | Until::Reply(_))
                {
                    return Err(error(
                        ErrorKind::InvalidRequest,
                        format!(
                            "mailbox {name} is broadcast: its receivers do not acknowledge or reply; wait for `received` at most"
                        ),
                    ));
                }
                Place::Mailbox(name.clone())
            }
            Target::Process(address) => {
                let owner = self.resolve(address)?;
                self.open_inbox(owner)
            }
        };
        let _ = ticket;
        let extra = (until != Until::Queued
            || options.key.is_some()
            || options.ttl_millis.is_some())
        .then(|| {
            Box::new(SendExtra {
                until,
                key: options.key,
                ttl: options.ttl_millis.map(Duration::from_millis),
            })
        });
        Ok(SendPlan { place, extra, call })
    }

    /// The inbox of `owner`, created (with the capacity the owner set) on
    /// first use.
    fn open_inbox(&mut self, owner: ConnectionId) -> Place {
        let (capacity, permissions) = match self.connections.get(&owner) {
            Some(state) => (
                state.inbox_capacity,
                Permissions {
                    owner: state.peer.uid,
                    group: state.inbox_group,
                    mode: state.inbox_mode,
                },
            ),
            // Not reached: addresses resolve only to live connections.
            None => (
                DEFAULT_INBOX_CAPACITY,
                Permissions {
                    owner: 0,
                    group: 0,
                    mode: 0o600,
                },
            ),
        };
        self.places
            .inboxes
            .entry(owner)
            .or_insert_with(|| Box::new(Mailbox::inbox(owner, capacity, permissions)));
        Place::Inbox(owner)
    }

    /// Checks a `ReceiveWith` and finds where it takes from.
    fn plan_receive(
        &mut self,
        ticket: Ticket,
        from: Source,
        options: ReceiveOptions,
    ) -> Result<(Place, WaitingReceive), BrokerError> {
        let mut receive = WaitingReceive {
            ticket,
            max: options.max,
            manual: options.manual_ack,
            priority: options.priority,
            from: None,
        };
        let place = match from {
            Source::Mailbox(name) => {
                if options.manual_ack && self.mailbox(&name)?.is_broadcast() {
                    return Err(error(
                        ErrorKind::InvalidRequest,
                        format!("mailbox {name} is broadcast: subscribers do not acknowledge"),
                    ));
                }
                Place::Mailbox(name)
            }
            Source::Inbox { from } => {
                if let Some(address) = from {
                    receive.from = Some(match self.resolve(&address) {
                        Ok(sender) => sender,
                        // A sender that left may still have messages waiting.
                        Err(gone) => match address {
                            Address::Process(id)
                                if self.places.inboxes.get(&ticket.connection).is_some_and(
                                    |inbox| inbox.has_message_from(ConnectionId(id)),
                                ) =>
                            {
                                ConnectionId(id)
                            }
                            _ => return Err(gone),
                        },
                    });
                }
                self.open_inbox(ticket.connection)
            }
        };
        if options.manual_ack {
            if let Some(state) = self.connections.get_mut(&ticket.connection) {
                state.holds.insert(place.clone());
            }
        }
        Ok((place, receive))
    }

    /// Creates mailbox `name` for the caller, with `mode` and `group` (or
    /// the defaults) set in the same step. An existing mailbox is accepted
    /// (`created: false`) only when the caller owns it and its settings are
    /// equal; `mode` and `group`, when given, are then applied to it (an
    /// owner may always manage its mailbox). Anything else is
    /// `MailboxExists`, saying who owns it but, to a caller with no right on
    /// it, nothing of its settings.
    fn create(
        &mut self,
        connection: ConnectionId,
        name: String,
        settings: MailboxSettings,
        mode: Option<u32>,
        group: Option<u32>,
    ) -> Result<Option<Response>, BrokerError> {
        let Some(creator) = self.connections.get(&connection).map(|state| state.peer) else {
            return Err(error(
                ErrorKind::Internal,
                "request from an unknown connection",
            ));
        };
        check_name(&name)?;
        settings
            .validate()
            .map_err(|why| error(ErrorKind::InvalidSettings, why))?;
        if settings.max_message_size > self.limits.max_message_size {
            return Err(error(
                ErrorKind::InvalidSettings,
                format!(
                    "max message size {} is above this broker's limit of {} bytes (limits.max_message_size)",
                    settings.max_message_size, self.limits.max_message_size
                ),
            ));
        }
        check_mode(mode)?;
        if let Some(caller) = self.caller(connection) {
            self.policy.check_prefix(&caller, &name)?;
        }
        if let Some(gid) = group {
            self.check_group_member(connection, gid, &name)?;
        }
        if let Some(target) = &settings.dead_letter {
            self.check_dead_letter_target(creator.uid, target)?;
        }
        if let Some(existing) = self.places.mailboxes.get_mut(&name) {
            let old = *existing.permissions();
            if old.owner != creator.uid {
                let visible = self
                    .connections
                    .get(&connection)
                    .map(|state| Caller {
                        peer: state.peer,
                        groups: &state.groups,
                    })
                    .is_some_and(|caller| old.visible_to(&caller, &self.policy));
                let detail = if visible {
                    format!(" (group {}, mode {:03o})", old.group, old.mode)
                } else {
                    String::new()
                };
                return Err(error(
                    ErrorKind::MailboxExists,
                    format!(
                        "mailbox {name} exists and belongs to uid {}{detail}; uid {} cannot create it",
                        old.owner, creator.uid
                    ),
                ));
            }
            if *existing.settings() != settings {
                return Err(error(
                    ErrorKind::MailboxExists,
                    format!(
                        "mailbox {name} exists with other settings ({}); delete it first or use its settings",
                        describe(existing.settings())
                    ),
                ));
            }
            existing.set_permissions(Permissions {
                owner: old.owner,
                group: group.unwrap_or(old.group),
                mode: mode.unwrap_or(old.mode),
            });
            return Ok(Some(Response::Created { created: false }));
        }
        let owned = self.mailboxes_of.get(&creator.uid).copied().unwrap_or(0);
        if owned >= self.limits.max_mailboxes_per_uid && creator.uid != 0 {
            return Err(error(
                ErrorKind::TooManyRequests,
                format!(
                    "uid {} owns {owned} mailboxes, its limit (limits.max_mailboxes_per_uid); delete some first",
                    creator.uid
                ),
            ));
        }
        let permissions = Permissions {
            owner: creator.uid,
            group: group.unwrap_or(creator.gid),
            mode: mode.unwrap_or(self.policy.default_mode),
        };
        self.adopt_mailbox(name, settings, permissions);
        Ok(Some(Response::Created { created: true }))
    }

    /// `Ok` when a caller other than root is a member of `gid` (primary or
    /// supplementary), as `chown(2)` requires to give a file to a group.
    fn check_group_member(
        &self,
        connection: ConnectionId,
        gid: u32,
        what: &str,
    ) -> Result<(), BrokerError> {
        let Some(caller) = self.caller(connection) else {
            return Ok(());
        };
        if caller.peer.uid == 0 || caller.in_group(gid) {
            return Ok(());
        }
        Err(error(
            ErrorKind::PermissionDenied,
            format!(
                "uid {} is not a member of group {gid}, so it may not give {what} to that group",
                caller.peer.uid
            ),
        ))
    }

    /// `Ok` when a mailbox owned by `owner` may retire messages into
    /// `target`: only into a mailbox of the same owner, or one the
    /// administrator named in `access.dead_letter_targets`. A target that
    /// does not exist yet passes here and is checked again at each move.
    fn check_dead_letter_target(&self, owner: u32, target: &str) -> Result<(), BrokerError> {
        let Some(mailbox) = self.places.mailboxes.get(target) else {
            return Ok(());
        };
        let target_owner = mailbox.permissions().owner;
        if target_owner == owner || self.policy.dead_letter_targets.contains(target) {
            return Ok(());
        }
        Err(error(
            ErrorKind::PermissionDenied,
            format!(
                "dead letters of a mailbox owned by uid {owner} may not go to {target}, owned by uid {target_owner}; use a mailbox of the same owner or one listed in access.dead_letter_targets"
            ),
        ))
    }

    /// Makes a mailbox declared in the configuration exist with these
    /// settings and permissions: creates it, or gives an existing one the
    /// permissions. Settings of an existing mailbox are never changed (that
    /// could drop queued messages): the answer says when they differ.
    pub fn declare(
        &mut self,
        name: &str,
        settings: MailboxSettings,
        permissions: Permissions,
    ) -> Result<Declared, BrokerError> {
        check_name(name)?;
        settings
            .validate()
            .map_err(|why| error(ErrorKind::InvalidSettings, why))?;
        match self.places.mailboxes.get_mut(name) {
            None => {
                self.adopt_mailbox(name.to_owned(), settings, permissions);
                Ok(Declared::Created)
            }
            Some(mailbox) => {
                let old_owner = mailbox.permissions().owner;
                let changed = *mailbox.permissions() != permissions;
                mailbox.set_permissions(permissions);
                let differs = *mailbox.settings() != settings;
                if old_owner != permissions.owner {
                    self.disown(old_owner);
                    *self.mailboxes_of.entry(permissions.owner).or_default() += 1;
                }
                Ok(match (differs, changed) {
                    (true, _) => Declared::SettingsDiffer,
                    (false, true) => Declared::PermissionsChanged,
                    (false, false) => Declared::Unchanged,
                })
            }
        }
    }

    /// Adds a mailbox with `permissions`, counting it for its owner.
    fn adopt_mailbox(&mut self, name: String, settings: MailboxSettings, permissions: Permissions) {
        *self.mailboxes_of.entry(permissions.owner).or_default() += 1;
        self.places.mailboxes.insert(
            name.clone(),
            Box::new(Mailbox::new(name, settings, permissions)),
        );
    }

    fn delete(
        &mut self,
        name: &str,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let Some(mailbox) = self.places.mailboxes.remove(name) else {
            check_name(name)?;
            return Err(no_such_mailbox(name));
        };
        self.disown(mailbox.permissions().owner);
        self.dead_letter_refusals_reported.remove(name);
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
        };
        mailbox.delete(None, &mut ctx);
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
        plan: SendPlan,
        load: Load,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let mark = out.replies.len();
        let privileged = self.privileged(ticket.connection, peer);
        let Some(mailbox) = self.places.get_mut(&plan.place) else {
            return Err(match &plan.place {
                Place::Mailbox(name) => {
                    check_name(name)?;
                    no_such_mailbox(name)
                }
                _ => error(ErrorKind::NoSuchProcess, "the process left"),
            });
        };
        match &plan.place {
            Place::Mailbox(name) => allowed(
                mailbox.permissions(),
                &self.connections,
                peer,
                ticket.connection,
                Right::Send,
                &self.policy,
                name,
            )?,
            // A process's own sends to itself are always its business.
            Place::Inbox(owner) if *owner != ticket.connection => allowed(
                mailbox.permissions(),
                &self.connections,
                peer,
                ticket.connection,
                Right::Send,
                &self.policy,
                &format!("the inbox of process {}", owner.0),
            )?,
            _ => {}
        }
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
        if mailbox.held_bytes().saturating_add(held) > self.limits.max_queued_bytes_per_mailbox {
            return Err(error(
                ErrorKind::BrokerFull,
                format!(
                    "{} holds {} payload bytes, its limit (limits.max_queued_bytes_per_mailbox) is {}",
                    mailbox.name(),
                    mailbox.held_bytes(),
                    self.limits.max_queued_bytes_per_mailbox
                ),
            ));
        }
        if let Err(exhausted) = self.budget.try_reserve(peer.uid, privileged, held, count) {
            return Err(error(
                ErrorKind::BrokerFull,
                budget_refusal(&self.budget, exhausted, peer.uid),
            ));
        }
        if let Some(call) = plan.call {
            self.calls.insert(
                call,
                CallState {
                    caller: ticket,
                    holder: None,
                    place: plan.place.clone(),
                },
            );
        }
        let send = WaitingSend {
            ticket,
            sender: peer,
            load,
            held,
            extra: plan.extra,
        };
        let wait_plan = WaitPlan::new(wait, clock.now);
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
        };
        match mailbox.send(send, wait_plan.may_wait, &mut ctx) {
            Ok(Progress::Done) => Ok(None),
            Ok(Progress::Waiting) => {
                self.start_wait(ticket, plan.place, wait_plan, plan.call, mark, clock, out)
            }
            Err(send) => {
                self.budget
                    .release(send.sender.uid, send.held, send.waiting_count());
                if let Some(call) = plan.call {
                    self.calls.remove(&call);
                }
                let refused = not_now(wait, mailbox.name(), "full");
                send.failed(refused, mailbox.next_sequence()).map(Some)
            }
        }
    }

    /// Whether `connection` (of `peer`) may fill the budget's reserve and
    /// has no per-uid share: root, the uid the broker runs as, and members
    /// of the admin group.
    fn privileged(&self, connection: ConnectionId, peer: Peer) -> bool {
        if peer.uid == 0 || self.service_uid == Some(peer.uid) {
            return true;
        }
        let Some(admin) = self.policy.admin_group else {
            return false;
        };
        peer.gid == admin
            || self
                .connections
                .get(&connection)
                .is_some_and(|state| state.groups.contains(&admin))
    }

    fn receive(
        &mut self,
        peer: Peer,
        place: Place,
        receive: WaitingReceive,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let ticket = receive.ticket;
        let Some(mailbox) = self.places.get_mut(&place) else {
            return Err(match &place {
                Place::Mailbox(name) => {
                    check_name(name)?;
                    no_such_mailbox(name)
                }
                _ => error(ErrorKind::Internal, "inbox missing"),
            });
        };
        if let Place::Mailbox(name) = &place {
            allowed(
                mailbox.permissions(),
                &self.connections,
                peer,
                ticket.connection,
                Right::Receive,
                &self.policy,
                name,
            )?;
        }
        if mailbox.settings().policy == DeliveryPolicy::Hash {
            if let (Place::Mailbox(name), Some(state)) =
                (&place, self.connections.get_mut(&ticket.connection))
            {
                if !state.subscriptions.contains(name) {
                    state.subscriptions.push(name.clone());
                }
            }
        }
        // Only broadcast mailboxes cut subscribers: other receives skip the
        // connection lookup.
        if mailbox.is_broadcast() {
            if let (Place::Mailbox(name), Some(state)) =
                (&place, self.connections.get_mut(&ticket.connection))
            {
                if let Some(at) = state.cut_from.iter().position(|cut| cut == name) {
                    state.cut_from.swap_remove(at);
                    return Err(mailbox.slow_consumer_error());
                }
            }
        }
        let plan = WaitPlan::new(wait, clock.now);
        let mark = out.replies.len();
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
        };
        let name = mailbox.name().to_owned();
        let from = receive.from;
        match mailbox.receive(receive, plan.may_wait, &mut ctx)? {
            Some(Progress::Done) => Ok(None),
            Some(Progress::Waiting) => {
                if let (Place::Inbox(owner), Some(sender)) = (&place, from) {
                    self.await_sender(*owner, sender);
                }
                self.start_wait(ticket, place, plan, None, mark, clock, out)
            }
            None => Err(not_now(wait, &name, "empty")),
        }
    }

    /// Notes that a receive on `owner`'s inbox waits for `sender` alone.
    fn await_sender(&mut self, owner: ConnectionId, sender: ConnectionId) {
        if self.awaited_by.entry(sender).or_default().insert(owner) {
            if let Some(state) = self.connections.get_mut(&owner) {
                state.awaits.push(sender);
            }
        }
    }

    /// Records a request that now waits in `place`, or takes it back with
    /// `TooManyRequests` when its connection has too many waiting already.
    /// Waits answered since `mark` (a batch send may have fed a receive of
    /// the same connection before waiting) no longer count.
    #[allow(clippy::too_many_arguments)]
    fn start_wait(
        &mut self,
        ticket: Ticket,
        place: Place,
        plan: WaitPlan,
        call: Option<u64>,
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
            if let Some(call) = call {
                self.calls.remove(&call);
            }
            if let Place::Name(name) = &place {
                names::leave_queue(&mut self.names, name, ticket);
                return Err(refused);
            }
            let mut ctx = Context {
                out,
                budget: &mut self.budget,
                clock,
            };
            let withdrawn = self
                .places
                .get_mut(&place)
                .and_then(|m| Some((m.withdraw(ticket, true, &mut ctx)?, m.next_sequence())));
            return match withdrawn {
                Some((Withdrawn::Send(send), next)) => send.failed(refused, next).map(Some),
                _ => Err(refused),
            };
        }
        self.register_wait(ticket, place, plan.deadline, call);
        Ok(None)
    }

    fn register_wait(
        &mut self,
        ticket: Ticket,
        place: Place,
        deadline: Option<Instant>,
        call: Option<u64>,
    ) {
        let serial = self.next_serial;
        self.next_serial += 1;
        if let Some(state) = self.connections.get_mut(&ticket.connection) {
            state.waiting.insert(
                ticket.request,
                Waiting {
                    place,
                    serial,
                    call,
                },
            );
        }
        if let Some(at) = deadline {
            self.deadlines
                .push(Reverse(Deadline { at, serial, ticket }));
        }
    }

    /// Ends a waiting request with `why`: withdraws it and answers it (a
    /// batch send that got partly admitted is answered with what was; a send
    /// whose message a receiver holds is told so). Returns whether it was
    /// waiting.
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
        if let Place::Name(name) = &waiting.place {
            names::leave_queue(&mut self.names, name, target);
            out.reply(target, Err(why));
            return true;
        }
        if let Some(call) = waiting.call {
            self.calls.remove(&call);
        }
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
        };
        let withdrawn = self.places.get_mut(&waiting.place).and_then(|mailbox| {
            let next = mailbox.next_sequence();
            mailbox
                .withdraw(target, true, &mut ctx)
                .map(|withdrawn| (withdrawn, next))
        });
        let result = match withdrawn {
            Some((Withdrawn::Send(send), next)) => send.failed(why, next),
            Some((Withdrawn::Receive | Withdrawn::Queued, _)) => Err(why),
            Some((Withdrawn::InFlight, _)) if why.kind == ErrorKind::Timeout => {
                Err(if waiting.call.is_some() {
                    error(
                        ErrorKind::Timeout,
                        "timed out waiting for the reply; a receiver holds the request",
                    )
                } else {
                    error(
                        ErrorKind::TimeoutInFlight,
                        "timed out after a receiver took the message (stage received reached) but before it was acknowledged; it was not withdrawn",
                    )
                })
            }
            Some((Withdrawn::InFlight, _)) => Err(why),
            // A call whose request was handed over waits for nothing but
            // its reply.
            None if waiting.call.is_some() => Err(why),
            None => return false,
        };
        out.reply(target, result);
        true
    }

    /// One mailbox fewer for `owner`.
    fn disown(&mut self, owner: u32) {
        if let Some(count) = self.mailboxes_of.get_mut(&owner) {
            *count -= 1;
            if *count == 0 {
                self.mailboxes_of.remove(&owner);
            }
        }
    }

    /// Carries out what mailboxes decided beyond themselves, until nothing
    /// is left (a dead letter may cause more).
    fn carry_out(&mut self, clock: &Clock, out: &mut Outcome) {
        while !out.effects.is_empty() {
            let effects = std::mem::take(&mut out.effects);
            for effect in effects {
                match effect {
                    Effect::Expiry {
                        at,
                        place,
                        sequence,
                    } => self.expiries.push(Reverse(Expiry {
                        at,
                        place,
                        sequence,
                    })),
                    Effect::DeadLetter {
                        to,
                        from,
                        message,
                        reason,
                    } => {
                        let from_name = match &from {
                            Place::Mailbox(name) => name.clone(),
                            Place::Inbox(owner) => format!("inbox of process {}", owner.0),
                            Place::Name(name) => name.clone(),
                        };
                        // The same owner's mailbox, or one the administrator
                        // opened to all: a stranger's mailbox of that name may
                        // have been created after the source was set up.
                        let source_owner = self.places.get(&from).map(|m| m.permissions().owner);
                        let target_owner = self
                            .places
                            .mailboxes
                            .get(&to)
                            .map(|m| m.permissions().owner);
                        let permitted = self.policy.dead_letter_targets.contains(&to)
                            || (source_owner.is_some() && source_owner == target_owner);
                        let mut ctx = Context {
                            out,
                            budget: &mut self.budget,
                            clock,
                        };
                        let refused = match self.places.mailboxes.get_mut(&to) {
                            Some(target) if permitted => target
                                .take_dead_letter(message, &from_name, reason, &mut ctx)
                                .err(),
                            _ => Some(message),
                        };
                        if let Some(message) = refused {
                            self.budget.release(
                                message.metadata.sender_uid,
                                message.payload.len() as u64,
                                1,
                            );
                            if let Some(source) = self.places.get_mut(&from) {
                                source.dead_letter_refused();
                            }
                            if target_owner.is_some()
                                && !permitted
                                && self.dead_letter_refusals_reported.insert(from_name.clone())
                            {
                                out.warnings.push(format!(
                                    "dead letter refused: mailbox {from_name} (owner uid {}) may not retire messages into {to} (owner uid {}); dropping them (counted as dropped; reported once per mailbox)",
                                    source_owner.map_or_else(|| "?".to_owned(), |uid| uid.to_string()),
                                    target_owner.map_or_else(|| "?".to_owned(), |uid| uid.to_string()),
                                ));
                            }
                        }
                    }
                    Effect::Wake { at, place } => self.wakes.push(Reverse(Wake { at, place })),
                    Effect::SubscriberCut {
                        connection,
                        mailbox,
                        tell,
                    } => {
                        if let Some(state) = self.connections.get_mut(&connection) {
                            state.subscriptions.retain(|name| *name != mailbox);
                            if tell && !state.cut_from.contains(&mailbox) {
                                state.cut_from.push(mailbox);
                            }
                        }
                    }
                    Effect::CallDelivered { call, holder } => {
                        if let Some(state) = self.calls.get_mut(&call) {
                            state.holder = Some(holder);
                        }
                    }
                    Effect::CallReturned { call } => {
                        if let Some(state) = self.calls.get_mut(&call) {
                            state.holder = None;
                        }
                    }
                    Effect::CallDropped { call, why } => {
                        if let Some(state) = self.calls.remove(&call) {
                            out.reply(state.caller, Err(why));
                        }
                    }
                }
            }
        }
    }

    /// Forgets the waits answered by the replies from `mark` on (other than
    /// `keep`, a duplicate id whose earlier request still waits).
    fn settle(&mut self, out: &Outcome, mark: usize, keep: Option<Ticket>) {
        for reply in &out.replies[mark..] {
            if Some(reply.ticket) == keep {
                continue;
            }
            if let Some(state) = self.connections.get_mut(&reply.ticket.connection) {
                if let Some(waiting) = state.waiting.remove(&reply.ticket.request) {
                    if let Some(call) = waiting.call {
                        self.calls.remove(&call);
                    }
                }
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

    /// The earliest deadline of a waiting operation or of a message's
    /// time-to-live, if any.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let mut next = None;
        while let Some(Reverse(deadline)) = self.deadlines.peek() {
            if self.is_live(deadline) {
                next = Some(deadline.at);
                break;
            }
            self.deadlines.pop();
        }
        let expiry = self.expiries.peek().map(|Reverse(expiry)| expiry.at);
        let wake = self.wakes.peek().map(|Reverse(wake)| wake.at);
        [next, expiry, wake].into_iter().flatten().min()
    }

    /// Fails every waiting operation whose deadline is at or before
    /// `clock.now` with `Timeout` (a timed-out send is withdrawn: it was
    /// never admitted, so it can never be delivered later), and retires
    /// every queued message whose time-to-live is up.
    pub fn expire(&mut self, clock: &Clock, out: &mut Outcome) {
        self.expire_messages(clock, out);
        self.wake_mailboxes(clock, out);
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
            self.carry_out(clock, out);
            self.settle(out, mark, None);
        }
    }

    fn expire_messages(&mut self, clock: &Clock, out: &mut Outcome) {
        let mark = out.replies.len();
        while let Some(Reverse(expiry)) = self.expiries.peek() {
            if expiry.at > clock.now {
                break;
            }
            let Some(Reverse(expiry)) = self.expiries.pop() else {
                break;
            };
            let mut ctx = Context {
                out,
                budget: &mut self.budget,
                clock,
            };
            if let Some(mailbox) = self.places.get_mut(&expiry.place) {
                mailbox.expire(expiry.sequence, &mut ctx);
            }
        }
        self.carry_out(clock, out);
        self.settle(out, mark, None);
    }

    /// Wakes every mailbox whose asked-for time has come (acknowledgement
    /// deadlines, slow subscribers; see `Mailbox::wake`).
    fn wake_mailboxes(&mut self, clock: &Clock, out: &mut Outcome) {
        let mark = out.replies.len();
        // Only the wakes due when this starts: a mailbox asks for its next
        // one later than now, but even if one asked for now, this call
        // would end (and the timer fire again) rather than spin.
        let mut due = Vec::new();
        while self
            .wakes
            .peek()
            .is_some_and(|Reverse(wake)| wake.at <= clock.now)
        {
            if let Some(Reverse(wake)) = self.wakes.pop() {
                due.push(wake);
            }
        }
        for wake in due {
            let mut ctx = Context {
                out,
                budget: &mut self.budget,
                clock,
            };
            if let Some(mailbox) = self.places.get_mut(&wake.place) {
                mailbox.wake(wake.at, &mut ctx);
            }
            self.carry_out(clock, out);
        }
        self.settle(out, mark, None);
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
        for mailbox in self.places.all_mut() {
            mailbox.fail_all_waiters(&stopping, &mut ctx);
        }
        for entry in self.names.values_mut() {
            for ticket in entry.queue.drain() {
                out.reply(ticket, Err(stopping.clone()));
            }
        }
        self.carry_out(clock, out);
        // A call whose request still waited to be sent (a full mailbox, a
        // zero-capacity inbox) was just answered as a waiting sender:
        // settling forgets it, so only the calls still open are answered
        // below, each once.
        self.settle(out, mark, None);
        let mark = out.replies.len();
        for (_, state) in self.calls.drain() {
            out.reply(state.caller, Err(stopping.clone()));
        }
        self.settle(out, mark, None);
    }

    /// Broker-wide figures.
    pub fn status(&self, clock: &Clock) -> BrokerStatus {
        let queued_messages = self
            .places
            .all()
            .map(|mailbox| mailbox.info().queued_messages)
            .sum();
        BrokerStatus {
            broker_version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol_version: PROTOCOL_VERSION,
            pid: std::process::id(),
            uptime_millis: clock
                .now
                .saturating_duration_since(self.started)
                .as_millis() as u64,
            connections: self.connections.len() as u64,
            mailboxes: self.places.mailboxes.len() as u64,
            queued_messages,
            queued_bytes: self.budget.held(),
            memory_budget_bytes: self.budget.limit(),
            limits: self.limit_list(),
        }
    }

    /// The limits in force, by their configuration names.
    fn limit_list(&self) -> Vec<mailbox_proto::Limit> {
        let l = &self.limits;
        let budget = l.budget();
        [
            ("memory_budget", l.memory_budget),
            ("max_queued_messages", l.max_queued_messages),
            (
                "max_requests_in_flight",
                l.max_waiting_per_connection as u64,
            ),
            ("max_connections", l.max_connections as u64),
            ("max_connections_per_uid", l.max_connections_per_uid as u64),
            ("reserved_connections", l.reserved_connections as u64),
            ("max_mailboxes_per_uid", l.max_mailboxes_per_uid as u64),
            (
                "max_queued_bytes_per_mailbox",
                l.max_queued_bytes_per_mailbox,
            ),
            ("max_queued_bytes_per_uid", budget.bytes_per_uid),
            ("max_queued_messages_per_uid", budget.messages_per_uid),
            ("admin_reserve_bytes", budget.reserved_bytes),
            ("admin_reserve_messages", budget.reserved_messages),
            ("max_message_size", u64::from(l.max_message_size)),
        ]
        .into_iter()
        .map(|(name, value)| mailbox_proto::Limit {
            name: name.to_owned(),
            value,
        })
        .collect()
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Number of mailboxes.
    pub fn mailbox_count(&self) -> usize {
        self.places.mailboxes.len()
    }
}

/// `Ok` when the connection of `peer` has `right` on a mailbox with
/// `permissions`. The common cases (root, the owner, a right every user has)
/// are decided from `peer` alone; only a group check looks the connection's
/// supplementary groups up.
#[allow(clippy::too_many_arguments)]
fn allowed(
    permissions: &Permissions,
    connections: &ConnectionMap<Box<Connection>>,
    peer: Peer,
    connection: ConnectionId,
    right: Right,
    policy: &AccessPolicy,
    name: &str,
) -> Result<(), BrokerError> {
    // Without supplementary groups the class (owner, group, others) is
    // certain only for root, the owner and members by primary group.
    let class_known =
        peer.uid == 0 || peer.uid == permissions.owner || peer.gid == permissions.group;
    let no_groups = Caller { peer, groups: &[] };
    if class_known {
        return permissions.check(&no_groups, right, policy, name);
    }
    let groups = connections
        .get(&connection)
        .map_or(&[][..], |state| &state.groups[..]);
    permissions.check(&Caller { peer, groups }, right, policy, name)
}

/// `Ok` for a mode of permission bits only (`0o000` to `0o777`).
fn check_mode(mode: Option<u32>) -> Result<(), BrokerError> {
    match mode {
        Some(mode) if mode > 0o777 => Err(error(
            ErrorKind::InvalidSettings,
            format!("mode {mode:o} has bits above 0o777"),
        )),
        _ => Ok(()),
    }
}

/// Why the budget refused a send of `uid`, and what to do about it.
fn budget_refusal(budget: &Budget, exhausted: Exhausted, uid: u32) -> String {
    let limits = budget.limits();
    let usage = budget.usage(uid);
    match exhausted {
        Exhausted::Bytes => format!(
            "the broker holds {} of its {} byte budget ({} of which only root, the admin group and the uid mailboxd runs as may fill, limits.admin_reserve_bytes); receive from some mailboxes or raise limits.memory_budget",
            budget.held(),
            limits.bytes,
            limits.reserved_bytes
        ),
        Exhausted::Messages => format!(
            "the broker holds {} of its {} message limit ({} of which only root, the admin group and the uid mailboxd runs as may fill, limits.admin_reserve_messages); receive from some mailboxes or raise limits.max_queued_messages",
            budget.messages(),
            limits.messages,
            limits.reserved_messages
        ),
        Exhausted::UidBytes => format!(
            "messages sent by uid {uid} hold {} payload bytes in the broker, its share (limits.max_queued_bytes_per_uid) is {}; let receivers take some first",
            usage.bytes, limits.bytes_per_uid
        ),
        Exhausted::UidMessages => format!(
            "uid {uid} has {} messages in the broker, its share (limits.max_queued_messages_per_uid) is {}; let receivers take some first",
            usage.messages, limits.messages_per_uid
        ),
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
        format!(
            "this connection already has {limit} requests waiting (limits.max_requests_in_flight)"
        ),
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

/// Whether a request with this `wait` may wait at all: a question of the
/// request alone, so it needs no time.
fn may_wait(wait: Wait) -> bool {
    !matches!(wait, Wait::Never | Wait::Timeout { millis: 0 })
}

impl WaitPlan {
    fn new(wait: Wait, now: Instant) -> Self {
        let deadline = match wait {
            Wait::Timeout { millis } if may_wait(wait) => {
                // A deadline too far to represent is no deadline at all.
                now.checked_add(Duration::from_millis(millis))
            }
            _ => None,
        };
        Self {
            may_wait: may_wait(wait),
            deadline,
        }
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
    if let Some(max) = settings.max_deliveries {
        text.push_str(&format!(", max deliveries {max}"));
    }
    if let Some(dead_letter) = &settings.dead_letter {
        text.push_str(&format!(", dead letters to {dead_letter}"));
    }
    if let Some(ttl) = settings.ttl_millis {
        text.push_str(&format!(", ttl {ttl} ms"));
    }
    if let Some(timeout) = settings.ack_timeout_millis {
        text.push_str(&format!(", ack timeout {timeout} ms"));
    }
    if let Some(after) = settings.cut_slow_subscribers_after_millis {
        text.push_str(&format!(", cuts slow subscribers after {after} ms"));
    }
    text
}

#[cfg(test)]
impl Core {
    /// Checks every invariant of every mailbox and of the budget.
    pub(crate) fn check_invariants(&self) {
        let mut held = 0;
        let mut messages = 0;
        let mut waits = 0;
        let mut watched = std::collections::HashSet::new();
        let mut sending = std::collections::HashSet::new();
        let mut charges = HashMap::new();
        for mailbox in self.places.all() {
            mailbox.charges(&mut charges);
            mailbox.check_invariants();
            let (in_flight_bytes, in_flight) = mailbox.in_flight_bytes();
            held += mailbox.queued_bytes() + mailbox.waiting_payload_bytes() + in_flight_bytes;
            messages +=
                mailbox.info().queued_messages + mailbox.waiting_message_count() + in_flight;
            let info = mailbox.info();
            waits += (info.waiting_senders + info.waiting_receivers) as usize;
            watched.extend(mailbox.watched_tickets());
            sending.extend(mailbox.sender_tickets());
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
        charges.retain(|_, usage: &mut Usage| *usage != Usage::default());
        let usages: HashMap<u32, Usage> = self.budget.usages().collect();
        assert_eq!(
            charges, usages,
            "per-uid charges out of step with the mailboxes"
        );
        waits += watched.len();
        waits += self.names.values().map(|e| e.queue.len()).sum::<usize>();
        // A call waits as its request's send until that is admitted (a full
        // mailbox, a zero-capacity inbox), then as a watch or on its own.
        waits += self
            .calls
            .values()
            .filter(|call| !watched.contains(&call.caller) && !sending.contains(&call.caller))
            .count();
        assert_eq!(
            waits,
            self.waiting_count(),
            "waits out of step with the mailboxes"
        );
        for (name, entry) in &self.names {
            let owner = self.connections.get(&entry.owner);
            assert!(
                owner.is_some_and(|c| c.names.contains(name)),
                "name {name} owned by a connection that does not list it"
            );
        }
    }
}
