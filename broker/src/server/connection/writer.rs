//! The writer task: drains the connection's outbox into the socket, large
//! payloads written from where they are (vectored writes), each write
//! within the write timeout. A batch whose frames carry file descriptors
//! sends them as `SCM_RIGHTS` ancillary data of its first write
//! (`sendmsg`), before any byte of those frames arrives (see
//! "Descriptors" in `PROTOCOL.md`).

use std::future::Future;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use mailbox_proto::{encode_server_frame, encode_server_frame_detached, Detached};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use tokio::io::{AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::unix::OwnedWriteHalf;
use tracing::{debug, warn};

use super::read_buffer::READ_CHUNK;
use crate::server::outbox::{Batch, Outbox};

/// Payloads at least this large are written from where they are, not
/// copied into the write buffer.
const DETACH_PAYLOADS_FROM: usize = 16 * 1024;

/// The most descriptors one `sendmsg` carries (the kernel's `SCM_MAX_FD`
/// is 253; the clients' receive buffers take this many at once).
pub(crate) const MAX_DESCRIPTORS_PER_WRITE: usize = 64;

/// Writes what the outbox holds until it closes. A write that makes no
/// progress for `timeout` (the client reads nothing) stalls the outbox:
/// the connection is cut and what it held is released.
pub(super) async fn write_loop(mut writer: OwnedWriteHalf, outbox: Arc<Outbox>, timeout: Duration) {
    let mut detached = Detached::new(DETACH_PAYLOADS_FROM);
    loop {
        let mut descriptors = Vec::new();
        let mut buffer: Vec<u8> = match outbox.take().await {
            // Rare (region opens): the batch is written plainly, its
            // descriptors with its first bytes.
            Batch::Frames(frames, bytes, carried) if !carried.is_empty() => {
                descriptors = carried;
                let mut buffer = Vec::with_capacity(bytes.min(4 * READ_CHUNK));
                for frame in &frames {
                    if let Err(error) = encode_server_frame(frame, &mut buffer, u32::MAX) {
                        warn!(%error, "dropping unencodable frame");
                    }
                }
                buffer
            }
            Batch::Frames(frames, bytes, _) => {
                let mut buffer = Vec::with_capacity(bytes.min(4 * READ_CHUNK));
                for frame in &frames {
                    // Only a reply larger than the frame limit can fail here,
                    // and the core never builds one; drop it loudly rather
                    // than wedge.
                    if let Err(error) =
                        encode_server_frame_detached(frame, &mut buffer, &mut detached, u32::MAX)
                    {
                        warn!(%error, "dropping unencodable frame");
                    }
                }
                buffer
            }
            Batch::Encoded(buffer) => buffer,
            Batch::Closed => break,
        };
        // Most batches go out whole in one write at once. Only a batch the
        // socket cannot take at once waits, in a boxed future: this
        // future is as large as its largest wait and every idle connection
        // holds one, so the waiting writes inline cost 144 bytes a
        // connection (and large payloads are rare next to their copying).
        let written = if !descriptors.is_empty() {
            Box::pin(write_with_descriptors(
                &mut writer,
                &buffer,
                &descriptors,
                timeout,
            ))
            .await
        } else if detached.pieces.is_empty() {
            match writer.try_write(&buffer) {
                Ok(sent) if sent == buffer.len() => Ok(()),
                Ok(sent) => Box::pin(write_all(&mut writer, &buffer[sent..], timeout)).await,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    Box::pin(write_all(&mut writer, &buffer, timeout)).await
                }
                Err(error) => Err(error),
            }
        } else {
            Box::pin(write_pieces(&mut writer, &buffer, &detached, timeout)).await
        };
        detached.pieces.clear();
        // Sent (the client has its own copies) or not: either way the
        // broker's references go now.
        drop(descriptors);
        match written {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                outbox.stall();
                break;
            }
            Err(error) => {
                debug!(%error, "write failed; the client is gone");
                break;
            }
        }
        // Give the buffer back: an idle connection should cost next to
        // nothing, and the next batch reserves what it needs in one go.
        buffer.clear();
        drop(buffer);
    }
    // Whatever is still queued has nobody to go to; closing also releases a
    // reader paused on backpressure.
    outbox.close();
    let _ = writer.shutdown().await;
}

/// Writes `buffer` with each detached payload at its offset, in as few
/// vectored writes as the socket takes.
async fn write_pieces(
    writer: &mut OwnedWriteHalf,
    buffer: &[u8],
    detached: &Detached,
    timeout: Duration,
) -> std::io::Result<()> {
    let mut segments = detached.interleave(buffer);
    while !segments.is_done() {
        let slices = segments.io_slices();
        let written = progress(timeout, |cx| {
            Pin::new(&mut *writer).poll_write_vectored(cx, &slices)
        })
        .await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        segments.advance(written);
    }
    Ok(())
}

/// Writes all of `buffer`, `descriptors` going as ancillary data with its
/// first bytes (in chunks of [`MAX_DESCRIPTORS_PER_WRITE`], each with at
/// least one byte: a frame that carries a descriptor is far longer than
/// one byte per descriptor), then the rest as [`write_all`] does.
async fn write_with_descriptors(
    writer: &mut OwnedWriteHalf,
    buffer: &[u8],
    descriptors: &[std::sync::Arc<OwnedFd>],
    timeout: Duration,
) -> std::io::Result<()> {
    let mut offset = 0;
    for chunk in descriptors.chunks(MAX_DESCRIPTORS_PER_WRITE) {
        let borrowed: Vec<BorrowedFd<'_>> = chunk.iter().map(|fd| fd.as_fd()).collect();
        // A chunk other than the last goes with one byte, so that the next
        // chunk still has bytes to go with.
        let end = if chunk.len() < MAX_DESCRIPTORS_PER_WRITE || offset + 1 >= buffer.len() {
            buffer.len()
        } else {
            offset + 1
        };
        let bytes = &buffer[offset..end];
        let stream = writer.as_ref();
        let written = progress(timeout, |cx| loop {
            match stream.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
            match stream.try_io(Interest::WRITABLE, || {
                send_with_descriptors(stream, bytes, &borrowed)
            }) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        })
        .await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        offset += written;
    }
    if offset < buffer.len() {
        write_all(writer, &buffer[offset..], timeout).await?;
    }
    Ok(())
}

/// One `sendmsg` of `bytes` with `descriptors` as `SCM_RIGHTS`.
///
/// Not bounded yet: the kernel charges descriptors in flight (sent, not yet
/// received) to the sending user, up to its `RLIMIT_NOFILE` unless it has
/// `CAP_SYS_ADMIN` or `CAP_SYS_RESOURCE` (a broker running as root does),
/// and past that `sendmsg` fails with `ETOOMANYREFS`, which cuts the
/// connection it was for. A client that opens many regions and never reads
/// its answers keeps up to a socket buffer of them in flight per connection,
/// even after the broker closes it. A per-uid quota of descriptors sent and
/// not yet read (`SIOCOUTQ`), as dbus-broker keeps, is the next piece's to
/// add with descriptors in messages.
fn send_with_descriptors(
    socket: impl AsFd,
    bytes: &[u8],
    descriptors: &[BorrowedFd<'_>],
) -> std::io::Result<usize> {
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_DESCRIPTORS_PER_WRITE))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(descriptors)) {
        return Err(std::io::Error::other("too many descriptors for one write"));
    }
    // MSG_NOSIGNAL: a client gone is an error here, not a SIGPIPE.
    Ok(rustix::net::sendmsg(
        socket,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
    )?)
}

/// Writes all of `buffer`, each write within `timeout`.
async fn write_all(
    writer: &mut OwnedWriteHalf,
    mut buffer: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    while !buffer.is_empty() {
        let written = progress(timeout, |cx| Pin::new(&mut *writer).poll_write(cx, buffer)).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buffer = &buffer[written..];
    }
    Ok(())
}

/// One write, failing with `TimedOut` when it makes no progress within
/// `timeout`. Most writes complete at once; the timer is made (boxed) only
/// for a write that has to wait. Written as a poll function over the
/// socket rather than around tokio's write futures and `timeout`: the
/// writer's future is as large as its largest wait and every idle
/// connection holds one (those wrappers cost 144 bytes a connection).
async fn progress(
    timeout: Duration,
    mut write: impl FnMut(&mut Context<'_>) -> Poll<std::io::Result<usize>>,
) -> std::io::Result<usize> {
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = write(cx) {
            return Poll::Ready(result);
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
