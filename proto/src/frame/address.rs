//! Where a message goes ([`Target`]) and where a receive takes from
//! ([`Source`]): mailboxes by name, processes by [`Address`].

use std::fmt;

use serde::{Deserialize, Serialize};

// Only named in doc links.
#[cfg(doc)]
use crate::Welcome;

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
        /// The only sender to take from, if any: one connection, or
        /// whoever held a name when the broker accepted each message.
        from: Option<Address>,
    },
}
