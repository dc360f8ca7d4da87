//! The queue of a round-robin or priority mailbox (`QueueLines` in
//! `round_robin.rs`): its messages in delivery order, stored compactly
//! while many wait.
//!
//! Layout. The newest messages are kept whole, as admitted (`recent`): a
//! queue its receivers keep short, or of a mailbox bounded at
//! [`COMPACT_AT`] or less, never leaves that path. Once [`COMPACT_AT`]
//! wait there, the oldest are moved to the older part (`older`), where the
//! messages of one sender accepted at one time with consecutive sequence
//! numbers (the messages of one `SendMany`) that carry nothing else (no
//! details, no redelivery, a payload of at most [`SMALL_PAYLOAD`] bytes)
//! become one [`Run`]: the sender, the time and the first sequence number
//! once, the payloads copied back to back into one buffer, and their
//! lengths (one length when all are alike, else an end offset per
//! message). Anything else (a message that came back, one with a key or a
//! time-to-live, a large payload) stays whole, in its own entry.
//!
//! A message taken from a run is rebuilt: the same metadata, its payload a
//! slice of the run's buffer (no copy). The buffer is freed when the run's
//! last message has left and the receivers have dropped their slices.
//!
//! What it deliberately does not do: count queued bytes for the budget
//! (the ledger does, from the payload lengths, as before), or decide who
//! gets what (the policy's pump).

use std::collections::{vec_deque, VecDeque};

use bytes::Bytes;
use mailbox_proto::{Capacity, Message, Metadata};

use super::batch::batch_len;
use super::policy::Charge;
use super::waiters::WaitingReceive;
use crate::line::step;

/// Messages waiting whole (`recent`) that set off a compaction, which
/// leaves [`KEEP_RECENT`] of them whole. A mailbox bounded at this or less
/// never compacts: it holds too few messages for runs to matter (80 KiB
/// of metadata at most), and its queue is every bounded workload's hot
/// path.
#[cfg(not(test))]
const COMPACT_AT: usize = 1024;
#[cfg(not(test))]
const KEEP_RECENT: usize = 512;
/// Small in tests, so that every scripted and property test goes through
/// runs.
#[cfg(test)]
const COMPACT_AT: usize = 6;
#[cfg(test)]
const KEEP_RECENT: usize = 2;

/// Payloads above this size stay whole: copying them would cost more than
/// the metadata saved is worth.
const SMALL_PAYLOAD: usize = 1024;

/// At most this many messages, and bytes of payload, in one run, so that a
/// buffer goes back to the allocator while the queue is still long.
#[cfg(not(test))]
const MAX_RUN: usize = 4096;
#[cfg(test)]
const MAX_RUN: usize = 5;
const MAX_RUN_BYTES: usize = 64 * 1024;

/// The messages of a queue, in delivery order (see the module's doc).
#[derive(Debug, Default)]
pub(super) struct MessageQueue {
    /// The older part: runs and whole messages; boxed and made only when
    /// needed, so that an idle mailbox stays small.
    older: Option<Box<Kept>>,
    /// The newest messages, whole.
    recent: VecDeque<Message>,
    /// A message came back out of sequence order (a nack to the tail,
    /// returns in another order): until the queue empties, finding a
    /// message by its sequence number takes a pass instead of a binary
    /// search.
    unsorted: bool,
}

/// The older part of a queue.
#[derive(Debug, Default)]
struct Kept {
    entries: VecDeque<Entry>,
    /// Messages in `entries`.
    len: usize,
}

/// What a queue without an older part reads as one.
static NO_ENTRIES: VecDeque<Entry> = VecDeque::new();

/// One entry of the older part.
#[derive(Debug)]
enum Entry {
    Whole(Message),
    Run(Box<Run>),
}

/// Plain messages of one sender, accepted at one time, with consecutive
/// sequence numbers; those at `head..tail` are still queued.
#[derive(Debug)]
pub(super) struct Run {
    /// The sequence number of the message at index 0.
    sequence: u64,
    sender_pid: u32,
    sender_uid: u32,
    sender_gid: u32,
    sender_connection: u64,
    accepted_at_unix_nanos: u64,
    /// The payloads, back to back.
    payloads: Bytes,
    lengths: Lengths,
    head: u32,
    tail: u32,
}

/// Where each payload of a run is in its buffer.
#[derive(Debug)]
enum Lengths {
    /// Every payload has this length.
    Same(u32),
    /// The end of each payload.
    Ends(Box<[u32]>),
}

/// A queued message as the queue holds it, without rebuilding it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Queued<'a> {
    Whole(&'a Message),
    InRun(&'a Run, u32),
}

impl Queued<'_> {
    #[cfg(test)]
    pub(super) fn sequence(self) -> u64 {
        match self {
            Queued::Whole(message) => message.metadata.sequence,
            Queued::InRun(run, index) => run.sequence + u64::from(index),
        }
    }

    #[cfg(test)]
    pub(super) fn payload_len(self) -> usize {
        match self {
            Queued::Whole(message) => message.payload.len(),
            Queued::InRun(run, index) => {
                let (start, end) = run.span(index);
                end - start
            }
        }
    }

    /// The message (a run's is rebuilt; its payload shares the buffer).
    pub(super) fn message(self) -> Message {
        match self {
            Queued::Whole(message) => message.clone(),
            Queued::InRun(run, index) => run.message(index),
        }
    }
}

/// The queued messages from some place on, in delivery order.
#[derive(Debug, Clone)]
pub(super) struct Iter<'a> {
    /// The run being walked, and the index of its next message.
    run: Option<(&'a Run, u32)>,
    kept: vec_deque::Iter<'a, Entry>,
    recent: vec_deque::Iter<'a, Message>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Queued<'a>;

    #[inline]
    fn next(&mut self) -> Option<Queued<'a>> {
        loop {
            if let Some((run, index)) = &mut self.run {
                if *index < run.tail {
                    *index += 1;
                    return Some(Queued::InRun(run, *index - 1));
                }
                self.run = None;
            }
            match self.kept.next() {
                Some(Entry::Whole(message)) => return Some(Queued::Whole(message)),
                Some(Entry::Run(run)) => self.run = Some((run, run.head)),
                None => return self.recent.next().map(Queued::Whole),
            }
        }
    }
}

impl Run {
    fn len(&self) -> usize {
        (self.tail - self.head) as usize
    }

    fn first_sequence(&self) -> u64 {
        self.sequence + u64::from(self.head)
    }

    fn last_sequence(&self) -> u64 {
        self.sequence + u64::from(self.tail) - 1
    }

    /// Where the payload at `index` is in the buffer.
    #[inline]
    fn span(&self, index: u32) -> (usize, usize) {
        let index = index as usize;
        match &self.lengths {
            Lengths::Same(len) => {
                let len = *len as usize;
                (index * len, index * len + len)
            }
            Lengths::Ends(ends) => {
                let start = match index {
                    0 => 0,
                    _ => ends[index - 1] as usize,
                };
                (start, ends[index] as usize)
            }
        }
    }

    /// The message at `index`, rebuilt.
    #[inline]
    fn message(&self, index: u32) -> Message {
        let (start, end) = self.span(index);
        Message {
            metadata: Metadata {
                sequence: self.sequence + u64::from(index),
                sender_pid: self.sender_pid,
                sender_uid: self.sender_uid,
                sender_gid: self.sender_gid,
                sender_connection: self.sender_connection,
                accepted_at_unix_nanos: self.accepted_at_unix_nanos,
                redeliveries: 0,
                details: None,
            },
            payload: self.payloads.slice(start..end),
        }
    }

    /// Payload bytes of the messages still queued.
    fn bytes(&self) -> u64 {
        let (start, _) = self.span(self.head);
        let (_, end) = self.span(self.tail - 1);
        (end - start) as u64
    }

    /// A run of `messages`, which [`continues`] says belong together, of
    /// `bytes` payload bytes in all.
    fn new(messages: impl ExactSizeIterator<Item = Message>, bytes: usize, same: bool) -> Run {
        let count = messages.len();
        let mut payloads = Vec::with_capacity(bytes);
        let mut ends = Vec::with_capacity(if same { 0 } else { count });
        let mut first: Option<Metadata> = None;
        let mut len = 0;
        for message in messages {
            payloads.extend_from_slice(&message.payload);
            len = message.payload.len() as u32;
            if !same {
                ends.push(payloads.len() as u32);
            }
            if first.is_none() {
                first = Some(message.metadata);
            }
        }
        let first = first.unwrap_or_else(|| unreachable!("a run of no message"));
        Run {
            sequence: first.sequence,
            sender_pid: first.sender_pid,
            sender_uid: first.sender_uid,
            sender_gid: first.sender_gid,
            sender_connection: first.sender_connection,
            accepted_at_unix_nanos: first.accepted_at_unix_nanos,
            payloads: Bytes::from(payloads),
            lengths: if same {
                Lengths::Same(len)
            } else {
                Lengths::Ends(ends.into_boxed_slice())
            },
            head: 0,
            tail: count as u32,
        }
    }

    /// Cuts the run before `index` (`head < index < tail`): it keeps what
    /// is before, and returns a run of the rest (sharing the buffer).
    fn split_off(&mut self, index: u32) -> Run {
        let (start, _) = self.span(index);
        let (_, end) = self.span(self.tail - 1);
        let lengths = match &self.lengths {
            Lengths::Same(len) => Lengths::Same(*len),
            Lengths::Ends(ends) => Lengths::Ends(
                ends[index as usize..self.tail as usize]
                    .iter()
                    .map(|end| end - start as u32)
                    .collect(),
            ),
        };
        let rest = Run {
            sequence: self.sequence + u64::from(index),
            sender_pid: self.sender_pid,
            sender_uid: self.sender_uid,
            sender_gid: self.sender_gid,
            sender_connection: self.sender_connection,
            accepted_at_unix_nanos: self.accepted_at_unix_nanos,
            payloads: self.payloads.slice(start..end),
            lengths,
            head: 0,
            tail: self.tail - index,
        };
        self.tail = index;
        rest
    }
}

impl Entry {
    fn first_sequence(&self) -> u64 {
        match self {
            Entry::Whole(message) => message.metadata.sequence,
            Entry::Run(run) => run.first_sequence(),
        }
    }

    fn last_sequence(&self) -> u64 {
        match self {
            Entry::Whole(message) => message.metadata.sequence,
            Entry::Run(run) => run.last_sequence(),
        }
    }

    /// The payload lengths of the messages in the entry.
    fn payload_lens(&self) -> EntryLens<'_> {
        match self {
            Entry::Whole(message) => EntryLens::Whole(Some(message.payload.len())),
            Entry::Run(run) => EntryLens::Run(run, run.head..run.tail),
        }
    }

    fn contains(&self, sequence: u64) -> bool {
        self.first_sequence() <= sequence && sequence <= self.last_sequence()
    }
}

/// The payload lengths of an entry's messages.
enum EntryLens<'a> {
    Whole(Option<usize>),
    Run(&'a Run, std::ops::Range<u32>),
}

impl Iterator for EntryLens<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            EntryLens::Whole(len) => len.take(),
            EntryLens::Run(run, indices) => indices.next().map(|index| {
                let (start, end) = run.span(index);
                end - start
            }),
        }
    }
}

/// Whether a queue of a mailbox of `capacity` compacts (see
/// [`COMPACT_AT`]).
fn compacts(capacity: Capacity) -> bool {
    match capacity {
        Capacity::Unbounded => true,
        Capacity::Bounded(n) => n as usize > COMPACT_AT,
        Capacity::Zero => false,
    }
}

/// Whether `message` may be in a run at all.
fn plain(message: &Message) -> bool {
    message.metadata.details.is_none()
        && message.metadata.redeliveries == 0
        && message.payload.len() <= SMALL_PAYLOAD
}

/// Whether `message` belongs in the run that starts with `first` and has
/// `count` messages so far.
fn continues(first: &Metadata, count: usize, message: &Message) -> bool {
    let m = &message.metadata;
    plain(message)
        && m.sequence == first.sequence + count as u64
        && m.sender_connection == first.sender_connection
        && m.accepted_at_unix_nanos == first.accepted_at_unix_nanos
        && m.sender_pid == first.sender_pid
        && m.sender_uid == first.sender_uid
        && m.sender_gid == first.sender_gid
}

/// A queue whose front messages can be taken (the ledger's hand-over).
pub(super) trait TakeFront {
    /// Takes the first `count` messages out (fewer when fewer are queued).
    fn take_front(&mut self, count: usize) -> Vec<Message>;

    /// The sequence number and payload length of the first message.
    fn front_sequence_and_len(&self) -> Option<(u64, usize)>;
}

impl TakeFront for VecDeque<Message> {
    #[inline]
    fn take_front(&mut self, count: usize) -> Vec<Message> {
        self.drain(..count.min(self.len())).collect()
    }

    fn front_sequence_and_len(&self) -> Option<(u64, usize)> {
        self.front().map(|m| (m.metadata.sequence, m.payload.len()))
    }
}

impl TakeFront for MessageQueue {
    #[inline]
    fn take_front(&mut self, count: usize) -> Vec<Message> {
        if self.older.is_none() {
            let messages = self.recent.drain(..count.min(self.recent.len())).collect();
            if self.recent.is_empty() {
                self.unsorted = false;
            }
            return messages;
        }
        self.take_front_kept(count)
    }

    fn front_sequence_and_len(&self) -> Option<(u64, usize)> {
        self.messages()
            .next()
            .map(|m| (m.metadata.sequence, m.payload.len()))
    }
}

impl MessageQueue {
    /// The older part's entries (none while it is not made).
    fn kept(&self) -> &VecDeque<Entry> {
        self.older
            .as_deref()
            .map_or(&NO_ENTRIES, |older| &older.entries)
    }

    /// Messages in the older part.
    fn kept_len(&self) -> usize {
        self.older.as_deref().map_or(0, |older| older.len)
    }

    pub(super) fn len(&self) -> usize {
        self.kept_len() + self.recent.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.older.is_none() && self.recent.is_empty()
    }

    /// Whether a message came back out of sequence order since the queue
    /// was last empty.
    pub(super) fn is_unsorted(&self) -> bool {
        self.unsorted
    }

    /// Queues an admitted message (its sequence number is the highest yet)
    /// at the back of a mailbox of `capacity`.
    #[inline]
    pub(super) fn push_back(&mut self, message: Message, capacity: Capacity) {
        self.recent.push_back(message);
        if self.recent.len() >= COMPACT_AT && compacts(capacity) {
            self.compact();
        }
    }

    /// Puts a message that came back at the tail or the head, noting when
    /// that leaves the queue out of sequence order.
    pub(super) fn put_back(&mut self, message: Message, to_tail: bool) {
        let sequence = message.metadata.sequence;
        if to_tail {
            if self.last_sequence().is_some_and(|last| last > sequence) {
                self.unsorted = true;
            }
            self.recent.push_back(message);
        } else {
            if self.first_sequence().is_some_and(|first| first < sequence) {
                self.unsorted = true;
            }
            let older = self.older.get_or_insert_with(Box::default);
            older.entries.push_front(Entry::Whole(message));
            older.len += 1;
        }
    }

    fn first_sequence(&self) -> Option<u64> {
        match self.kept().front() {
            Some(entry) => Some(entry.first_sequence()),
            None => self.recent.front().map(|m| m.metadata.sequence),
        }
    }

    fn last_sequence(&self) -> Option<u64> {
        match self.recent.back() {
            Some(message) => Some(message.metadata.sequence),
            None => self.kept().back().map(Entry::last_sequence),
        }
    }

    /// How many of the front messages one batch answer to `receive` takes
    /// ([`batch_len`]).
    #[inline]
    pub(super) fn batch_len(&self, receive: &WaitingReceive) -> usize {
        if self.older.is_none() {
            // The hot path: a pass over whole messages, as a
            // `VecDeque<Message>` would take.
            return batch_len(receive, self.recent.iter().map(|m| m.payload.len()));
        }
        batch_len(receive, self.payload_lens())
    }

    /// The payload lengths of the queued messages, from the front.
    pub(super) fn payload_lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.kept()
            .iter()
            .flat_map(Entry::payload_lens)
            .chain(self.recent.iter().map(|m| m.payload.len()))
    }

    /// Every queued message, in delivery order.
    pub(super) fn iter(&self) -> Iter<'_> {
        Iter {
            run: None,
            kept: self.kept().iter(),
            recent: self.recent.iter(),
        }
    }

    /// Every queued message, rebuilt, in delivery order.
    pub(super) fn messages(&self) -> impl Iterator<Item = Message> + Clone + '_ {
        self.iter().map(Queued::message)
    }

    /// The queued messages with a sequence number above `after`, found by
    /// a binary search: for a queue in sequence order only.
    pub(super) fn messages_after(&self, after: Option<u64>) -> impl Iterator<Item = Message> + '_ {
        let Some(after) = after else {
            return self.iter().map(Queued::message);
        };
        let in_kept = self
            .kept()
            .back()
            .is_some_and(|entry| entry.last_sequence() > after);
        let iter = if in_kept {
            let at = self.kept().partition_point(|entry| {
                step(1);
                entry.last_sequence() <= after
            });
            let run = match &self.kept()[at] {
                Entry::Run(run) => {
                    let from = after.saturating_add(1).saturating_sub(run.sequence);
                    Some((&**run, run.head.max(from as u32)))
                }
                Entry::Whole(_) => None,
            };
            Iter {
                run,
                kept: self.kept().range(at + usize::from(run.is_some())..),
                recent: self.recent.iter(),
            }
        } else {
            let start = self.recent.partition_point(|m| {
                step(1);
                m.metadata.sequence <= after
            });
            Iter {
                run: None,
                kept: self.kept().range(self.kept().len()..),
                recent: self.recent.range(start..),
            }
        };
        iter.map(Queued::message)
    }

    /// Takes the queued message with `sequence` out, if it is queued: a
    /// binary search while the queue is in sequence order, else a pass.
    pub(super) fn take(&mut self, sequence: u64) -> Option<Message> {
        if self.is_empty() {
            self.unsorted = false;
            return None;
        }
        let message = if self.unsorted {
            match self.kept().iter().position(|e| e.contains(sequence)) {
                Some(at) => self.take_kept(at, sequence),
                None => {
                    let at = self
                        .recent
                        .iter()
                        .position(|m| m.metadata.sequence == sequence)?;
                    self.recent.remove(at)
                }
            }
        } else if self
            .recent
            .front()
            .is_some_and(|m| m.metadata.sequence <= sequence)
        {
            // In sequence order: an expiry of a message already delivered
            // (the common case) costs a binary search.
            let at = self
                .recent
                .partition_point(|m| m.metadata.sequence < sequence);
            if self
                .recent
                .get(at)
                .is_some_and(|m| m.metadata.sequence == sequence)
            {
                self.recent.remove(at)
            } else {
                None
            }
        } else {
            let at = self
                .kept()
                .partition_point(|e| e.last_sequence() < sequence);
            if self.kept().get(at).is_some_and(|e| e.contains(sequence)) {
                self.take_kept(at, sequence)
            } else {
                None
            }
        };
        if self.is_empty() {
            self.unsorted = false;
        }
        message
    }

    /// Takes message `sequence` out of the older part's entry `at`, which
    /// holds it.
    fn take_kept(&mut self, at: usize, sequence: u64) -> Option<Message> {
        let older = self.older.as_deref_mut()?;
        older.len -= 1;
        let entries = &mut older.entries;
        let (message, rest, emptied) = match &mut entries[at] {
            Entry::Whole(_) => match entries.remove(at) {
                Some(Entry::Whole(message)) => (message, None, false),
                _ => unreachable!("the entry is a whole message"),
            },
            Entry::Run(run) => {
                let index = (sequence - run.sequence) as u32;
                let message = run.message(index);
                let mut rest = None;
                if index == run.head {
                    run.head += 1;
                } else if index + 1 == run.tail {
                    run.tail -= 1;
                } else {
                    // From the middle: the run is cut in two around it.
                    rest = Some(run.split_off(index + 1));
                    run.tail = index;
                }
                (message, rest, run.len() == 0)
            }
        };
        if let Some(rest) = rest {
            entries.insert(at + 1, Entry::Run(Box::new(rest)));
        } else if emptied {
            entries.remove(at);
        }
        self.tidy();
        Some(message)
    }

    /// Drops the older part once it holds nothing.
    fn tidy(&mut self) {
        if self.older.as_ref().is_some_and(|older| older.len == 0) {
            self.older = None;
        }
    }

    /// [`TakeFront::take_front`] when some messages are in the older part.
    #[inline(never)]
    fn take_front_kept(&mut self, count: usize) -> Vec<Message> {
        let mut messages = Vec::with_capacity(count.min(self.len()));
        if let Some(older) = self.older.as_deref_mut() {
            while messages.len() < count {
                let Some(entry) = older.entries.front_mut() else {
                    break;
                };
                match entry {
                    Entry::Whole(_) => {
                        if let Some(Entry::Whole(message)) = older.entries.pop_front() {
                            messages.push(message);
                        }
                        older.len -= 1;
                    }
                    Entry::Run(run) => {
                        let take = (count - messages.len()).min(run.len()) as u32;
                        messages
                            .extend((run.head..run.head + take).map(|index| run.message(index)));
                        run.head += take;
                        older.len -= take as usize;
                        if run.len() == 0 {
                            older.entries.pop_front();
                        }
                    }
                }
            }
            self.tidy();
        }
        let rest = (count - messages.len()).min(self.recent.len());
        messages.extend(self.recent.drain(..rest));
        if self.is_empty() {
            self.unsorted = false;
        }
        messages
    }

    /// Takes every queued message out, in delivery order.
    pub(super) fn drain(&mut self) -> Vec<Message> {
        self.take_front(self.len())
    }

    /// What the queued messages are charged to their senders: one charge
    /// per run, one per whole message.
    pub(super) fn charges(&self) -> impl Iterator<Item = Charge> + '_ {
        self.kept()
            .iter()
            .map(|entry| match entry {
                Entry::Whole(message) => Charge::of(message),
                Entry::Run(run) => Charge {
                    uid: run.sender_uid,
                    bytes: run.bytes(),
                    messages: run.len() as u64,
                },
            })
            .chain(self.recent.iter().map(Charge::of))
    }

    /// Moves the oldest of the recent messages to the older part, in runs
    /// where they belong together, until [`KEEP_RECENT`] are left.
    #[cold]
    #[inline(never)]
    fn compact(&mut self) {
        while self.recent.len() > KEEP_RECENT {
            let Some(first) = self.recent.front() else {
                break;
            };
            let (mut count, mut bytes, mut same) = (1, first.payload.len(), true);
            if plain(first) {
                for message in self.recent.iter().skip(1).take(MAX_RUN - 1) {
                    let len = message.payload.len();
                    if !continues(&first.metadata, count, message) || bytes + len > MAX_RUN_BYTES {
                        break;
                    }
                    same &= len == first.payload.len();
                    count += 1;
                    bytes += len;
                }
            }
            let older = self.older.get_or_insert_with(Box::default);
            older.len += count;
            if count == 1 {
                // Alone, a run would cost more than the message's metadata.
                if let Some(message) = self.recent.pop_front() {
                    older.entries.push_back(Entry::Whole(message));
                }
            } else {
                let run = Run::new(self.recent.drain(..count), bytes, same);
                older.entries.push_back(Entry::Run(Box::new(run)));
            }
        }
    }

    /// Panics when the queue's own invariants do not hold (tests only);
    /// returns its payload bytes.
    #[cfg(test)]
    pub(super) fn check_invariants(&self) -> u64 {
        let mut kept = 0;
        for entry in self.kept() {
            if let Entry::Run(run) = entry {
                assert!(run.head < run.tail, "an empty run is kept");
                kept += run.len();
            } else {
                kept += 1;
            }
        }
        assert_eq!(kept, self.kept_len(), "kept messages are counted");
        assert!(
            self.older.as_ref().is_none_or(|older| older.len > 0),
            "an empty older part is dropped"
        );
        if !self.unsorted {
            let sequences: Vec<u64> = self.iter().map(Queued::sequence).collect();
            assert!(
                sequences.windows(2).all(|w| w[0] < w[1]),
                "a queue not marked unsorted is in sequence order"
            );
        }
        let charged: u64 = self.charges().map(|c| c.bytes).sum();
        let bytes: u64 = self.iter().map(|m| m.payload_len() as u64).sum();
        assert_eq!(charged, bytes, "a run charges its payloads");
        bytes
    }
}

#[cfg(test)]
mod tests;
