//! What connections hold outside the mailboxes, counted against a broker-wide
//! limit and a per-uid one (`limits.max_buffered_bytes`,
//! `limits.max_buffered_bytes_per_uid`): replies queued or being written
//! (each connection's outbox) and the part of a read buffer beyond the first
//! [`FREE_READ_BYTES`] (room for a frame that has not fully arrived).
//!
//! The rules, each where it is applied:
//! - a reader grows its buffer for a partly received frame only when both
//!   limits have room; otherwise it stops reading, holding nothing more,
//!   until others release some (`Account::try_reserve`,
//!   `Buffers::room_released`); the frame deadline still runs, so a client
//!   that cannot finish its frame in time is cut and its buffer released;
//! - a reply that would take either total past its limit closes the
//!   connection it is for (a `Goodbye`, `TooManyRequests`), unless that
//!   connection has nothing else queued or being written and the limits'
//!   overdraft (a quarter more) has room: a client that reads its replies
//!   gets them while others hold the buffers (`Outbox::push`);
//! - a client that reads none of its replies for `limits.write_timeout` is
//!   cut (the writer), which releases its outbox.
//!
//! Counting is lock-free on the hot path (atomics); the map of uids is
//! locked only when a connection starts or ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::BufferLimits;

/// Read buffer every connection may hold without counting: room for small
/// requests, so that a client sending them is never held up by others
/// filling the buffers. Part of the fixed cost of a connection.
pub(crate) const FREE_READ_BYTES: usize = 4 * 1024;

/// The broker-wide count.
#[derive(Debug)]
pub(crate) struct Buffers {
    limits: BufferLimits,
    total: AtomicUsize,
    uids: Mutex<HashMap<u32, Arc<AtomicUsize>>>,
    /// Wakes readers waiting for room, when some is released.
    released: Notify,
    /// How many readers wait for room (releases notify only then).
    waiting: AtomicUsize,
}

impl Buffers {
    pub fn new(limits: BufferLimits) -> Self {
        Self {
            limits,
            total: AtomicUsize::new(0),
            uids: Mutex::new(HashMap::new()),
            released: Notify::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    /// The account of a new connection of `uid`.
    pub fn open(self: &Arc<Self>, uid: u32) -> Account {
        let of_uid = self
            .uids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(uid)
            .or_default()
            .clone();
        Account {
            buffers: self.clone(),
            uid,
            of_uid,
            held: AtomicUsize::new(0),
        }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &BufferLimits {
        &self.limits
    }

    /// Bytes counted in all.
    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Waits until some room is released (or a moment passed: a release
    /// between the caller's check and this wait is not missed for long).
    pub async fn room_released(&self) {
        let notified = self.released.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _ = tokio::time::timeout(std::time::Duration::from_millis(100), notified).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What one connection holds; released in full when dropped.
#[derive(Debug)]
pub(crate) struct Account {
    buffers: Arc<Buffers>,
    uid: u32,
    of_uid: Arc<AtomicUsize>,
    held: AtomicUsize,
}

impl Account {
    /// Counts `bytes` more if both limits have room for them.
    pub fn try_reserve(&self, bytes: usize) -> bool {
        let limits = &self.buffers.limits;
        self.reserve_within(
            bytes,
            limits.max_buffered_bytes,
            limits.max_buffered_bytes_per_uid,
        )
    }

    /// Counts `bytes` more if both limits raised by their overdraft (a
    /// quarter) have room: for the one reply a connection with nothing else
    /// waiting may always have, so that a client that reads its replies is
    /// served while others hold the buffers, and the total stays bounded.
    pub fn try_overdraw(&self, bytes: usize) -> bool {
        let limits = &self.buffers.limits;
        let with_overdraft = |limit: usize| limit.saturating_add(limit / 4);
        self.reserve_within(
            bytes,
            with_overdraft(limits.max_buffered_bytes),
            with_overdraft(limits.max_buffered_bytes_per_uid),
        )
    }

    fn reserve_within(&self, bytes: usize, max_bytes: usize, max_bytes_per_uid: usize) -> bool {
        let total = self.buffers.total.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let of_uid = self.of_uid.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if total > max_bytes || of_uid > max_bytes_per_uid {
            self.buffers.total.fetch_sub(bytes, Ordering::Relaxed);
            self.of_uid.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        self.held.fetch_add(bytes, Ordering::Relaxed);
        true
    }

    /// Counts `bytes` more whatever the limits say (a goodbye; what a read
    /// buffer turned out to hold).
    pub fn force(&self, bytes: usize) {
        self.buffers.total.fetch_add(bytes, Ordering::Relaxed);
        self.of_uid.fetch_add(bytes, Ordering::Relaxed);
        self.held.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` fewer.
    pub fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.held.fetch_sub(bytes, Ordering::Relaxed);
        self.of_uid.fetch_sub(bytes, Ordering::Relaxed);
        self.buffers.total.fetch_sub(bytes, Ordering::Relaxed);
        if self.buffers.waiting.load(Ordering::SeqCst) > 0 {
            self.buffers.released.notify_waiters();
        }
    }

    /// The uid of the connection.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Bytes this connection holds.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The broker-wide count.
    pub fn buffers(&self) -> &Buffers {
        &self.buffers
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.release(self.held());
        let mut uids = self
            .buffers
            .uids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Ours and the map's: the uid's last connection is gone.
        if Arc::strong_count(&self.of_uid) == 2 {
            uids.remove(&self.uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffers(max_bytes: usize, max_bytes_per_uid: usize) -> Arc<Buffers> {
        Arc::new(Buffers::new(BufferLimits {
            max_buffered_bytes: max_bytes,
            max_buffered_bytes_per_uid: max_bytes_per_uid,
            ..BufferLimits::default()
        }))
    }

    #[test]
    fn each_uid_has_its_share_and_all_together_the_total() {
        let buffers = buffers(1000, 400);
        let a1 = buffers.open(1);
        let a2 = buffers.open(1);
        assert!(a1.try_reserve(300));
        assert!(!a2.try_reserve(101), "uid 1 would pass its 400");
        assert!(a2.try_reserve(100));
        let b = buffers.open(2);
        assert!(b.try_reserve(400));
        let c = buffers.open(3);
        assert!(!c.try_reserve(201), "all together would pass 1000");
        assert!(c.try_reserve(200));
        assert_eq!(buffers.total(), 1000);
        // A refused reservation counted nothing.
        assert_eq!(c.held(), 200);
        // What a connection held is released when it ends.
        drop(a1);
        assert_eq!(buffers.total(), 700);
        assert!(a2.try_reserve(300));
        drop((a2, b, c));
        assert_eq!(buffers.total(), 0);
        assert!(buffers.uids.lock().unwrap().is_empty());
    }

    #[test]
    fn the_overdraft_is_a_quarter_more() {
        let buffers = buffers(1000, 400);
        let a = buffers.open(1);
        assert!(a.try_reserve(400));
        assert!(!a.try_reserve(1));
        assert!(a.try_overdraw(100));
        assert!(!a.try_overdraw(1), "uid 1 is at 400 + 100");
        let b = buffers.open(2);
        assert!(b.try_reserve(400));
        let c = buffers.open(3);
        assert!(c.try_reserve(100));
        assert!(!c.try_reserve(1));
        assert!(c.try_overdraw(250));
        assert!(!c.try_overdraw(1), "all together are at 1000 + 250");
    }

    #[test]
    fn forced_bytes_count_and_are_released() {
        let buffers = buffers(100, 100);
        let account = buffers.open(1);
        account.force(150);
        assert!(!account.try_reserve(1));
        account.release(100);
        assert!(account.try_reserve(1));
        assert_eq!(buffers.total(), 51);
    }
}
