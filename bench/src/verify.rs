//! Verification of what a consumer received: every payload's length, header
//! and body; the order per producer; and, for the shared work queue, that
//! the consumers together got every message exactly once.
//!
//! Pure bookkeeping: the consumers feed it payloads, the orchestrator feeds
//! it the consumers' [`Seen`] sets. It does not time anything and never
//! stops a run by itself; the caller turns problems into a failed run.

use std::fmt;

use anyhow::{bail, ensure, Result};

use crate::payload::{Header, Pool, HEADER_LEN};

/// Bodies up to this size are compared byte for byte; larger ones (1 MiB)
/// are compared on a sample: [`SAMPLE_LEN`] bytes every [`SAMPLE_STRIDE`]
/// and the last [`SAMPLE_LEN`], so that checking does not dominate the
/// consumer's time.
pub const FULL_CHECK_LIMIT: usize = 4096;
/// Distance between sampled chunks of a large body.
pub const SAMPLE_STRIDE: usize = 4096;
/// Length of each sampled chunk.
pub const SAMPLE_LEN: usize = 64;

/// Something wrong with one received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// The payload is not the workload's size.
    WrongLength {
        /// The workload's size.
        expected: usize,
        /// What arrived.
        got: usize,
    },
    /// The header names a producer that does not exist.
    UnknownProducer(u32),
    /// The header's length field disagrees with the payload (corrupted header).
    BadHeader {
        /// The sequence number it carries.
        sequence: u64,
    },
    /// The body is not what the producer sent.
    CorruptBody {
        /// Producer of the message.
        producer: u32,
        /// Its sequence number.
        sequence: u64,
    },
    /// Messages never arrived (a gap in a gap-free stream).
    Lost {
        /// Their producer.
        producer: u32,
        /// The first missing sequence number.
        from: u64,
        /// One past the last missing one.
        to: u64,
    },
    /// A message came again, or after a later one.
    DuplicateOrReordered {
        /// Its producer.
        producer: u32,
        /// Its sequence number.
        sequence: u64,
        /// The lowest sequence number acceptable at that point.
        expected_at_least: u64,
    },
    /// A message arrived twice at this consumer.
    Duplicate {
        /// Its producer.
        producer: u32,
        /// Its sequence number.
        sequence: u64,
    },
    /// A sequence number beyond what the producer sends.
    OutOfRange {
        /// Its producer.
        producer: u32,
        /// Its sequence number.
        sequence: u64,
    },
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::WrongLength { expected, got } => {
                write!(
                    f,
                    "a payload of {got} bytes arrived; every message has {expected}"
                )
            }
            Defect::UnknownProducer(producer) => {
                write!(
                    f,
                    "a payload names producer {producer}, which does not exist"
                )
            }
            Defect::BadHeader { sequence } => {
                write!(f, "message #{sequence} has a corrupted header")
            }
            Defect::CorruptBody { producer, sequence } => {
                write!(
                    f,
                    "message #{sequence} of producer {producer} arrived corrupted"
                )
            }
            Defect::Lost { producer, from, to } if to - from == 1 => {
                write!(f, "message #{from} of producer {producer} was lost")
            }
            Defect::Lost { producer, from, to } => write!(
                f,
                "{} messages (#{from} to #{}) of producer {producer} were lost",
                to - from,
                to - 1
            ),
            Defect::DuplicateOrReordered {
                producer,
                sequence,
                expected_at_least,
            } => write!(
                f,
                "message #{sequence} of producer {producer} arrived duplicated or out of \
                 order (expected #{expected_at_least} or later)"
            ),
            Defect::Duplicate { producer, sequence } => {
                write!(
                    f,
                    "message #{sequence} of producer {producer} arrived twice"
                )
            }
            Defect::OutOfRange { producer, sequence } => {
                write!(
                    f,
                    "message #{sequence} of producer {producer} was never sent"
                )
            }
        }
    }
}

/// Checks one payload's length, header and body against the run's pool.
#[derive(Debug, Clone)]
pub struct PayloadCheck {
    pool: Pool,
    producers: u32,
}

impl PayloadCheck {
    /// A check for payloads cut from `pool`, sent by `producers` producers.
    pub fn new(pool: Pool, producers: u32) -> PayloadCheck {
        PayloadCheck { pool, producers }
    }

    /// The header of a sound payload, or what is wrong with it.
    pub fn check(&self, payload: &[u8]) -> Result<Header, Defect> {
        let size = self.pool.size();
        if payload.len() != size {
            return Err(Defect::WrongLength {
                expected: size,
                got: payload.len(),
            });
        }
        let header = Header::read(payload).ok_or(Defect::WrongLength {
            expected: size,
            got: payload.len(),
        })?;
        if header.length as usize != size {
            return Err(Defect::BadHeader {
                sequence: header.sequence,
            });
        }
        if header.producer >= self.producers {
            return Err(Defect::UnknownProducer(header.producer));
        }
        let expected = self.pool.body(header.producer, header.sequence);
        let body = &payload[HEADER_LEN..];
        let sound = if body.len() <= FULL_CHECK_LIMIT {
            body == expected
        } else {
            sampled_equal(body, expected)
        };
        if sound {
            Ok(header)
        } else {
            Err(Defect::CorruptBody {
                producer: header.producer,
                sequence: header.sequence,
            })
        }
    }
}

/// Compares chunks of [`SAMPLE_LEN`] bytes every [`SAMPLE_STRIDE`] bytes,
/// and the last chunk. Both slices have the same length.
fn sampled_equal(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    let tail = len.saturating_sub(SAMPLE_LEN);
    (0..len)
        .step_by(SAMPLE_STRIDE)
        .chain(std::iter::once(tail))
        .all(|start| {
            let end = (start + SAMPLE_LEN).min(len);
            a[start..end] == b[start..end]
        })
}

/// What order a consumer may see each producer's messages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Every message of each producer, in order, none missing (FIFO to one
    /// consumer or to every subscriber).
    GapFree,
    /// Strictly increasing per producer, gaps allowed (the other consumers
    /// of a shared queue took them); completeness is checked across
    /// consumers with [`Seen`].
    Increasing,
}

/// Follows each producer's sequence numbers.
#[derive(Debug, Clone)]
pub struct OrderCheck {
    order: Order,
    /// Per producer: the lowest sequence number acceptable next.
    next: Vec<u64>,
    /// Per producer: how many it sends (gap-free: how many must arrive).
    sent: Vec<u64>,
}

impl OrderCheck {
    /// Follows producers that send `sent[p]` messages each.
    pub fn new(order: Order, sent: Vec<u64>) -> OrderCheck {
        OrderCheck {
            order,
            next: vec![0; sent.len()],
            sent,
        }
    }

    /// Takes one message's header (its producer already checked to exist).
    pub fn observe(&mut self, header: Header) -> Result<(), Defect> {
        let producer = header.producer;
        let index = producer as usize;
        let (Some(next), Some(&sent)) = (self.next.get_mut(index), self.sent.get(index)) else {
            return Err(Defect::UnknownProducer(producer));
        };
        let sequence = header.sequence;
        if sequence >= sent {
            return Err(Defect::OutOfRange { producer, sequence });
        }
        if sequence < *next {
            return Err(Defect::DuplicateOrReordered {
                producer,
                sequence,
                expected_at_least: *next,
            });
        }
        let gap = (self.order == Order::GapFree && sequence > *next).then_some(*next);
        *next = sequence + 1;
        match gap {
            Some(from) => Err(Defect::Lost {
                producer,
                from,
                to: sequence,
            }),
            None => Ok(()),
        }
    }

    /// At the end of a gap-free stream: the messages that never came.
    pub fn missing_tail(&self) -> Vec<Defect> {
        if self.order != Order::GapFree {
            return Vec::new();
        }
        self.next
            .iter()
            .zip(&self.sent)
            .enumerate()
            .filter(|(_, (next, sent))| next < sent)
            .map(|(producer, (&from, &to))| Defect::Lost {
                producer: producer as u32,
                from,
                to,
            })
            .collect()
    }
}

/// The set of messages one consumer got, per producer, as a bitmap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    sent: Vec<u64>,
    bits: Vec<Vec<u64>>,
}

impl Seen {
    /// An empty set for producers that send `sent[p]` messages each.
    pub fn new(sent: Vec<u64>) -> Seen {
        let bits = sent
            .iter()
            .map(|&count| vec![0; count.div_ceil(64) as usize])
            .collect();
        Seen { sent, bits }
    }

    /// Records one message; a second arrival of the same one is a defect.
    pub fn insert(&mut self, header: Header) -> Result<(), Defect> {
        let (producer, sequence) = (header.producer, header.sequence);
        let in_range = self
            .sent
            .get(producer as usize)
            .is_some_and(|&sent| sequence < sent);
        if !in_range {
            return Err(Defect::OutOfRange { producer, sequence });
        }
        let word = &mut self.bits[producer as usize][(sequence / 64) as usize];
        let bit = 1u64 << (sequence % 64);
        if *word & bit != 0 {
            return Err(Defect::Duplicate { producer, sequence });
        }
        *word |= bit;
        Ok(())
    }

    /// How many messages the set holds.
    pub fn len(&self) -> u64 {
        self.bits
            .iter()
            .flatten()
            .map(|word| u64::from(word.count_ones()))
            .sum()
    }

    /// The set as bytes, for the orchestrator (words little-endian, producer
    /// after producer).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bits
            .iter()
            .flatten()
            .flat_map(|word| word.to_le_bytes())
            .collect()
    }

    /// Reads a set written by [`Seen::to_bytes`] for the same producers.
    pub fn from_bytes(sent: Vec<u64>, bytes: &[u8]) -> Result<Seen> {
        let mut seen = Seen::new(sent);
        let words: usize = seen.bits.iter().map(Vec::len).sum();
        ensure!(
            bytes.len() == words * 8,
            "a received-set file has {} bytes, expected {}",
            bytes.len(),
            words * 8
        );
        let mut chunks = bytes.chunks_exact(8);
        for word in seen.bits.iter_mut().flatten() {
            if let Some(chunk) = chunks.next() {
                let mut raw = [0; 8];
                raw.copy_from_slice(chunk);
                *word = u64::from_le_bytes(raw);
            }
        }
        Ok(seen)
    }
}

/// Checks that the consumers of a shared queue together got every message
/// exactly once: no message at two consumers, none at no consumer.
pub fn exactly_once(sent: &[u64], consumers: &[Seen]) -> Result<()> {
    let mut union = Seen::new(sent.to_vec());
    for (consumer, seen) in consumers.iter().enumerate() {
        ensure!(
            seen.sent == sent,
            "consumer {consumer} counted other producers"
        );
        for (all, theirs) in union
            .bits
            .iter_mut()
            .flatten()
            .zip(seen.bits.iter().flatten())
        {
            let both = *all & theirs;
            if both != 0 {
                bail!(
                    "{} message(s) were delivered to consumer {consumer} and to another \
                     consumer as well",
                    both.count_ones()
                );
            }
            *all |= theirs;
        }
    }
    let total: u64 = sent.iter().sum();
    let got = union.len();
    ensure!(
        got == total,
        "{} of {total} messages were lost: no consumer received them",
        total - got
    );
    Ok(())
}

/// Everything one consumer checks, with its problems collected.
#[derive(Debug)]
pub struct Verifier {
    payload: PayloadCheck,
    order: OrderCheck,
    seen: Option<Seen>,
    received: u64,
    problems: Problems,
}

impl Verifier {
    /// Checks messages of `producers` that send `sent[p]` each, in `order`;
    /// keeps the set of received messages when the order is `Increasing`.
    pub fn new(pool: Pool, order: Order, sent: Vec<u64>) -> Verifier {
        let producers = sent.len() as u32;
        let seen = (order == Order::Increasing).then(|| Seen::new(sent.clone()));
        Verifier {
            payload: PayloadCheck::new(pool, producers),
            order: OrderCheck::new(order, sent),
            seen,
            received: 0,
            problems: Problems::default(),
        }
    }

    /// Checks one payload; returns its header when it is sound.
    pub fn observe(&mut self, payload: &[u8]) -> Option<Header> {
        self.received += 1;
        let header = match self.payload.check(payload) {
            Ok(header) => header,
            Err(Defect::CorruptBody { producer, sequence }) => {
                // The header is sound: the message did arrive, in its place.
                self.problems
                    .push(Defect::CorruptBody { producer, sequence });
                let header = Header {
                    sequence,
                    producer,
                    length: payload.len() as u32,
                };
                if let Err(defect) = self.order.observe(header) {
                    self.problems.push(defect);
                }
                return None;
            }
            Err(defect) => {
                self.problems.push(defect);
                return None;
            }
        };
        if let Err(defect) = self.order.observe(header) {
            self.problems.push(defect);
        }
        if let Some(seen) = &mut self.seen {
            if let Err(defect) = seen.insert(header) {
                self.problems.push(defect);
            }
        }
        Some(header)
    }

    /// Messages observed so far, sound or not.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Ends the stream: adds the messages that never came (gap-free
    /// order), and returns the problems and the received set.
    pub fn finish(mut self) -> (Problems, Option<Seen>) {
        for defect in self.order.missing_tail() {
            self.problems.push(defect);
        }
        (self.problems, self.seen)
    }
}

/// The defects found, the first few kept for the report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems {
    first: Vec<Defect>,
    total: u64,
}

impl Problems {
    /// Defects kept for the message; the rest are only counted.
    const KEPT: usize = 5;

    /// Records one defect.
    pub fn push(&mut self, defect: Defect) {
        self.total += 1;
        if self.first.len() < Self::KEPT {
            self.first.push(defect);
        }
    }

    /// Whether nothing was wrong.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The defects kept.
    #[cfg(test)]
    pub fn first(&self) -> &[Defect] {
        &self.first
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listed: Vec<String> = self.first.iter().map(Defect::to_string).collect();
        write!(f, "{}", listed.join("; "))?;
        let more = self.total - self.first.len() as u64;
        if more > 0 {
            write!(f, "; and {more} more problem(s)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payloads;

    const SEED: u64 = 99;

    fn messages(producer: u32, count: u64, size: usize) -> Vec<Vec<u8>> {
        let payloads = Payloads::new(SEED, size, producer, count).unwrap();
        (0..count).map(|s| payloads.bytes(s).to_vec()).collect()
    }

    fn verify(order: Order, sent: Vec<u64>, stream: &[Vec<u8>]) -> (Problems, Option<Seen>) {
        let size = stream.first().map_or(64, Vec::len);
        let mut verifier = Verifier::new(Pool::new(SEED, size).unwrap(), order, sent);
        for payload in stream {
            verifier.observe(payload);
        }
        verifier.finish()
    }

    #[test]
    fn a_sound_stream_passes() {
        let stream = messages(0, 50, 64);
        let (problems, _) = verify(Order::GapFree, vec![50], &stream);
        assert!(problems.is_empty(), "{problems}");
    }

    #[test]
    fn loss_is_detected_in_the_middle_and_at_the_end() {
        let mut stream = messages(0, 10, 64);
        stream.remove(4);
        let (problems, _) = verify(Order::GapFree, vec![10], &stream);
        assert_eq!(
            problems.first(),
            &[Defect::Lost {
                producer: 0,
                from: 4,
                to: 5
            }]
        );
        stream.pop();
        let (problems, _) = verify(Order::GapFree, vec![10], &stream);
        assert_eq!(problems.first().len(), 2);
        assert!(matches!(
            problems.first()[1],
            Defect::Lost {
                from: 9,
                to: 10,
                ..
            }
        ));
    }

    #[test]
    fn duplication_and_reordering_are_detected() {
        let mut stream = messages(0, 10, 64);
        stream.insert(3, stream[2].clone());
        let (problems, _) = verify(Order::GapFree, vec![10], &stream);
        assert!(matches!(
            problems.first(),
            [Defect::DuplicateOrReordered { sequence: 2, .. }]
        ));
        let mut stream = messages(0, 10, 64);
        stream.swap(5, 6);
        let (problems, _) = verify(Order::GapFree, vec![10], &stream);
        assert!(!problems.is_empty());
        let (problems, _) = verify(Order::Increasing, vec![10], &stream);
        assert!(matches!(
            problems.first(),
            [Defect::DuplicateOrReordered { sequence: 5, .. }]
        ));
    }

    #[test]
    fn corruption_is_detected_in_header_body_and_length() {
        let mut stream = messages(0, 4, 64);
        stream[1][40] ^= 1;
        stream[2][12] ^= 1;
        stream[3].push(0);
        let (problems, _) = verify(Order::GapFree, vec![4], &stream);
        let defects = problems.first();
        assert!(matches!(
            defects[0],
            Defect::CorruptBody { sequence: 1, .. }
        ));
        assert!(matches!(defects[1], Defect::BadHeader { sequence: 2 }));
        assert!(matches!(
            defects[2],
            Defect::WrongLength {
                expected: 64,
                got: 65
            }
        ));
    }

    #[test]
    fn large_bodies_are_checked_on_a_sample() {
        let size = 1 << 20;
        let mut stream = messages(0, 2, size);
        // Inside a sampled chunk, and in the last bytes.
        stream[0][HEADER_LEN + SAMPLE_STRIDE * 3 + 1] ^= 0xff;
        stream[1][size - 1] ^= 0xff;
        let (problems, _) = verify(Order::GapFree, vec![2], &stream);
        assert_eq!(problems.first().len(), 2, "{problems}");
    }

    #[test]
    fn a_foreign_producer_or_sequence_is_detected() {
        let stream = messages(3, 2, 64);
        let (problems, _) = verify(Order::GapFree, vec![2], &stream);
        assert!(matches!(problems.first()[0], Defect::UnknownProducer(3)));
        let stream = messages(0, 5, 64);
        let (problems, _) = verify(Order::Increasing, vec![3], &stream);
        assert!(matches!(
            problems.first()[0],
            Defect::OutOfRange { sequence: 3, .. }
        ));
    }

    #[test]
    fn interleaved_producers_are_followed_separately() {
        let a = messages(0, 5, 64);
        let b = messages(1, 5, 64);
        let stream: Vec<Vec<u8>> = a.into_iter().zip(b).flat_map(|(x, y)| [x, y]).collect();
        let (problems, _) = verify(Order::GapFree, vec![5, 5], &stream);
        assert!(problems.is_empty(), "{problems}");
    }

    #[test]
    fn a_shared_queue_must_deliver_each_message_exactly_once() {
        let sent = vec![6, 4];
        let all: Vec<Vec<u8>> = messages(0, 6, 64)
            .into_iter()
            .chain(messages(1, 4, 64))
            .collect();
        let split = |pick: &dyn Fn(usize) -> bool| -> Vec<Vec<u8>> {
            all.iter()
                .enumerate()
                .filter(|(i, _)| pick(*i))
                .map(|(_, m)| m.clone())
                .collect()
        };
        let even = split(&|i| i % 2 == 0);
        let odd = split(&|i| i % 2 == 1);
        let seen = |stream: &[Vec<u8>]| {
            let (problems, seen) = verify(Order::Increasing, sent.clone(), stream);
            assert!(problems.is_empty(), "{problems}");
            seen.unwrap()
        };
        let (a, b) = (seen(&even), seen(&odd));
        exactly_once(&sent, &[a.clone(), b.clone()]).unwrap();
        // Through bytes, as the orchestrator reads them.
        let a2 = Seen::from_bytes(sent.clone(), &a.to_bytes()).unwrap();
        assert_eq!(a2, a);
        // Lost: one consumer's messages missing entirely.
        let lost = exactly_once(&sent, std::slice::from_ref(&a)).unwrap_err();
        assert!(lost.to_string().contains("lost"), "{lost}");
        // Duplicated across consumers.
        let mut odd_and_one = odd.clone();
        odd_and_one.insert(0, even[0].clone());
        let dup = exactly_once(&sent, &[a, seen(&odd_and_one)]).unwrap_err();
        assert!(dup.to_string().contains("another consumer"), "{dup}");
    }

    #[test]
    fn a_duplicate_at_one_consumer_is_detected_even_when_increasing_is_allowed() {
        let mut stream = messages(0, 4, 64);
        stream.push(stream[3].clone());
        let (problems, _) = verify(Order::Increasing, vec![4], &stream);
        // Both the order and the set notice it.
        assert_eq!(problems.first().len(), 2, "{problems}");
    }

    #[test]
    fn problems_keep_the_first_few_and_count_the_rest() {
        let mut problems = Problems::default();
        for producer in 0..8 {
            problems.push(Defect::UnknownProducer(producer));
        }
        assert_eq!(problems.first().len(), Problems::KEPT);
        assert!(problems.to_string().ends_with("and 3 more problem(s)"));
    }
}
