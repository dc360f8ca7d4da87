//! Waiting lines: first come, first served, where any entry can also leave
//! from the middle (a cancel, a timeout, a disconnect) at O(1) cost.
//!
//! A [`Line`] is a `VecDeque` of slots in arrival order; an entry that
//! leaves from the middle leaves an empty slot (a tombstone) that the ends
//! skip and a compaction sweeps out once tombstones outnumber entries, so
//! the slots stay proportional to the entries at amortised O(1) cost. A
//! short line (the usual case: one blocked receive) is searched in place;
//! past [`FEW`] entries a hash map from ticket to arrival number finds any
//! entry at once. A [`RankedLine`] orders by a rank first (priority
//! mailboxes), then arrival, in a B-tree with the same kind of index.
//!
//! What it deliberately does not do: decide who is served (the mailbox's
//! pump does), or answer anyone.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};

use super::types::Ticket;

/// Entries kept without an index: a scan of this many slots is cheaper
/// than hashing a ticket, and a line of one costs no table.
const FEW: usize = 8;

/// What a line holds: anything that answers to a ticket.
pub(crate) trait Ticketed {
    fn ticket(&self) -> Ticket;
}

impl Ticketed for Ticket {
    fn ticket(&self) -> Ticket {
        *self
    }
}

#[cfg(test)]
thread_local! {
    /// Slots looked at by every line of this thread (tests count the work).
    static STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts `n` slots looked at (tests only; nothing in a release build).
/// The pumps count the members and subscribers they visit the same way.
#[inline]
pub(crate) fn step(n: usize) {
    #[cfg(test)]
    STEPS.with(|steps| steps.set(steps.get() + n as u64));
    #[cfg(not(test))]
    let _ = n;
}

/// Slots looked at by the lines of this thread so far.
#[cfg(test)]
pub(crate) fn steps() -> u64 {
    STEPS.with(std::cell::Cell::get)
}

/// A first-come-first-served line with removal by ticket.
#[derive(Debug)]
pub(crate) struct Line<T> {
    slots: VecDeque<Option<T>>,
    /// The arrival number of `slots[0]`.
    first: u64,
    /// Entries (slots that are not tombstones).
    live: usize,
    /// Arrival number by ticket, kept while the line is longer than [`FEW`].
    /// Boxed so that the many short lines pay one pointer for it, not a
    /// whole empty table.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<Ticket, u64>>>,
}

impl<T> Default for Line<T> {
    fn default() -> Self {
        Self {
            slots: VecDeque::new(),
            first: 0,
            live: 0,
            index: None,
        }
    }
}

impl<T: Ticketed> Line<T> {
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Adds `entry` at the back.
    pub fn push_back(&mut self, entry: T) {
        let arrival = self.first + self.slots.len() as u64;
        if let Some(index) = &mut self.index {
            index.insert(entry.ticket(), arrival);
        }
        if self.slots.capacity() == 0 {
            // Most lines hold one waiting request at a time; a queue's
            // first growth would otherwise make room for four, which
            // thousands of blocked clients pay for.
            self.slots.reserve_exact(1);
        }
        self.slots.push_back(Some(entry));
        self.live += 1;
        if self.index.is_none() && self.live > FEW {
            self.build_index();
        }
    }

    /// Puts `entry` back at the front (it was just taken from there).
    pub fn push_front(&mut self, entry: T) {
        self.first = self.first.wrapping_sub(1);
        if let Some(index) = &mut self.index {
            index.insert(entry.ticket(), self.first);
        }
        self.slots.push_front(Some(entry));
        self.live += 1;
        if self.index.is_none() && self.live > FEW {
            self.build_index();
        }
    }

    // Both ends are always entries (every removal trims), so the ends are
    // found without a search.

    pub fn front(&self) -> Option<&T> {
        self.slots.front().and_then(Option::as_ref)
    }

    pub fn back(&self) -> Option<&T> {
        self.slots.back().and_then(Option::as_ref)
    }

    pub fn front_mut(&mut self) -> Option<&mut T> {
        self.slots.front_mut().and_then(Option::as_mut)
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let entry = self.slots.pop_front()??;
        self.first = self.first.wrapping_add(1);
        self.forget(&entry);
        self.trim();
        Some(entry)
    }

    pub fn pop_back(&mut self) -> Option<T> {
        let entry = self.slots.pop_back()??;
        self.forget(&entry);
        self.trim();
        Some(entry)
    }

    /// Whether the entry of `ticket` waits here.
    pub fn contains(&self, ticket: Ticket) -> bool {
        self.slot_of(ticket).is_some()
    }

    /// The entry of `ticket`, if it waits here.
    pub fn get_mut(&mut self, ticket: Ticket) -> Option<&mut T> {
        let slot = self.slot_of(ticket)?;
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Takes the entry of `ticket` out of the line, wherever it is.
    pub fn remove(&mut self, ticket: Ticket) -> Option<T> {
        let slot = self.slot_of(ticket)?;
        let entry = self.slots.get_mut(slot)?.take()?;
        self.forget(&entry);
        self.trim();
        // Tombstones never outnumber entries by much: sweep them out when
        // they do, which costs as much as the removals that made them.
        if self.slots.len() > 2 * self.live + FEW {
            self.compact();
        }
        Some(entry)
    }

    /// Puts `entry` in the place of the entry of `ticket` (which it
    /// returns): the new entry keeps the old one's place in line.
    pub fn replace(&mut self, ticket: Ticket, entry: T) -> Result<T, T> {
        let Some(slot) = self.slot_of(ticket) else {
            return Err(entry);
        };
        let new_ticket = entry.ticket();
        let Some(place) = self.slots.get_mut(slot) else {
            return Err(entry);
        };
        let Some(old) = place.take() else {
            return Err(entry);
        };
        *place = Some(entry);
        if let Some(index) = &mut self.index {
            if let Some(arrival) = index.remove(&ticket) {
                index.insert(new_ticket, arrival);
            }
        }
        Ok(old)
    }

    /// The entries in line order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    /// Takes every entry, in line order.
    pub fn drain(&mut self) -> impl Iterator<Item = T> {
        let slots = std::mem::take(&mut self.slots);
        *self = Self::default();
        slots.into_iter().flatten()
    }

    /// The slot of `ticket`: from the index, or by a scan of a short line.
    fn slot_of(&self, ticket: Ticket) -> Option<usize> {
        match &self.index {
            Some(index) => {
                step(1);
                let arrival = index.get(&ticket)?;
                Some(arrival.wrapping_sub(self.first) as usize)
            }
            None => {
                // Without an index the line has at most `FEW` entries and,
                // compacted, at most `3 * FEW` slots.
                let found = self
                    .slots
                    .iter()
                    .position(|slot| slot.as_ref().is_some_and(|e| e.ticket() == ticket));
                step(found.map_or(self.slots.len(), |at| at + 1));
                found
            }
        }
    }

    /// Accounts for `entry` leaving the line.
    fn forget(&mut self, entry: &T) {
        self.live -= 1;
        if let Some(index) = &mut self.index {
            index.remove(&entry.ticket());
        }
        if self.live == 0 {
            // A burst is over: give its table back.
            self.index = None;
        }
    }

    /// Drops tombstones at both ends, so the ends are entries.
    fn trim(&mut self) {
        while self.slots.front().is_some_and(Option::is_none) {
            step(1);
            self.slots.pop_front();
            self.first = self.first.wrapping_add(1);
        }
        while self.slots.back().is_some_and(Option::is_none) {
            step(1);
            self.slots.pop_back();
        }
        if self.slots.is_empty() && self.slots.capacity() > 1 {
            self.slots = VecDeque::new();
        }
    }

    /// Sweeps out every tombstone and renumbers the entries.
    fn compact(&mut self) {
        step(self.slots.len());
        self.slots.retain(Option::is_some);
        self.slots.shrink_to(2 * self.slots.len().max(1));
        self.first = 0;
        if self.index.is_some() {
            self.build_index();
        }
    }

    fn build_index(&mut self) {
        step(self.slots.len());
        let first = self.first;
        let index = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(at, slot)| {
                let entry = slot.as_ref()?;
                Some((entry.ticket(), first.wrapping_add(at as u64)))
            })
            .collect();
        self.index = Some(Box::new(index));
    }
}

/// Where an entry stands in a [`RankedLine`]: higher rank first, then
/// first come.
type Place = (Reverse<i32>, u64);

/// A line ordered by rank (higher first), then arrival; removal by ticket.
#[derive(Debug)]
pub(crate) struct RankedLine<T> {
    entries: BTreeMap<Place, T>,
    places: HashMap<Ticket, Place>,
    next: u64,
}

impl<T> Default for RankedLine<T> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            places: HashMap::new(),
            next: 0,
        }
    }
}

impl<T: Ticketed> RankedLine<T> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds `entry` behind every entry of equal or higher rank.
    pub fn push(&mut self, rank: i32, entry: T) {
        step(1);
        let place = (Reverse(rank), self.next);
        self.next += 1;
        self.places.insert(entry.ticket(), place);
        self.entries.insert(place, entry);
    }

    pub fn pop_front(&mut self) -> Option<T> {
        step(1);
        let (_, entry) = self.entries.pop_first()?;
        self.places.remove(&entry.ticket());
        Some(entry)
    }

    pub fn contains(&self, ticket: Ticket) -> bool {
        step(1);
        self.places.contains_key(&ticket)
    }

    pub fn remove(&mut self, ticket: Ticket) -> Option<T> {
        step(1);
        let place = self.places.remove(&ticket)?;
        self.entries.remove(&place)
    }

    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.values()
    }

    pub fn drain(&mut self) -> impl Iterator<Item = T> {
        self.places.clear();
        std::mem::take(&mut self.entries).into_values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnectionId;
    use proptest::prelude::*;

    fn ticket(n: u64) -> Ticket {
        Ticket {
            connection: ConnectionId(n % 7),
            request: n,
        }
    }

    #[test]
    fn one_entry_costs_one_slot_and_no_index() {
        let mut line = Line::default();
        line.push_back(ticket(1));
        assert_eq!(line.slots.capacity(), 1);
        assert!(line.index.is_none());
        assert!(line.contains(ticket(1)));
        assert_eq!(line.pop_front(), Some(ticket(1)));
        assert!(line.is_empty());
    }

    #[test]
    fn a_hundred_thousand_entries_cost_constant_work_each() {
        let n = 100_000u64;
        let mut line = Line::default();
        let before = steps();
        for i in 0..n {
            line.push_back(ticket(i));
            assert!(line.contains(ticket(i)));
        }
        // Every other one leaves from the middle, newest first (the worst
        // order for a scan from the front).
        for i in (0..n).rev().step_by(2) {
            assert_eq!(line.remove(ticket(i)), Some(ticket(i)));
        }
        for i in (0..n).step_by(2) {
            assert_eq!(line.pop_front(), Some(ticket(i)));
        }
        assert!(line.is_empty());
        let per_operation = (steps() - before) / (3 * n);
        assert!(
            per_operation <= 4,
            "{per_operation} slots looked at per operation"
        );
    }

    proptest! {
        /// Behaves as a `VecDeque` searched from the front, whatever the
        /// order of operations, and its slots stay proportional to its
        /// entries.
        #[test]
        fn behaves_as_a_plain_queue(ops in prop::collection::vec((0u8..6, 0u64..40), 0..400)) {
            let mut line = Line::default();
            let mut model: VecDeque<Ticket> = VecDeque::new();
            let mut next = 0;
            for (op, n) in ops {
                match op {
                    0 | 1 => {
                        // Tickets are unique among waiting entries.
                        next += 1;
                        line.push_back(ticket(next));
                        model.push_back(ticket(next));
                    }
                    2 => prop_assert_eq!(line.pop_front(), model.pop_front()),
                    3 => prop_assert_eq!(line.pop_back(), model.pop_back()),
                    4 => {
                        let target = ticket(next.saturating_sub(n));
                        let expected = model
                            .iter()
                            .position(|t| *t == target)
                            .and_then(|at| model.remove(at));
                        prop_assert_eq!(line.remove(target), expected);
                    }
                    _ => {
                        if let Some(entry) = model.pop_front() {
                            prop_assert_eq!(line.pop_front(), Some(entry));
                            line.push_front(entry);
                            model.push_front(entry);
                        }
                    }
                }
                prop_assert_eq!(line.len(), model.len());
                prop_assert_eq!(line.iter().copied().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(line.front().copied(), model.front().copied());
                for entry in &model {
                    prop_assert!(line.contains(*entry));
                }
                prop_assert!(line.slots.len() <= 2 * line.live + 3 * FEW);
            }
        }

        /// Orders by rank, then arrival, as a sorted `Vec` does.
        #[test]
        fn ranked_behaves_as_a_sorted_list(ops in prop::collection::vec((0u8..4, -3i32..3), 0..300)) {
            let mut line = RankedLine::default();
            let mut model: Vec<(i32, Ticket)> = Vec::new();
            let mut next = 0;
            for (op, rank) in ops {
                match op {
                    0 | 1 => {
                        next += 1;
                        line.push(rank, ticket(next));
                        let at = model.iter().position(|(r, _)| *r < rank).unwrap_or(model.len());
                        model.insert(at, (rank, ticket(next)));
                    }
                    2 => prop_assert_eq!(line.pop_front(), (!model.is_empty()).then(|| model.remove(0).1)),
                    _ => {
                        let target = ticket(next.saturating_sub(rank.unsigned_abs() as u64));
                        let expected = model.iter().position(|(_, t)| *t == target).map(|at| model.remove(at).1);
                        prop_assert_eq!(line.remove(target), expected);
                    }
                }
                prop_assert_eq!(line.iter().copied().collect::<Vec<_>>(), model.iter().map(|(_, t)| *t).collect::<Vec<_>>());
            }
        }
    }
}
