//! The broker-wide budget for what is held in memory: payload bytes, and
//! messages (each costs its metadata and queue slot whatever its size),
//! in all and per sending uid, with a reserve only the privileged may use.
//!
//! Bytes are charged to the uid that sent them (`Metadata::sender_uid`, or
//! the waiting send's peer) from the moment the send arrives until the
//! message leaves the broker: received (or acknowledged), withdrawn,
//! expired, dropped, purged, deleted with its mailbox. The charge follows
//! the message wherever it waits (a dead-letter mailbox, an inbox), so a
//! chown, a dead-letter move or a delete never needs a recount, and every
//! change is O(1) per message: nothing here scans the mailboxes.
//!
//! What it deliberately does not do: decide who is privileged (the core
//! passes that in), or know mailboxes.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::types::ConnectionIdHasher;

/// What one uid holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Payload bytes.
    pub bytes: u64,
    /// Messages.
    pub messages: u64,
}

/// The limits a [`Budget`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    /// Payload bytes in all.
    pub bytes: u64,
    /// Messages in all.
    pub messages: u64,
    /// Payload bytes one unprivileged uid may hold.
    pub bytes_per_uid: u64,
    /// Messages one unprivileged uid may hold.
    pub messages_per_uid: u64,
    /// Payload bytes at the top of `bytes` only the privileged may take.
    pub reserved_bytes: u64,
    /// Messages at the top of `messages` only the privileged may take.
    pub reserved_messages: u64,
}

impl BudgetLimits {
    /// Only totals, no per-uid share and no reserve.
    pub fn totals(bytes: u64, messages: u64) -> Self {
        Self {
            bytes,
            messages,
            bytes_per_uid: u64::MAX,
            messages_per_uid: u64::MAX,
            reserved_bytes: 0,
            reserved_messages: 0,
        }
    }
}

/// Payload bytes and messages the broker holds (buffered messages and
/// waiting sends) against fixed limits. A send reserves on arrival and
/// releases when the message leaves the broker or the send is withdrawn, so
/// the broker refuses work with `BrokerFull` instead of running out of
/// memory. Counting messages as well as bytes matters because empty
/// messages cost no payload but still cost memory.
#[derive(Debug, Clone)]
pub struct Budget {
    held: u64,
    messages: u64,
    limits: BudgetLimits,
    /// What each uid holds; a uid that holds nothing has no entry.
    of_uid: Holders,
}

/// Uids past which [`Holders`] keeps a hash map: a scan of this many
/// entries is cheaper than a hash table's probe.
const FEW: usize = 8;

/// What each uid holds, a uid that holds nothing having no entry.
///
/// Every message is charged to its uid when it arrives and released when it
/// leaves, and in a conversation (one message in the broker at a time) that
/// is an insertion and a removal per message. In a hash map those cost
/// about 250 instructions per message (1.4% of the broker on `rtt`); few
/// uids hold messages at once, so up to [`FEW`] are kept in a vector
/// searched in place (as a connection's waiting requests are), and only
/// more make it a hash map, still O(1) per message.
#[derive(Debug, Clone)]
enum Holders {
    Few(Vec<(u32, Usage)>),
    Many(HashMap<u32, Usage, BuildHasherDefault<ConnectionIdHasher>>),
}

impl Holders {
    fn get(&self, uid: u32) -> Option<&Usage> {
        match self {
            Self::Few(few) => few
                .iter()
                .find(|(at, _)| *at == uid)
                .map(|(_, usage)| usage),
            Self::Many(many) => many.get(&uid),
        }
    }

    fn get_mut(&mut self, uid: u32) -> Option<&mut Usage> {
        match self {
            Self::Few(few) => few
                .iter_mut()
                .find(|(at, _)| *at == uid)
                .map(|(_, usage)| usage),
            Self::Many(many) => many.get_mut(&uid),
        }
    }

    /// The entry of `uid`, made (holding nothing) if it has none.
    fn entry(&mut self, uid: u32) -> &mut Usage {
        if let Self::Few(few) = self {
            if few.len() >= FEW && !few.iter().any(|(at, _)| *at == uid) {
                *self = Self::Many(std::mem::take(few).into_iter().collect());
            }
        }
        match self {
            Self::Few(few) => {
                let at = match few.iter().position(|(at, _)| *at == uid) {
                    Some(at) => at,
                    None => {
                        few.push((uid, Usage::default()));
                        few.len() - 1
                    }
                };
                &mut few[at].1
            }
            Self::Many(many) => many.entry(uid).or_default(),
        }
    }

    fn remove(&mut self, uid: u32) {
        match self {
            Self::Few(few) => {
                if let Some(at) = few.iter().position(|(at, _)| *at == uid) {
                    few.swap_remove(at);
                }
            }
            Self::Many(many) => {
                many.remove(&uid);
                // The crowd is gone: back to the vector.
                if many.is_empty() {
                    *self = Self::Few(Vec::new());
                }
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (u32, Usage)> + '_ {
        let (few, many) = match self {
            Self::Few(few) => (Some(few), None),
            Self::Many(many) => (None, Some(many)),
        };
        let many = many.into_iter().flatten();
        few.into_iter()
            .flatten()
            .copied()
            .chain(many.map(|(uid, usage)| (*uid, *usage)))
    }
}

/// Which limit a reservation would have gone over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// The payload bytes (for the unprivileged: up to the reserve).
    Bytes,
    /// The message count (for the unprivileged: up to the reserve).
    Messages,
    /// The sender's share of payload bytes.
    UidBytes,
    /// The sender's share of messages.
    UidMessages,
}

impl Budget {
    /// A budget of `limit` payload bytes and `max_messages` messages,
    /// nothing held, no per-uid share and no reserve.
    pub fn new(limit: u64, max_messages: u64) -> Self {
        Self::with_limits(BudgetLimits::totals(limit, max_messages))
    }

    /// A budget with `limits`, nothing held.
    pub fn with_limits(limits: BudgetLimits) -> Self {
        Self {
            held: 0,
            messages: 0,
            limits,
            of_uid: Holders::Few(Vec::new()),
        }
    }

    /// Changes the limits; what is held stays held (a lower limit only
    /// refuses later reservations).
    pub fn set_limits(&mut self, limits: BudgetLimits) {
        self.limits = limits;
    }

    /// Reserves `bytes` in `messages` messages for `uid`, or reserves
    /// nothing and says which limit that would go over. `privileged` (root,
    /// the admin group) may use the reserve and has no per-uid share.
    pub fn try_reserve(
        &mut self,
        uid: u32,
        privileged: bool,
        bytes: u64,
        messages: u64,
    ) -> Result<(), Exhausted> {
        let (byte_limit, message_limit) = if privileged {
            (self.limits.bytes, self.limits.messages)
        } else {
            (
                self.limits.bytes.saturating_sub(self.limits.reserved_bytes),
                self.limits
                    .messages
                    .saturating_sub(self.limits.reserved_messages),
            )
        };
        let held = match self.held.checked_add(bytes) {
            Some(total) if total <= byte_limit => total,
            _ => return Err(Exhausted::Bytes),
        };
        let count = match self.messages.checked_add(messages) {
            Some(total) if total <= message_limit => total,
            _ => return Err(Exhausted::Messages),
        };
        let usage = self.usage(uid);
        if !privileged {
            if usage.bytes.saturating_add(bytes) > self.limits.bytes_per_uid {
                return Err(Exhausted::UidBytes);
            }
            if usage.messages.saturating_add(messages) > self.limits.messages_per_uid {
                return Err(Exhausted::UidMessages);
            }
        }
        self.held = held;
        self.messages = count;
        if bytes > 0 || messages > 0 {
            let usage = self.of_uid.entry(uid);
            usage.bytes += bytes;
            usage.messages += messages;
        }
        Ok(())
    }

    /// Gives back `bytes` in `messages` messages reserved earlier for `uid`.
    pub fn release(&mut self, uid: u32, bytes: u64, messages: u64) {
        debug_assert!(bytes <= self.held, "released more bytes than were held");
        debug_assert!(
            messages <= self.messages,
            "released more messages than were held"
        );
        self.held = self.held.saturating_sub(bytes);
        self.messages = self.messages.saturating_sub(messages);
        if bytes == 0 && messages == 0 {
            return;
        }
        if let Some(usage) = self.of_uid.get_mut(uid) {
            debug_assert!(
                bytes <= usage.bytes && messages <= usage.messages,
                "uid {uid} released more than it held"
            );
            usage.bytes = usage.bytes.saturating_sub(bytes);
            usage.messages = usage.messages.saturating_sub(messages);
            if usage.messages == 0 && usage.bytes == 0 {
                self.of_uid.remove(uid);
            }
        } else {
            debug_assert!(false, "uid {uid} released but held nothing");
        }
    }

    /// What `uid` holds now.
    pub fn usage(&self, uid: u32) -> Usage {
        self.of_uid.get(uid).copied().unwrap_or_default()
    }

    /// Every uid that holds something, with what it holds.
    pub fn usages(&self) -> impl Iterator<Item = (u32, Usage)> + '_ {
        self.of_uid.iter()
    }

    /// Payload bytes held now.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// The payload byte limit.
    pub fn limit(&self) -> u64 {
        self.limits.bytes
    }

    /// Messages held now.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// The message limit.
    pub fn max_messages(&self) -> u64 {
        self.limits.messages
    }

    /// The limits in force.
    pub fn limits(&self) -> &BudgetLimits {
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_up_to_the_limit_and_not_beyond() {
        let mut budget = Budget::new(10, 100);
        assert_eq!(budget.try_reserve(1, false, 6, 1), Ok(()));
        assert_eq!(budget.try_reserve(1, false, 5, 1), Err(Exhausted::Bytes));
        assert_eq!(budget.held(), 6);
        assert_eq!(budget.try_reserve(1, false, 4, 1), Ok(()));
        budget.release(1, 10, 2);
        assert_eq!((budget.held(), budget.messages()), (0, 0));
        assert_eq!(
            budget.try_reserve(1, false, u64::MAX, 1),
            Err(Exhausted::Bytes)
        );
    }

    #[test]
    fn empty_messages_still_count_against_the_message_limit() {
        let mut budget = Budget::new(10, 3);
        assert_eq!(budget.try_reserve(1, false, 0, 3), Ok(()));
        assert_eq!(budget.try_reserve(1, false, 0, 1), Err(Exhausted::Messages));
        assert_eq!(budget.held(), 0, "a refused reservation reserves nothing");
        budget.release(1, 0, 1);
        assert_eq!(budget.try_reserve(1, false, 0, 1), Ok(()));
    }

    fn shared() -> Budget {
        Budget::with_limits(BudgetLimits {
            bytes: 100,
            messages: 100,
            bytes_per_uid: 40,
            messages_per_uid: 30,
            reserved_bytes: 10,
            reserved_messages: 10,
        })
    }

    #[test]
    fn one_uid_takes_no_more_than_its_share_and_others_still_may_send() {
        let mut budget = shared();
        assert_eq!(budget.try_reserve(7, false, 40, 1), Ok(()));
        assert_eq!(budget.try_reserve(7, false, 1, 1), Err(Exhausted::UidBytes));
        assert_eq!(budget.try_reserve(8, false, 40, 1), Ok(()));
        assert_eq!(budget.usage(7).bytes, 40);
        budget.release(7, 30, 0);
        assert_eq!(budget.usage(7).bytes, 10);
        budget.release(7, 10, 1);
        assert_eq!(budget.usage(7), Usage::default(), "nothing held, no entry");
        assert_eq!(budget.try_reserve(7, false, 10, 1), Ok(()));
        // Messages have a share of their own.
        assert_eq!(budget.try_reserve(9, false, 0, 30), Ok(()));
        assert_eq!(
            budget.try_reserve(9, false, 0, 1),
            Err(Exhausted::UidMessages)
        );
    }

    #[test]
    fn the_reserve_is_for_the_privileged_only() {
        let mut budget = shared();
        for uid in 1..=2 {
            assert_eq!(budget.try_reserve(uid, false, 40, 1), Ok(()));
        }
        assert_eq!(budget.try_reserve(3, false, 10, 1), Ok(()));
        // 90 of 100 held: the last 10 are the reserve.
        assert_eq!(budget.try_reserve(4, false, 1, 1), Err(Exhausted::Bytes));
        assert_eq!(budget.try_reserve(0, true, 10, 1), Ok(()));
        assert_eq!(budget.try_reserve(0, true, 1, 1), Err(Exhausted::Bytes));
        assert_eq!(budget.held(), 100);
        // The privileged have no per-uid share.
        budget.release(1, 40, 1);
        budget.release(2, 40, 1);
        assert_eq!(budget.try_reserve(0, true, 80, 1), Ok(()));
        assert_eq!(budget.usage(0).bytes, 90);
    }

    #[test]
    fn many_uids_are_counted_alike_past_the_short_list() {
        let mut budget = Budget::new(u64::MAX, u64::MAX);
        let uids = (0..3 * FEW as u32).map(|n| 1000 + n);
        for (n, uid) in uids.clone().enumerate() {
            assert_eq!(budget.try_reserve(uid, false, n as u64 + 1, 1), Ok(()));
        }
        for (n, uid) in uids.clone().enumerate() {
            let usage = Usage {
                bytes: n as u64 + 1,
                messages: 1,
            };
            assert_eq!(budget.usage(uid), usage);
        }
        let mut held: Vec<_> = budget.usages().collect();
        held.sort_by_key(|(uid, _)| *uid);
        assert_eq!(held.len(), 3 * FEW);
        // Released in another order than reserved; every uid's entry goes
        // with its last message, and the budget is back to where it began.
        for (n, uid) in uids.clone().enumerate().rev() {
            budget.release(uid, n as u64 + 1, 1);
            assert_eq!(budget.usage(uid), Usage::default());
        }
        assert_eq!(budget.usages().count(), 0);
        assert!(matches!(budget.of_uid, Holders::Few(_)));
        assert_eq!((budget.held(), budget.messages()), (0, 0));
        // A short list again: a uid comes and goes.
        assert_eq!(budget.try_reserve(7, false, 5, 1), Ok(()));
        assert_eq!(
            budget.usages().collect::<Vec<_>>(),
            [(
                7,
                Usage {
                    bytes: 5,
                    messages: 1
                }
            )]
        );
        budget.release(7, 5, 1);
        assert_eq!(budget.usages().count(), 0);
    }
}
