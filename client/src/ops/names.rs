//! Operations on well-known names: claim, release, list.

use mailbox_proto::{NameInfo, Request, Response, Wait};

use crate::error::Error;
use crate::ops::pages::{Listing, Page, PageCursor, Paged};
use crate::ops::{expect_answer, Operation};

/// `ClaimName`, waiting for the name as `wait` says → this connection
/// holds the name.
#[derive(Debug)]
pub(crate) struct ClaimName<'a> {
    pub(crate) name: &'a str,
    pub(crate) wait: Wait,
}

impl Operation for ClaimName<'_> {
    type Output = ();

    fn request(&mut self) -> Request {
        Request::ClaimName {
            name: self.name.to_owned(),
            wait: self.wait,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<(), Error> {
        expect_answer!(answer, NameClaimed => ())
    }
}

/// `ReleaseName`: gives a claimed name up → done.
#[derive(Debug)]
pub(crate) struct ReleaseName<'a>(pub(crate) &'a str);

impl Operation for ReleaseName<'_> {
    type Output = ();

    fn request(&mut self) -> Request {
        Request::ReleaseName {
            name: self.0.to_owned(),
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<(), Error> {
        expect_answer!(answer, NameReleased => ())
    }
}

/// `ListNamePage` → a page of claimed names.
#[derive(Debug)]
pub(crate) struct NamePage(PageCursor);

impl Operation for NamePage {
    type Output = Page<NameInfo>;

    fn request(&mut self) -> Request {
        Request::ListNamePage {
            after: self.0.after.take(),
            max: self.0.max,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Page<NameInfo>, Error> {
        expect_answer!(answer, NamePage { names, next } => Page { items: names, next })
    }
}

impl Paged for NamePage {
    type Row = NameInfo;
    type Cursor = String;

    fn split(page: Page<NameInfo>) -> (Vec<NameInfo>, Option<String>) {
        (page.items, page.next)
    }
}

impl Listing for NamePage {
    fn at(cursor: PageCursor) -> Self {
        Self(cursor)
    }
}
