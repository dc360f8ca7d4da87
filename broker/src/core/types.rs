//! The small values the core works in: who asked, when, and what to answer.

use std::time::Instant;

use mailbox_proto::{BrokerError, RequestId, Response};

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

/// The effects of one or more core operations: every reply to deliver, to
/// any connection (a send may wake a receiver elsewhere). The core performs
/// none of them; the server writes them to the right sockets.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Replies in the order they were decided.
    pub replies: Vec<Reply>,
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
