//! The reader task: reads requests into the connection's buffer, then
//! decodes and applies every whole frame under one lock, up to the outbox's
//! high-water mark; a frame must complete within the frame timeout.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::BytesMut;
use mailbox_proto::{decode_client_frame, BrokerError, ErrorKind, ServerFrame, Welcome};
use tokio::io::Interest;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::watch;

use super::handshake::accept_hello;
use super::incoming;
use super::read_buffer::{frame_total, grow, settle, READ_CHUNK, SMALL_READ};
use super::{closed, goodbye, CloseReason};
use crate::core::ConnectionId;
use crate::server::buffers::Account;
use crate::server::outbox::Outbox;
use crate::server::{clock, Shared};

pub(super) async fn read_loop(
    shared: &Shared,
    id: ConnectionId,
    mut reader: OwnedReadHalf,
    outbox: &Arc<Outbox>,
    account: &Account,
    stop: &watch::Receiver<bool>,
) -> CloseReason {
    let config = &shared.config;
    let mut buffer = BytesMut::with_capacity(256);
    let protocol_version = match accept_hello(&mut reader, &mut buffer, config, stop).await {
        Ok(version) => version,
        Err(reason) => return goodbye(outbox, reason),
    };
    outbox.push(ServerFrame::Welcome(Welcome {
        protocol_version,
        broker_version: env!("CARGO_PKG_VERSION").to_owned(),
        connection_id: id.0,
        max_frame_len: config.max_frame_size,
    }));

    let mut busy = false;
    // Read buffer bytes counted in the connection's account.
    let mut counted = 0;
    // When the frame at the front of the buffer started to arrive.
    let mut frame_started: Option<Instant> = None;
    // Descriptors that came with the bytes and no frame has taken yet.
    let mut descriptors: VecDeque<OwnedFd> = VecDeque::new();
    loop {
        let before = buffer.len();
        match apply_buffered(
            shared,
            (id, account.uid()),
            &mut buffer,
            &mut descriptors,
            outbox,
            &reader,
        ) {
            Applied::All => {
                if buffer.is_empty() && !descriptors.is_empty() {
                    // Every byte received is decoded: these came with no
                    // frame that claims them.
                    descriptors.clear();
                }
            }
            Applied::HeldBack => {
                // Decided from what `apply_buffered` saw, not from the
                // outbox now: with several runtime threads the writer may
                // have drained it meanwhile, and the frames left in the
                // buffer must still be applied before reading again.
                // Returns at once when already below; also ends when the
                // outbox closes (the broker stopping too).
                outbox.wait_below(config.outbox_high_water).await;
                if outbox.is_closed() {
                    return closed(outbox);
                }
                // Not reading was the broker's doing: the next frame's
                // time starts now.
                frame_started = None;
                continue;
            }
            Applied::Violation(error) => {
                // The requests before the bad frame were applied; the
                // stream is out of step after it, so nothing more can be
                // read.
                return goodbye(outbox, CloseReason::ProtocolViolation(error));
            }
        }
        if outbox.is_closed() {
            return closed(outbox);
        }
        if buffer.len() != before {
            // A frame completed: the next one (if started) has its own time.
            frame_started = None;
        }
        if buffer.is_empty() {
            // An idle connection (say, one blocked in a receive) holds no
            // buffer while it waits: thousands of them cost little.
            buffer = BytesMut::new();
            settle(account, &mut counted, &buffer);
            // Only two things to watch, the socket and the outbox (it
            // closes for the broker's shutdown too): this wait is what
            // every idle connection holds, thousands of times over.
            tokio::select! {
                ready = reader.readable() => if let Err(error) = ready {
                    return CloseReason::Io(error);
                },
                // Cut off for not reading while it waits here (its posted
                // receives were answered by others' sends), the writer
                // stopped, or the broker is stopping.
                () = outbox.closed() => return closed(outbox),
            }
        } else {
            settle(account, &mut counted, &buffer);
        }
        let deadline = if buffer.is_empty() {
            None
        } else {
            let started = *frame_started.get_or_insert_with(Instant::now);
            Some(tokio::time::Instant::from_std(
                started + config.buffers.frame_timeout,
            ))
        };
        // Small reads for small traffic, large ones once a read fills the
        // buffer: a big buffer per request would fragment the heap between
        // thousands of mostly idle connections.
        let chunk = if busy { READ_CHUNK } else { SMALL_READ };
        if buffer.capacity() - buffer.len() < chunk / 4 {
            let grown = grow(&mut buffer, chunk, account, &mut counted);
            // Without room to grow, a read still fits in what the buffer
            // has left; only a full buffer waits.
            if !grown && buffer.capacity() == buffer.len() {
                // The buffer limits are reached: read nothing more (and
                // hold nothing more) until others release some, this
                // frame's time runs out, or the connection closes.
                tokio::select! {
                    () = account.buffers().room_released() => {}
                    () = sleep_until(deadline) => {
                        return goodbye(
                            outbox,
                            frame_too_slow(config, (frame_total(&buffer), buffer.len())),
                        );
                    }
                    () = outbox.closed() => return closed(outbox),
                }
                continue;
            }
        }
        // Most reads find data (the readiness wait above saw it): poll the
        // read once, and only wait, watching for the close, when there is
        // none. Setting up the watch costs a registration per read,
        // measured on rtt. Polling `read_buf` rather than `try_read_buf`:
        // a read that does not fill the buffer then clears the socket's
        // readiness (tokio's `poll_read` does, safely against a wake-up in
        // between), so the next wait sleeps at once instead of costing a
        // read that finds nothing: one system call fewer per request on a
        // conversation (measured: 3 to 2 reads per rendezvous message).
        let read = {
            // What a goodbye for a slow frame says, taken before the read
            // borrows the buffer (nothing arrives while the read waits).
            let arrived = (frame_total(&buffer), buffer.len());
            let mut read = std::pin::pin!(read_some(&reader, &mut buffer, &mut descriptors));
            match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
                Poll::Ready(read) => read,
                Poll::Pending => tokio::select! {
                    read = read => read,
                    () = outbox.closed() => return closed(outbox),
                    () = sleep_until(deadline) => {
                        return goodbye(outbox, frame_too_slow(config, arrived));
                    }
                },
            }
        };
        match read {
            Ok(0) => return CloseReason::ClientClosed,
            Ok(_) => busy = buffer.capacity() == buffer.len(),
            Err(error) => return CloseReason::Io(error),
        }
    }
}

/// Reads once, with the descriptors that come along ([`incoming::receive`]).
///
/// A read that does not fill the buffer clears the socket's readiness, as
/// tokio's own `poll_read` does (the closure answers `WouldBlock` after
/// keeping its count): `try_io` then clears exactly the readiness it saw
/// before the read, so a wake-up in between is not lost, and the next
/// wait sleeps at once instead of costing a read that finds nothing.
/// Except after descriptors: the kernel ends such a read early, with
/// more bytes possibly waiting (and no new wake-up coming for them).
async fn read_some(
    reader: &OwnedReadHalf,
    buffer: &mut BytesMut,
    descriptors: &mut VecDeque<OwnedFd>,
) -> io::Result<usize> {
    // `poll_read_ready`, not `readable().await`: the latter builds a waiter
    // future per read, about 300 instructions more a request on rtt (the
    // reader is the only task reading this socket, so the one waker slot
    // `poll_read_ready` keeps is enough).
    std::future::poll_fn(|cx| loop {
        std::task::ready!(reader.as_ref().poll_read_ready(cx))?;
        let mut short = None;
        let read = reader.as_ref().try_io(Interest::READABLE, || {
            let room = buffer.capacity() - buffer.len();
            loop {
                match incoming::receive(reader.as_ref(), buffer, descriptors) {
                    // A read that brought descriptors may have stopped
                    // short with more waiting: readiness stays.
                    Ok(read) if read.bytes > 0 && read.bytes < room && !read.control => {
                        short = Some(read.bytes);
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    Ok(read) => return Ok(read.bytes),
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(error),
                }
            }
        });
        match read {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if let Some(read) = short {
                    return Poll::Ready(Ok(read));
                }
            }
            other => return Poll::Ready(other),
        }
    })
    .await
}

/// Sleeps until `deadline`, or forever without one.
///
/// The timer is boxed, and only made when there is a deadline: the reader's
/// future is as large as its largest wait, and every idle connection holds
/// one, so a timer entry inline cost about 0.5 KiB per connection (conns:
/// 31.7 -> 36.8 MiB for 10,000 waiting clients).
fn sleep_until(deadline: Option<tokio::time::Instant>) -> impl Future<Output = ()> {
    let sleep = deadline.map(|deadline| Box::pin(tokio::time::sleep_until(deadline)));
    async move {
        match sleep {
            Some(sleep) => sleep.await,
            None => std::future::pending().await,
        }
    }
}

/// Why a frame that did not complete in time closes its connection.
/// `arrived`: the frame's whole length if its header is there, and the
/// bytes of it that arrived.
fn frame_too_slow(config: &crate::server::Config, arrived: (Option<usize>, usize)) -> CloseReason {
    let promised = arrived
        .0
        .map_or_else(|| "its length".to_owned(), |total| format!("{total} bytes"));
    CloseReason::ProtocolViolation(BrokerError::new(
        ErrorKind::ProtocolViolation,
        format!(
            "a frame did not complete within {:?} of its first bytes (limits.frame_timeout): \
             {} of its {promised} arrived",
            config.buffers.frame_timeout, arrived.1
        ),
    ))
}

/// How far [`apply_buffered`] got.
enum Applied {
    /// Every whole frame in the buffer (what is left is part of one).
    All,
    /// It stopped at the outbox's high-water mark; whole frames may be left.
    HeldBack,
    /// It stopped at an undecodable frame.
    Violation(BrokerError),
}

/// Decodes and applies the whole frames in `buffer`, under one lock, frame
/// by frame: one read can hold thousands of small requests with large
/// answers (a list of every mailbox, say), so it stops at the outbox's
/// high-water mark, not after the whole read; the rest stays in the buffer
/// until the client has read its replies.
///
/// Decoding happens under the lock too (taken at the first whole frame):
/// with the default single runtime thread nobody waits for it, and it
/// saves a queue of decoded frames per connection. With `--threads N`,
/// frames are small next to the work of applying them.
fn apply_buffered(
    shared: &Shared,
    (id, uid): (ConnectionId, u32),
    buffer: &mut BytesMut,
    descriptors: &mut VecDeque<OwnedFd>,
    outbox: &Outbox,
    socket: &OwnedReadHalf,
) -> Applied {
    let config = &shared.config;
    let mut state = None;
    let mut now = None;
    let mut applied = Applied::HeldBack;
    while outbox.queued_bytes() <= config.outbox_high_water {
        // Cut off (for replies it does not read): what is left in the
        // buffer would be worked out for nobody.
        if outbox.is_closed() {
            applied = Applied::All;
            break;
        }
        // A frame still arriving is left alone: the decoder would reserve
        // room for all of it on the promise of its header.
        if frame_total(buffer).is_some_and(|total| {
            buffer.len() < total && total - 4 <= config.max_frame_size as usize
        }) {
            applied = Applied::All;
            break;
        }
        match decode_client_frame(buffer, config.max_frame_size) {
            Ok(Some(mut frame)) => {
                let now = now.get_or_insert_with(clock);
                let state = state.get_or_insert_with(|| {
                    outbox.hold();
                    shared.lock()
                });
                // A refused descriptor fails this request alone: the
                // frame itself was whole and well formed.
                let files = (&shared.held_files, uid);
                match incoming::attach(&mut frame, descriptors, buffer.is_empty(), files) {
                    Ok(()) => state.apply(id, frame, now),
                    Err(refused) => outbox.push(ServerFrame::Response {
                        id: frame.id,
                        result: Err(refused),
                    }),
                }
            }
            Ok(None) => {
                applied = Applied::All;
                break;
            }
            Err(error) => {
                applied = Applied::Violation(BrokerError::new(
                    ErrorKind::ProtocolViolation,
                    format!("undecodable request: {error}"),
                ));
                break;
            }
        }
    }
    if let Some(mut state) = state {
        if state.timer_needs_wake() {
            shared.timer_wake.notify_one();
        }
        drop(state);
        // The replies to these requests go out now, from here, if the
        // writer is idle: no wake-up of the writer task for them.
        outbox.write_held(|bytes| socket.as_ref().try_write(bytes));
        shared.note_activity();
    }
    applied
}
