//! Pipelined receives: single receives, and batch receives (streams), many
//! in flight, never taking more than the count asked for.

use mailbox_proto::{Message, Request, Response, Wait};

use crate::error::Error;
use crate::ops::messages::{received, received_many, Receive, ReceiveMany};
use crate::ops::Operation;
use crate::pipeline::Window;

/// The progress of a pipelined receive of `count` messages.
#[derive(Debug)]
pub(crate) struct ReceiveTally {
    count: usize,
    window: usize,
    issued: usize,
    received: usize,
    first_error: Option<Error>,
}

impl ReceiveTally {
    /// A tally for `count` messages with at most `window` (at least 1)
    /// receives in flight.
    pub(crate) fn new(count: usize, window: usize) -> Self {
        Self {
            count,
            window: window.max(1),
            issued: 0,
            received: 0,
            first_error: None,
        }
    }

    /// How many more receives to start with `in_flight` unanswered: never
    /// more than `count` in all, none once one failed.
    pub(crate) fn room(&self, in_flight: usize) -> usize {
        if self.first_error.is_some() {
            return 0;
        }
        self.window
            .saturating_sub(in_flight)
            .min(self.count - self.issued)
    }

    /// Notes that a receive was started.
    pub(crate) fn issue(&mut self) {
        self.issued += 1;
    }

    /// Whether a receive failed, so that the outstanding ones are to be
    /// cancelled (their messages, if any arrive anyway, still count).
    pub(crate) fn failed(&self) -> bool {
        self.first_error.is_some()
    }

    /// Records one receive's answer; returns its message if it got one.
    pub(crate) fn record(&mut self, result: Result<Response, Error>) -> Option<Message> {
        match received(result) {
            Ok(message) => {
                self.received += 1;
                Some(message)
            }
            Err(error) => {
                if self.first_error.is_none() {
                    self.first_error = Some(error);
                }
                None
            }
        }
    }

    /// How many messages were received, or the first failure.
    pub(crate) fn finish(self) -> Result<usize, Error> {
        match self.first_error {
            None => Ok(self.received),
            Some(error) => Err(error),
        }
    }
}

/// The progress of a streamed receive of `count` messages by batches.
///
/// **Invariant**: `received + outstanding <= count`, where `outstanding` is
/// the sum of the `max` of the receives in flight, so no receive ever takes
/// a message beyond the `count`th.
#[derive(Debug)]
pub(crate) struct StreamReceiveTally {
    count: usize,
    max: u32,
    window: usize,
    outstanding: usize,
    received: usize,
    first_error: Option<Error>,
}

impl StreamReceiveTally {
    /// A tally for `count` messages taken by receives of up to `max` (at
    /// least 1) with at most `window` (at least 1) in flight.
    pub(crate) fn new(count: usize, max: u32, window: usize) -> Self {
        Self {
            count,
            max: max.max(1),
            window: window.max(1),
            outstanding: 0,
            received: 0,
            first_error: None,
        }
    }

    /// The `max` of the next receive to start with `in_flight` unanswered,
    /// if one is to start: none once one failed, and never more than is
    /// still needed beyond what the outstanding ones may bring.
    pub(crate) fn next_max(&self, in_flight: usize) -> Option<u32> {
        if self.first_error.is_some() || in_flight >= self.window {
            return None;
        }
        let wanted = self.count - self.received - self.outstanding;
        (wanted > 0).then(|| self.max.min(u32::try_from(wanted).unwrap_or(u32::MAX)))
    }

    /// Notes that a receive of up to `max` was started.
    pub(crate) fn issue(&mut self, max: u32) {
        self.outstanding += max as usize;
    }

    /// Records that a receive could not be started.
    pub(crate) fn not_sent(&mut self, error: Error) {
        self.first_error.get_or_insert(error);
    }

    /// Whether a receive failed, so that the outstanding ones are to be
    /// cancelled (their messages, if any arrive anyway, still count).
    pub(crate) fn failed(&self) -> bool {
        self.first_error.is_some()
    }

    /// Records the answer to a receive of up to `max`; returns its messages.
    pub(crate) fn record(&mut self, max: u32, result: Result<Response, Error>) -> Vec<Message> {
        self.outstanding -= max as usize;
        match received_many(result, max) {
            Ok(messages) => {
                self.received += messages.len();
                messages
            }
            Err(error) => {
                self.first_error.get_or_insert(error);
                Vec::new()
            }
        }
    }

    /// How many messages were received, or the first failure.
    pub(crate) fn finish(self) -> Result<usize, Error> {
        match self.first_error {
            None => Ok(self.received),
            Some(error) => Err(error),
        }
    }
}

/// `count` messages taken from `mailbox` by single `Receive`s, up to
/// `window` in flight, each handed to `each` in the order the broker gave
/// them. At the first failure the outstanding receives are cancelled, but a
/// message handed over before the cancel still reaches `each`.
#[derive(Debug)]
pub(crate) struct ReceivePipeline<'a, F> {
    tally: ReceiveTally,
    mailbox: &'a str,
    wait: Wait,
    each: F,
}

impl<'a, F: FnMut(Message)> ReceivePipeline<'a, F> {
    /// A pipeline of `count` receives from `mailbox`.
    pub(crate) fn new(mailbox: &'a str, count: usize, window: usize, wait: Wait, each: F) -> Self {
        Self {
            tally: ReceiveTally::new(count, window),
            mailbox,
            wait,
            each,
        }
    }
}

impl<F: FnMut(Message)> Window for ReceivePipeline<'_, F> {
    type Tag = ();
    type Output = Result<usize, Error>;
    const ORDERED: bool = true;
    const CANCELS: bool = true;

    fn wait(&self) -> Wait {
        self.wait
    }

    fn next(&mut self, in_flight: usize, _max_frame_len: u32) -> Option<(Request, ())> {
        if self.tally.room(in_flight) == 0 {
            return None;
        }
        let mut receive = Receive {
            mailbox: self.mailbox,
            wait: self.wait,
        };
        Some((receive.request(), ()))
    }

    fn started(&mut self, _: &()) {
        self.tally.issue();
    }

    fn not_sent(&mut self, (): (), error: Error) {
        self.tally.record(Err(error));
    }

    fn record(&mut self, (): (), answer: Result<Response, Error>) {
        if let Some(message) = self.tally.record(answer) {
            (self.each)(message);
        }
    }

    fn failed(&self) -> bool {
        self.tally.failed()
    }

    fn finish(self) -> Self::Output {
        self.tally.finish()
    }
}

/// `count` messages taken from `mailbox` by `ReceiveMany`s of up to `max`,
/// up to `window` in flight, each message handed to `each` in the order the
/// broker gave them; as [`ReceivePipeline`] after a failure.
#[derive(Debug)]
pub(crate) struct ReceiveStream<'a, F> {
    tally: StreamReceiveTally,
    mailbox: &'a str,
    wait: Wait,
    each: F,
}

impl<'a, F: FnMut(Message)> ReceiveStream<'a, F> {
    /// A stream of `count` messages from `mailbox`.
    pub(crate) fn new(
        mailbox: &'a str,
        count: usize,
        max: u32,
        window: usize,
        wait: Wait,
        each: F,
    ) -> Self {
        Self {
            tally: StreamReceiveTally::new(count, max, window),
            mailbox,
            wait,
            each,
        }
    }
}

impl<F: FnMut(Message)> Window for ReceiveStream<'_, F> {
    /// The batch size asked for.
    type Tag = u32;
    type Output = Result<usize, Error>;
    const ORDERED: bool = true;
    const CANCELS: bool = true;

    fn wait(&self) -> Wait {
        self.wait
    }

    fn next(&mut self, in_flight: usize, _max_frame_len: u32) -> Option<(Request, u32)> {
        let max = self.tally.next_max(in_flight)?;
        let mut receive = ReceiveMany {
            mailbox: self.mailbox,
            max,
            wait: self.wait,
        };
        Some((receive.request(), max))
    }

    fn started(&mut self, max: &u32) {
        self.tally.issue(*max);
    }

    fn not_sent(&mut self, _max: u32, error: Error) {
        self.tally.not_sent(error);
    }

    fn record(&mut self, max: u32, answer: Result<Response, Error>) {
        self.tally
            .record(max, answer)
            .into_iter()
            .for_each(&mut self.each);
    }

    fn failed(&self) -> bool {
        self.tally.failed()
    }

    fn finish(self) -> Self::Output {
        self.tally.finish()
    }
}
