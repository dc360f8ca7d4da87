//! A delivered message: the payload and the metadata the broker stamped on it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Facts about a message that the broker records when it accepts it. The
/// sender cannot set or forge any of them: identities come from the socket's
/// peer credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Position in the mailbox's stream of accepted messages, from 1. A send
    /// withdrawn before admission never takes a number; a gap appears only
    /// where an admitted message was withdrawn (its sender's timeout while
    /// waiting for a later stage), expired, dead-lettered or purged. Replies
    /// to calls carry 0.
    pub sequence: u64,
    /// Process id of the sender.
    pub sender_pid: u32,
    /// User id of the sender.
    pub sender_uid: u32,
    /// Group id of the sender.
    pub sender_gid: u32,
    /// The broker's id for the sender's connection.
    pub sender_connection: u64,
    /// When the broker accepted the message, in nanoseconds since the Unix epoch.
    pub accepted_at_unix_nanos: u64,
    /// How many times it was delivered before and came back (nack or a
    /// receiver that left holding it).
    pub redeliveries: u32,
    /// What only some messages carry; boxed so plain messages stay small.
    pub details: Option<Box<Details>>,
}

/// The metadata of messages that were sent with options, are calls, or were
/// dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Details {
    /// The routing key it was sent with.
    pub key: Option<String>,
    /// Set on a call's request (answer it with this id) and on its reply.
    pub call: Option<u64>,
    /// When it expires, in nanoseconds since the Unix epoch.
    pub expires_at_unix_nanos: Option<u64>,
    /// Set when it was moved to a dead-letter mailbox.
    pub dead_letter: Option<DeadLetter>,
}

/// Where a dead-lettered message came from and why it was moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The mailbox it was in.
    pub mailbox: String,
    /// Its sequence number there.
    pub sequence: u64,
    /// Why it was moved (`max deliveries`, `expired`).
    pub reason: String,
}

impl Metadata {
    /// The call id, when this message is a call's request or reply.
    pub fn call(&self) -> Option<u64> {
        self.details.as_ref().and_then(|d| d.call)
    }

    /// The routing key, when it was sent with one.
    pub fn key(&self) -> Option<&str> {
        self.details.as_ref().and_then(|d| d.key.as_deref())
    }
}

/// A message as a receiver gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// What the broker knows about where the message came from.
    pub metadata: Metadata,
    /// The bytes the sender sent, unchanged.
    pub payload: Bytes,
}

/// One message fixture for the tests of every crate in the workspace, so that
/// a field added to [`Metadata`] is added in one place. Compiled for this
/// crate's own tests and, in other crates, through the `fixtures` feature
/// (enabled from their `[dev-dependencies]` only).
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures {
    use super::{Details, Message, Metadata};
    use bytes::Bytes;

    /// A plain message: `sequence`, `payload`, and a sender whose pid, uid,
    /// gid and connection are 1, 2, 3 and 4, accepted at 5 ns past the epoch.
    ///
    /// ```
    /// let message = mailbox_proto::fixtures::message(7, "job");
    /// assert_eq!(message.metadata.sequence, 7);
    /// assert_eq!(&message.payload[..], b"job");
    /// ```
    pub fn message(sequence: u64, payload: impl Into<Bytes>) -> Message {
        Message {
            metadata: Metadata {
                sequence,
                sender_pid: 1,
                sender_uid: 2,
                sender_gid: 3,
                sender_connection: 4,
                accepted_at_unix_nanos: 5,
                redeliveries: 0,
                details: None,
            },
            payload: payload.into(),
        }
    }

    /// [`message`] with the given details (a key, a call id, a dead letter).
    pub fn message_with(sequence: u64, payload: impl Into<Bytes>, details: Details) -> Message {
        let mut message = message(sequence, payload);
        message.metadata.details = Some(Box::new(details));
        message
    }
}
