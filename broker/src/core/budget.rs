//! The broker-wide budget for payload bytes held in memory.

/// Payload bytes the broker holds (buffered messages and waiting sends)
/// against a fixed limit. A send reserves its bytes on arrival and they are
/// released when the message leaves the broker or the send is withdrawn, so
/// the broker refuses work with `BrokerFull` instead of running out of memory.
#[derive(Debug, Clone)]
pub struct Budget {
    held: u64,
    limit: u64,
}

impl Budget {
    /// A budget of `limit` bytes, nothing held.
    pub fn new(limit: u64) -> Self {
        Self { held: 0, limit }
    }

    /// Reserves `bytes`, or returns false (reserving nothing) when that would
    /// go over the limit.
    pub fn try_reserve(&mut self, bytes: u64) -> bool {
        match self.held.checked_add(bytes) {
            Some(total) if total <= self.limit => {
                self.held = total;
                true
            }
            _ => false,
        }
    }

    /// Gives back bytes reserved earlier.
    pub fn release(&mut self, bytes: u64) {
        debug_assert!(bytes <= self.held, "released more than was held");
        self.held = self.held.saturating_sub(bytes);
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_up_to_the_limit_and_not_beyond() {
        let mut budget = Budget::new(10);
        assert!(budget.try_reserve(6));
        assert!(!budget.try_reserve(5));
        assert_eq!(budget.held(), 6);
        assert!(budget.try_reserve(4));
        budget.release(10);
        assert_eq!(budget.held(), 0);
        assert!(!budget.try_reserve(u64::MAX));
    }
}
