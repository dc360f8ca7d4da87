//! The small values the core works in: who asked, when, and what to answer.

use std::time::Instant;

use mailbox_proto::{BrokerError, Message, RequestId, Response};

/// The broker's id for one client connection; never reused while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// One request of one connection: the address of every answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket {
    /// Whose request.
    pub connection: ConnectionId,
    /// Which of its requests.
    pub request: RequestId,
}

/// The peer credentials of a connection, read from its socket by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Peer {
    /// Process id.
    pub pid: u32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// The time, passed in: the core never reads a clock, so tests control it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Monotonic time, for deadlines.
    pub now: Instant,
    /// Wall time in nanoseconds since the Unix epoch, for message metadata.
    pub unix_nanos: u64,
}

/// One answer the caller of the core must deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The request it answers.
    pub ticket: Ticket,
    /// The answer.
    pub result: Result<Response, BrokerError>,
}

/// Where messages wait (a named mailbox or a connection's inbox), and
/// where a request may wait (also: in the queue for a well-known name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Place {
    Mailbox(String),
    Inbox(ConnectionId),
    Name(String),
}

/// What a mailbox decided that reaches beyond it; the core carries these
/// out before the operation ends (see `Core::carry_out`).
#[derive(Debug)]
pub(crate) enum Effect {
    /// A message with a time-to-live was accepted: expire it then.
    Expiry {
        at: Instant,
        place: Place,
        sequence: u64,
    },
    /// A message must move to the dead-letter mailbox `to` (its budget stays
    /// reserved for it; the core releases it when `to` cannot take it).
    DeadLetter {
        to: String,
        from: Place,
        message: Message,
        reason: &'static str,
    },
    /// A call's request was handed to `holder`.
    CallDelivered { call: u64, holder: ConnectionId },
    /// A call's request came back to its mailbox (nack, holder left).
    CallReturned { call: u64 },
    /// A call's request is gone unanswered (expired, deleted, dead-lettered).
    CallDropped { call: u64, why: BrokerError },
}

/// The effects of one or more core operations: every reply to deliver, to
/// any connection (a send may wake a receiver elsewhere). The core performs
/// none of them; the server writes them to the right sockets.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Replies in the order they were decided.
    pub replies: Vec<Reply>,
    /// Effects the core still has to carry out; empty when an operation returns.
    pub(crate) effects: Vec<Effect>,
}

impl Outcome {
    /// An empty outcome.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn reply(&mut self, ticket: Ticket, result: Result<Response, BrokerError>) {
        self.replies.push(Reply { ticket, result });
    }
}
