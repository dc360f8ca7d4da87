//! What the pipelined and the streamed sends tally alike: the window of
//! requests in flight, which positions were accepted and with what receipt,
//! which were left unknown, and the failure of the lowest position. Each
//! send adds how it numbers its requests and reads its answers
//! (`sends.rs`: one position per `Send`; `streams.rs`: a range per
//! `SendMany`).

use std::ops::Range;

use crate::error::Error;

/// What one send request carries of the input: a position, or a range of
/// positions.
pub(crate) trait Positions {
    /// The first position it carries.
    fn start(&self) -> usize;
}

impl Positions for usize {
    fn start(&self) -> usize {
        *self
    }
}

impl Positions for Range<usize> {
    fn start(&self) -> usize {
        self.start
    }
}

/// The outcome so far of a send of many requests: which positions `P` were
/// accepted with receipt `R`, refused or left unknown, and whether to send
/// more.
#[derive(Debug)]
pub(crate) struct Tally<P, R> {
    window: usize,
    /// How many payloads were taken from the input and sent.
    pub(super) issued: usize,
    pub(super) accepted: Vec<(P, R)>,
    unknown: Vec<P>,
    first_error: Option<(usize, Error)>,
}

/// A send's tally once it failed, sorted by position (the parts of
/// `PipelineError` and `StreamError`).
pub(super) struct Failure<P, R> {
    pub(super) error: Error,
    pub(super) failed_at: usize,
    pub(super) accepted: Vec<(P, R)>,
    pub(super) unknown: Vec<P>,
    pub(super) issued: usize,
}

impl<P: Positions, R> Tally<P, R> {
    /// A tally keeping at most `window` requests (at least 1) in flight.
    pub(crate) fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            issued: 0,
            accepted: Vec::new(),
            unknown: Vec::new(),
            first_error: None,
        }
    }

    /// How many more requests may be started with `in_flight` unanswered:
    /// none once any request stopped or failed.
    pub(crate) fn room(&self, in_flight: usize) -> usize {
        if self.first_error.is_some() {
            0
        } else {
            self.window.saturating_sub(in_flight)
        }
    }

    /// Whether a request stopped or failed.
    pub(crate) fn failed(&self) -> bool {
        self.first_error.is_some()
    }

    /// Records that the request of `positions` could not be sent, so none
    /// of it was accepted.
    pub(crate) fn not_sent(&mut self, positions: &P, error: Error) {
        self.note_error(positions.start(), error);
    }

    /// Keeps the failure of the lowest position.
    pub(super) fn note_error(&mut self, position: usize, error: Error) {
        let earlier = matches!(&self.first_error, Some((first, _)) if *first < position);
        if !earlier {
            self.first_error = Some((position, error));
        }
    }

    /// Records that the request of `positions` failed with `error`.
    pub(super) fn note_failed(&mut self, positions: P, error: Error) {
        // Only a broker's answer is a definite refusal; a broken connection
        // or a garbled answer leaves the fate unknown.
        let start = positions.start();
        if !error.is_broker_answer() {
            self.unknown.push(positions);
        }
        self.note_error(start, error);
    }

    /// Every receipt in input order, or the failure.
    pub(super) fn into_outcome(mut self) -> Result<Vec<R>, Failure<P, R>> {
        self.accepted
            .sort_unstable_by_key(|(positions, _)| positions.start());
        self.unknown.sort_unstable_by_key(Positions::start);
        match self.first_error {
            None => Ok(self
                .accepted
                .into_iter()
                .map(|(_, receipt)| receipt)
                .collect()),
            Some((failed_at, error)) => Err(Failure {
                error,
                failed_at,
                accepted: self.accepted,
                unknown: self.unknown,
                issued: self.issued,
            }),
        }
    }
}
