//! A connection's read buffer: how large its reads are, and how it grows
//! as bytes arrive (never on a header's promise), counted against the
//! buffer limits ([`crate::server::buffers`]) past a small free part.

use bytes::BytesMut;

use crate::server::buffers::{Account, FREE_READ_BYTES};

/// What a busy reader asks of the socket per read, at least.
pub(super) const READ_CHUNK: usize = 64 * 1024;

/// What a reader asks for while its reads do not fill the buffer.
pub(super) const SMALL_READ: usize = 4 * 1024;

/// The whole length (header included) of the frame at the front of
/// `buffer`, once its header is there.
pub(super) fn frame_total(buffer: &BytesMut) -> Option<usize> {
    let header: [u8; 4] = buffer.get(..4)?.try_into().ok()?;
    Some(4 + u32::from_le_bytes(header) as usize)
}

/// The part of a read buffer of `capacity` bytes that counts against the
/// buffer limits.
pub(super) fn counted_bytes(capacity: usize) -> usize {
    capacity.saturating_sub(FREE_READ_BYTES)
}

/// Brings the account to what the buffer holds now (it shrinks as frames
/// are split off it).
pub(super) fn settle(account: &Account, counted: &mut usize, buffer: &BytesMut) {
    let now = counted_bytes(buffer.capacity());
    if now < *counted {
        account.release(*counted - now);
    } else if now > *counted {
        account.force(now - *counted);
    }
    *counted = now;
}

/// Makes room for a read of about `chunk` bytes, if the buffer limits allow
/// what that costs; `false` (nothing changed) when they do not.
///
/// A buffer holding part of a large frame grows by doubling (at most twice
/// what arrived): room is made as bytes arrive, not on the promise of a
/// header (a 16 MiB header followed by a trickle costs what arrived). A
/// buffer with no frame started may always take a small read: small
/// requests are never held up by others filling the buffers.
pub(super) fn grow(
    buffer: &mut BytesMut,
    chunk: usize,
    account: &Account,
    counted: &mut usize,
) -> bool {
    let len = buffer.len();
    let target = match frame_total(buffer) {
        Some(total) if total > len => (len + chunk).max((2 * len).min(total)),
        _ => len + chunk,
    };
    // What the buffer may hold afterwards: `reserve` may double it (and
    // then the extra is released below). Not an exact allocation and a
    // copy: `reserve` reallocates in place where it can, which matters
    // for frames of megabytes (measured: a third of the `large`
    // benchmark's throughput).
    let bound = (2 * buffer.capacity()).max(target);
    let needed = counted_bytes(bound).saturating_sub(*counted);
    if needed > 0 && !account.try_reserve(needed) {
        if !buffer.is_empty() {
            return false;
        }
        *buffer = BytesMut::with_capacity(SMALL_READ.min(FREE_READ_BYTES));
        settle(account, counted, buffer);
        return true;
    }
    *counted += needed;
    buffer.reserve(target - len);
    settle(account, counted, buffer);
    true
}
