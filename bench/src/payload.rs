//! The messages: random bytes generated before the clock starts, each
//! carrying its sequence number and producer id in a 16-byte header.
//!
//! Layout of every payload (at least [`HEADER_LEN`] bytes):
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | sequence number, u64 little-endian, from 0 per producer |
//! | 8..12 | producer id, u32 little-endian |
//! | 12..16 | payload length, u32 little-endian |
//! | 16.. | a slice of a random pool, at an offset that depends on both |
//!
//! Producer and consumer derive the same pool from the run's seed, so the
//! consumer can tell a corrupted body from a sound one without the producer
//! shipping anything. Messages up to [`ARENA_MAX_MESSAGE`] bytes are all
//! built into one arena before the clock starts and handed out as slices;
//! larger ones (the 1 MiB `large` workload would need 2 GiB) are assembled
//! per message from the pool, one `memcpy`, the same for every system.

use anyhow::{ensure, Result};
use mailbox_client::Bytes;

/// Bytes of header in front of every payload.
pub const HEADER_LEN: usize = 16;

/// Largest message built ahead of time into the arena.
pub const ARENA_MAX_MESSAGE: usize = 64 * 1024;

/// Random bytes beyond the payload size, so that body offsets vary.
const POOL_SLACK: usize = 4096;

/// The splitmix64 step: a fast, well-mixed 64-bit sequence.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a payload's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Sequence number within its producer, from 0.
    pub sequence: u64,
    /// Which producer sent it.
    pub producer: u32,
    /// The length the producer gave it.
    pub length: u32,
}

impl Header {
    /// Reads the header of `payload`; `None` when it is too short to have one.
    pub fn read(payload: &[u8]) -> Option<Header> {
        let sequence = u64::from_le_bytes(payload.get(0..8)?.try_into().ok()?);
        let producer = u32::from_le_bytes(payload.get(8..12)?.try_into().ok()?);
        let length = u32::from_le_bytes(payload.get(12..16)?.try_into().ok()?);
        Some(Header {
            sequence,
            producer,
            length,
        })
    }

    fn write(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.sequence.to_le_bytes());
        out[8..12].copy_from_slice(&self.producer.to_le_bytes());
        out[12..16].copy_from_slice(&self.length.to_le_bytes());
    }
}

/// The random bytes the bodies of one run are cut from.
#[derive(Debug, Clone)]
pub struct Pool {
    bytes: Vec<u8>,
    size: usize,
}

impl Pool {
    /// The pool of the run with `seed`, for payloads of `size` bytes.
    pub fn new(seed: u64, size: usize) -> Result<Pool> {
        ensure!(
            size >= HEADER_LEN && u32::try_from(size).is_ok(),
            "payload size {size} must be between {HEADER_LEN} and 4 GiB"
        );
        let mut state = seed;
        let len = size - HEADER_LEN + POOL_SLACK;
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            bytes.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        bytes.truncate(len);
        Ok(Pool { bytes, size })
    }

    /// Payload size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The body (everything after the header) of message `sequence` of `producer`.
    pub fn body(&self, producer: u32, sequence: u64) -> &[u8] {
        let mut state = sequence ^ (u64::from(producer) << 48);
        let offset = (splitmix64(&mut state) % POOL_SLACK as u64) as usize;
        &self.bytes[offset..offset + self.size - HEADER_LEN]
    }

    fn header(&self, producer: u32, sequence: u64) -> [u8; HEADER_LEN] {
        let mut header = [0; HEADER_LEN];
        Header {
            sequence,
            producer,
            length: self.size as u32,
        }
        .write(&mut header);
        header
    }

    /// Writes message `sequence` of `producer` into `out` (exactly `size` bytes).
    pub fn write(&self, producer: u32, sequence: u64, out: &mut [u8]) {
        out[..HEADER_LEN].copy_from_slice(&self.header(producer, sequence));
        out[HEADER_LEN..].copy_from_slice(self.body(producer, sequence));
    }

    /// Appends message `sequence` of `producer` to `out`, without zeroing first.
    pub fn append(&self, producer: u32, sequence: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header(producer, sequence));
        out.extend_from_slice(self.body(producer, sequence));
    }
}

/// The messages one producer sends: sequence numbers `0..count`.
#[derive(Debug)]
pub struct Payloads {
    pool: Pool,
    producer: u32,
    count: u64,
    /// Every message, built ahead, back to back (small messages only).
    arena: Option<Bytes>,
}

impl Payloads {
    /// Builds the messages of `producer` (the arena, when they are small).
    pub fn new(seed: u64, size: usize, producer: u32, count: u64) -> Result<Payloads> {
        let pool = Pool::new(seed, size)?;
        let arena = if size <= ARENA_MAX_MESSAGE {
            let total = usize::try_from(count)?
                .checked_mul(size)
                .ok_or_else(|| anyhow::anyhow!("{count} messages of {size} bytes do not fit"))?;
            let mut arena = vec![0; total];
            for (sequence, out) in (0..count).zip(arena.chunks_exact_mut(size)) {
                pool.write(producer, sequence, out);
            }
            Some(Bytes::from(arena))
        } else {
            None
        };
        Ok(Payloads {
            pool,
            producer,
            count,
            arena,
        })
    }

    /// How many messages there are.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Message `sequence` as an owned buffer (an arena slice: no copy).
    pub fn bytes(&self, sequence: u64) -> Bytes {
        match &self.arena {
            Some(arena) => {
                let start = sequence as usize * self.pool.size;
                arena.slice(start..start + self.pool.size)
            }
            None => {
                let mut out = Vec::with_capacity(self.pool.size);
                self.pool.append(self.producer, sequence, &mut out);
                Bytes::from(out)
            }
        }
    }

    /// Payload size in bytes.
    pub fn size(&self) -> usize {
        self.pool.size
    }

    /// Writes message `sequence` into `out` (exactly [`size`](Self::size)
    /// bytes): one copy, straight where the message is to be sent from
    /// (a memory file's mapping).
    pub fn write_into(&self, sequence: u64, out: &mut [u8]) {
        self.pool.write(self.producer, sequence, out);
    }

    /// Message `sequence` as its header and body, to be written with one
    /// vectored call (no copy before it).
    pub fn parts(&self, sequence: u64) -> ([u8; HEADER_LEN], &[u8]) {
        (
            self.pool.header(self.producer, sequence),
            self.pool.body(self.producer, sequence),
        )
    }

    /// Message `sequence` as a slice of the arena, or built into `scratch`.
    pub fn get<'a>(&'a self, sequence: u64, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        match &self.arena {
            Some(arena) => {
                let start = sequence as usize * self.pool.size;
                &arena[start..start + self.pool.size]
            }
            None => {
                scratch.clear();
                self.pool.append(self.producer, sequence, scratch);
                scratch
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_and_built_messages_agree() {
        let small = Payloads::new(7, 64, 3, 10).unwrap();
        let mut scratch = Vec::new();
        for sequence in 0..10 {
            let message = small.bytes(sequence);
            assert_eq!(&message[..], small.get(sequence, &mut scratch));
            let header = Header::read(&message).unwrap();
            assert_eq!(
                (header.sequence, header.producer, header.length),
                (sequence, 3, 64)
            );
        }
        let large = Payloads::new(7, ARENA_MAX_MESSAGE + 1, 0, 2).unwrap();
        assert!(large.arena.is_none());
        assert_eq!(&large.bytes(1)[..], large.get(1, &mut scratch));
        let mut written = vec![0; large.size()];
        large.write_into(1, &mut written);
        assert_eq!(&large.bytes(1)[..], &written[..]);
    }

    #[test]
    fn the_same_seed_gives_the_same_bodies() {
        let a = Pool::new(42, 100).unwrap();
        let b = Pool::new(42, 100).unwrap();
        let c = Pool::new(43, 100).unwrap();
        assert_eq!(a.body(1, 5), b.body(1, 5));
        assert_ne!(a.body(1, 5), c.body(1, 5));
        assert_ne!(a.body(1, 5), a.body(1, 6));
    }

    #[test]
    fn too_small_a_size_is_refused() {
        assert!(Pool::new(1, HEADER_LEN - 1).is_err());
        assert!(Pool::new(1, HEADER_LEN).is_ok());
    }
}
