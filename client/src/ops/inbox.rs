//! This connection's inbox: receiving from it, its capacity and who may
//! send to it. (Sending to a process is the general send,
//! [`Post`](super::messages::Post).)

use mailbox_proto::{Address, Capacity, Message, ReceiveOptions, Request, Response, Source, Wait};

use crate::error::Error;
use crate::ops::messages::received;
use crate::ops::{expect_answer, Operation};

/// A receive of one message from this connection's inbox, from any sender
/// (`from` of `None`) or from one → the message.
#[derive(Debug)]
pub(crate) struct ReceiveInbox {
    pub(crate) from: Option<Address>,
    pub(crate) wait: Wait,
}

impl Operation for ReceiveInbox {
    type Output = Message;

    fn request(&mut self) -> Request {
        Request::ReceiveWith {
            from: Source::Inbox {
                from: self.from.take(),
            },
            options: ReceiveOptions::default(),
            wait: self.wait,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Message, Error> {
        received(answer)
    }
}

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
