//! Listings that can grow without bound (mailboxes, claimed names), answered
//! in pages that always fit a frame, and the one-frame forms kept for old
//! clients, which refuse once the whole list would not fit.
//!
//! A page is read straight from the registry's ordered map, from the first
//! name after the cursor: it never builds the whole list, and it stops at
//! whichever comes first of the rows asked for, [`MAX_PAGE_BYTES`] of
//! encoded rows, or [`MAX_PAGE_SCAN`] entries looked at (so a caller who may
//! see few of many mailboxes still gets a bounded amount of work per
//! request, in possibly empty pages). It does not decide who sees what: the
//! caller passes the visibility rule.

use std::collections::BTreeMap;
use std::ops::Bound;

use mailbox_proto::{
    codec::encoded_len, BrokerError, ErrorKind, MailboxInfo, NameInfo, MAX_LIST_BYTES,
    MAX_PAGE_BYTES,
};
use serde::Serialize;

use super::Core;

/// The most rows of one page, whatever the client asks for.
pub(super) const MAX_PAGE_ROWS: usize = 4096;

/// The most map entries one page looks at (visible or not).
pub(super) const MAX_PAGE_SCAN: usize = 16 * 1024;

/// One page of `map` after `after`: the rows `row` makes of visible entries
/// (`None`: not visible), and the cursor of the next page (`None`: none).
pub(super) fn page<V, T: Serialize>(
    map: &BTreeMap<String, V>,
    after: Option<&str>,
    max: u32,
    mut row: impl FnMut(&str, &V) -> Option<T>,
) -> (Vec<T>, Option<String>) {
    let max_rows = (max as usize).clamp(1, MAX_PAGE_ROWS);
    let start = match after {
        Some(after) => Bound::Excluded(after),
        None => Bound::Unbounded,
    };
    let mut entries = map.range::<str, _>((start, Bound::Unbounded)).peekable();
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut scanned = 0usize;
    let mut last: Option<&str> = None;
    while let Some(&(name, value)) = entries.peek() {
        if rows.len() == max_rows || scanned == MAX_PAGE_SCAN {
            break;
        }
        scanned += 1;
        if let Some(made) = row(name, value) {
            let size = encoded_len(&made);
            // One row always goes in (it is far below the bound), so that
            // every page moves the cursor on.
            if !rows.is_empty() && bytes.saturating_add(size) > MAX_PAGE_BYTES {
                break;
            }
            bytes = bytes.saturating_add(size);
            rows.push(made);
        }
        last = Some(name);
        entries.next();
    }
    let next = match entries.peek() {
        Some(_) => last.map(str::to_owned),
        None => None,
    };
    (rows, next)
}

/// Every row of `rows`, or the refusal of a one-frame listing that would
/// take more than [`MAX_LIST_BYTES`]; stops encoding sizes as soon as it is
/// over.
pub(super) fn whole<T: Serialize>(
    rows: impl Iterator<Item = T>,
    what: &str,
    paged: &str,
) -> Result<Vec<T>, BrokerError> {
    let mut bytes = 0usize;
    let mut list = Vec::new();
    for made in rows {
        bytes = bytes.saturating_add(encoded_len(&made));
        if bytes > MAX_LIST_BYTES {
            return Err(BrokerError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "the list of {what} takes more than {MAX_LIST_BYTES} bytes, too many for \
                     one frame; ask for it in pages with {paged} (mailboxctl does)"
                ),
            ));
        }
        list.push(made);
    }
    Ok(list)
}

impl Core {
    /// A page of the mailboxes `connection` has some right on.
    pub(super) fn mailbox_page(
        &self,
        connection: super::ConnectionId,
        after: Option<&str>,
        max: u32,
    ) -> (Vec<MailboxInfo>, Option<String>) {
        let caller = self.caller(connection);
        page(&self.places.mailboxes, after, max, |_, mailbox| {
            caller
                .as_ref()
                .is_none_or(|c| mailbox.permissions().visible_to(c, &self.policy))
                .then(|| mailbox.info())
        })
    }

    /// Every mailbox `connection` has some right on, if the list fits one
    /// frame.
    pub(super) fn mailbox_list(
        &self,
        connection: super::ConnectionId,
    ) -> Result<Vec<MailboxInfo>, BrokerError> {
        let caller = self.caller(connection);
        let visible = self
            .places
            .mailboxes
            .values()
            .filter(|m| {
                caller
                    .as_ref()
                    .is_none_or(|c| m.permissions().visible_to(c, &self.policy))
            })
            .map(|mailbox| mailbox.info());
        whole(visible, "mailboxes", "ListMailboxPage")
    }

    /// A page of the claimed names.
    pub(super) fn name_page(
        &self,
        after: Option<&str>,
        max: u32,
    ) -> (Vec<NameInfo>, Option<String>) {
        page(self.names.entries(), after, max, |name, entry| {
            Some(self.name_info(name, entry))
        })
    }

    /// Every claimed name, if the list fits one frame.
    pub(super) fn name_list(&self) -> Result<Vec<NameInfo>, BrokerError> {
        let rows = self
            .names
            .entries()
            .iter()
            .map(|(name, entry)| self.name_info(name, entry));
        whole(rows, "claimed names", "ListNamePage")
    }
}
