//! Streamed sends: payloads cut into `SendMany` batches that fit a frame,
//! many batches in flight, with exactly which positions were accepted.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use mailbox_proto::{Request, Response, Wait};

use crate::error::Error;
use crate::ops::messages::{sent_many, BatchReceipt, SendMany};
use crate::ops::Operation;
use crate::pipeline::tally::Tally;
use crate::pipeline::Window;

/// What a streamed send sent: every payload of its input, all accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReceipt {
    /// How many payloads were sent and accepted: all the input gave.
    pub accepted: usize,
    /// Each batch's receipt, in input order: batch `i` carried the payloads
    /// from the sum of the earlier batches' `admitted` on.
    pub batches: Vec<BatchReceipt>,
}

/// Why a streamed send stopped, and exactly which payloads the broker
/// accepted.
///
/// Positions count from 0 in input order. A batch carries consecutive
/// positions and the broker admits it from its front, so what it accepted of
/// each batch is one range. A position below [`issued`](Self::issued) that
/// is in neither [`accepted`](Self::accepted) nor [`unknown`](Self::unknown)
/// was not accepted and never will be; positions from `issued` on were never
/// sent.
#[derive(Debug)]
pub struct StreamError {
    /// The failure of the lowest position. For a batch that stopped
    /// part-way this is the broker's reason ([`Error::Broker`]) and the
    /// batch's accepted front is in `accepted`.
    pub error: Error,
    /// The position of the first payload not accepted because of `error`.
    pub failed_at: usize,
    /// The accepted positions, one range per batch with that batch's
    /// receipt (covering the range only), sorted by position.
    pub accepted: Vec<(Range<usize>, BatchReceipt)>,
    /// The positions of batches whose fate is unknown because the connection
    /// broke before their answer arrived, sorted.
    pub unknown: Vec<Range<usize>>,
    /// How many payloads were taken from the input and sent.
    pub issued: usize,
}

impl StreamError {
    /// How many payloads the broker accepted.
    pub fn accepted_count(&self) -> usize {
        self.accepted.iter().map(|(range, _)| range.len()).sum()
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "streamed send stopped at payload #{}: {} ({} of {} sent payloads accepted",
            self.failed_at,
            self.error,
            self.accepted_count(),
            self.issued
        )?;
        let unknown: usize = self.unknown.iter().map(Range::len).sum();
        if unknown > 0 {
            write!(f, ", {unknown} with unknown fate")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Bytes of a `SendMany` frame besides its payloads and their length
/// prefixes, at most, not counting the mailbox name: the request id, the
/// variant tags, the name's and the vector's lengths and the wait.
const SEND_MANY_OVERHEAD: usize = 64;

/// Bytes of one payload's length prefix, at most (a varint `u64`).
const PAYLOAD_PREFIX: usize = 9;

/// Cuts a stream of payloads into batches of at most `batch` payloads whose
/// `SendMany` frame fits the broker's limit. A payload too large for any
/// frame goes alone, to be refused when its request is encoded.
#[derive(Debug)]
pub(crate) struct Batcher<I> {
    payloads: std::iter::Fuse<I>,
    /// A payload taken from the input that did not fit the previous batch.
    carry: Option<Bytes>,
    batch: usize,
    /// Bytes a batch's payloads and their prefixes may take.
    budget: usize,
    next_position: usize,
}

impl<I: Iterator<Item = Bytes>> Batcher<I> {
    /// Batches of up to `batch` (at least 1) payloads for `mailbox`, each
    /// fitting a frame of `max_frame_len` bytes.
    pub(crate) fn new(payloads: I, batch: usize, max_frame_len: u32, mailbox: &str) -> Self {
        Self {
            payloads: payloads.fuse(),
            carry: None,
            batch: batch.max(1),
            budget: (max_frame_len as usize).saturating_sub(SEND_MANY_OVERHEAD + mailbox.len()),
            next_position: 0,
        }
    }

    /// The next batch's positions and payloads; `None` once the input is
    /// exhausted.
    pub(crate) fn next_batch(&mut self) -> Option<(Range<usize>, Vec<Bytes>)> {
        let mut payloads = Vec::with_capacity(self.batch.min(4096));
        let mut bytes = 0;
        while payloads.len() < self.batch {
            let Some(payload) = self.carry.take().or_else(|| self.payloads.next()) else {
                break;
            };
            let cost = payload.len().saturating_add(PAYLOAD_PREFIX);
            if !payloads.is_empty() && bytes + cost > self.budget {
                self.carry = Some(payload);
                break;
            }
            bytes += cost;
            payloads.push(payload);
        }
        if payloads.is_empty() {
            return None;
        }
        let start = self.next_position;
        self.next_position += payloads.len();
        Some((start..self.next_position, payloads))
    }
}

/// The outcome so far of a streamed send: which ranges of positions were
/// accepted, refused or left unknown, and whether to send more batches.
pub(crate) type StreamSendTally = Tally<Range<usize>, BatchReceipt>;

impl StreamSendTally {
    /// Notes that the batch of `positions` was sent.
    pub(crate) fn issue(&mut self, positions: &Range<usize>) {
        self.issued = self.issued.max(positions.end);
    }

    /// Records the answer to the batch of `positions`.
    pub(crate) fn record(&mut self, positions: Range<usize>, result: Result<Response, Error>) {
        match sent_many(result, positions.len()) {
            Ok((receipt, stopped)) => {
                let end = positions.start + receipt.admitted as usize;
                if receipt.admitted > 0 {
                    self.accepted.push((positions.start..end, receipt));
                }
                if let Some(error) = stopped {
                    self.note_error(end, Error::Broker(error));
                }
            }
            Err(error) => self.note_failed(positions, error),
        }
    }

    /// The receipts in input order, or what went wrong.
    pub(crate) fn finish(self) -> Result<StreamReceipt, StreamError> {
        let issued = self.issued;
        match self.into_outcome() {
            Ok(batches) => Ok(StreamReceipt {
                accepted: issued,
                batches,
            }),
            Err(failure) => Err(StreamError {
                error: failure.error,
                failed_at: failure.failed_at,
                accepted: failure.accepted,
                unknown: failure.unknown,
                issued: failure.issued,
            }),
        }
    }
}

/// Every payload of `payloads` sent to `mailbox` in `SendMany` batches of up
/// to `batch` (cut short where a batch would not fit a frame), with up to
/// `window` batches in flight. When a batch stops early or fails, no
/// further batch is sent; the answers of those in flight are still
/// collected.
#[derive(Debug)]
pub(crate) struct SendStream<'a, I> {
    tally: StreamSendTally,
    mailbox: &'a str,
    /// The input until the first batch is cut (the frame limit is known
    /// then), then the batches.
    input: Option<(I, usize)>,
    batches: Option<Batcher<I>>,
    wait: Wait,
}

impl<'a, I: Iterator<Item = Bytes>> SendStream<'a, I> {
    /// A stream of `payloads` to `mailbox`.
    pub(crate) fn new(
        mailbox: &'a str,
        payloads: impl IntoIterator<IntoIter = I>,
        batch: usize,
        window: usize,
        wait: Wait,
    ) -> Self {
        Self {
            tally: StreamSendTally::new(window),
            mailbox,
            input: Some((payloads.into_iter(), batch)),
            batches: None,
            wait,
        }
    }
}

impl<I: Iterator<Item = Bytes>> Window for SendStream<'_, I> {
    /// The positions of the batch's payloads.
    type Tag = Range<usize>;
    type Output = Result<StreamReceipt, StreamError>;
    const ORDERED: bool = false;
    const CANCELS: bool = false;

    fn wait(&self) -> Wait {
        self.wait
    }

    fn next(&mut self, in_flight: usize, max_frame_len: u32) -> Option<(Request, Range<usize>)> {
        if self.tally.room(in_flight) == 0 {
            return None;
        }
        if let Some((payloads, batch)) = self.input.take() {
            self.batches = Some(Batcher::new(payloads, batch, max_frame_len, self.mailbox));
        }
        let (positions, payloads) = self.batches.as_mut()?.next_batch()?;
        let request = SendMany::new(self.mailbox, payloads, self.wait).request();
        Some((request, positions))
    }

    fn started(&mut self, positions: &Range<usize>) {
        self.tally.issue(positions);
    }

    fn not_sent(&mut self, positions: Range<usize>, error: Error) {
        self.tally.not_sent(&positions, error);
    }

    fn record(&mut self, positions: Range<usize>, answer: Result<Response, Error>) {
        self.tally.record(positions, answer);
    }

    fn failed(&self) -> bool {
        self.tally.failed()
    }

    fn finish(self) -> Self::Output {
        self.tally.finish()
    }
}
