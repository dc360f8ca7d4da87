//! The vocabulary of named shared-memory regions: what the broker reports
//! of one ([`RegionInfo`]) and the access a client asks for when it opens
//! one ([`RegionAccess`]).
//!
//! A region is a memory file the broker owns; clients never send its bytes
//! through the broker: an open is answered with a descriptor of the file
//! (see "Descriptors" in `PROTOCOL.md`), and the client maps it.

use serde::{Deserialize, Serialize};

/// How a client opens a region: what the descriptor it gets allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RegionAccess {
    /// Reading only: the descriptor is opened read-only, so the kernel
    /// refuses a writable shared mapping of it. Needs the read right (4).
    Read,
    /// Reading and writing: needs the read (4) and write (2) rights.
    ReadWrite,
}

impl RegionAccess {
    /// Whether this access writes.
    pub fn writes(self) -> bool {
        self == RegionAccess::ReadWrite
    }
}

/// A snapshot of one region, as `mailboxctl region info` and `region list`
/// show it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RegionInfo {
    /// The region's name (the same rule as mailbox names).
    pub name: String,
    /// Its size in bytes, fixed for its life.
    pub size: u64,
    /// Owner uid.
    pub owner_uid: u32,
    /// Group gid.
    pub group_gid: u32,
    /// Rights bits, `0o[owner][group][others]`, each read 4, write 2,
    /// manage 1.
    pub mode: u32,
    /// How many times it was opened (descriptors handed out) since it was
    /// created.
    pub opens: u64,
}
