//! What the broker answers with when a request succeeds: [`Response`].

use serde::{Deserialize, Serialize};

// Only named in doc links.
#[cfg(doc)]
use crate::Request;

use super::BrokerError;
use crate::mailbox::{BrokerStatus, MailboxInfo};
use crate::message::{Message, Metadata};
use crate::region::{RegionAccess, RegionInfo};

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
    /// A page of [`Request::Peek`]: queued messages, left where they are.
    Peeked {
        /// The messages of this page, in the order receivers would get them
        /// (possibly none: nothing is queued after the cursor).
        messages: Vec<Message>,
        /// Where the next page starts (its `after`: the sequence number of
        /// the last message of this page); `None` when this is the last
        /// page.
        next: Option<u64>,
        /// Messages delivered and not yet acknowledged (manual
        /// acknowledgement): held by their receivers, not queued, so not
        /// in any page; they come back to the queue if not acknowledged.
        in_flight: u64,
    },
    /// One region ([`Request::RegionInfo`]).
    RegionInfo(Box<RegionInfo>),
    /// A page of [`Request::ListRegionPage`], in name order.
    RegionPage {
        /// The regions of this page (possibly none, as for mailboxes).
        regions: Vec<RegionInfo>,
        /// Where the next page starts; `None` when this is the last page.
        next: Option<String>,
    },
    /// The answer to [`Request::OpenRegion`]. Its frame carries one file
    /// descriptor ([`ServerFrame::descriptor_count`]): the region's memory
    /// file, opened read-only or read-write as `access` says.
    ///
    /// [`ServerFrame::descriptor_count`]: super::ServerFrame::descriptor_count
    RegionOpened {
        /// The region as it was opened.
        region: Box<RegionInfo>,
        /// What the descriptor allows.
        access: RegionAccess,
    },
    /// [`Response::Received`] of a message whose payload is a memory file,
    /// to a connection that sent [`Request::AcceptFiles`]. Its frame
    /// carries one descriptor: the sealed file of `len` bytes, the
    /// message's payload.
    ReceivedFile {
        /// The message's metadata.
        metadata: Metadata,
        /// The file's size in bytes.
        len: u64,
    },
    /// The answer to [`Request::AcceptFiles`].
    FilesAccepted,
    /// Any response that carries messages ([`Response::messages`]: a
    /// batch, a page of a peek, a received message) some of whose payloads
    /// are memory files, to a connection that sent
    /// [`Request::AcceptFiles`]. `response` is the answer itself, each of
    /// those payloads empty; `files` names them in message order, and the
    /// frame carries one descriptor per entry, in the same order
    /// ([`Response::descriptor_count`]). A single `Received` goes as
    /// [`Response::ReceivedFile`] instead. Never nested.
    WithFiles {
        /// The answer, the file payloads left empty.
        response: Box<Response>,
        /// Which of its messages' payloads are files, in message order.
        files: Vec<PayloadFile>,
    },
}

/// One memory-file payload of a [`Response::WithFiles`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadFile {
    /// The message's index in [`Response::messages`] of the answer.
    pub index: u32,
    /// The file's size in bytes.
    pub len: u64,
}

impl Response {
    /// How many file descriptors the frame of this response carries: 1 for
    /// [`Response::RegionOpened`] and [`Response::ReceivedFile`], one per
    /// file for [`Response::WithFiles`], 0 for every other response.
    pub fn descriptor_count(&self) -> usize {
        match self {
            Response::RegionOpened { .. } | Response::ReceivedFile { .. } => 1,
            Response::WithFiles { files, .. } => files.len(),
            _ => 0,
        }
    }

    /// The messages this response carries, in order: one for
    /// [`Response::Received`], the batch of [`Response::ReceivedMany`],
    /// the page of [`Response::Peeked`]; none for any other. Every answer
    /// that can carry a memory-file payload is one of these.
    pub fn messages(&self) -> &[Message] {
        match self {
            Response::Received(message) => std::slice::from_ref(message),
            Response::ReceivedMany(messages) | Response::Peeked { messages, .. } => messages,
            _ => &[],
        }
    }

    /// [`Response::messages`], to change their payloads.
    pub fn messages_mut(&mut self) -> &mut [Message] {
        match self {
            Response::Received(message) => std::slice::from_mut(message),
            Response::ReceivedMany(messages) | Response::Peeked { messages, .. } => messages,
            _ => &mut [],
        }
    }
}
