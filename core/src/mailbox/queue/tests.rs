//! The queue against a plain `VecDeque<Message>`: the same messages, in the
//! same order, whatever is pushed, put back or taken (the thresholds are
//! small in tests, so runs form after a few messages).

use std::collections::{BTreeMap, VecDeque};

use mailbox_proto::fixtures::{message, message_with};
use mailbox_proto::{Details, Message};
use proptest::prelude::*;

use super::*;

/// A message of sender `connection` accepted at `at`.
fn from(sequence: u64, len: usize, connection: u64, at: u64) -> Message {
    let mut m = message(sequence, vec![sequence as u8; len]);
    m.metadata.sender_connection = connection;
    m.metadata.sender_uid = 100 + connection as u32;
    m.metadata.accepted_at_unix_nanos = at;
    m
}

fn sequences(queue: &MessageQueue) -> Vec<u64> {
    queue.iter().map(Queued::sequence).collect()
}

/// Panics unless `queue` holds exactly `model`'s messages, in its order,
/// and reads and charges them alike.
fn same(queue: &MessageQueue, model: &VecDeque<Message>) {
    let bytes = queue.check_invariants();
    let shown: Vec<Message> = queue.messages().collect();
    let expected: Vec<Message> = model.iter().cloned().collect();
    assert_eq!(shown, expected);
    assert_eq!(queue.len(), model.len());
    assert_eq!(queue.is_empty(), model.is_empty());
    let lens: Vec<usize> = queue.payload_lens().collect();
    let model_lens: Vec<usize> = model.iter().map(|m| m.payload.len()).collect();
    assert_eq!(lens, model_lens);
    assert_eq!(bytes, model_lens.iter().sum::<usize>() as u64);
    let mut charged = BTreeMap::new();
    for charge in queue.charges() {
        let entry = charged.entry(charge.uid).or_insert((0, 0));
        entry.0 += charge.bytes;
        entry.1 += charge.messages;
    }
    let mut model_charged = BTreeMap::new();
    for m in model {
        let entry = model_charged.entry(m.metadata.sender_uid).or_insert((0, 0));
        entry.0 += m.payload.len() as u64;
        entry.1 += 1;
    }
    assert_eq!(charged, model_charged);
}

#[test]
fn a_batch_becomes_runs_and_comes_out_whole() {
    let mut queue = MessageQueue::default();
    let mut model = VecDeque::new();
    for sequence in 1..=12 {
        let m = from(sequence, 8, 1, 7);
        model.push_back(m.clone());
        queue.push_back(m, Capacity::Unbounded);
    }
    assert!(queue.kept().iter().any(|e| matches!(e, Entry::Run(_))));
    same(&queue, &model);
    let first = queue.take_front(3);
    assert_eq!(first, model.drain(..3).collect::<Vec<_>>());
    // Zero copy: messages of one run share its buffer, back to back.
    assert_eq!(first[1].payload.as_ptr(), first[0].payload[8..].as_ptr());
    same(&queue, &model);
}

#[test]
fn runs_break_where_sender_time_sequence_or_details_change() {
    let mut queue = MessageQueue::default();
    let mut model = VecDeque::new();
    let mut push = |m: Message| {
        model.push_back(m.clone());
        queue.push_back(m, Capacity::Unbounded);
    };
    push(from(1, 4, 1, 7));
    push(from(2, 4, 1, 7));
    push(from(3, 4, 2, 7)); // another sender
    push(from(4, 4, 2, 7));
    push(from(5, 4, 2, 8)); // another time
    push(from(7, 4, 2, 8)); // a gap
    push(message_with(8, "keyed", Details::default()));
    push(from(9, 2 * SMALL_PAYLOAD, 2, 8)); // large
    push(from(10, 4, 2, 8));
    push(from(11, 3, 2, 8)); // another length: still one run
    push(from(12, 4, 2, 8));
    push(from(13, 4, 2, 8));
    same(&queue, &model);
    for entry in queue.kept() {
        if let Entry::Run(run) = entry {
            let messages: Vec<Message> = (run.head..run.tail).map(|i| run.message(i)).collect();
            let m0 = &messages[0].metadata;
            assert!(messages
                .iter()
                .all(|m| m.metadata.sender_connection == m0.sender_connection
                    && m.metadata.accepted_at_unix_nanos == m0.accepted_at_unix_nanos));
        }
    }
}

#[test]
fn taking_from_the_middle_of_a_run_cuts_it() {
    let mut queue = MessageQueue::default();
    let mut model: VecDeque<Message> = VecDeque::new();
    for sequence in 1..=9 {
        let m = from(sequence, sequence as usize, 1, 7);
        model.push_back(m.clone());
        queue.push_back(m, Capacity::Unbounded);
    }
    for sequence in [3, 2, 4, 1, 8, 42] {
        let expected = model
            .iter()
            .position(|m| m.metadata.sequence == sequence)
            .and_then(|at| model.remove(at));
        assert_eq!(queue.take(sequence), expected);
        same(&queue, &model);
    }
}

#[test]
fn a_peek_after_a_sequence_finds_its_place_in_a_run() {
    let mut queue = MessageQueue::default();
    for sequence in 1..=12 {
        queue.push_back(from(sequence, 8, 1, 7), Capacity::Unbounded);
    }
    for after in 0..=13 {
        let shown: Vec<u64> = queue
            .messages_after(Some(after))
            .map(|m| m.metadata.sequence)
            .collect();
        let expected: Vec<u64> = (after + 1..=12).collect();
        assert_eq!(shown, expected, "after {after}");
    }
    queue.take(5);
    let shown: Vec<u64> = queue
        .messages_after(Some(5))
        .map(|m| m.metadata.sequence)
        .collect();
    assert_eq!(shown, (6..=12).collect::<Vec<_>>());
    assert_eq!(sequences(&queue).len(), 11);
}

#[test]
fn an_entry_is_no_larger_than_a_message() {
    assert!(std::mem::size_of::<Entry>() <= std::mem::size_of::<Message>());
}

/// One step on the queue and the model.
#[derive(Debug, Clone)]
enum Op {
    /// Admits `lens.len()` messages of one sender at one time (a batch),
    /// with the next sequence numbers (`gap`: one skipped first).
    Admit {
        lens: Vec<usize>,
        connection: u64,
        new_time: bool,
        gap: bool,
        keyed: bool,
    },
    TakeFront(usize),
    /// Takes a message by a sequence number near the queued ones.
    Take(u64),
    /// Puts a message taken before back, at the head or the tail.
    PutBack {
        pick: usize,
        to_tail: bool,
    },
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            prop::collection::vec(prop_oneof![9 => 0usize..12, 1 => Just(SMALL_PAYLOAD + 1)], 1..9),
            0u64..3,
            any::<bool>(),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(lens, connection, new_time, gap, keyed)| Op::Admit {
                lens,
                connection,
                new_time,
                gap,
                keyed,
            }),
        2 => (0usize..8).prop_map(Op::TakeFront),
        2 => (0u64..80).prop_map(Op::Take),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, to_tail)| Op::PutBack { pick, to_tail }),
        1 => Just(Op::Drain),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever happens, the queue holds what a `VecDeque<Message>` doing
    /// the same holds, in the same order, and answers alike.
    #[test]
    fn the_queue_is_a_deque_of_messages(ops in prop::collection::vec(op(), 1..60)) {
        let mut queue = MessageQueue::default();
        let mut model: VecDeque<Message> = VecDeque::new();
        let mut taken: Vec<Message> = Vec::new();
        let (mut next, mut time) = (1u64, 1u64);
        for op in ops {
            match op {
                Op::Admit { lens, connection, new_time, gap, keyed } => {
                    time += u64::from(new_time);
                    next += u64::from(gap);
                    for len in lens {
                        let mut m = from(next, len, connection, time);
                        if keyed {
                            m.metadata.details = Some(Box::default());
                        }
                        next += 1;
                        model.push_back(m.clone());
                        queue.push_back(m, Capacity::Unbounded);
                    }
                }
                Op::TakeFront(count) => {
                    let expected: Vec<Message> = model.drain(..count.min(model.len())).collect();
                    let got = queue.take_front(count);
                    prop_assert_eq!(&got, &expected);
                    taken.extend(got);
                }
                Op::Take(sequence) => {
                    let expected = model
                        .iter()
                        .position(|m| m.metadata.sequence == sequence)
                        .and_then(|at| model.remove(at));
                    let got = queue.take(sequence);
                    prop_assert_eq!(&got, &expected);
                    taken.extend(got);
                }
                Op::PutBack { pick, to_tail } => {
                    if !taken.is_empty() {
                        let mut m = taken.swap_remove(pick % taken.len());
                        m.metadata.redeliveries += 1;
                        if to_tail {
                            model.push_back(m.clone());
                        } else {
                            model.push_front(m.clone());
                        }
                        queue.put_back(m, to_tail);
                    }
                }
                Op::Drain => {
                    let expected: Vec<Message> = model.drain(..).collect();
                    prop_assert_eq!(queue.drain(), expected);
                }
            }
            same(&queue, &model);
            let sorted = model
                .iter()
                .zip(model.iter().skip(1))
                .all(|(a, b)| a.metadata.sequence < b.metadata.sequence);
            prop_assert!(sorted || queue.is_unsorted(), "out of order, not marked");
            if !queue.is_unsorted() {
                for after in [0, 3, 10, 25, 60] {
                    let shown: Vec<Message> = queue.messages_after(Some(after)).collect();
                    let expected: Vec<Message> = model
                        .iter()
                        .filter(|m| m.metadata.sequence > after)
                        .cloned()
                        .collect();
                    prop_assert_eq!(shown, expected);
                }
            }
        }
    }
}

#[test]
fn a_mailbox_bounded_at_the_threshold_or_less_keeps_its_messages_whole() {
    let mut queue = MessageQueue::default();
    for sequence in 1..=3 * COMPACT_AT as u64 {
        queue.push_back(from(sequence, 8, 1, 7), Capacity::Bounded(COMPACT_AT as _));
    }
    assert!(queue.older.is_none());
    queue.push_back(from(100, 8, 1, 7), Capacity::Bounded(COMPACT_AT as u32 + 1));
    assert!(queue.older.is_some());
}
