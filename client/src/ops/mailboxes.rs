//! Operations on mailboxes themselves: create, open, delete, describe,
//! list, subscribe.

use mailbox_proto::{MailboxInfo, MailboxSettings, Request, Response, Wait};

use crate::error::Error;
use crate::ops::pages::{Listing, Page, PageCursor, Paged};
use crate::ops::{expect_answer, Operation};

/// `CreateMailbox` (or `CreateMailboxWith`, given a mode or group) →
/// whether it was created (false: existed with equal settings).
#[derive(Debug)]
pub(crate) struct Create<'a> {
    pub(crate) name: &'a str,
    pub(crate) settings: MailboxSettings,
    pub(crate) mode: Option<u32>,
    pub(crate) group: Option<u32>,
}

impl Operation for Create<'_> {
    type Output = bool;

    fn request(&mut self) -> Request {
        let name = self.name.to_owned();
        let settings = Box::new(std::mem::take(&mut self.settings));
        if self.mode.is_none() && self.group.is_none() {
            Request::CreateMailbox { name, settings }
        } else {
            Request::CreateMailboxWith {
                name,
                settings,
                mode: self.mode,
                group: self.group,
            }
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<bool, Error> {
        expect_answer!(answer, Created { created } => created)
    }
}

/// `DeleteMailbox` → done.
#[derive(Debug)]
pub(crate) struct Delete<'a>(pub(crate) &'a str);

impl Operation for Delete<'_> {
    type Output = ();

    fn request(&mut self) -> Request {
        Request::DeleteMailbox {
            name: self.0.to_owned(),
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<(), Error> {
        expect_answer!(answer, Deleted => ())
    }
}

/// `MailboxInfo` → one mailbox.
#[derive(Debug)]
pub(crate) struct Info<'a>(pub(crate) &'a str);

impl Operation for Info<'_> {
    type Output = MailboxInfo;

    fn request(&mut self) -> Request {
        Request::MailboxInfo {
            name: self.0.to_owned(),
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<MailboxInfo, Error> {
        expect_answer!(answer, Info(info) => *info)
    }
}

/// `OpenMailbox` → one mailbox, once it exists (waiting as `wait` says).
#[derive(Debug)]
pub(crate) struct Open<'a> {
    pub(crate) name: &'a str,
    pub(crate) wait: Wait,
}

impl Operation for Open<'_> {
    type Output = MailboxInfo;

    fn request(&mut self) -> Request {
        Request::OpenMailbox {
            name: self.name.to_owned(),
            wait: self.wait,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<MailboxInfo, Error> {
        expect_answer!(answer, Info(info) => *info)
    }
}

/// `ListMailboxPage` → a page of mailboxes.
#[derive(Debug)]
pub(crate) struct MailboxPage(PageCursor);

impl Operation for MailboxPage {
    type Output = Page<MailboxInfo>;

    fn request(&mut self) -> Request {
        Request::ListMailboxPage {
            after: self.0.after.take(),
            max: self.0.max,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Page<MailboxInfo>, Error> {
        expect_answer!(answer, MailboxPage { mailboxes, next } => Page { items: mailboxes, next })
    }
}

impl Paged for MailboxPage {
    type Row = MailboxInfo;
    type Cursor = String;

    fn split(page: Page<MailboxInfo>) -> (Vec<MailboxInfo>, Option<String>) {
        (page.items, page.next)
    }
}

impl Listing for MailboxPage {
    fn at(cursor: PageCursor) -> Self {
        Self(cursor)
    }
}

/// `Subscribe` → whether the subscription is new.
#[derive(Debug)]
pub(crate) struct Subscribe<'a>(pub(crate) &'a str);

impl Operation for Subscribe<'_> {
    type Output = bool;

    fn request(&mut self) -> Request {
        Request::Subscribe {
            mailbox: self.0.to_owned(),
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<bool, Error> {
        expect_answer!(answer, Subscribed { created } => created)
    }
}

/// `Unsubscribe` → done.
#[derive(Debug)]
pub(crate) struct Unsubscribe<'a>(pub(crate) &'a str);

impl Operation for Unsubscribe<'_> {
    type Output = ();

    fn request(&mut self) -> Request {
        Request::Unsubscribe {
            mailbox: self.0.to_owned(),
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<(), Error> {
        expect_answer!(answer, Unsubscribed => ())
    }
}
