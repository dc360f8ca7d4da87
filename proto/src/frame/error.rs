//! What the broker answers with when a request fails: [`BrokerError`] and
//! its [`ErrorKind`].

use std::fmt;

use serde::{Deserialize, Serialize};

// Only named in doc links.
#[cfg(doc)]
use crate::Request;

/// What went wrong, as a kind a program can match on and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerError {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// A human-readable explanation with the specifics.
    pub message: String,
}

impl BrokerError {
    /// An error of `kind` explained by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for BrokerError {}

/// The kinds of failure the broker reports. Appended to, never reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The mailbox name breaks the naming rule.
    InvalidName,
    /// The mailbox settings contradict themselves or a broker limit.
    InvalidSettings,
    /// The payload is above the mailbox's maximum message size.
    MessageTooLarge,
    /// The payload is not the mailbox's fixed size.
    WrongMessageSize,
    /// No mailbox has that name.
    NoSuchMailbox,
    /// A mailbox of that name exists with other settings.
    MailboxExists,
    /// A non-blocking operation could not complete at once (mailbox full,
    /// empty, or no receiver waiting on a `zero` mailbox). Nothing changed.
    WouldBlock,
    /// A timed operation ran out of time. A send was withdrawn and will never
    /// be delivered.
    Timeout,
    /// The mailbox was deleted while the operation waited on it.
    MailboxDeleted,
    /// The broker's memory budget for held messages is spent.
    BrokerFull,
    /// The broker is stopping.
    BrokerShuttingDown,
    /// Receive or unsubscribe on a broadcast mailbox without a subscription.
    NotSubscribed,
    /// Subscribe on a mailbox whose policy is not broadcast.
    NotBroadcast,
    /// The request was withdrawn by a [`Request::Cancel`].
    Cancelled,
    /// The request id is already in use by a waiting request of this connection.
    DuplicateRequestId,
    /// This connection has too many requests waiting.
    TooManyRequests,
    /// The caller may not do this.
    PermissionDenied,
    /// The peer broke the protocol (bad frame, bad handshake).
    ProtocolViolation,
    /// The client speaks another protocol version.
    UnsupportedVersion,
    /// A bug in the broker; the message says more.
    Internal,
    /// No live process has that address or name.
    NoSuchProcess,
    /// The well-known name is held by another process.
    NameTaken,
    /// The process holding a call's request left (or the request was
    /// dropped) without replying.
    NoReply,
    /// Settle of a message this connection does not hold, or reply to a
    /// call it does not hold.
    NotHeld,
    /// A send timed out after a receiver took the message but before it
    /// acknowledged it: the message was not withdrawn.
    TimeoutInFlight,
    /// The message's time-to-live ran out before it was delivered.
    Expired,
    /// The message reached its mailbox's maximum number of deliveries.
    DeadLettered,
    /// The caller of a call stopped waiting (timed out, cancelled, left).
    CallEnded,
    /// The request does not apply to this mailbox (e.g. manual
    /// acknowledgement on broadcast, a call to a broadcast mailbox).
    InvalidRequest,
    /// The message was discarded by a purge of its mailbox.
    Purged,
    /// This connection's subscription was cut off because its backlog
    /// stayed full for longer than the mailbox allows (a slow consumer);
    /// its unread messages are gone. Subscribe again to read on.
    SlowConsumer,
    /// No region has that name.
    NoSuchRegion,
    /// A region of that name exists with another size, or another uid
    /// owns it.
    RegionExists,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidName => "invalid mailbox name",
            ErrorKind::InvalidSettings => "invalid mailbox settings",
            ErrorKind::MessageTooLarge => "message too large",
            ErrorKind::WrongMessageSize => "wrong message size",
            ErrorKind::NoSuchMailbox => "no such mailbox",
            ErrorKind::MailboxExists => "mailbox exists with other settings",
            ErrorKind::WouldBlock => "would block",
            ErrorKind::Timeout => "timed out",
            ErrorKind::MailboxDeleted => "mailbox deleted",
            ErrorKind::BrokerFull => "broker memory budget spent",
            ErrorKind::BrokerShuttingDown => "broker shutting down",
            ErrorKind::NotSubscribed => "not subscribed",
            ErrorKind::NotBroadcast => "not a broadcast mailbox",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::DuplicateRequestId => "duplicate request id",
            ErrorKind::TooManyRequests => "too many requests in flight",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::ProtocolViolation => "protocol violation",
            ErrorKind::UnsupportedVersion => "unsupported protocol version",
            ErrorKind::Internal => "internal broker error",
            ErrorKind::NoSuchProcess => "no such process",
            ErrorKind::NameTaken => "name taken",
            ErrorKind::NoReply => "no reply",
            ErrorKind::NotHeld => "not held",
            ErrorKind::TimeoutInFlight => "timed out in flight",
            ErrorKind::Expired => "expired",
            ErrorKind::DeadLettered => "dead-lettered",
            ErrorKind::CallEnded => "call ended",
            ErrorKind::InvalidRequest => "invalid request",
            ErrorKind::Purged => "purged",
            ErrorKind::SlowConsumer => "cut off as a slow consumer",
            ErrorKind::NoSuchRegion => "no such region",
            ErrorKind::RegionExists => "region exists",
        })
    }
}
