//! The handshake: the client's [`Hello`] and the broker's [`Welcome`], the
//! only frames whose layout is frozen across protocol versions.

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 5;

/// The oldest protocol version a broker of this crate still accepts. A new
/// version only appends requests, responses and error kinds and never
/// changes an existing one, so a client of an older version is served as
/// before (it never sends what it does not know); the broker welcomes it
/// with the client's own version. Upgrade the broker before its clients: a
/// newer client is refused by an older broker.
pub const OLDEST_PROTOCOL_VERSION: u32 = 3;

/// Whether a broker of this crate serves a client speaking `version`.
///
/// ```
/// use mailbox_proto::{speaks, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION};
/// assert!(speaks(PROTOCOL_VERSION) && speaks(OLDEST_PROTOCOL_VERSION));
/// assert!(!speaks(OLDEST_PROTOCOL_VERSION - 1) && !speaks(PROTOCOL_VERSION + 1));
/// ```
pub fn speaks(version: u32) -> bool {
    (OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version)
}

/// First field of every [`Hello`]: the bytes `MBOX` read as a little-endian
/// `u32`, so that a peer speaking something else entirely is told so.
pub const HELLO_MAGIC: u32 = u32::from_le_bytes(*b"MBOX");

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
    /// The protocol version spoken on this connection: the client's own.
    pub protocol_version: u32,
    /// The broker's crate version, for humans.
    pub broker_version: String,
    /// The broker's id for this connection, as it appears in message metadata.
    pub connection_id: u64,
    /// The largest frame the broker accepts, header excluded.
    pub max_frame_len: u32,
}
