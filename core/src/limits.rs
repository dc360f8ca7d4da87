//! The limits the core enforces, with the defaults the configuration
//! starts from and the budget's limits derived from them.

use crate::budget::BudgetLimits;

/// What a frame holds beside one payload (metadata, lengths, the
/// envelope), kept free when a frame limit becomes a payload limit.
pub const FRAME_OVERHEAD: u32 = 64 * 1024;

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
    /// The largest memory-file payload (`SendFile`), in bytes: files have
    /// their own maximum in place of `max_message_size` (never above
    /// [`mailbox_proto::memfile::MAX_FILE_PAYLOAD`]; a mailbox's fixed size
    /// still applies, and the bytes count against the budget).
    pub max_file_size: u64,
    /// The largest payload a receiver that does not take files
    /// (`AcceptFiles`) can get inline: what the server's frame limit
    /// (`limits.max_frame_size`) leaves for one payload. Such a receiver
    /// is never handed a longer one ([`Limits::inline_limit`]); the
    /// server sets it from its frame limit.
    pub max_inline_payload: u32,
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
            max_file_size: mailbox_proto::memfile::MAX_FILE_PAYLOAD,
            max_inline_payload: mailbox_proto::codec::DEFAULT_MAX_FRAME_LEN - FRAME_OVERHEAD,
        }
    }
}

impl Limits {
    /// The largest payload a receiver that does not take files may get
    /// (`u32::MAX`: it takes files, any payload reaches it).
    pub fn inline_limit(&self, accepts_files: bool) -> u32 {
        if accepts_files {
            u32::MAX
        } else {
            self.max_inline_payload
        }
    }

    /// The frame limit `max_frame_size` as the payload limit
    /// [`Limits::max_inline_payload`].
    pub fn inline_payload_for_frames(max_frame_size: u32) -> u32 {
        max_frame_size.saturating_sub(FRAME_OVERHEAD)
    }

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
