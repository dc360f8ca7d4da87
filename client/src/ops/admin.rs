//! Operations of a mailbox's manager and of whoever watches the broker:
//! rights, purging, the broker's figures.

use mailbox_proto::{BrokerStatus, Request, Response};

use crate::error::Error;
use crate::ops::{expect_answer, Operation};

/// `Status` → the broker's figures.
#[derive(Debug)]
pub(crate) struct Status;

impl Operation for Status {
    type Output = BrokerStatus;

    fn request(&mut self) -> Request {
        Request::Status
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<BrokerStatus, Error> {
        expect_answer!(answer, Status(status) => *status)
    }
}

/// `SetPermissions` → done.
#[derive(Debug)]
pub(crate) struct SetPermissions<'a> {
    pub(crate) mailbox: &'a str,
    pub(crate) owner: Option<u32>,
    pub(crate) group: Option<u32>,
    pub(crate) mode: Option<u32>,
}

impl Operation for SetPermissions<'_> {
    type Output = ();

    fn request(&mut self) -> Request {
        Request::SetPermissions {
            name: self.mailbox.to_owned(),
            owner: self.owner,
            group: self.group,
            mode: self.mode,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<(), Error> {
        expect_answer!(answer, PermissionsSet => ())
    }
}

/// `Purge` → how many queued messages were discarded.
#[derive(Debug)]
pub(crate) struct Purge<'a>(pub(crate) &'a str);

impl Operation for Purge<'_> {
    type Output = u64;

    fn request(&mut self) -> Request {
        Request::Purge {
            name: self.0.to_owned(),
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<u64, Error> {
        expect_answer!(answer, Purged { discarded } => discarded)
    }
}
