//! A connection's waiting requests, by request id.
//!
//! Most connections have one request waiting or none (a process blocked in
//! a receive); a few pipeline thousands. A hash map costs every connection
//! a table of at least four entries the moment it waits once (about 280
//! bytes, the largest part of a blocked client's cost to the broker), and a
//! hash of each id. So a short list is kept as a plain vector, searched in
//! place, and only past [`FEW`] entries does it become a hash map, where a
//! client with thousands waiting, ids in any order, still costs O(1) per
//! lookup.

use std::collections::HashMap;

use mailbox_proto::RequestId;

/// Entries kept in a vector before switching to a hash map: a linear scan
/// of this many ids is cheaper than hashing one.
const FEW: usize = 8;

/// Waiting requests of one connection, each under its request id.
#[derive(Debug)]
pub(crate) enum WaitingRequests<T> {
    Few(Vec<(RequestId, T)>),
    Many(HashMap<RequestId, T>),
}

impl<T> Default for WaitingRequests<T> {
    fn default() -> Self {
        Self::Few(Vec::new())
    }
}

impl<T> WaitingRequests<T> {
    pub fn len(&self) -> usize {
        match self {
            Self::Few(few) => few.len(),
            Self::Many(many) => many.len(),
        }
    }

    pub fn contains_key(&self, id: &RequestId) -> bool {
        self.get(id).is_some()
    }

    pub fn get(&self, id: &RequestId) -> Option<&T> {
        match self {
            Self::Few(few) => few.iter().find(|(key, _)| key == id).map(|(_, v)| v),
            Self::Many(many) => many.get(id),
        }
    }

    /// Files `value` under `id`, replacing (and returning) what was there.
    pub fn insert(&mut self, id: RequestId, value: T) -> Option<T> {
        match self {
            Self::Few(few) => {
                if let Some((_, old)) = few.iter_mut().find(|(key, _)| *key == id) {
                    return Some(std::mem::replace(old, value));
                }
                if few.len() < FEW {
                    // The first entry gets room for itself only: a blocked
                    // receive is the common case, and it waits alone.
                    if few.capacity() == 0 {
                        few.reserve_exact(1);
                    }
                    few.push((id, value));
                    return None;
                }
                let mut many: HashMap<RequestId, T> = few.drain(..).collect();
                many.insert(id, value);
                *self = Self::Many(many);
                None
            }
            Self::Many(many) => many.insert(id, value),
        }
    }

    pub fn remove(&mut self, id: &RequestId) -> Option<T> {
        match self {
            Self::Few(few) => {
                let at = few.iter().position(|(key, _)| key == id)?;
                Some(few.swap_remove(at).1)
            }
            Self::Many(many) => {
                let removed = many.remove(id);
                // A burst is over: give its table back.
                if many.is_empty() {
                    *self = Self::default();
                }
                removed
            }
        }
    }
}

impl<T> WaitingRequests<T> {
    /// Every entry, in no particular order.
    pub fn into_entries(self) -> Vec<(RequestId, T)> {
        match self {
            Self::Few(few) => few,
            Self::Many(many) => many.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_waiting_request_costs_one_entry() {
        let mut waiting = WaitingRequests::default();
        waiting.insert(7, "receive");
        let WaitingRequests::Few(few) = &waiting else {
            panic!("one request is kept in the short list");
        };
        assert_eq!(few.capacity(), 1);
        assert_eq!(waiting.get(&7), Some(&"receive"));
    }

    #[test]
    fn many_waiting_requests_move_to_a_map_and_back_when_done() {
        let mut waiting = WaitingRequests::default();
        for id in 0..100 {
            waiting.insert(id, id * 2);
        }
        assert!(matches!(waiting, WaitingRequests::Many(_)));
        for id in 0..100 {
            assert_eq!(waiting.remove(&id), Some(id * 2));
        }
        assert!(matches!(&waiting, WaitingRequests::Few(few) if few.capacity() == 0));
    }

    proptest! {
        /// Behaves as a map, whatever the order of ids and operations.
        #[test]
        fn behaves_as_a_hash_map(ops in prop::collection::vec((0u8..3, 0u64..24), 0..200)) {
            let mut waiting = WaitingRequests::default();
            let mut model = HashMap::new();
            for (op, id) in ops {
                match op {
                    0 => prop_assert_eq!(waiting.insert(id, id + 1), model.insert(id, id + 1)),
                    1 => prop_assert_eq!(waiting.remove(&id), model.remove(&id)),
                    _ => prop_assert_eq!(waiting.get(&id), model.get(&id)),
                }
                prop_assert_eq!(waiting.len(), model.len());
                prop_assert_eq!(waiting.contains_key(&id), model.contains_key(&id));
            }
            let mut left: Vec<_> = waiting.into_entries();
            let mut expected: Vec<_> = model.into_iter().collect();
            left.sort_unstable();
            expected.sort_unstable();
            prop_assert_eq!(left, expected);
        }
    }
}
