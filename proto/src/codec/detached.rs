//! Payloads left out of an encoded buffer ([`Detached`]) and the vectored
//! writes that put them back in place ([`Segments`]): how the broker writes
//! large payloads from where they are instead of copying them into its
//! outbox. Filled by [`encode_server_frame_detached`](super::encode_server_frame_detached).

use bytes::Bytes;

/// Payloads left out of an encoded buffer, to be written from where they
/// are (vectored I/O) instead of being copied into it.
#[derive(Debug, Default)]
pub struct Detached {
    /// Payloads of at least this many bytes are detached.
    pub threshold: usize,
    /// Each detached payload and the buffer offset it belongs at, in order.
    pub pieces: Vec<(usize, Bytes)>,
}

impl Detached {
    /// Detaches payloads of at least `threshold` bytes.
    pub fn new(threshold: usize) -> Self {
        Self {
            threshold,
            pieces: Vec::new(),
        }
    }

    /// The bytes to write, in order: `buffer` cut at each detached payload's
    /// offset with the payload in between.
    pub fn interleave<'a>(&'a self, buffer: &'a [u8]) -> Segments<'a> {
        let mut segments = Vec::with_capacity(self.pieces.len() * 2 + 1);
        let mut at = 0;
        for (offset, payload) in &self.pieces {
            segments.push(&buffer[at..*offset]);
            segments.push(&payload[..]);
            at = *offset;
        }
        segments.push(&buffer[at..]);
        segments.retain(|segment| !segment.is_empty());
        Segments {
            segments,
            first: 0,
            skip: 0,
        }
    }
}

/// Byte slices to write in order with vectored writes, and how far the
/// writing got.
#[derive(Debug)]
pub struct Segments<'a> {
    segments: Vec<&'a [u8]>,
    first: usize,
    skip: usize,
}

impl Segments<'_> {
    /// Whether everything was written.
    pub fn is_done(&self) -> bool {
        self.first >= self.segments.len()
    }

    /// The next slices to hand to a vectored write (at most 64).
    pub fn io_slices(&self) -> Vec<std::io::IoSlice<'_>> {
        self.segments[self.first..]
            .iter()
            .take(64)
            .enumerate()
            .map(|(index, segment)| {
                std::io::IoSlice::new(if index == 0 {
                    &segment[self.skip..]
                } else {
                    segment
                })
            })
            .collect()
    }

    /// Records that a write took `written` bytes.
    pub fn advance(&mut self, mut written: usize) {
        while written > 0 && self.first < self.segments.len() {
            let left = self.segments[self.first].len() - self.skip;
            if written >= left {
                written -= left;
                self.first += 1;
                self.skip = 0;
            } else {
                self.skip += written;
                written = 0;
            }
        }
    }
}
