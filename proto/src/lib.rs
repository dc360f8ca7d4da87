//! The mailbox wire protocol, defined once for the broker and every client.
//!
//! This crate owns the byte layout of everything that crosses the Unix socket:
//! the length-prefixed [`codec`], the handshake ([`Hello`], [`Welcome`]), the
//! [`Request`]s a client makes and the [`Response`]s and [`BrokerError`]s the
//! broker answers with. It also owns the small vocabulary both sides validate
//! the same way ([`MailboxName`], [`Capacity`], [`DeliveryPolicy`]) and the
//! rule that finds the broker's socket ([`socket_path`]), and the way sizes,
//! durations and modes are written by people ([`units`]).
//!
//! It deliberately does no I/O and knows nothing of tokio: callers hand it
//! buffers. The full wire format is written down in `PROTOCOL.md` beside this
//! crate.

pub mod accounts;
pub mod codec;
pub mod descriptors;
mod frame;
mod mailbox;
pub mod memfile;
mod message;
mod region;
pub mod socket_path;
pub mod units;

pub use codec::{
    decode_client_frame, decode_frame, decode_server_frame, encode_frame, encode_server_frame,
    encode_server_frame_detached, DecodeError, Detached, EncodeError, Segments,
};
pub use frame::{
    speaks, validate_key, Address, BrokerError, ClientFrame, ErrorKind, Hello, NameInfo,
    PayloadFile, ReceiveOptions, Request, RequestId, Response, SendOptions, ServerFrame, Source,
    Stage, Target, Verdict, Wait, Welcome, DEFAULT_INBOX_CAPACITY, HELLO_MAGIC, MAX_KEY_LEN,
    MAX_LIST_BYTES, MAX_PAGE_BYTES, MAX_PEEK_MESSAGES, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
pub use mailbox::{
    BrokerStatus, Capacity, DeliveryPolicy, InvalidName, Limit, LimitUnit, MailboxInfo,
    MailboxName, MailboxSettings, ParseCapacityError, ParsePolicyError, DEFAULT_MAX_MESSAGE_SIZE,
    MAX_MESSAGE_SIZE_LIMIT,
};
#[cfg(any(test, feature = "fixtures"))]
pub use message::fixtures;
pub use message::{DeadLetter, Details, Message, Metadata};
pub use region::{RegionAccess, RegionInfo};

/// Re-exported so that users of [`Message::payload`] need not depend on `bytes`.
pub use bytes::Bytes;
