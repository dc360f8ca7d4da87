//! The vocabulary of mailboxes: names, capacities, delivery policies, settings
//! and the read-only views the broker reports.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Largest message a mailbox may be configured to accept (16 MiB).
///
/// The frame limit of the codec is derived from it, so that a message of this
/// size always fits in one frame with its metadata.
pub const MAX_MESSAGE_SIZE_LIMIT: u32 = 16 * 1024 * 1024;

/// Maximum message size of a mailbox created without one (1 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 1024 * 1024;

/// A validated mailbox name: 1 to 255 bytes of `[A-Za-z0-9._/-]`.
///
/// ```
/// use mailbox_proto::MailboxName;
/// assert!(MailboxName::parse("jobs/high-priority.v2").is_ok());
/// assert!(MailboxName::parse("").is_err());
/// assert!(MailboxName::parse("no spaces").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxName(String);

/// Why a string is not a valid [`MailboxName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    /// The name is empty.
    #[error("mailbox name is empty")]
    Empty,
    /// The name is longer than 255 bytes.
    #[error("mailbox name is {0} bytes long; the limit is 255")]
    TooLong(usize),
    /// The name contains a character outside `[A-Za-z0-9._/-]`.
    #[error("mailbox name contains {0:?}; only letters, digits and . _ / - are allowed")]
    BadCharacter(char),
}

impl MailboxName {
    /// Longest allowed name, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Checks `name` against the naming rule.
    pub fn parse(name: &str) -> Result<Self, InvalidName> {
        Self::validate(name)?;
        Ok(Self(name.to_owned()))
    }

    /// Checks `name` without allocating.
    pub fn validate(name: &str) -> Result<(), InvalidName> {
        if name.is_empty() {
            return Err(InvalidName::Empty);
        }
        if name.len() > Self::MAX_LEN {
            return Err(InvalidName::TooLong(name.len()));
        }
        match name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')))
        {
            Some(bad) => Err(InvalidName::BadCharacter(bad)),
            None => Ok(()),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for MailboxName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// How many messages a mailbox buffers.
///
/// Parses from and prints as `zero`, a positive number, or `unbounded`:
///
/// ```
/// use mailbox_proto::Capacity;
/// assert_eq!("zero".parse::<Capacity>().unwrap(), Capacity::Zero);
/// assert_eq!("0".parse::<Capacity>().unwrap(), Capacity::Zero);
/// assert_eq!("64".parse::<Capacity>().unwrap(), Capacity::Bounded(64));
/// assert_eq!("unbounded".parse::<Capacity>().unwrap(), Capacity::Unbounded);
/// assert_eq!(Capacity::Bounded(64).to_string(), "64");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Capacity {
    /// Rendezvous: no buffer; a send completes only when a receiver takes it.
    Zero,
    /// At most N messages wait in the mailbox (per subscriber for broadcast).
    Bounded(u32),
    /// No count limit; only the broker-wide memory budget applies.
    Unbounded,
}

/// Why a string is not a [`Capacity`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capacity must be `zero`, a positive number or `unbounded`, not {0:?}")]
pub struct ParseCapacityError(pub String);

impl FromStr for Capacity {
    type Err = ParseCapacityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "zero" | "0" => Ok(Capacity::Zero),
            "unbounded" => Ok(Capacity::Unbounded),
            _ => s
                .parse::<u32>()
                .map(Capacity::Bounded)
                .map_err(|_| ParseCapacityError(s.to_owned())),
        }
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capacity::Zero => f.write_str("zero"),
            Capacity::Bounded(n) => write!(f, "{n}"),
            Capacity::Unbounded => f.write_str("unbounded"),
        }
    }
}

/// Which receivers get a message when several share a mailbox.
///
/// ```
/// use mailbox_proto::DeliveryPolicy;
/// assert_eq!("broadcast".parse::<DeliveryPolicy>().unwrap(), DeliveryPolicy::Broadcast);
/// assert_eq!(DeliveryPolicy::RoundRobin.to_string(), "round-robin");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum DeliveryPolicy {
    /// Every message goes to exactly one receiver; waiting receivers take turns.
    #[default]
    RoundRobin,
    /// Every subscriber gets every message sent after it subscribed.
    Broadcast,
    /// Messages with the same key go to the same receiver for as long as it
    /// stays in the mailbox's pool; keyless messages go to any receiver.
    Hash,
    /// The waiting receiver with the highest priority gets the message
    /// (earliest first among equals); a standby takes over when the primary
    /// leaves.
    Priority,
}

/// Why a string is not a [`DeliveryPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delivery policy must be `round-robin`, `broadcast`, `hash` or `priority`, not {0:?}")]
pub struct ParsePolicyError(pub String);

impl FromStr for DeliveryPolicy {
    type Err = ParsePolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "round-robin" => Ok(DeliveryPolicy::RoundRobin),
            "broadcast" => Ok(DeliveryPolicy::Broadcast),
            "hash" => Ok(DeliveryPolicy::Hash),
            "priority" => Ok(DeliveryPolicy::Priority),
            _ => Err(ParsePolicyError(s.to_owned())),
        }
    }
}

impl fmt::Display for DeliveryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeliveryPolicy::RoundRobin => "round-robin",
            DeliveryPolicy::Broadcast => "broadcast",
            DeliveryPolicy::Hash => "hash",
            DeliveryPolicy::Priority => "priority",
        })
    }
}

/// Everything that defines a mailbox. Two creates with equal settings are the
/// same mailbox; a create with different settings is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MailboxSettings {
    /// How many messages it buffers.
    pub capacity: Capacity,
    /// Who gets each message.
    pub policy: DeliveryPolicy,
    /// Largest payload accepted, in bytes (at most [`MAX_MESSAGE_SIZE_LIMIT`]).
    pub max_message_size: u32,
    /// When set, every payload must be exactly this many bytes.
    pub fixed_size: Option<u32>,
    /// When set, a message delivered this many times (with manual
    /// acknowledgement) that comes back again is dead-lettered instead.
    pub max_deliveries: Option<u32>,
    /// Where dead-lettered and expired messages go; without it they are
    /// dropped and counted.
    pub dead_letter: Option<String>,
    /// Time-to-live of every message, in milliseconds.
    pub ttl_millis: Option<u64>,
    /// Acknowledgement deadline, in milliseconds: a message a receiver
    /// holds with manual acknowledgement for longer goes back to the head
    /// of the mailbox as if its holder had left, one redelivery more
    /// (counted towards `max_deliveries`). Not on broadcast (which has no
    /// manual acknowledgement).
    pub ack_timeout_millis: Option<u64>,
    /// Broadcast with a bounded capacity only: a subscriber whose backlog
    /// stays full (`capacity` unread messages) for longer than this many
    /// milliseconds, holding every sender back, is cut off: its backlog is
    /// released and its next receive fails with `SlowConsumer`. Without it
    /// senders wait for the slowest subscriber (back-pressure).
    pub cut_slow_subscribers_after_millis: Option<u64>,
}

impl Default for MailboxSettings {
    fn default() -> Self {
        Self {
            capacity: Capacity::Unbounded,
            policy: DeliveryPolicy::RoundRobin,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            fixed_size: None,
            max_deliveries: None,
            dead_letter: None,
            ttl_millis: None,
            ack_timeout_millis: None,
            cut_slow_subscribers_after_millis: None,
        }
    }
}

impl MailboxSettings {
    /// Checks the settings for contradictions; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.capacity == Capacity::Bounded(0) {
            return Err("capacity 0 is spelled `zero`".to_owned());
        }
        if self.max_message_size == 0 {
            return Err("max message size must be at least 1 byte".to_owned());
        }
        if self.max_message_size > MAX_MESSAGE_SIZE_LIMIT {
            return Err(format!(
                "max message size {} is above the broker's limit of {} bytes",
                self.max_message_size, MAX_MESSAGE_SIZE_LIMIT
            ));
        }
        if let Some(fixed) = self.fixed_size {
            if fixed > self.max_message_size {
                return Err(format!(
                    "fixed size {fixed} is above the max message size {}",
                    self.max_message_size
                ));
            }
        }
        if self.max_deliveries == Some(0) {
            return Err("max deliveries must be at least 1".to_owned());
        }
        if self.ttl_millis == Some(0) {
            return Err("a time-to-live must be at least 1 ms".to_owned());
        }
        if let Some(dead_letter) = &self.dead_letter {
            MailboxName::validate(dead_letter)
                .map_err(|why| format!("dead-letter mailbox: {why}"))?;
        }
        if let Some(ack_timeout) = self.ack_timeout_millis {
            if ack_timeout == 0 {
                return Err("an acknowledgement timeout must be at least 1 ms".to_owned());
            }
            if self.policy == DeliveryPolicy::Broadcast {
                return Err(
                    "an acknowledgement timeout needs manual acknowledgement, which broadcast has not"
                        .to_owned(),
                );
            }
        }
        if let Some(after) = self.cut_slow_subscribers_after_millis {
            if after == 0 {
                return Err("cutting slow subscribers needs a time of at least 1 ms".to_owned());
            }
            if self.policy != DeliveryPolicy::Broadcast {
                return Err(format!(
                    "cutting slow subscribers applies to broadcast, not {}",
                    self.policy
                ));
            }
            if !matches!(self.capacity, Capacity::Bounded(_)) {
                return Err(format!(
                    "cutting slow subscribers needs a bounded capacity (a number), not {}: \
                     on unbounded no subscriber holds senders back, on zero every one does",
                    self.capacity
                ));
            }
        }
        Ok(())
    }
}

/// A snapshot of one mailbox, as `mailboxctl info` and `list` show it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MailboxInfo {
    /// The mailbox's name.
    pub name: String,
    /// Its settings.
    pub settings: MailboxSettings,
    /// Messages buffered (for broadcast: distinct messages not yet taken by
    /// every subscriber).
    pub queued_messages: u64,
    /// Payload bytes of those messages.
    pub queued_bytes: u64,
    /// Sends waiting for room (or, on `zero`, for a receiver).
    pub waiting_senders: u32,
    /// Receives waiting for a message.
    pub waiting_receivers: u32,
    /// Current subscribers (broadcast only; 0 otherwise).
    pub subscribers: u32,
    /// Messages accepted since the mailbox was created.
    pub messages_accepted: u64,
    /// Deliveries made since the mailbox was created (a broadcast message
    /// counts once per subscriber that took it).
    pub messages_delivered: u64,
    /// Messages delivered with manual acknowledgement and not settled yet.
    pub in_flight: u64,
    /// Deliveries of messages that had come back (nack, receiver left).
    pub messages_redelivered: u64,
    /// Messages whose time-to-live ran out before delivery.
    pub messages_expired: u64,
    /// Messages moved to the dead-letter mailbox.
    pub messages_dead_lettered: u64,
    /// Messages dropped: expired or past their maximum deliveries with no
    /// dead-letter mailbox to take them, purged, or withdrawn by their
    /// sender's timeout (a send or call waiting for a later stage) after
    /// they were queued.
    pub messages_dropped: u64,
    /// Owner uid.
    pub owner_uid: u32,
    /// Group gid.
    pub group_gid: u32,
    /// Rights: `0o[owner][group][others]`, each receive 4, send 2, manage 1.
    pub mode: u32,
    /// Messages that went back because their holder did not settle them
    /// within the acknowledgement timeout.
    pub ack_timeouts: u64,
    /// Subscribers cut off because their backlog stayed full too long.
    pub slow_subscribers_cut: u64,
}

/// Broker-wide figures, as `mailboxctl status` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerStatus {
    /// The broker's crate version.
    pub broker_version: String,
    /// The protocol version it speaks.
    pub protocol_version: u32,
    /// The broker's process id.
    pub pid: u32,
    /// Milliseconds since the broker started.
    pub uptime_millis: u64,
    /// Open client connections.
    pub connections: u64,
    /// Existing mailboxes.
    pub mailboxes: u64,
    /// Messages buffered across all mailboxes.
    pub queued_messages: u64,
    /// Payload bytes held by the broker (buffered and in waiting sends).
    pub queued_bytes: u64,
    /// The broker-wide budget for held payload bytes.
    pub memory_budget_bytes: u64,
    /// Every limit in force, by the name the configuration file uses.
    pub limits: Vec<Limit>,
}

/// One limit in force.
///
/// What the value counts is told by the name ([`Limit::unit`]), so that a
/// limit added later needs no change on the wire; [`Limit::NONE`] means
/// no limit.
///
/// ```
/// use mailbox_proto::{Limit, LimitUnit};
/// let limit = |name: &str| Limit { name: name.to_owned(), value: 1 };
/// assert_eq!(limit("handshake_timeout").unit(), LimitUnit::Millis);
/// assert_eq!(limit("max_frame_size").unit(), LimitUnit::Bytes);
/// assert_eq!(limit("max_queued_bytes_per_uid").unit(), LimitUnit::Bytes);
/// assert_eq!(limit("memory_budget").unit(), LimitUnit::Bytes);
/// assert_eq!(limit("max_connections").unit(), LimitUnit::Count);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// Its name in the configuration file (`max_connections`, ...).
    pub name: String,
    /// Its value: bytes, a count, or milliseconds for durations, as
    /// [`Limit::unit`] says; [`Limit::NONE`] for no limit.
    pub value: u64,
}

/// What a [`Limit`]'s value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitUnit {
    /// Bytes: names that end in `_size` or `_budget` or have `bytes` in them.
    Bytes,
    /// A duration in milliseconds: names that end in `_timeout`.
    Millis,
    /// A number of things (connections, messages, mailboxes): every other name.
    Count,
}

impl Limit {
    /// The value that means "no limit".
    pub const NONE: u64 = u64::MAX;

    /// What the value counts, by the rule of the name (see [`LimitUnit`]).
    pub fn unit(&self) -> LimitUnit {
        let name = self.name.as_str();
        if name.ends_with("_timeout") {
            LimitUnit::Millis
        } else if name.ends_with("_size") || name.ends_with("_budget") || name.contains("bytes") {
            LimitUnit::Bytes
        } else {
            LimitUnit::Count
        }
    }

    /// The value, or `None` for no limit.
    pub fn bounded(&self) -> Option<u64> {
        (self.value != Self::NONE).then_some(self.value)
    }
}
