//! Frames: the handshake, requests and responses.
//!
//! Bincode encodes enum variants by their position, so variants are only ever
//! appended, never reordered or removed, and [`Hello`], [`ServerFrame::Welcome`]
//! and [`ServerFrame::Goodbye`] are frozen across protocol versions: that is
//! what lets a broker tell a client of another version what went wrong.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::mailbox::{BrokerStatus, Capacity, MailboxInfo, MailboxSettings};
use crate::message::Message;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 3;

/// First field of every [`Hello`]: the bytes `MBOX` read as a little-endian
/// `u32`, so that a peer speaking something else entirely is told so.
pub const HELLO_MAGIC: u32 = u32::from_le_bytes(*b"MBOX");

/// Identifies a request on one connection; chosen by the client, unique among
/// that connection's requests still waiting for their response.
pub type RequestId = u64;

/// The first frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`HELLO_MAGIC`].
    pub magic: u32,
    /// The protocol version the client speaks.
    pub protocol_version: u32,
    /// Free text for logs, e.g. the program's name.
    pub client_name: String,
}

impl Hello {
    /// A hello for this crate's protocol version.
    pub fn new(client_name: impl Into<String>) -> Self {
        Self {
            magic: HELLO_MAGIC,
            protocol_version: PROTOCOL_VERSION,
            client_name: client_name.into(),
        }
    }
}

/// The broker's answer to an accepted [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the broker speaks (equal to the client's).
    pub protocol_version: u32,
    /// The broker's crate version, for humans.
    pub broker_version: String,
    /// The broker's id for this connection, as it appears in message metadata.
    pub connection_id: u64,
    /// The largest frame the broker accepts, header excluded.
    pub max_frame_len: u32,
}

/// Every frame a client sends after its [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// The request's id; its response carries the same id.
    pub id: RequestId,
    /// What the client asks for.
    pub request: Request,
}

/// Every frame the broker sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The handshake succeeded.
    Welcome(Welcome),
    /// The broker is closing this connection, and says why (bad handshake,
    /// protocol violation, shutdown). Nothing follows it.
    Goodbye(BrokerError),
    /// The one response to the request with this id.
    Response {
        /// The id of the request this answers.
        id: RequestId,
        /// What happened.
        result: Result<Response, BrokerError>,
    },
}

/// How long an operation may wait for room (send) or for a message (receive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Wait {
    /// Block until it can complete (or the mailbox is deleted).
    Forever,
    /// Complete now or fail with [`ErrorKind::WouldBlock`].
    Never,
    /// Wait at most this many milliseconds, then fail with [`ErrorKind::Timeout`].
    Timeout {
        /// The limit, in milliseconds.
        millis: u64,
    },
}

/// What a client asks of the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Create a mailbox; succeeds without change when it exists with equal settings.
    CreateMailbox {
        /// Its name.
        name: String,
        /// Its settings (boxed: see [`Request::CreateMailboxWith`]).
        settings: Box<MailboxSettings>,
    },
    /// Delete a mailbox, failing every operation waiting on it with
    /// [`ErrorKind::MailboxDeleted`].
    DeleteMailbox {
        /// Its name.
        name: String,
    },
    /// Describe every mailbox (those the caller has some right on). Fails
    /// with [`ErrorKind::InvalidRequest`] when the list would take more than
    /// [`MAX_LIST_BYTES`]: use [`Request::ListMailboxPage`].
    ListMailboxes,
    /// Describe one mailbox.
    MailboxInfo {
        /// Its name.
        name: String,
    },
    /// Put a message in a mailbox.
    Send {
        /// Where to.
        mailbox: String,
        /// The message's bytes.
        payload: Bytes,
        /// How long to wait for room.
        wait: Wait,
    },
    /// Take the next message from a mailbox (for broadcast, from this
    /// connection's subscription to it).
    Receive {
        /// Where from.
        mailbox: String,
        /// How long to wait for a message.
        wait: Wait,
    },
    /// Start receiving a copy of every message later sent to a broadcast mailbox.
    Subscribe {
        /// Which mailbox.
        mailbox: String,
    },
    /// Stop a subscription; its unread backlog is released.
    Unsubscribe {
        /// Which mailbox.
        mailbox: String,
    },
    /// Withdraw an earlier request of this connection that is still waiting.
    /// The withdrawn request is answered with [`ErrorKind::Cancelled`].
    Cancel {
        /// The id of the request to withdraw.
        request: RequestId,
    },
    /// Broker-wide figures.
    Status,
    /// Put several messages in a mailbox, in order, as if sent one after the
    /// other by one blocking sender: each is admitted as room appears, and
    /// they get consecutive sequence numbers. Answered with
    /// [`Response::SentMany`] once all are admitted or the wait ends.
    SendMany {
        /// Where to.
        mailbox: String,
        /// The messages' bytes, in order.
        payloads: Vec<Bytes>,
        /// How long to wait for room for all of them.
        wait: Wait,
    },
    /// Take up to `max` messages at once: waits (as `wait` allows) until at
    /// least one is available, then takes every available one up to `max`,
    /// in order. Answered with [`Response::ReceivedMany`].
    ReceiveMany {
        /// Where from.
        mailbox: String,
        /// The most messages to take (at least 1).
        max: u32,
        /// How long to wait for the first message.
        wait: Wait,
    },
    /// The general send: to a mailbox or straight to a process's inbox, with
    /// a key, a time-to-live and the stage the sender waits for. Answered
    /// with [`Response::Sent`] once `options.stage` is reached.
    SendWith {
        /// Where to.
        to: Target,
        /// The message's bytes.
        payload: Bytes,
        /// Key, time-to-live, stage.
        options: Box<SendOptions>,
        /// How long to wait, for everything up to the stage.
        wait: Wait,
    },
    /// The general receive: from a mailbox or from this connection's inbox
    /// (optionally only from one sender), with manual acknowledgement and a
    /// receiver priority. Answered like [`Request::Receive`] (or like
    /// [`Request::ReceiveMany`] when `options.max` is set).
    ReceiveWith {
        /// Where from.
        from: Source,
        /// Batch size, acknowledgement, priority.
        options: ReceiveOptions,
        /// How long to wait for a message.
        wait: Wait,
    },
    /// Settles a message received with manual acknowledgement. Answered with
    /// [`Response::Settled`].
    Settle {
        /// The mailbox it came from; `None` for this connection's inbox.
        mailbox: Option<String>,
        /// Its sequence number.
        sequence: u64,
        /// Done, or back to the mailbox.
        verdict: Verdict,
        /// The message's `redeliveries` as this connection received it:
        /// the settle then applies only to that delivery, and fails with
        /// [`ErrorKind::NotHeld`] when the message came back since (its
        /// acknowledgement timeout passed) even if it was delivered to this
        /// connection again. `None`: whichever delivery it holds.
        redeliveries: Option<u32>,
    },
    /// Sends a request and waits for its reply: answered with
    /// [`Response::Received`] carrying the reply, [`ErrorKind::NoReply`] when
    /// the process holding the request leaves (or the request is dropped)
    /// without replying, or [`ErrorKind::Timeout`].
    Call {
        /// Where the request goes.
        to: Target,
        /// The request's bytes.
        payload: Bytes,
        /// Key and time-to-live of the request message (the stage is ignored).
        options: Box<SendOptions>,
        /// How long to wait for the reply, in all.
        wait: Wait,
    },
    /// Answers a call this connection received ([`Details::call`]).
    /// Answered with [`Response::Replied`].
    Reply {
        /// The call's id, from the request message.
        call: u64,
        /// The reply's bytes.
        payload: Bytes,
    },
    /// Claims a well-known name for this connection until it ends or
    /// releases it. With `wait` other than [`Wait::Never`], queues for a
    /// taken name instead of failing with [`ErrorKind::NameTaken`].
    ClaimName {
        /// The name (same rule as mailbox names).
        name: String,
        /// Whether and how long to queue for it.
        wait: Wait,
    },
    /// Gives a claimed name up (the next queued claimer gets it).
    ReleaseName {
        /// The name.
        name: String,
    },
    /// Every claimed name and its owner. Fails with
    /// [`ErrorKind::InvalidRequest`] when the list would take more than
    /// [`MAX_LIST_BYTES`]: use [`Request::ListNamePage`].
    ListNames,
    /// Sets the capacity of this connection's inbox (default
    /// [`DEFAULT_INBOX_CAPACITY`]); messages already in it stay.
    SetInboxCapacity {
        /// The new capacity.
        capacity: Capacity,
    },
    /// Changes a mailbox's owner, group or mode (the manage right).
    /// Answered with [`Response::PermissionsSet`].
    SetPermissions {
        /// The mailbox.
        name: String,
        /// New owner uid, if any (root only).
        owner: Option<u32>,
        /// New group gid, if any.
        group: Option<u32>,
        /// New mode, if any (`0o[owner][group][others]`, each receive 4,
        /// send 2, manage 1).
        mode: Option<u32>,
    },
    /// Discards every queued message of a mailbox (the manage right);
    /// messages in flight stay. Answered with [`Response::Purged`].
    Purge {
        /// The mailbox.
        name: String,
    },
    /// Create a mailbox with a mode and group of the caller's choosing, in
    /// one step (no window in which it has the default mode). An existing
    /// mailbox is accepted only when the caller owns it and its settings are
    /// equal; the mode and group asked for are then applied to it.
    /// Answered with [`Response::Created`].
    CreateMailboxWith {
        /// Its name.
        name: String,
        /// Its settings. Boxed, as `SendWith`'s options: inline they made
        /// every `Request` 144 bytes instead of 96 for a rare request, and
        /// moving a request that large is a `memcpy` call at each hand-off
        /// of every `Send` and `Receive` (3.5M instructions of the broker's
        /// 191M on the `rtt` benchmark). The encoding is the same.
        settings: Box<MailboxSettings>,
        /// Its mode (`0o[owner][group][others]`); `None`: the broker's
        /// default mode.
        mode: Option<u32>,
        /// Its group; `None`: the caller's primary group. A caller other
        /// than root must be a member of the group, as with `chown(2)`.
        group: Option<u32>,
    },
    /// Sets who may send to this connection's inbox: its mode (only the
    /// send bits matter; the default, `0o600`, admits the connection's own
    /// uid and root) and group. Answered with
    /// [`Response::InboxPermissionsSet`].
    SetInboxPermissions {
        /// New mode, if any.
        mode: Option<u32>,
        /// New group gid, if any (the caller must be a member, unless root).
        group: Option<u32>,
    },
    /// Describes the mailboxes (those the caller has some right on) whose
    /// names sort after `after`, in name order, a page at a time: answered
    /// with [`Response::MailboxPage`]. A page holds at most `max` mailboxes
    /// (at least one is asked for; the broker may cap it) and at most
    /// [`MAX_PAGE_BYTES`] of encoded rows, so it always fits a frame;
    /// [`Request::ListMailboxes`] fails once the whole list would not.
    ListMailboxPage {
        /// Start after this name (`None`: from the first).
        after: Option<String>,
        /// The most mailboxes in the page.
        max: u32,
    },
    /// Like [`Request::ListNames`], a page at a time, as
    /// [`Request::ListMailboxPage`]: answered with [`Response::NamePage`].
    ListNamePage {
        /// Start after this name (`None`: from the first).
        after: Option<String>,
        /// The most names in the page.
        max: u32,
    },
}

/// The most bytes of encoded rows in one page of a listing
/// ([`Request::ListMailboxPage`], [`Request::ListNamePage`]); a single row
/// is always far smaller (names are at most 255 bytes).
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// The most bytes of encoded rows the one-frame listings
/// ([`Request::ListMailboxes`], [`Request::ListNames`]) answer with, so that
/// their answer stays within a client's frame limit.
pub const MAX_LIST_BYTES: usize = crate::mailbox::MAX_MESSAGE_SIZE_LIMIT as usize;

/// Capacity of a connection's inbox until it sets one.
pub const DEFAULT_INBOX_CAPACITY: Capacity = Capacity::Bounded(1024);

/// A process, by its address or by a well-known name it holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Address {
    /// The broker's id of its connection ([`Welcome::connection_id`]).
    Process(u64),
    /// A well-known name it has claimed.
    Name(String),
}

impl From<u64> for Address {
    fn from(process: u64) -> Self {
        Address::Process(process)
    }
}

impl From<&str> for Address {
    /// A well-known name.
    fn from(name: &str) -> Self {
        Address::Name(name.to_owned())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Process(process) => write!(f, "process {process}"),
            Address::Name(name) => write!(f, "process named {name}"),
        }
    }
}

impl std::str::FromStr for Address {
    type Err = std::convert::Infallible;
    /// Digits are a process address, anything else a well-known name.
    ///
    /// ```
    /// use mailbox_proto::Address;
    /// assert_eq!("42".parse::<Address>().unwrap(), Address::Process(42));
    /// assert_eq!("worker".parse::<Address>().unwrap(), Address::Name("worker".into()));
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.parse::<u64>() {
            Ok(process) => Address::Process(process),
            Err(_) => Address::Name(s.to_owned()),
        })
    }
}

/// Where a message goes: a shared mailbox (indirect communication) or a
/// process's inbox (direct communication).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// A named mailbox.
    Mailbox(String),
    /// The inbox of a process.
    Process(Address),
}

impl Target {
    /// A named mailbox.
    pub fn mailbox(name: impl Into<String>) -> Self {
        Target::Mailbox(name.into())
    }

    /// A process's inbox, by address or well-known name.
    pub fn process(address: impl Into<Address>) -> Self {
        Target::Process(address.into())
    }
}

/// Where a receive takes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Source {
    /// A named mailbox.
    Mailbox(String),
    /// This connection's inbox: from any sender (`None`), or only from one.
    Inbox {
        /// The only sender to take from, if any.
        from: Option<Address>,
    },
}

/// How far a send waits before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Stage {
    /// Until the broker holds the message (the default).
    #[default]
    Queued,
    /// Until a receiver has taken it (the textbook's blocking send); on
    /// broadcast, until every subscriber it reached has.
    Received,
    /// Until a receiver has acknowledged it (round-robin, hash, priority and
    /// inboxes).
    Acknowledged,
}

/// Options of [`Request::SendWith`] and [`Request::Call`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct SendOptions {
    /// What the send waits for.
    pub stage: Stage,
    /// Routing key for `hash` mailboxes: see [`validate_key`] for what a
    /// key may contain.
    pub key: Option<String>,
    /// Time-to-live in milliseconds; the mailbox's own is used when shorter.
    pub ttl_millis: Option<u64>,
}

/// Longest routing key, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// Checks a routing key: 1 to [`MAX_KEY_LEN`] bytes of UTF-8 with no control
/// characters (no NUL, newline, tab, escape, DEL or C1 controls).
///
/// Keys end up in logs, in `mailboxctl` output and in the environment of
/// `recv --exec` commands; a key that cannot go into any of those would
/// poison every message behind it, so the broker refuses it at the door.
///
/// ```
/// use mailbox_proto::validate_key;
/// assert!(validate_key("customer-42").is_ok());
/// assert!(validate_key("région/7 é").is_ok());
/// assert!(validate_key("").is_err());
/// assert!(validate_key("a\0b").is_err());
/// assert!(validate_key(&"k".repeat(256)).is_err());
/// ```
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("a key may not be empty".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "a key may have at most {MAX_KEY_LEN} bytes, this one has {}",
            key.len()
        ));
    }
    if let Some((at, c)) = key.char_indices().find(|(_, c)| c.is_control()) {
        return Err(format!(
            "a key may not contain control characters ({:?} at byte {at})",
            c
        ));
    }
    Ok(())
}

/// Options of [`Request::ReceiveWith`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ReceiveOptions {
    /// `None`: one message, answered with [`Response::Received`]; `Some(n)`:
    /// up to `n`, answered with [`Response::ReceivedMany`].
    pub max: Option<u32>,
    /// Hold each message until it is settled ([`Request::Settle`]); a
    /// disconnect returns it to the head of the mailbox.
    pub manual_ack: bool,
    /// On `priority` mailboxes, higher is served first (ignored elsewhere).
    pub priority: i32,
}

/// How a manually acknowledged message is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Done with it: it leaves the broker.
    Ack,
    /// Not done: it goes back to the mailbox (to its head, or to its tail),
    /// and its redelivery count goes up.
    Nack {
        /// Back to the tail instead of the head.
        to_tail: bool,
    },
}

/// One claimed well-known name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameInfo {
    /// The name.
    pub name: String,
    /// The owner's process address.
    pub process: u64,
    /// The owner's process id.
    pub pid: u32,
    /// The owner's user id.
    pub uid: u32,
    /// Connections queued to claim it next.
    pub queued_claims: u32,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The mailbox exists now; `created` is false when it existed already
    /// with the same settings.
    Created {
        /// Whether this request created it.
        created: bool,
    },
    /// The mailbox is gone.
    Deleted,
    /// Every mailbox, sorted by name.
    Mailboxes(Vec<MailboxInfo>),
    /// One mailbox.
    Info(Box<MailboxInfo>),
    /// The message was accepted.
    Sent {
        /// The sequence number it got.
        sequence: u64,
        /// How many receivers it will reach: 1 for round-robin, the number of
        /// subscribers at that moment for broadcast (0 means nobody will see it).
        recipients: u32,
    },
    /// A message for a [`Request::Receive`].
    Received(Message),
    /// The subscription exists now; `created` is false when it existed already.
    Subscribed {
        /// Whether this request created it.
        created: bool,
    },
    /// The subscription is gone.
    Unsubscribed,
    /// The answer to [`Request::Cancel`]; `cancelled` is false when the target
    /// had already been answered (or never existed).
    CancelResult {
        /// Whether a waiting request was withdrawn.
        cancelled: bool,
    },
    /// Broker-wide figures (boxed like [`Response::Info`]).
    Status(Box<BrokerStatus>),
    /// The answer to [`Request::SendMany`]: the first `admitted` payloads were
    /// accepted with sequence numbers `first_sequence..first_sequence +
    /// admitted`; when that is not all of them, `stopped` says why the rest
    /// were not (`WouldBlock`, `Timeout`, `MailboxDeleted`, `Cancelled`,
    /// `BrokerShuttingDown`) and they will never be delivered.
    SentMany {
        /// Sequence number of the first admitted message (the next sequence
        /// number of the mailbox when none was admitted).
        first_sequence: u64,
        /// How many payloads, from the first, were accepted.
        admitted: u32,
        /// Receivers each accepted message reaches (as in [`Response::Sent`];
        /// for broadcast, the subscribers when the last one was admitted).
        recipients: u32,
        /// Why the rest were not accepted; `None` when all were.
        stopped: Option<BrokerError>,
    },
    /// The answer to [`Request::ReceiveMany`]: one or more messages, in order.
    ReceivedMany(Vec<Message>),
    /// The message was settled.
    Settled,
    /// The reply reached the caller.
    Replied,
    /// This connection holds the name now.
    NameClaimed,
    /// The name is released.
    NameReleased,
    /// Every claimed name, sorted.
    Names(Vec<NameInfo>),
    /// The inbox has its new capacity.
    InboxCapacitySet,
    /// The mailbox has its new owner, group and mode.
    PermissionsSet,
    /// The queued messages are gone.
    Purged {
        /// How many were discarded.
        discarded: u64,
    },
    /// The inbox has its new mode and group.
    InboxPermissionsSet,
    /// A page of [`Request::ListMailboxPage`], in name order.
    MailboxPage {
        /// The mailboxes of this page (possibly none: the broker also ends
        /// a page after looking at a bounded number of mailboxes the caller
        /// may not see).
        mailboxes: Vec<MailboxInfo>,
        /// Where the next page starts (its `after`); `None` when this is the
        /// last page.
        next: Option<String>,
    },
    /// A page of [`Request::ListNamePage`], in name order.
    NamePage {
        /// The claimed names of this page.
        names: Vec<NameInfo>,
        /// Where the next page starts; `None` when this is the last page.
        next: Option<String>,
    },
}

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
        })
    }
}
