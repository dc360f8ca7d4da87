//! Listings read page by page: the page type, and the walk over all pages
//! that both clients' whole-listing calls step (also the walk over a
//! queue's messages, `Client::peek_all`).

use crate::error::Error;
use crate::ops::Operation;

/// One page of a listing ([`Client::list_page`](crate::Client::list_page),
/// [`Client::names_page`](crate::Client::names_page)), in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows of this page; possibly none even when more follow (the
    /// broker bounds the work of one page, and may have looked only at
    /// rows the caller may not see).
    pub items: Vec<T>,
    /// Where the next page starts (pass it as `after`); `None` on the last
    /// page.
    pub next: Option<String>,
}

/// How many rows the whole-listing calls ask for per page (the broker also
/// ends a page at [`mailbox_proto::MAX_PAGE_BYTES`]).
pub const PAGE_ROWS: u32 = 1024;

/// Which page of a listing to read: at most `max` rows after `after`
/// (`None`: from the first).
#[derive(Debug)]
pub(crate) struct PageCursor<C = String> {
    pub(crate) after: Option<C>,
    pub(crate) max: u32,
}

/// Where a page starts: a name (listings, in name order) or a sequence
/// number (a peek, in delivery order).
pub(crate) trait Cursor: Clone + std::fmt::Debug {
    /// Whether `self`, a page's `next`, moves on from the `after` that page
    /// was read with.
    fn moves_on(&self, after: &Self) -> bool;
}

/// Names come in name order.
impl Cursor for String {
    fn moves_on(&self, after: &Self) -> bool {
        self > after
    }
}

/// Sequence numbers come in delivery order, which is not always theirs (a
/// message put back at the tail), so only standing still is wrong.
impl Cursor for u64 {
    fn moves_on(&self, after: &Self) -> bool {
        self != after
    }
}

/// An operation that reads one page of a listing.
pub(crate) trait Paged: Operation + Sized {
    /// What the listing lists.
    type Row;
    /// Where a page starts.
    type Cursor: Cursor;

    /// The rows of a page it read, and where the next one starts.
    fn split(page: Self::Output) -> (Vec<Self::Row>, Option<Self::Cursor>);
}

/// A listing of names (mailboxes, claimed names): a page is all its
/// operation needs to know.
pub(crate) trait Listing: Paged<Cursor = String> {
    /// The operation reading the page `cursor` says.
    fn at(cursor: PageCursor) -> Self;

    /// The operation reading at most `max` rows after `after`.
    fn new(after: Option<&str>, max: u32) -> Self {
        Self::at(PageCursor {
            after: after.map(str::to_owned),
            max,
        })
    }

    /// The operation reading [`PAGE_ROWS`] rows after `after` (`None`: from
    /// the first).
    fn page(after: Option<String>) -> Self {
        Self::at(PageCursor {
            after,
            max: PAGE_ROWS,
        })
    }
}

/// A walk over every page of a listing: the drivers run each
/// [`next`](Self::next) operation and [`record`](Self::record) its page.
pub(crate) struct Pages<O: Paged, F> {
    /// Makes the operation that reads the page after a cursor.
    page: F,
    all: Vec<O::Row>,
    /// Where the next page starts; `None` before the first.
    after: Option<O::Cursor>,
    done: bool,
}

impl<O: Paged, F: Fn(Option<O::Cursor>) -> O> Pages<O, F> {
    /// A walk from the first page, reading each with the operation `page`
    /// makes.
    pub(crate) fn new(page: F) -> Self {
        Self {
            page,
            all: Vec::new(),
            after: None,
            done: false,
        }
    }

    /// The operation reading the next page; `None` after the last.
    pub(crate) fn next(&self) -> Option<O> {
        (!self.done).then(|| (self.page)(self.after.clone()))
    }

    /// Adds a page read by [`next`](Self::next)'s operation.
    pub(crate) fn record(&mut self, page: O::Output) -> Result<(), Error> {
        match follow_page(&mut self.all, self.after.as_ref(), O::split(page))? {
            Some(next) => self.after = Some(next),
            None => self.done = true,
        }
        Ok(())
    }

    /// Every row of every page, in order.
    pub(crate) fn finish(self) -> Vec<O::Row> {
        self.all
    }
}

/// Adds a page's `rows` to `all` and says where the next page starts
/// (`None`: done); a cursor that does not move on is a broken broker, not
/// a reason to loop forever.
pub(crate) fn follow_page<T, C: Cursor>(
    all: &mut Vec<T>,
    after: Option<&C>,
    (rows, next): (Vec<T>, Option<C>),
) -> Result<Option<C>, Error> {
    all.extend(rows);
    match (next, after) {
        (Some(next), Some(after)) if !next.moves_on(after) => Err(Error::Protocol(format!(
            "the broker's next page starts at {next:?}, not after {after:?}"
        ))),
        (next, _) => Ok(next),
    }
}
