//! Tests of the read buffer's growth against the buffer limits.

use std::sync::Arc;

use bytes::BytesMut;

use super::read_buffer::{counted_bytes, grow, READ_CHUNK, SMALL_READ};
use crate::server::buffers::{Account, Buffers, FREE_READ_BYTES};
use crate::server::BufferLimits;

fn account(max_bytes: usize) -> (Arc<Buffers>, Account) {
    let buffers = Arc::new(Buffers::new(BufferLimits {
        max_buffered_bytes: max_bytes,
        max_buffered_bytes_per_uid: max_bytes,
        ..BufferLimits::default()
    }));
    let account = buffers.open(1000);
    (buffers, account)
}

/// A buffer holding the first `arrived` bytes of a frame of `len`.
fn partial_frame(len: u32, arrived: usize) -> BytesMut {
    let mut buffer = BytesMut::with_capacity(arrived);
    buffer.extend_from_slice(&len.to_le_bytes());
    buffer.resize(arrived, 0);
    buffer
}

#[test]
fn a_header_promising_a_large_frame_reserves_only_what_arrives() {
    let (buffers, account) = account(usize::MAX);
    let mut buffer = partial_frame(16 << 20, 1000);
    let mut counted = 0;
    assert!(grow(&mut buffer, READ_CHUNK, &account, &mut counted));
    // Room for one more read, not for the 16 MiB the header promised.
    assert!(
        buffer.capacity() < 2 * (1000 + READ_CHUNK),
        "{}",
        buffer.capacity()
    );
    assert_eq!(counted, counted_bytes(buffer.capacity()));
    assert_eq!(buffers.total(), counted);
    // As bytes arrive it doubles, at most.
    let mut buffer = partial_frame(300_000, 200_000);
    counted = 0;
    assert!(grow(&mut buffer, READ_CHUNK, &account, &mut counted));
    assert!(buffer.capacity() >= 300_004 && buffer.capacity() <= 400_000);
    assert_eq!(counted, counted_bytes(buffer.capacity()));
}

#[test]
fn without_room_a_partial_frame_waits_and_a_new_one_takes_a_small_read() {
    let (buffers, account) = account(256 * 1024);
    let other = buffers.open(1001);
    assert!(other.try_reserve(256 * 1024));
    // Full: the buffer of a frame that started does not grow.
    let mut buffer = partial_frame(1 << 20, 8192);
    let mut counted = 0;
    let before = buffer.capacity();
    assert!(!grow(&mut buffer, READ_CHUNK, &account, &mut counted));
    assert_eq!((buffer.capacity(), counted), (before, 0));
    // An empty one still reads a small request, uncounted.
    let mut empty = BytesMut::new();
    assert!(grow(&mut empty, READ_CHUNK, &account, &mut counted));
    assert!(empty.capacity() >= SMALL_READ.min(FREE_READ_BYTES));
    assert_eq!(counted, 0);
    // Released room is usable again.
    drop(other);
    assert!(grow(&mut buffer, READ_CHUNK, &account, &mut counted));
    assert!(counted > 0);
}
