//! The loop of a pipeline, the tallies of pipelined and streamed sends and
//! receives, and the cutting of streams into batches, without a connection.

use bytes::{Bytes, BytesMut};
use mailbox_proto::fixtures::message;
use mailbox_proto::{
    codec, ErrorKind, Message, Request, Response, Wait, Welcome, PROTOCOL_VERSION,
};

use super::receives::{ReceiveTally, StreamReceiveTally};
use super::sends::SendTally;
use super::streams::{Batcher, StreamSendTally};
use super::{Pipeline, ReceivePipeline, SendPipeline};
use crate::error::Error;
use crate::session::Session;
use crate::test_support::{batch_answer, broker_error, received_many, welcome};

const MAX: u32 = codec::DEFAULT_MAX_FRAME_LEN;

fn sent(sequence: u64) -> Result<Response, Error> {
    Ok(Response::Sent {
        sequence,
        recipients: 1,
    })
}

#[test]
fn send_tally_reports_receipts_in_input_order() {
    let mut tally = SendTally::new(2);
    assert_eq!(tally.room(0), 2);
    let (a, b) = (tally.issue(), tally.issue());
    assert_eq!(tally.room(2), 0);
    tally.record(b, sent(2));
    tally.record(a, sent(1));
    let receipts = tally.finish().expect("all accepted");
    assert_eq!(
        receipts.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[test]
fn send_tally_stops_at_a_refusal_and_keeps_later_acceptances() {
    let mut tally = SendTally::new(4);
    let positions: Vec<usize> = (0..4).map(|_| tally.issue()).collect();
    tally.record(positions[0], sent(1));
    tally.record(positions[2], sent(2));
    tally.record(positions[1], Err(broker_error(ErrorKind::MessageTooLarge)));
    assert_eq!(tally.room(0), 0, "no more sends after a failure");
    tally.record(positions[3], Err(Error::Disconnected));
    let error = tally.finish().expect_err("should fail");
    assert_eq!(error.failed_at, 1);
    assert_eq!(error.error.kind(), Some(ErrorKind::MessageTooLarge));
    assert_eq!(
        error.accepted.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        vec![0, 2]
    );
    assert_eq!(error.unknown, vec![3], "a broken connection is no refusal");
    assert_eq!(error.issued, 4);
}

#[test]
fn receive_tally_never_asks_for_more_than_count() {
    let mut tally = ReceiveTally::new(3, 8);
    assert_eq!(tally.room(0), 3);
    for _ in 0..3 {
        tally.issue();
    }
    assert_eq!(tally.room(0), 0);
    assert!(tally
        .record(Ok(Response::Received(message(1, "a"))))
        .is_some());
    assert!(tally
        .record(Err(broker_error(ErrorKind::Timeout)))
        .is_none());
    assert!(tally.failed());
    // A message that arrives despite the cancel still counts.
    assert!(tally
        .record(Ok(Response::Received(message(2, "b"))))
        .is_some());
    assert_eq!(
        tally.finish().expect_err("should fail").kind(),
        Some(ErrorKind::Timeout)
    );
}

fn payloads(lens: &[usize]) -> impl Iterator<Item = Bytes> + '_ {
    lens.iter().map(|&len| Bytes::from(vec![7u8; len]))
}

#[test]
fn batches_are_cut_by_count() {
    let mut batcher = Batcher::new(payloads(&[1; 10]), 4, MAX, "m");
    let cuts: Vec<_> = std::iter::from_fn(|| batcher.next_batch())
        .map(|(positions, payloads)| {
            assert_eq!(positions.len(), payloads.len());
            positions
        })
        .collect();
    assert_eq!(cuts, vec![0..4, 4..8, 8..10]);
}

#[test]
fn batches_are_cut_to_fit_the_frame_and_always_fit() {
    let max_frame_len = 1000;
    let lens = [300, 300, 300, 300, 2000, 10, 10];
    let mut session: Session<()> = Session::new(&Welcome {
        max_frame_len,
        ..welcome(PROTOCOL_VERSION)
    });
    let mut batcher = Batcher::new(payloads(&lens), 100, max_frame_len, "jobs");
    let mut cuts = Vec::new();
    let mut out = BytesMut::new();
    while let Some((positions, payloads)) = batcher.next_batch() {
        let request = Request::SendMany {
            mailbox: "jobs".into(),
            payloads,
            wait: Wait::Forever,
        };
        let fits = session.start(request, (), &mut out).is_ok();
        cuts.push((positions, fits));
    }
    // The payload too large for any frame goes alone and is refused.
    assert_eq!(
        cuts,
        vec![(0..3, true), (3..4, true), (4..5, false), (5..7, true)]
    );
}

#[test]
fn stream_send_tally_reports_receipts_in_input_order() {
    let mut tally = StreamSendTally::new(2);
    assert_eq!(tally.room(0), 2);
    let (a, b) = (0..3, 3..5);
    tally.issue(&a);
    tally.issue(&b);
    assert_eq!(tally.room(2), 0);
    tally.record(
        b,
        Ok(Response::SentMany {
            first_sequence: 4,
            admitted: 2,
            recipients: 1,
            stopped: None,
        }),
    );
    tally.record(a, Ok(batch_answer(3, None)));
    let receipt = tally.finish().expect("all accepted");
    assert_eq!(receipt.accepted, 5);
    assert_eq!(
        receipt
            .batches
            .iter()
            .map(|b| b.first_sequence)
            .collect::<Vec<_>>(),
        vec![10, 4]
    );
}

#[test]
fn stream_send_tally_says_exactly_which_positions_were_accepted() {
    let mut tally = StreamSendTally::new(4);
    let batches = [0..3, 3..6, 6..9, 9..12];
    for positions in &batches {
        tally.issue(positions);
    }
    // The second batch stops after one message; the third, already in
    // flight, is accepted whole; the fourth's fate is unknown.
    tally.record(batches[2].clone(), Ok(batch_answer(3, None)));
    tally.record(
        batches[1].clone(),
        Ok(batch_answer(1, Some(ErrorKind::Timeout))),
    );
    assert_eq!(tally.room(0), 0, "no more batches after a stop");
    tally.record(batches[0].clone(), Ok(batch_answer(3, None)));
    tally.record(batches[3].clone(), Err(Error::Disconnected));
    let error = tally.finish().expect_err("should fail");
    assert_eq!(error.failed_at, 4);
    assert!(matches!(error.error, Error::Broker(_)), "{}", error.error);
    assert_eq!(error.error.kind(), Some(ErrorKind::Timeout));
    assert_eq!(
        error
            .accepted
            .iter()
            .map(|(p, _)| p.clone())
            .collect::<Vec<_>>(),
        vec![0..3, 3..4, 6..9]
    );
    assert_eq!(error.accepted_count(), 7);
    assert_eq!(error.unknown, vec![9..12]);
    assert_eq!(error.issued, 12);
    assert!(
        error
            .to_string()
            .starts_with("streamed send stopped at payload #4: "),
        "{error}"
    );
}

#[test]
fn a_refused_batch_accepts_none_of_its_positions() {
    let mut tally = StreamSendTally::new(2);
    tally.issue(&(0..2));
    tally.not_sent(&(2..4), broker_error(ErrorKind::MessageTooLarge));
    tally.record(0..2, Err(broker_error(ErrorKind::NoSuchMailbox)));
    let error = tally.finish().expect_err("should fail");
    assert_eq!(error.failed_at, 0);
    assert_eq!(error.error.kind(), Some(ErrorKind::NoSuchMailbox));
    assert!(error.accepted.is_empty() && error.unknown.is_empty());
    assert_eq!(error.issued, 2);
}

#[test]
fn stream_receive_tally_never_asks_beyond_count() {
    let mut tally = StreamReceiveTally::new(10, 4, 8);
    let mut asked = Vec::new();
    while let Some(max) = tally.next_max(asked.len()) {
        tally.issue(max);
        asked.push(max);
    }
    assert_eq!(asked, vec![4, 4, 2]);
    // The first answer brings only 3 of 4: one more may be asked for.
    assert_eq!(tally.record(4, received_many(1..=3)).len(), 3);
    assert_eq!(tally.next_max(2), Some(1));
    assert_eq!(tally.record(4, received_many(4..=7)).len(), 4);
    assert_eq!(tally.record(2, received_many(8..=9)).len(), 2);
    tally.issue(1);
    assert_eq!(tally.next_max(1), None);
    assert_eq!(tally.record(1, received_many(10..=10)).len(), 1);
    assert_eq!(tally.next_max(0), None);
    assert_eq!(tally.finish().expect("all"), 10);
}

#[test]
fn stream_receive_tally_keeps_the_window_and_counts_raced_messages() {
    let mut tally = StreamReceiveTally::new(100, 10, 2);
    tally.issue(10);
    tally.issue(10);
    assert_eq!(tally.next_max(2), None, "window full");
    assert!(tally
        .record(10, Err(broker_error(ErrorKind::Timeout)))
        .is_empty());
    assert!(tally.failed());
    assert_eq!(tally.next_max(1), None, "no more after a failure");
    // Messages handed over despite the cancel still come out.
    assert_eq!(tally.record(10, received_many(1..=5)).len(), 5);
    assert_eq!(
        tally.finish().expect_err("should fail").kind(),
        Some(ErrorKind::Timeout)
    );
}

#[test]
fn a_pipeline_keeps_its_window_and_cancels_once_after_a_failure() {
    let mut got = Vec::new();
    let window = ReceivePipeline::new("jobs", 5, 2, Wait::Forever, |message: Message| {
        got.push(message.metadata.sequence)
    });
    let mut pipeline: Pipeline<_, u32> = Pipeline::new(window, MAX);
    // Handles are the driver's: here, plain numbers.
    let mut handles = 0..;
    while let Some((request, tag)) = pipeline.next_request() {
        assert!(matches!(request, Request::Receive { .. }));
        pipeline.started(tag, handles.next().expect("endless"));
    }
    assert_eq!(pipeline.cancellations().count(), 0, "nothing failed yet");
    // The second answer arrives first: an ordered window waits for the first.
    let answer = |handle: &u32| match handle {
        1 => Some(Ok(Response::Received(message(2, "b")))),
        _ => None,
    };
    pipeline.collect(answer);
    assert!(!pipeline.is_idle());
    let (tag, handle) = pipeline.oldest().expect("in flight");
    assert_eq!(handle, 0);
    pipeline.record(tag, Err(broker_error(ErrorKind::Timeout)));
    let cancelled: Vec<u32> = pipeline.cancellations().map(|handle| *handle).collect();
    assert_eq!(cancelled, vec![1], "every receive still in flight, once");
    assert_eq!(pipeline.cancellations().count(), 0);
    assert!(pipeline.next_request().is_none(), "no more after a failure");
    // The message that crossed the cancel still comes out.
    pipeline.fail(&Error::Disconnected, answer);
    assert!(pipeline.is_idle());
    assert_eq!(
        pipeline.finish().expect_err("failed").kind(),
        Some(ErrorKind::Timeout)
    );
    assert_eq!(got, vec![2]);
}

#[test]
fn an_unordered_pipeline_takes_answers_as_they_come() {
    let window = SendPipeline::new("jobs", ["a", "b", "c"], 3, Wait::Forever);
    let mut pipeline: Pipeline<_, u32> = Pipeline::new(window, MAX);
    let mut handles = 0..;
    while let Some((_, tag)) = pipeline.next_request() {
        pipeline.started(tag, handles.next().expect("endless"));
    }
    pipeline.collect(|handle| (*handle > 0).then(|| sent(u64::from(*handle) + 1)));
    assert!(!pipeline.is_idle(), "the first is still in flight");
    pipeline.collect(|_| Some(sent(1)));
    assert!(pipeline.is_idle());
    let receipts = pipeline.finish().expect("all accepted");
    assert_eq!(
        receipts.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}
