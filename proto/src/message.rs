//! A delivered message: the payload and the metadata the broker stamped on it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Facts about a message that the broker records when it accepts it. The
/// sender cannot set or forge any of them: identities come from the socket's
/// peer credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Position in the mailbox's stream of accepted messages, from 1, without
    /// gaps: a withdrawn send never takes a number.
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
}

/// A message as a receiver gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// What the broker knows about where the message came from.
    pub metadata: Metadata,
    /// The bytes the sender sent, unchanged.
    pub payload: Bytes,
}
