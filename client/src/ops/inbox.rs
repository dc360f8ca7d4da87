//! This connection's inbox: its capacity and who may send to it. (Sending
//! to a process and receiving from the inbox are the general send and
//! receive of [`messages`](super::messages).)

use mailbox_proto::{Capacity, Request, Response};

use crate::error::Error;
use crate::ops::{expect_answer, Operation};

/// `SetInboxCapacity` → done.
#[derive(Debug)]
pub(crate) struct SetInboxCapacity(pub(crate) Capacity);

impl Operation for SetInboxCapacity {
    type Output = ();

    fn request(&mut self) -> Request {
        Request::SetInboxCapacity { capacity: self.0 }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<(), Error> {
        expect_answer!(answer, InboxCapacitySet => ())
    }
}

/// `SetInboxPermissions` → done.
#[derive(Debug)]
pub(crate) struct SetInboxPermissions {
    pub(crate) mode: Option<u32>,
    pub(crate) group: Option<u32>,
}

impl Operation for SetInboxPermissions {
    type Output = ();

    fn request(&mut self) -> Request {
        Request::SetInboxPermissions {
            mode: self.mode,
            group: self.group,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<(), Error> {
        expect_answer!(answer, InboxPermissionsSet => ())
    }
}
