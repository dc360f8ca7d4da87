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
//!
//! Where each concern lives:
//! - this file: [`Core`], its fields and its entry points ([`Core::apply`],
//!   [`Core::shut_down`]); `handlers/` has one handler per request, by
//!   topic, behind `dispatch`;
//! - state the core owns: `places.rs` (mailboxes and inboxes),
//!   `connections.rs` (the connection table, admission, disconnect),
//!   `names.rs` and `calls.rs` (registries of well-known names and open
//!   calls, which return change records the core acts on), `regions.rs`
//!   (shared-memory regions: the core decides, the broker holds the
//!   memory, told by `RegionChange` records), `timers.rs`
//!   (deadlines, expiries, wakes), `budget.rs`, `limits.rs`;
//! - how an operation ends: `waits.rs` (registering and ending waits),
//!   `effects.rs` (what mailboxes decided beyond themselves, and settling);
//! - rules: `mailbox.rs` (one mailbox's delivery), `access.rs` and
//!   `rights.rs` (who may do what), `listing.rs` (listings in pages).

mod access;
mod budget;
mod calls;
mod connections;
mod effects;
mod handlers;
mod limits;
mod line;
mod listing;
mod mailbox;
mod names;
mod openings;
mod places;
mod regions;
mod rights;
mod timers;
mod types;
mod waiting;
mod waits;

#[cfg(test)]
mod tests;
#[cfg(test)]
use tests::peer_of as peer_of_test;

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use mailbox_proto::{BrokerError, ErrorKind, MailboxName, Request, RequestId};

pub use access::{AccessPolicy, Permissions, Reservation, Right, DEFAULT_INBOX_MODE, DEFAULT_MODE};
pub use budget::{Budget, BudgetLimits, Exhausted, Usage};
pub use limits::Limits;
pub use names::MAX_NAMES_PER_CONNECTION;
pub use regions::RegionChange;
pub use types::{Clock, ConnectionId, ConnectionMap, Outcome, Peer, Reply, Ticket};

use access::Caller;
use calls::CallRegistry;
use connections::Connection;
use mailbox::Context;
use names::NameRegistry;
use openings::Openings;
use places::Places;
use regions::RegionRegistry;
use timers::Timers;

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

/// The broker's state: mailboxes, connections, waiting operations, deadlines.
#[derive(Debug)]
pub struct Core {
    limits: Limits,
    started: Instant,
    places: Places,
    // Boxed like mailboxes: thousands of idle connections, and a map
    // keeps spare slots.
    connections: ConnectionMap<Box<Connection>>,
    /// Well-known names, their owners and queued claims.
    names: NameRegistry,
    /// Calls waiting for their replies.
    calls: CallRegistry,
    /// Opens waiting for a mailbox to be created.
    openings: Openings,
    /// Shared-memory regions (their memory files are the broker's).
    regions: RegionRegistry,
    /// Deadlines of waiting requests, expiries of messages, mailbox wakes.
    timers: Timers,
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
    /// Limits the server enforces itself (frames, handshakes, buffers),
    /// reported by `Status` after the core's own.
    server_limits: Vec<mailbox_proto::Limit>,
}

/// An error to answer with.
fn error(kind: ErrorKind, message: impl Into<String>) -> BrokerError {
    BrokerError::new(kind, message)
}

/// `Ok` for a valid mailbox or well-known name, else `InvalidName`.
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
            places: Places::default(),
            connections: ConnectionMap::default(),
            names: NameRegistry::default(),
            calls: CallRegistry::default(),
            openings: Openings::default(),
            regions: RegionRegistry::default(),
            timers: Timers::default(),
            budget: Budget::with_limits(limits.budget()),
            shutting_down: false,
            policy: AccessPolicy::default(),
            connections_of: HashMap::new(),
            mailboxes_of: HashMap::new(),
            dead_letter_refusals_reported: BTreeSet::new(),
            awaited_by: ConnectionMap::default(),
            service_uid: None,
            server_limits: Vec::new(),
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

    /// Gives the limits the server enforces itself (the core knows nothing
    /// of frames, handshakes or socket buffers), so that `Status` reports
    /// every limit in force: they follow the core's own, as given.
    pub fn set_server_limits(&mut self, limits: Vec<mailbox_proto::Limit>) {
        self.server_limits = limits;
    }

    /// Says which uid the broker runs as (see `privileged`).
    pub fn set_service_uid(&mut self, uid: u32) {
        self.service_uid = Some(uid);
    }

    /// Changes the access rules (a configuration reload).
    pub fn set_access_policy(&mut self, policy: AccessPolicy) {
        self.policy = policy;
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
        if self.timers.expiry_due(clock.now) {
            self.expire_messages(clock, out);
        }
        // Nor may a settle be taken after its acknowledgement deadline, or
        // a cut subscriber read on.
        if self.timers.wake_due(clock.now) {
            self.wake_mailboxes(clock, out);
        }
        let mark = out.replies.len();
        let quiet = matches!(request, Request::SendQuietly { .. });
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
        if quiet {
            // Answered only when it fails. It never waits, so its answer,
            // if any, was made in this step.
            if let Some(at) = out.replies[mark..]
                .iter()
                .position(|reply| reply.ticket == ticket && reply.result.is_ok())
            {
                out.replies.remove(mark + at);
            }
        }
    }

    /// Starts shutdown: every waiting operation is answered with
    /// `BrokerShuttingDown`, and so is every later request.
    pub fn shut_down(&mut self, clock: &Clock, out: &mut Outcome) {
        self.shutting_down = true;
        let stopping = error(
            ErrorKind::BrokerShuttingDown,
            "this waiting request ends unanswered",
        );
        let mark = out.replies.len();
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
            names: &self.names,
        };
        for mailbox in self.places.all_mut() {
            mailbox.fail_all_waiters(&stopping, &mut ctx);
        }
        for ticket in self.names.drain_queues() {
            out.reply(ticket, Err(stopping.clone()));
        }
        for ticket in self.openings.drain() {
            out.reply(ticket, Err(stopping.clone()));
        }
        self.carry_out(clock, out);
        // A call whose request still waited to be sent (a full mailbox, a
        // zero-capacity inbox) was just answered as a waiting sender:
        // settling forgets it, so only the calls still open are answered
        // below, each once.
        self.settle(out, mark, None);
        let mark = out.replies.len();
        for ended in self.calls.drain() {
            out.reply(ended.caller, Err(stopping.clone()));
        }
        self.settle(out, mark, None);
    }

    /// Whether `connection` sent `AcceptFiles`: the server then passes
    /// memory-file payloads to it as files rather than inline.
    pub fn accepts_files(&self, connection: ConnectionId) -> bool {
        self.connections
            .get(&connection)
            .is_some_and(|state| state.accepts_files)
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
