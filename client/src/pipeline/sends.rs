//! Pipelined single sends: one `Send` per payload, many in flight.

use std::fmt;

use bytes::Bytes;
use mailbox_proto::{Request, Response, Wait};

use crate::error::Error;
use crate::ops::messages::{sent, SendMessage, SendReceipt};
use crate::ops::Operation;
use crate::pipeline::tally::Tally;
use crate::pipeline::Window;

/// Why a pipelined send stopped, and exactly which payloads the broker
/// accepted before and after the failure.
///
/// Positions count from 0 in the order the payloads were given. A payload
/// at a position below [`issued`](Self::issued) that is in neither
/// [`accepted`](Self::accepted) nor [`unknown`](Self::unknown) was refused by
/// the broker and will never be delivered; payloads from `issued` on were
/// never sent.
#[derive(Debug)]
pub struct PipelineError {
    /// The failure of the lowest position.
    pub error: Error,
    /// The position of the payload that failed with `error`.
    pub failed_at: usize,
    /// Every accepted payload's position and receipt, by position.
    pub accepted: Vec<(usize, SendReceipt)>,
    /// Positions whose fate is unknown because the connection broke before
    /// their answer arrived (they may or may not have been accepted).
    pub unknown: Vec<usize>,
    /// How many payloads were taken from the input and sent.
    pub issued: usize,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "send #{} failed: {} ({} of {} sent messages accepted",
            self.failed_at,
            self.error,
            self.accepted.len(),
            self.issued
        )?;
        if !self.unknown.is_empty() {
            write!(f, ", {} with unknown fate", self.unknown.len())?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for PipelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The outcome so far of a pipelined send: which positions were accepted,
/// refused or left unknown, and whether to send more.
pub(crate) type SendTally = Tally<usize, SendReceipt>;

impl SendTally {
    /// Takes the next position for a send about to start.
    pub(crate) fn issue(&mut self) -> usize {
        let position = self.issued;
        self.issued += 1;
        position
    }

    /// Records the outcome of the send at `position`.
    pub(crate) fn record(&mut self, position: usize, result: Result<Response, Error>) {
        match sent(result) {
            Ok(receipt) => self.accepted.push((position, receipt)),
            Err(error) => self.note_failed(position, error),
        }
    }

    /// Every receipt in input order, or what went wrong.
    pub(crate) fn finish(self) -> Result<Vec<SendReceipt>, PipelineError> {
        self.into_outcome().map_err(|failure| PipelineError {
            error: failure.error,
            failed_at: failure.failed_at,
            accepted: failure.accepted,
            unknown: failure.unknown,
            issued: failure.issued,
        })
    }
}

/// Every payload of `payloads` sent to `mailbox`, each in its own `Send`,
/// with up to `window` in flight. At the first failure no further payload
/// is sent; the answers of those in flight are still collected.
#[derive(Debug)]
pub(crate) struct SendPipeline<'a, I> {
    tally: SendTally,
    mailbox: &'a str,
    payloads: std::iter::Fuse<I>,
    wait: Wait,
}

impl<'a, I: Iterator> SendPipeline<'a, I> {
    /// A pipeline of `payloads` to `mailbox`.
    pub(crate) fn new(
        mailbox: &'a str,
        payloads: impl IntoIterator<IntoIter = I>,
        window: usize,
        wait: Wait,
    ) -> Self {
        Self {
            tally: SendTally::new(window),
            mailbox,
            payloads: payloads.into_iter().fuse(),
            wait,
        }
    }
}

impl<I> Window for SendPipeline<'_, I>
where
    I: Iterator,
    I::Item: Into<Bytes>,
{
    type Tag = usize;
    type Output = Result<Vec<SendReceipt>, PipelineError>;
    const ORDERED: bool = false;
    const CANCELS: bool = false;

    fn wait(&self) -> Wait {
        self.wait
    }

    fn next(&mut self, in_flight: usize, _max_frame_len: u32) -> Option<(Request, usize)> {
        if self.tally.room(in_flight) == 0 {
            return None;
        }
        let payload = self.payloads.next()?;
        let request = SendMessage {
            mailbox: self.mailbox,
            payload: payload.into(),
            wait: self.wait,
        }
        .request();
        Some((request, self.tally.issue()))
    }

    fn started(&mut self, _position: &usize) {}

    fn not_sent(&mut self, position: usize, error: Error) {
        self.tally.not_sent(&position, error);
    }

    fn record(&mut self, position: usize, answer: Result<Response, Error>) {
        self.tally.record(position, answer);
    }

    fn failed(&self) -> bool {
        self.tally.failed()
    }

    fn finish(self) -> Self::Output {
        self.tally.finish()
    }
}
