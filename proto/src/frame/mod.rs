//! Frames: the handshake, requests and responses.
//!
//! Bincode encodes enum variants by their position, so variants are only ever
//! appended, never reordered or removed, and [`Hello`], [`ServerFrame::Welcome`]
//! and [`ServerFrame::Goodbye`] are frozen across protocol versions: that is
//! what lets a broker tell a client of another version what went wrong.
//!
//! This file holds the two envelopes ([`ClientFrame`], [`ServerFrame`]);
//! what they carry lives beside it: `handshake.rs` ([`Hello`], [`Welcome`]),
//! `request.rs` ([`Request`] and its options), `address.rs` (where a message
//! goes and where a receive takes from), `response.rs` ([`Response`]) and
//! `error.rs` ([`BrokerError`], [`ErrorKind`]).

mod address;
mod error;
mod handshake;
mod request;
mod response;

use serde::{Deserialize, Serialize};

pub use address::{Address, Source, Target};
pub use error::{BrokerError, ErrorKind};
pub use handshake::{
    speaks, Hello, Welcome, HELLO_MAGIC, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
pub use request::{
    validate_key, ReceiveOptions, Request, SendOptions, Stage, Verdict, Wait,
    DEFAULT_INBOX_CAPACITY, MAX_KEY_LEN, MAX_LIST_BYTES, MAX_PAGE_BYTES, MAX_PEEK_MESSAGES,
};
pub use response::{NameInfo, PayloadFile, Response};

/// Identifies a request on one connection; chosen by the client, unique among
/// that connection's requests still waiting for their response.
pub type RequestId = u64;

/// Every frame a client sends after its [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// The request's id; its response carries the same id.
    pub id: RequestId,
    /// What the client asks for.
    pub request: Request,
}

impl ClientFrame {
    /// How many file descriptors travel with this frame as `SCM_RIGHTS`
    /// (the rule of [`ServerFrame::descriptor_count`], the other way):
    /// 1 for [`Request::SendFile`], 0 for every other request.
    pub fn descriptor_count(&self) -> usize {
        match self.request {
            Request::SendFile { .. } => 1,
            _ => 0,
        }
    }
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

impl ServerFrame {
    /// How many file descriptors travel with this frame as `SCM_RIGHTS`
    /// ancillary data (see "Descriptors" in `PROTOCOL.md`): the receiver
    /// takes that many, in order, from the descriptors that arrived with
    /// the stream so far and not yet given to an earlier frame.
    pub fn descriptor_count(&self) -> usize {
        match self {
            ServerFrame::Response {
                result: Ok(response),
                ..
            } => response.descriptor_count(),
            _ => 0,
        }
    }
}
