//! What a client asks of the broker: [`Request`], how long it may wait
//! ([`Wait`]), the options of sends and receives, and the limits requests refer to.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

// Only named in doc links.
#[cfg(doc)]
use crate::{Details, ErrorKind, Response};

use super::{RequestId, Source, Target};
use crate::mailbox::{Capacity, MailboxSettings};
use crate::region::RegionAccess;

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
    /// Shows queued messages without taking them, in the order receivers
    /// would get them, a page at a time: answered with [`Response::Peeked`].
    /// Needs the receive right on the mailbox (an inbox: only its own
    /// connection peeks at it, and only at all of it: `from` must be
    /// `None`). Nothing changes: no sequence number, redelivery count,
    /// acknowledgement or waiting request is touched. A page holds at most
    /// `max` messages (0 is taken as 1; the broker caps it at
    /// [`MAX_PEEK_MESSAGES`]) and at most 16 MiB of encoded messages, so
    /// it always fits a frame (one message alone always goes in).
    Peek {
        /// Which mailbox, or this connection's inbox.
        from: Source,
        /// Start after the message with this sequence number (`None`: from
        /// the first); the `next` of the previous page.
        after: Option<u64>,
        /// The most messages in the page.
        max: u32,
    },
    /// Opens a mailbox by name: answered with [`Response::Info`] as
    /// [`Request::MailboxInfo`] is, and refused alike (`PermissionDenied`
    /// to a caller with no right on it). One that does not exist yet is
    /// waited for as `wait` says: the answer comes when it is created (by a
    /// client or by the broker's configuration); `NoSuchMailbox` at once
    /// with [`Wait::Never`], `Timeout` when the time runs out.
    OpenMailbox {
        /// The mailbox.
        name: String,
        /// How long to wait for it to be created.
        wait: Wait,
    },
    /// Put a message in a mailbox now, as [`Request::Send`] with
    /// [`Wait::Never`] does, but answered **only when it fails** (with the
    /// error `Send` would get: `WouldBlock` when there is no room now,
    /// `NoSuchMailbox`, `PermissionDenied`, ...). A success has no answer,
    /// so its id is free again at once.
    ///
    /// The broker handles a connection's requests in order and writes its
    /// answers in the order they are made, and this request never waits:
    /// an answer to any later request of the same connection with no error
    /// to this one before it means the message was admitted. That is what
    /// it is for: a request/reply step (send the request, receive the
    /// reply) reads one answer instead of two. Since protocol version 5.
    SendQuietly {
        /// Where to.
        mailbox: String,
        /// The message's bytes.
        payload: Bytes,
    },
    /// Creates a named shared-memory region of `size` bytes (zeroed, fixed
    /// for its life) owned by the caller, with a mode and group as
    /// [`Request::CreateMailboxWith`] takes them (the rights are read 4,
    /// write 2, manage 1). Its bytes count against the broker's memory
    /// budget and the caller's share of it. An existing region is accepted
    /// only when the caller owns it and its size is equal (`created:
    /// false`; the mode and group asked for are then applied to it).
    /// Answered with [`Response::Created`].
    CreateRegion {
        /// Its name (the rule of mailbox names).
        name: String,
        /// Its size in bytes (at least 1, at most the broker's
        /// `limits.max_region_size`).
        size: u64,
        /// Its mode (`0o[owner][group][others]`); `None`: the broker's
        /// default mode.
        mode: Option<u32>,
        /// Its group; `None`: the caller's primary group. A caller other
        /// than root must be a member of the group.
        group: Option<u32>,
    },
    /// Deletes a region (the manage right). Mappings that exist stay valid
    /// until they are unmapped; its memory is freed when the last
    /// descriptor and mapping are gone. Answered with [`Response::Deleted`].
    DeleteRegion {
        /// Its name.
        name: String,
    },
    /// Describes one region (any right on it). Answered with
    /// [`Response::RegionInfo`].
    RegionInfo {
        /// Its name.
        name: String,
    },
    /// Describes the regions the caller has some right on whose names sort
    /// after `after`, a page at a time, as [`Request::ListMailboxPage`]:
    /// answered with [`Response::RegionPage`].
    ListRegionPage {
        /// Start after this name (`None`: from the first).
        after: Option<String>,
        /// The most regions in the page.
        max: u32,
    },
    /// Opens a region: answered with [`Response::RegionOpened`], which
    /// carries one descriptor of the region's memory file, read-only or
    /// read-write as `access` asked (the read right; and the write right
    /// for [`RegionAccess::ReadWrite`]).
    OpenRegion {
        /// Its name.
        name: String,
        /// What the descriptor allows.
        access: RegionAccess,
    },
    /// [`Request::SendWith`] of a memory-file payload: the frame carries
    /// one descriptor ([`ClientFrame::descriptor_count`]), a `memfd` of
    /// exactly `len` bytes sealed against writing, growing, shrinking and
    /// resealing (`mailbox_proto::memfile::required_seals`). The broker
    /// checks the seals and the size (else `InvalidRequest`, only this
    /// request fails) and passes the same file on to receivers that
    /// accept files ([`Request::AcceptFiles`]); others get the bytes
    /// inline. Its limit is `memfile::MAX_FILE_PAYLOAD`, not the mailbox's
    /// `max_message_size`. Answered as `SendWith`. Since protocol version 5.
    ///
    /// [`ClientFrame::descriptor_count`]: super::ClientFrame::descriptor_count
    SendFile {
        /// Where to.
        to: Target,
        /// The file's size in bytes.
        len: u64,
        /// Key, time-to-live, stage.
        options: Box<SendOptions>,
        /// How long to wait, for everything up to the stage.
        wait: Wait,
        /// The file, mapped: filled by the broker once it has checked the
        /// descriptor that came with the frame. Never on the wire.
        #[serde(skip)]
        payload: Bytes,
    },
    /// Says that this connection takes memory-file payloads: from now on a
    /// message whose payload is a memory file is answered to a
    /// [`Request::Receive`] (or `ReceiveWith` of one message) as
    /// [`Response::ReceivedFile`] with the file, not inline. Answered with
    /// [`Response::FilesAccepted`]. Since protocol version 5.
    AcceptFiles,
}

/// The most messages one page of [`Request::Peek`] holds, whatever the
/// client asks for.
pub const MAX_PEEK_MESSAGES: u32 = 1024;

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
