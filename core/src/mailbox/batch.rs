//! How many messages one batch answer carries: at most what the receive
//! asked for, and never more than fits in a frame (one message alone always
//! fits). Every delivery policy sizes its batches here, and the pages of a
//! peek ([`page`]) within the same bound.

use std::borrow::Borrow;

use bytes::Bytes;
use mailbox_proto::codec::encoded_len;
use mailbox_proto::Message;

use super::ledger::Ledger;
use super::waiters::{Context, Load, WaitingReceive, WaitingSend};
use crate::line::{step, Line};

/// Encoded bytes a message adds to a batch beside its payload (metadata and
/// lengths, rounded up).
const MESSAGE_OVERHEAD: usize = 64;

/// A batch answer stops growing at this size, so that its frame always fits
/// the protocol's frame limit; one message alone always fits.
const MAX_BATCH_BYTES: usize = mailbox_proto::MAX_MESSAGE_SIZE_LIMIT as usize;

/// A batch answer being filled: what it counts so far against its limits.
#[derive(Debug)]
pub(super) struct BatchSize {
    /// Up to how many messages it carries.
    limit: usize,
    /// The longest payload its receiver takes (see
    /// `WaitingReceive::inline_limit`).
    inline_limit: usize,
    count: usize,
    bytes: usize,
}

impl BatchSize {
    /// An empty answer to `receive`.
    #[inline]
    pub(super) fn new(receive: &WaitingReceive) -> Self {
        Self {
            limit: receive.limit(),
            inline_limit: receive.inline_limit as usize,
            count: 0,
            bytes: 0,
        }
    }

    /// Whether a message of `payload_len` bytes still fits; it is counted
    /// when it does. A payload longer than the receiver takes inline
    /// never fits, not even first: such a batch is empty, and the policy
    /// refuses the receive instead of taking the message.
    #[inline]
    pub(super) fn fits(&mut self, payload_len: usize) -> bool {
        if self.count >= self.limit || payload_len > self.inline_limit {
            return false;
        }
        self.bytes += payload_len + MESSAGE_OVERHEAD;
        if self.count > 0 && self.bytes > MAX_BATCH_BYTES {
            return false;
        }
        self.count += 1;
        true
    }
}

/// How many of the messages whose payload lengths are `payload_lens` (at
/// most what `receive` takes, at least 1 when there is one and the
/// receiver takes its length) fit in one batch answer.
#[inline]
pub(super) fn batch_len(
    receive: &WaitingReceive,
    payload_lens: impl Iterator<Item = usize>,
) -> usize {
    let mut size = BatchSize::new(receive);
    payload_lens.take_while(|&len| size.fits(len)).count()
}

/// A page of a peek: copies of the first of `messages` (the payloads are
/// shared, not copied) up to `limit` and [`MAX_BATCH_BYTES`] of encoded
/// messages (one alone always fits a frame), and whether any message
/// follows them. Unlike a batch answer's estimate, a page counts each
/// message's exact encoded size: a peek is no hot path, and its messages
/// may carry long keys and dead-letter notes.
pub(super) fn page<M: Borrow<Message>>(
    mut messages: impl Iterator<Item = M>,
    limit: usize,
) -> (Vec<Message>, bool) {
    let mut shown = Vec::new();
    let mut bytes = 0usize;
    for message in messages.by_ref() {
        step(1);
        let message = message.borrow();
        let size = encoded_len(message);
        if shown.len() == limit
            || (!shown.is_empty() && bytes.saturating_add(size) > MAX_BATCH_BYTES)
        {
            return (shown, true);
        }
        bytes = bytes.saturating_add(size);
        shown.push(message.clone());
    }
    (shown, false)
}

/// The messages of a queue walked in delivery order (`messages`) that come
/// after the one with sequence `after`: those behind it when it is still
/// queued, else (it was taken since) those with a higher sequence number.
/// For queues not kept in sequence order, so it costs a pass up to where
/// `after` is (two when it is gone); queues in sequence order find their
/// place by a binary search instead.
pub(super) fn after_in_order<'a, M, I>(
    messages: I,
    after: Option<u64>,
) -> Box<dyn Iterator<Item = M> + 'a>
where
    M: Borrow<Message> + 'a,
    I: Iterator<Item = M> + Clone + 'a,
{
    let Some(after) = after else {
        return Box::new(messages);
    };
    let mut walk = messages.clone();
    if walk.any(|m| {
        step(1);
        m.borrow().metadata.sequence == after
    }) {
        Box::new(walk)
    } else {
        Box::new(messages.filter(move |m| {
            step(1);
            m.borrow().metadata.sequence > after
        }))
    }
}

/// The size of the next payload the front waiting send would admit.
pub(super) fn front_payload_len(senders: &Line<WaitingSend>) -> usize {
    match senders.front().map(|send| &send.load) {
        Some(Load::One(payload)) => payload.len(),
        Some(Load::Many(batch)) => batch.rest.front().map_or(0, Bytes::len),
        None => 0,
    }
}

/// Admits from the front waiting sends as many messages as one batch answer
/// to `receiver` may carry (rendezvous).
pub(super) fn admit_batch(
    ledger: &mut Ledger,
    senders: &mut Line<WaitingSend>,
    receiver: &WaitingReceive,
    ctx: &mut Context<'_>,
) -> (Vec<Message>, u64) {
    let mut messages = Vec::new();
    let mut total = 0;
    let mut size = BatchSize::new(receiver);
    while size.fits(front_payload_len(senders)) {
        let Some(message) = ledger.admit(senders, None, 1, ctx) else {
            break;
        };
        total += message.payload.len() as u64;
        messages.push(message);
    }
    (messages, total)
}
