//! The broker-wide budget for what is held in memory: payload bytes, and
//! messages (each costs its metadata and queue slot whatever its size).

/// Payload bytes and messages the broker holds (buffered messages and
/// waiting sends) against fixed limits. A send reserves on arrival and
/// releases when the message leaves the broker or the send is withdrawn, so
/// the broker refuses work with `BrokerFull` instead of running out of
/// memory. Counting messages as well as bytes matters because empty
/// messages cost no payload but still cost memory.
#[derive(Debug, Clone)]
pub struct Budget {
    held: u64,
    limit: u64,
    messages: u64,
    max_messages: u64,
}

/// Which limit a reservation would have gone over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// The payload bytes.
    Bytes,
    /// The message count.
    Messages,
}

impl Budget {
    /// A budget of `limit` payload bytes and `max_messages` messages, nothing held.
    pub fn new(limit: u64, max_messages: u64) -> Self {
        Self {
            held: 0,
            limit,
            messages: 0,
            max_messages,
        }
    }

    /// Changes the limits; what is held stays held (a lower limit only
    /// refuses later reservations).
    pub fn set_limits(&mut self, limit: u64, max_messages: u64) {
        self.limit = limit;
        self.max_messages = max_messages;
    }

    /// Reserves `bytes` in `messages` messages, or reserves nothing and says
    /// which limit that would go over.
    pub fn try_reserve(&mut self, bytes: u64, messages: u64) -> Result<(), Exhausted> {
        let held = match self.held.checked_add(bytes) {
            Some(total) if total <= self.limit => total,
            _ => return Err(Exhausted::Bytes),
        };
        let count = match self.messages.checked_add(messages) {
            Some(total) if total <= self.max_messages => total,
            _ => return Err(Exhausted::Messages),
        };
        self.held = held;
        self.messages = count;
        Ok(())
    }

    /// Gives back `bytes` in `messages` messages reserved earlier.
    pub fn release(&mut self, bytes: u64, messages: u64) {
        debug_assert!(bytes <= self.held, "released more bytes than were held");
        debug_assert!(
            messages <= self.messages,
            "released more messages than were held"
        );
        self.held = self.held.saturating_sub(bytes);
        self.messages = self.messages.saturating_sub(messages);
    }

    /// Payload bytes held now.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// The payload byte limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Messages held now.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// The message limit.
    pub fn max_messages(&self) -> u64 {
        self.max_messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_up_to_the_limit_and_not_beyond() {
        let mut budget = Budget::new(10, 100);
        assert_eq!(budget.try_reserve(6, 1), Ok(()));
        assert_eq!(budget.try_reserve(5, 1), Err(Exhausted::Bytes));
        assert_eq!(budget.held(), 6);
        assert_eq!(budget.try_reserve(4, 1), Ok(()));
        budget.release(10, 2);
        assert_eq!((budget.held(), budget.messages()), (0, 0));
        assert_eq!(budget.try_reserve(u64::MAX, 1), Err(Exhausted::Bytes));
    }

    #[test]
    fn empty_messages_still_count_against_the_message_limit() {
        let mut budget = Budget::new(10, 3);
        assert_eq!(budget.try_reserve(0, 3), Ok(()));
        assert_eq!(budget.try_reserve(0, 1), Err(Exhausted::Messages));
        assert_eq!(budget.held(), 0, "a refused reservation reserves nothing");
        budget.release(0, 1);
        assert_eq!(budget.try_reserve(0, 1), Ok(()));
    }
}
