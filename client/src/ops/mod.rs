//! Every client operation, defined once: the request it sends and how the
//! broker's answer becomes its typed result.
//!
//! An operation is a value implementing [`Operation`]; the async
//! [`Client`](crate::Client) and the [`blocking::Client`](crate::blocking::Client)
//! are drivers that write its request and hand it the answer
//! (`run`). Operations are grouped by topic: [`mailboxes`], [`messages`]
//! (sends and receives on a mailbox), [`inbox`] (direct messages to a
//! process), [`acknowledgements`], [`calls`], [`names`] and [`admin`].
//!
//! This module does no I/O and knows neither client: adding an operation is
//! adding a type here and one entry in `crate::methods`.

pub(crate) mod acknowledgements;
pub(crate) mod admin;
pub(crate) mod calls;
pub(crate) mod inbox;
pub(crate) mod mailboxes;
pub(crate) mod messages;
pub(crate) mod names;
pub(crate) mod pages;
pub(crate) mod regions;
#[cfg(test)]
mod tests;

use std::time::Duration;

use mailbox_proto::{ErrorKind, Request, Response, Wait};

use crate::error::Error;

/// One request and the decoding of its answer.
pub(crate) trait Operation {
    /// What the caller gets.
    type Output;

    /// The request to send. Called once, before [`decode`](Self::decode); it
    /// may move what the operation holds (a payload) into the request.
    fn request(&mut self) -> mailbox_proto::Request;

    /// The outcome, from the broker's answer (or the failure to get one).
    fn decode(self, answer: Result<Response, Error>) -> Result<Self::Output, Error>;

    /// The outcome, from the broker's answer and the file descriptors its
    /// frame carried (see `crate::descriptors`). Only the operations whose
    /// answers carry descriptors look at them; for the others they are
    /// none, and would be closed here.
    fn decode_with(
        self,
        answer: Result<Response, Error>,
        descriptors: crate::descriptors::Descriptors,
    ) -> Result<Self::Output, Error>
    where
        Self: Sized,
    {
        drop(descriptors);
        self.decode(answer)
    }
}

/// The one check of an answer: `pick` takes what the expected response
/// carries and gives anything else back, which is then a protocol error
/// naming what came and what was due.
pub(crate) fn expect<T>(
    answer: Result<Response, Error>,
    expected: &'static str,
    pick: impl FnOnce(Response) -> Result<T, Response>,
) -> Result<T, Error> {
    pick(answer?).map_err(|other| unexpected(expected, &other))
}

/// Decodes an answer of the one response variant `$variant`, binding its
/// fields for `$value`.
macro_rules! expect_answer {
    ($answer:expr, $variant:ident $(($($tuple:tt)*))? $({ $($fields:tt)* })? => $value:expr) => {
        $crate::ops::expect($answer, stringify!($variant), |response| match response {
            mailbox_proto::Response::$variant $(($($tuple)*))? $({ $($fields)* })? => Ok($value),
            other => Err(other),
        })
    };
}
pub(crate) use expect_answer;

/// The error for an answer of the wrong kind.
pub(crate) fn unexpected(expected: &str, response: &Response) -> Error {
    let got = match response {
        Response::Created { .. } => "Created",
        Response::Deleted => "Deleted",
        Response::Mailboxes(_) => "Mailboxes",
        Response::Info(_) => "Info",
        Response::Sent { .. } => "Sent",
        Response::Received(_) => "Received",
        Response::Subscribed { .. } => "Subscribed",
        Response::Unsubscribed => "Unsubscribed",
        Response::CancelResult { .. } => "CancelResult",
        Response::Status(_) => "Status",
        Response::SentMany { .. } => "SentMany",
        Response::ReceivedMany(_) => "ReceivedMany",
        Response::Settled => "Settled",
        Response::Replied => "Replied",
        Response::NameClaimed => "NameClaimed",
        Response::NameReleased => "NameReleased",
        Response::Names(_) => "Names",
        Response::InboxCapacitySet => "InboxCapacitySet",
        Response::InboxPermissionsSet => "InboxPermissionsSet",
        Response::PermissionsSet => "PermissionsSet",
        Response::Purged { .. } => "Purged",
        Response::MailboxPage { .. } => "MailboxPage",
        Response::NamePage { .. } => "NamePage",
        Response::Peeked { .. } => "Peeked",
        Response::RegionInfo(_) => "RegionInfo",
        Response::RegionPage { .. } => "RegionPage",
        Response::RegionOpened { .. } => "RegionOpened",
        Response::ReceivedFile { .. } => "ReceivedFile",
        Response::WithFiles { .. } => "WithFiles",
        Response::FilesAccepted => "FilesAccepted",
    };
    Error::Protocol(format!(
        "the broker answered {got} where {expected} was due"
    ))
}

/// The request's answer as a `Result` of the client's error type.
pub(crate) fn into_result(
    result: Result<Response, mailbox_proto::BrokerError>,
) -> Result<Response, Error> {
    result.map_err(Error::Broker)
}

/// `O` asked not to wait: nothing to take now ([`ErrorKind::WouldBlock`])
/// is `None`, not an error.
#[derive(Debug)]
pub(crate) struct Optional<O>(pub(crate) O);

impl<O: Operation> Operation for Optional<O> {
    type Output = Option<O::Output>;

    fn request(&mut self) -> mailbox_proto::Request {
        self.0.request()
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Self::Output, Error> {
        match answer {
            Err(error) if error.kind() == Some(ErrorKind::WouldBlock) => Ok(None),
            answer => self.0.decode(answer).map(Some),
        }
    }
}

/// `O` asked not to wait, whose output has a natural "nothing" (an empty
/// batch): nothing to take now is that, not an error.
#[derive(Debug)]
pub(crate) struct OrEmpty<O>(pub(crate) O);

impl<O: Operation> Operation for OrEmpty<O>
where
    O::Output: Default,
{
    type Output = O::Output;

    fn request(&mut self) -> mailbox_proto::Request {
        self.0.request()
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Self::Output, Error> {
        Optional(self.0)
            .decode(answer)
            .map(Option::unwrap_or_default)
    }
}

/// How `request` waits, for the requests that may wait (sends, receives,
/// calls, name claims, opens); `None` for the others, which the broker answers at
/// once.
pub(crate) fn wait_of(request: &Request) -> Option<Wait> {
    match request {
        Request::Send { wait, .. }
        | Request::Receive { wait, .. }
        | Request::SendMany { wait, .. }
        | Request::ReceiveMany { wait, .. }
        | Request::SendWith { wait, .. }
        | Request::ReceiveWith { wait, .. }
        | Request::Call { wait, .. }
        | Request::ClaimName { wait, .. }
        | Request::OpenMailbox { wait, .. } => Some(*wait),
        _ => None,
    }
}

/// The [`Wait`] for an operation allowed to wait at most `timeout`, rounded
/// up to whole milliseconds so that it never waits less than asked.
///
/// ```
/// use std::time::Duration;
/// use mailbox_client::{wait_at_most, Wait};
/// assert_eq!(wait_at_most(Duration::from_millis(1500)), Wait::Timeout { millis: 1500 });
/// assert_eq!(wait_at_most(Duration::from_micros(1)), Wait::Timeout { millis: 1 });
/// ```
pub fn wait_at_most(timeout: Duration) -> Wait {
    let mut millis = timeout.as_millis();
    if timeout.subsec_nanos() % 1_000_000 != 0 {
        millis += 1;
    }
    Wait::Timeout {
        millis: u64::try_from(millis).unwrap_or(u64::MAX),
    }
}
