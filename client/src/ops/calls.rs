//! Request/reply: a call sends a request message whose answer is its reply;
//! the process that took the request replies to it.

use bytes::Bytes;
use mailbox_proto::{
    Address, BrokerError, ErrorKind, Message, Request, Response, SendOptions, Target, Wait,
};

use crate::error::Error;
use crate::ops::messages::received;
use crate::ops::{expect_answer, Operation};

/// `Call` → the reply.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) to: Target,
    pub(crate) payload: Bytes,
    pub(crate) options: SendOptions,
    pub(crate) wait: Wait,
}

impl Operation for Call {
    type Output = Message;

    fn request(&mut self) -> Request {
        Request::Call {
            // The request is built once: what stays behind is never read.
            to: std::mem::replace(&mut self.to, Target::Process(Address::Process(0))),
            payload: std::mem::take(&mut self.payload),
            options: Box::new(std::mem::take(&mut self.options)),
            wait: self.wait,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Message, Error> {
        received(answer)
    }
}

/// `Reply` to a call → the reply reached the caller.
#[derive(Debug)]
pub(crate) struct Reply {
    call: u64,
    payload: Bytes,
}

impl Reply {
    /// The reply to the call `request`, refused here when `request` is no
    /// call's request (the broker would answer `NotHeld`).
    pub(crate) fn to(request: &Message, payload: impl Into<Bytes>) -> Result<Self, Error> {
        match request.metadata.call() {
            Some(call) => Ok(Self {
                call,
                payload: payload.into(),
            }),
            None => Err(Error::Broker(BrokerError::new(
                ErrorKind::NotHeld,
                format!(
                    "message #{} from process {} is not a call (its metadata has no call id), \
                     so there is nothing to reply to; not sent",
                    request.metadata.sequence, request.metadata.sender_connection
                ),
            ))),
        }
    }
}

impl Operation for Reply {
    type Output = ();

    fn request(&mut self) -> Request {
        Request::Reply {
            call: self.call,
            payload: std::mem::take(&mut self.payload),
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<(), Error> {
        expect_answer!(answer, Replied => ())
    }
}
