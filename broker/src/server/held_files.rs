//! The memory files of message payloads the broker holds, counted against
//! a broker-wide limit and a per-uid one (`limits.max_held_files`,
//! `limits.max_held_files_per_uid`), so that file sends (waiting, queued,
//! held unacknowledged, dead-lettered) cannot take the broker's open-file
//! limit, and one user cannot take every file the broker may hold.
//!
//! A file counts against the uid that sent it from the check of its
//! `SendFile` ([`HeldFiles::admit`]) until its message is gone: the
//! [`HeldFile`] ticket rides inside the payload's `Bytes` (its owner,
//! beside the mapping), so it drops exactly when the last clone of the
//! payload does, wherever that is (received and settled, purged, expired,
//! deleted with its mailbox, refused by the core; a dead-letter move keeps
//! the same `Bytes`, so the file stays counted against its sender). A file
//! handed to a receiver that takes files leaves the count with its
//! message: its descriptor then waits in that receiver's outbox, where it
//! counts against the receiver's buffers (`outbox::DESCRIPTOR_WEIGHT`).
//!
//! Root is not held to the per-uid share (as with connections); the
//! broker-wide limit holds for everyone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use mailbox_proto::{BrokerError, ErrorKind};

/// The broker-wide count of held files, and each uid's.
#[derive(Debug)]
pub(crate) struct HeldFiles {
    max: usize,
    max_per_uid: usize,
    total: AtomicUsize,
    uids: Mutex<HashMap<u32, usize>>,
}

impl HeldFiles {
    /// Counts against `max` in all and `max_per_uid` for each uid but root.
    pub fn new(max: usize, max_per_uid: usize) -> Self {
        Self {
            max,
            max_per_uid,
            total: AtomicUsize::new(0),
            uids: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one more file of `uid`, if both limits have room; the error
    /// (`BrokerFull`) names the limit reached and its key.
    pub fn admit(self: &Arc<Self>, uid: u32) -> Result<HeldFile, BrokerError> {
        let mut uids = self
            .uids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let total = self.total.load(Ordering::Relaxed);
        if total >= self.max {
            return Err(BrokerError::new(
                ErrorKind::BrokerFull,
                format!(
                    "the broker holds {total} memory files of messages, its limit \
                     (limits.max_held_files = {}); try again once some are received",
                    self.max
                ),
            ));
        }
        let of_uid = uids.entry(uid).or_default();
        if uid != 0 && *of_uid >= self.max_per_uid {
            return Err(BrokerError::new(
                ErrorKind::BrokerFull,
                format!(
                    "uid {uid} has {of_uid} memory files of messages held by the broker, its \
                     share (limits.max_held_files_per_uid = {}); try again once some are received",
                    self.max_per_uid
                ),
            ));
        }
        *of_uid += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(HeldFile {
            files: Arc::clone(self),
            uid,
        })
    }

    /// Files held now, all uids together.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Files of `uid` held now.
    #[cfg(test)]
    pub fn of_uid(&self, uid: u32) -> usize {
        self.uids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&uid)
            .copied()
            .unwrap_or(0)
    }

    fn release(&self, uid: u32) {
        let mut uids = self
            .uids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = uids.get_mut(&uid) {
            *count -= 1;
            if *count == 0 {
                uids.remove(&uid);
            }
        }
        self.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One held file, counted until dropped.
#[derive(Debug)]
pub(crate) struct HeldFile {
    files: Arc<HeldFiles>,
    uid: u32,
}

impl Drop for HeldFile {
    fn drop(&mut self) {
        self.files.release(self.uid);
    }
}

/// `payload` (a file's mapping) with `ticket` beside it: the same bytes at
/// the same address (so `memfile::file_of` still finds the file), the
/// ticket dropped with the last clone. An empty payload holds no file and
/// drops the ticket at once.
pub(crate) fn counted(payload: Bytes, ticket: HeldFile) -> Bytes {
    if payload.is_empty() {
        return payload;
    }
    Bytes::from_owner(Counted {
        payload,
        _ticket: ticket,
    })
}

struct Counted {
    payload: Bytes,
    _ticket: HeldFile,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_uid_gets_its_share_and_all_together_the_total() {
        let files = Arc::new(HeldFiles::new(5, 2));
        let a1 = files.admit(1000).expect("first");
        let _a2 = files.admit(1000).expect("second");
        let error = files.admit(1000).expect_err("past the share");
        assert_eq!(error.kind, ErrorKind::BrokerFull);
        assert!(
            error.message.contains("limits.max_held_files_per_uid = 2"),
            "{error:?}"
        );
        let _b = files.admit(1001).expect("another uid");
        let _r1 = files.admit(0).expect("root");
        let _r2 = files.admit(0).expect("root has no share");
        let error = files.admit(1002).expect_err("past the total");
        assert!(
            error.message.contains("limits.max_held_files = 5"),
            "{error:?}"
        );
        drop(a1);
        assert_eq!(files.of_uid(1000), 1);
        let _c = files.admit(1002).expect("room again");
        assert_eq!(files.total(), 5);
    }

    #[test]
    fn the_ticket_drops_with_the_last_clone_of_the_payload() {
        let files = Arc::new(HeldFiles::new(5, 5));
        let original = Bytes::from(vec![7u8; 100]);
        let address = original.as_ptr();
        let payload = counted(original, files.admit(1).expect("admitted"));
        assert_eq!(payload.as_ptr(), address, "the same bytes, not a copy");
        let clone = payload.clone();
        drop(payload);
        assert_eq!(files.total(), 1);
        drop(clone);
        assert_eq!(files.total(), 0);
        assert_eq!(files.of_uid(1), 0);
        let empty = counted(Bytes::new(), files.admit(1).expect("admitted"));
        assert!(empty.is_empty());
        assert_eq!(files.total(), 0, "an empty file holds nothing");
    }
}
