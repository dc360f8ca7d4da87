//! The limits the core enforces, with the defaults the configuration
//! starts from and the budget's limits derived from them.

use crate::budget::BudgetLimits;

/// Limits the core enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Payload bytes the broker may hold in all (buffered and waiting sends).
    pub memory_budget: u64,
    /// Messages the broker may hold in all (buffered and waiting sends);
    /// bounds the memory of many small or empty messages, which cost little
    /// payload but a queue slot and metadata each.
    pub max_queued_messages: u64,
    /// Requests one connection may have waiting at once.
    pub max_requests_in_flight: usize,
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections of one uid (root is not limited by it, only by
    /// `max_connections`).
    pub max_connections_per_uid: usize,
    /// Of `max_connections`, how many only root and the admin group may
    /// use (at most a quarter of them), so that other users filling the
    /// broker never lock out its administrators.
    pub reserved_connections: usize,
    /// Mailboxes one uid may own.
    pub max_mailboxes_per_uid: usize,
    /// Payload bytes one mailbox may hold queued.
    pub max_queued_bytes_per_mailbox: u64,
    /// Payload bytes the messages one uid sent may hold in the broker, in
    /// all mailboxes and inboxes, queued, waiting or in flight (`None`: a
    /// quarter of `memory_budget`). Root and the admin group have no share.
    pub max_queued_bytes_per_uid: Option<u64>,
    /// Messages one uid sent the broker may hold (`None`: a quarter of
    /// `max_queued_messages`).
    pub max_queued_messages_per_uid: Option<u64>,
    /// Payload bytes at the top of `memory_budget` that only root and the
    /// admin group may fill (`None`: an eighth of it).
    pub admin_reserve_bytes: Option<u64>,
    /// Messages at the top of `max_queued_messages` that only root and the
    /// admin group may fill (`None`: an eighth of it).
    pub admin_reserve_messages: Option<u64>,
    /// The largest maximum message size a mailbox may be created with.
    pub max_message_size: u32,
    /// The largest shared-memory region a client may create, in bytes
    /// (its bytes also count against `memory_budget` and the owner's
    /// share of it).
    pub max_region_size: u64,
    /// Shared-memory regions one uid may own (root is not limited by it).
    pub max_regions_per_uid: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_budget: 1 << 30,
            max_queued_messages: 4 << 20,
            max_requests_in_flight: 65_536,
            max_connections: 16_384,
            max_connections_per_uid: 1_024,
            reserved_connections: 64,
            max_mailboxes_per_uid: 65_536,
            max_queued_bytes_per_mailbox: 1 << 30,
            max_queued_bytes_per_uid: None,
            max_queued_messages_per_uid: None,
            admin_reserve_bytes: None,
            admin_reserve_messages: None,
            max_message_size: mailbox_proto::MAX_MESSAGE_SIZE_LIMIT,
            max_region_size: 1 << 30,
            max_regions_per_uid: 64,
        }
    }
}

impl Limits {
    /// What the budget enforces: the totals, each uid's share and the
    /// reserve, with the defaults derived from the totals.
    pub fn budget(&self) -> BudgetLimits {
        BudgetLimits {
            bytes: self.memory_budget,
            messages: self.max_queued_messages,
            bytes_per_uid: self
                .max_queued_bytes_per_uid
                .unwrap_or(self.memory_budget / 4),
            messages_per_uid: self
                .max_queued_messages_per_uid
                .unwrap_or(self.max_queued_messages / 4),
            reserved_bytes: self.admin_reserve_bytes.unwrap_or(self.memory_budget / 8),
            reserved_messages: self
                .admin_reserve_messages
                .unwrap_or(self.max_queued_messages / 8),
        }
    }
}
