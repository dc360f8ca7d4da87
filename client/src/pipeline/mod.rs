//! Windows of requests in flight on one connection, without any I/O: the
//! loop of the pipelined and streamed sends and receives, written once.
//!
//! A [`Window`] is one shape of pipeline (single sends, single receives,
//! batch sends, batch receives): it says which request to start next, and
//! tallies the answers. [`Pipeline`] is the loop around it that both
//! clients step: start requests while the window has room, cancel those in
//! flight after a failure (for receives), take the answers, finish. The
//! drivers only carry requests and answers: the async client holds a
//! pending call per request in flight, the blocking one a request id.

mod receives;
mod sends;
mod streams;
mod tally;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use mailbox_proto::{Request, Response, Wait};

use crate::error::Error;

pub(crate) use receives::{ReceivePipeline, ReceiveStream};
pub use sends::PipelineError;
pub(crate) use sends::SendPipeline;
pub(crate) use streams::SendStream;
pub use streams::{StreamError, StreamReceipt};

/// One shape of pipeline: which requests to start, and what their answers
/// come to.
pub(crate) trait Window {
    /// What one request carries of the whole: a position in the input, a
    /// range of positions, a batch size.
    type Tag: Clone;
    /// What the caller gets once every answer is in.
    type Output;
    /// Whether answers are taken in the order of their requests (receives,
    /// so that messages come out in the order the broker gave them) rather
    /// than as they arrive.
    const ORDERED: bool;
    /// Whether the requests in flight are cancelled after a failure
    /// (receives: nothing more is wanted; a send in flight is let be).
    const CANCELS: bool;

    /// How the requests wait, which bounds how long an answer may take.
    fn wait(&self) -> Wait;

    /// The next request to start with `in_flight` unanswered, if one is to
    /// start: none once the window is full, the input exhausted or a
    /// request failed.
    fn next(&mut self, in_flight: usize, max_frame_len: u32) -> Option<(Request, Self::Tag)>;

    /// Notes that the request of `tag` was started.
    fn started(&mut self, tag: &Self::Tag);

    /// Records that the request of `tag` could not be started.
    fn not_sent(&mut self, tag: Self::Tag, error: Error);

    /// Records the answer to the request of `tag`.
    fn record(&mut self, tag: Self::Tag, answer: Result<Response, Error>);

    /// Whether a request failed.
    fn failed(&self) -> bool;

    /// The outcome, once nothing is in flight.
    fn finish(self) -> Self::Output;
}

/// The loop of a pipeline: a [`Window`] and its requests in flight, each
/// with the driver's handle `H` on it.
#[derive(Debug)]
pub(crate) struct Pipeline<W: Window, H> {
    window: W,
    max_frame_len: u32,
    in_flight: VecDeque<(W::Tag, H)>,
    cancelled: bool,
}

impl<W: Window, H> Pipeline<W, H> {
    /// A pipeline of `window` on a connection whose frames may be up to
    /// `max_frame_len` bytes.
    pub(crate) fn new(window: W, max_frame_len: u32) -> Self {
        Self {
            window,
            max_frame_len,
            in_flight: VecDeque::new(),
            cancelled: false,
        }
    }

    /// How the requests wait.
    pub(crate) fn wait(&self) -> Wait {
        self.window.wait()
    }

    /// The next request to start, if the window has room; the driver then
    /// reports [`started`](Self::started), [`answered`](Self::answered) or
    /// [`not_sent`](Self::not_sent).
    pub(crate) fn next_request(&mut self) -> Option<(Request, W::Tag)> {
        self.window.next(self.in_flight.len(), self.max_frame_len)
    }

    /// The request of `tag` is in flight, as `handle`.
    pub(crate) fn started(&mut self, tag: W::Tag, handle: H) {
        self.window.started(&tag);
        self.in_flight.push_back((tag, handle));
    }

    /// The request of `tag` was answered as it started (from messages the
    /// async client kept).
    pub(crate) fn answered(&mut self, tag: W::Tag, response: Response) {
        self.window.started(&tag);
        self.window.record(tag, Ok(response));
    }

    /// The request of `tag` could not be started.
    pub(crate) fn not_sent(&mut self, tag: W::Tag, error: Error) {
        self.window.not_sent(tag, error);
    }

    /// The requests in flight to cancel now: all of them, once, after the
    /// first failure of a window that cancels; none otherwise.
    pub(crate) fn cancellations(&mut self) -> impl Iterator<Item = &mut H> {
        let now = W::CANCELS && !self.cancelled && self.window.failed();
        self.cancelled |= now;
        let count = if now { self.in_flight.len() } else { 0 };
        self.in_flight
            .iter_mut()
            .take(count)
            .map(|(_, handle)| handle)
    }

    /// Takes the oldest request in flight, for the driver to wait for its
    /// answer and [`record`](Self::record) it; `None` when all are in.
    pub(crate) fn oldest(&mut self) -> Option<(W::Tag, H)> {
        self.in_flight.pop_front()
    }

    /// Records the answer to the request of `tag`.
    pub(crate) fn record(&mut self, tag: W::Tag, answer: Result<Response, Error>) {
        self.window.record(tag, answer);
    }

    /// Records every answer that `answered` has for a request in flight: in
    /// request order up to the first without one for an ordered window, all
    /// there are for the others.
    pub(crate) fn collect(
        &mut self,
        mut answered: impl FnMut(&H) -> Option<Result<Response, Error>>,
    ) {
        if W::ORDERED {
            while let Some(answer) = self
                .in_flight
                .front()
                .and_then(|(_, handle)| answered(handle))
            {
                if let Some((tag, _)) = self.in_flight.pop_front() {
                    self.window.record(tag, answer);
                }
            }
        } else {
            let window = &mut self.window;
            self.in_flight
                .retain(|(tag, handle)| match answered(handle) {
                    Some(answer) => {
                        window.record(tag.clone(), answer);
                        false
                    }
                    None => true,
                });
        }
    }

    /// The connection failed with `error`: every request in flight gets its
    /// answer if `answered` has one (answers that arrived behind an
    /// unanswered one still carry messages), else the error.
    pub(crate) fn fail(
        &mut self,
        error: &Error,
        mut answered: impl FnMut(&H) -> Option<Result<Response, Error>>,
    ) {
        for (tag, handle) in self.in_flight.drain(..) {
            let answer = answered(&handle).unwrap_or_else(|| Err(error.replicate()));
            self.window.record(tag, answer);
        }
    }

    /// Whether no request is in flight.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// The outcome, once nothing is in flight.
    pub(crate) fn finish(self) -> W::Output {
        self.window.finish()
    }
}
