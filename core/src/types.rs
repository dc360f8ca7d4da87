//! The small values the core works in: who asked, when, and what to answer.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use mailbox_proto::{BrokerError, Message, RequestId, Response};

/// The broker's id for one client connection; never reused while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// A map keyed by connection id, hashed by `ConnectionIdHasher`.
pub type ConnectionMap<V> = HashMap<ConnectionId, V, BuildHasherDefault<ConnectionIdHasher>>;

/// Hashes a connection id with one multiplication.
///
/// Every request looks its connection up several times (its state, its
/// outbox, its waits), and the default SipHash cost about 140 instructions
/// each, some 7% of the broker's work per request on `rtt`. Its protection
/// against chosen keys is not needed here: the broker numbers connections
/// itself, in sequence. Multiplying by an odd constant maps distinct ids
/// to distinct low bits (hashbrown's bucket index) and mixes them into the
/// high bits (its tag byte).
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnectionIdHasher(u64);

impl Hasher for ConnectionIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `ConnectionId`; this keeps any other
        // key type correct, if slow.
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

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
/// where a request may wait (also: in the queue for a well-known name, or
/// for a mailbox of this name to be created).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Place {
    Mailbox(String),
    Inbox(ConnectionId),
    Name(String),
    Opening(String),
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
    /// The mailbox at `place` wants [`Mailbox::wake`] called at `at` (an
    /// acknowledgement deadline, a subscriber's backlog full too long).
    ///
    /// [`Mailbox::wake`]: super::mailbox::Mailbox::wake
    Wake { at: Instant, place: Place },
    /// `connection`'s subscription to broadcast mailbox `mailbox` was cut
    /// (a slow consumer); `tell` when its next receive there must learn it.
    SubscriberCut {
        connection: ConnectionId,
        mailbox: String,
        tell: bool,
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
    /// Events an administrator should hear of (the server logs them as
    /// warnings); each is reported once, not per message.
    pub warnings: Vec<String>,
    /// Regions created or deleted: the broker makes or drops their memory
    /// files before it writes the replies.
    pub regions: Vec<crate::RegionChange>,
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

/// A list that is empty for almost every owner: one pointer until its first
/// entry. A connection carries a few of these (slow-subscriber cuts, senders
/// its inbox waits for), and thousands of idle connections should not pay
/// a `Vec`'s three words for each.
#[derive(Debug)]
// The box is the point: `Option<Box<Vec>>` is one word while empty.
#[allow(clippy::box_collection)]
pub(crate) struct SparseList<T>(Option<Box<Vec<T>>>);

impl<T> Default for SparseList<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T> SparseList<T> {
    pub(crate) fn push(&mut self, item: T) {
        self.0.get_or_insert_with(Box::default).push(item);
    }

    pub(crate) fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        if let Some(items) = &mut self.0 {
            items.retain(keep);
            if items.is_empty() {
                self.0 = None;
            }
        }
    }

    pub(crate) fn swap_remove(&mut self, index: usize) -> T {
        let items = self.0.as_mut().expect("swap_remove on an empty list");
        let item = items.swap_remove(index);
        if items.is_empty() {
            self.0 = None;
        }
        item
    }
}

impl<T> std::ops::Deref for SparseList<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    #[test]
    fn sequential_connection_ids_spread_over_buckets_and_tags() {
        let build = BuildHasherDefault::<ConnectionIdHasher>::default();
        let hashes: Vec<u64> = (1..=4096)
            .map(|id| build.hash_one(ConnectionId(id)))
            .collect();
        // hashbrown takes the bucket from the low bits: a table of 4096
        // buckets gets one id in each.
        let buckets: HashSet<u64> = hashes.iter().map(|hash| hash & 4095).collect();
        assert_eq!(buckets.len(), 4096);
        // ... and a 7-bit tag from the top: all 128 appear.
        let tags: HashSet<u64> = hashes.iter().map(|hash| hash >> 57).collect();
        assert_eq!(tags.len(), 128);
    }
}
