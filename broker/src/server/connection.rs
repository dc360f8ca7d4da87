//! One client connection: a reader task that decodes requests and drives the
//! core, and a writer task that drains the connection's outbox.
//!
//! The reader decodes every complete frame in its buffer and applies them all
//! under one lock before it reads again, so a pipelining client costs one
//! lock and one read per batch, not per message. A protocol violation
//! (undecodable frame, oversized length, bad handshake) is answered with a
//! `Goodbye` naming it and closes only this connection.

use bytes::BytesMut;
use mailbox_proto::{
    decode_client_frame, decode_frame, encode_server_frame_detached, BrokerError, Detached,
    ErrorKind, Hello, ServerFrame, Welcome, HELLO_MAGIC, PROTOCOL_VERSION,
};
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tracing::{debug, info, info_span, warn, Instrument};

use super::outbox::{Batch, Outbox};
use super::{clock, Shared};
use crate::core::{ConnectionId, Outcome, Peer};

/// What a busy reader asks of the socket per read, at least.
const READ_CHUNK: usize = 64 * 1024;

/// What a reader asks for while its reads do not fill the buffer.
const SMALL_READ: usize = 4 * 1024;

/// Why a connection's reader stopped.
#[derive(Debug)]
enum CloseReason {
    /// The client closed its end.
    ClientClosed,
    /// The broker is stopping.
    Shutdown,
    /// The client broke the protocol; it was told why.
    ProtocolViolation(BrokerError),
    /// Reading failed.
    Io(std::io::Error),
    /// Writing failed, so nothing more can be answered.
    WriterStopped,
    /// Replies went past the outbox's limit unread; it was told so.
    Overflowed,
    /// A connection limit refused it; it was told which.
    Refused(BrokerError),
}

fn peer_of(stream: &UnixStream) -> Peer {
    match stream.peer_cred() {
        Ok(cred) => Peer {
            pid: cred.pid().map_or(0, |pid| pid as u32),
            uid: cred.uid(),
            gid: cred.gid(),
        },
        Err(_) => Peer::default(),
    }
}

/// The peer's supplementary groups, from the socket (`SO_PEERGROUPS`), for
/// group rights on mailboxes; empty when the kernel cannot say.
fn peer_groups(fd: std::os::fd::RawFd) -> Vec<u32> {
    let mut groups = vec![0 as libc::gid_t; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the buffer is `len` bytes long and lives across the call.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(count);
            // Kept for the connection's life: no spare capacity.
            groups.shrink_to_fit();
            return groups;
        }
        // ERANGE: `len` says how much room the list needs.
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE)
            && count > groups.len()
            && count <= 65_536
        {
            groups.resize(count, 0);
            continue;
        }
        return Vec::new();
    }
}

/// Serves one connection until it closes or the broker stops.
///
/// Not an `async fn` itself: the future it returns is what every connected
/// client costs while it waits, and an outer async wrapper would keep
/// second copies of its arguments.
pub(crate) fn serve(
    shared: Arc<Shared>,
    id: ConnectionId,
    stream: UnixStream,
    stop: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> {
    let peer = peer_of(&stream);
    let groups = peer_groups(std::os::fd::AsRawFd::as_raw_fd(&stream));
    let span = info_span!("connection", id = id.0, pid = peer.pid, uid = peer.uid);
    serve_connected(shared, id, stream, (peer, groups), stop).instrument(span)
}

async fn serve_connected(
    shared: Arc<Shared>,
    id: ConnectionId,
    stream: UnixStream,
    credentials: (Peer, Vec<u32>),
    stop: watch::Receiver<bool>,
) {
    let (reader, writer) = stream.into_split();
    let outbox = Arc::new(Outbox::new(shared.config.outbox_limit()));
    let mut writer_task = tokio::spawn(write_loop(writer, outbox.clone()));
    let reason = read_loop(&shared, id, credentials, reader, &outbox, &stop).await;
    match &reason {
        CloseReason::ClientClosed => debug!("client closed the connection"),
        CloseReason::Shutdown => debug!("closed for shutdown"),
        CloseReason::ProtocolViolation(error) => warn!(%error, "closing: protocol violation"),
        CloseReason::Io(error) => info!(%error, "closing: read failed"),
        CloseReason::Refused(error) => warn!(%error, "refused: connection limit"),
        CloseReason::WriterStopped => info!("closing: writing to the client failed"),
        CloseReason::Overflowed => warn!(
            limit = shared.config.outbox_limit(),
            "closing: the client does not read its replies"
        ),
    }
    {
        let mut state = shared.lock();
        let mut out = Outcome::new();
        state.core.disconnect(id, &clock(), &mut out);
        state.outboxes.remove(&id);
        state.route(&mut out);
        // Messages it held may have gone to receivers with an
        // acknowledgement deadline, which the timer must see.
        if state.timer_needs_wake() {
            shared.timer_wake.notify_one();
        }
    }
    outbox.close();
    // The writer flushes what is queued, but a client that never reads
    // could keep it blocked forever: give it the shutdown grace, then
    // drop the socket.
    match tokio::time::timeout(shared.config.shutdown_grace, &mut writer_task).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => warn!(%error, "writer task failed"),
        Err(_) => {
            info!("the client did not read its last replies; closing");
            writer_task.abort();
        }
    }
}

/// Reads the hello within the handshake timeout and checks it.
///
/// A broker that starts stopping meanwhile ends it at once (with a goodbye
/// saying so) rather than wait out the handshake timeout.
async fn accept_hello(
    reader: &mut OwnedReadHalf,
    buffer: &mut BytesMut,
    config: &super::Config,
    stop: &watch::Receiver<bool>,
) -> Result<(), CloseReason> {
    // The hello is small; a larger limit before it would let anyone who can
    // connect make the broker allocate a full frame for free.
    let hello_limit = 4096;
    let mut stop = stop.clone();
    let read = tokio::select! {
        read = tokio::time::timeout(
            config.handshake_timeout,
            handshake(reader, buffer, hello_limit),
        ) => read,
        _ = stop.wait_for(|stopping| *stopping) => return Err(CloseReason::Shutdown),
    };
    let hello = match read {
        Ok(Ok(hello)) => hello,
        Ok(Err(reason)) => return Err(reason),
        Err(_) => {
            return Err(CloseReason::ProtocolViolation(BrokerError::new(
                ErrorKind::ProtocolViolation,
                format!(
                    "no hello within {:?} of connecting",
                    config.handshake_timeout
                ),
            )))
        }
    };
    if hello.magic != HELLO_MAGIC {
        return Err(CloseReason::ProtocolViolation(BrokerError::new(
            ErrorKind::ProtocolViolation,
            "the first frame is not a mailbox hello (wrong magic)",
        )));
    }
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(CloseReason::ProtocolViolation(BrokerError::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "client speaks protocol version {}, this broker speaks {}; use a matching client",
                hello.protocol_version, PROTOCOL_VERSION
            ),
        )));
    }
    debug!(client = %hello.client_name, "handshake done");
    Ok(())
}

/// Reads the hello; returns the error to send in a goodbye when it is bad.
async fn handshake(
    reader: &mut OwnedReadHalf,
    buffer: &mut BytesMut,
    max_frame_len: u32,
) -> Result<Hello, CloseReason> {
    loop {
        match decode_frame::<Hello>(buffer, max_frame_len) {
            Ok(Some(hello)) => return Ok(hello),
            Ok(None) => {}
            Err(error) => {
                return Err(CloseReason::ProtocolViolation(BrokerError::new(
                    ErrorKind::ProtocolViolation,
                    format!("expected a hello frame: {error}"),
                )))
            }
        }
        match reader.read_buf(buffer).await {
            Ok(0) => return Err(CloseReason::ClientClosed),
            Ok(_) => {}
            Err(error) => return Err(CloseReason::Io(error)),
        }
    }
}

async fn read_loop(
    shared: &Shared,
    id: ConnectionId,
    (peer, groups): (Peer, Vec<u32>),
    mut reader: OwnedReadHalf,
    outbox: &Arc<Outbox>,
    stop: &watch::Receiver<bool>,
) -> CloseReason {
    let config = &shared.config;
    let mut buffer = BytesMut::with_capacity(256);
    if let Err(reason) = accept_hello(&mut reader, &mut buffer, config, stop).await {
        return goodbye(outbox, reason);
    }
    {
        let mut state = shared.lock();
        if *stop.borrow() {
            drop(state);
            return goodbye(outbox, CloseReason::Shutdown);
        }
        if let Err(refused) = state.core.may_connect(&peer) {
            drop(state);
            return goodbye(outbox, CloseReason::Refused(refused));
        }
        state.core.connect_with_groups(id, peer, groups);
        state.outboxes.insert(id, outbox.clone());
    }
    outbox.push(ServerFrame::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        broker_version: env!("CARGO_PKG_VERSION").to_owned(),
        connection_id: id.0,
        max_frame_len: config.max_frame_len,
    }));

    let mut busy = false;
    loop {
        match apply_buffered(shared, id, &mut buffer, outbox) {
            Applied::All => {}
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
        if buffer.is_empty() {
            // An idle connection (say, one blocked in a receive) holds no
            // buffer while it waits: thousands of them cost little.
            buffer = BytesMut::new();
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
        }
        // Small reads for small traffic, large ones once a read fills the
        // buffer: a big buffer per request would fragment the heap between
        // thousands of mostly idle connections.
        let chunk = if busy { READ_CHUNK } else { SMALL_READ };
        if buffer.capacity() - buffer.len() < chunk / 4 {
            buffer.reserve(chunk);
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
            let mut read = std::pin::pin!(reader.read_buf(&mut buffer));
            match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
                Poll::Ready(read) => read,
                Poll::Pending => tokio::select! {
                    read = read => read,
                    () = outbox.closed() => return closed(outbox),
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
    id: ConnectionId,
    buffer: &mut BytesMut,
    outbox: &Outbox,
) -> Applied {
    let config = &shared.config;
    let mut state = None;
    let mut now = None;
    let mut applied = Applied::HeldBack;
    while outbox.queued_bytes() <= config.outbox_high_water {
        match decode_client_frame(buffer, config.max_frame_len) {
            Ok(Some(frame)) => {
                let now = now.get_or_insert_with(clock);
                state
                    .get_or_insert_with(|| shared.lock())
                    .apply(id, frame, now);
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
        shared.note_activity();
    }
    applied
}

/// Why the reader stops when it finds the outbox closed.
fn closed(outbox: &Outbox) -> CloseReason {
    if outbox.stopping() {
        // The outbox queued the goodbye itself.
        CloseReason::Shutdown
    } else if outbox.overflowed() {
        CloseReason::Overflowed
    } else {
        // The writer stopped: the client is gone or stopped reading.
        CloseReason::WriterStopped
    }
}

/// Queues a goodbye saying why the connection closes, and passes the reason on.
fn goodbye(outbox: &Outbox, reason: CloseReason) -> CloseReason {
    let error = match &reason {
        CloseReason::ProtocolViolation(error) | CloseReason::Refused(error) => Some(error.clone()),
        CloseReason::Shutdown => Some(BrokerError::new(
            ErrorKind::BrokerShuttingDown,
            "the broker is stopping",
        )),
        CloseReason::ClientClosed
        | CloseReason::Io(_)
        | CloseReason::WriterStopped
        | CloseReason::Overflowed => None,
    };
    if let Some(error) = error {
        outbox.say_goodbye(error);
    }
    reason
}

/// Payloads at least this large are written from where they are, not
/// copied into the write buffer.
const DETACH_PAYLOADS_FROM: usize = 16 * 1024;

async fn write_loop(mut writer: OwnedWriteHalf, outbox: Arc<Outbox>) {
    let mut detached = Detached::new(DETACH_PAYLOADS_FROM);
    loop {
        let mut buffer: Vec<u8> = match outbox.take().await {
            Batch::Frames(frames, bytes) => {
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
            Batch::Closed => break,
        };
        let written = if detached.pieces.is_empty() {
            writer.write_all(&buffer).await
        } else {
            write_pieces(&mut writer, &buffer, &detached).await
        };
        detached.pieces.clear();
        if let Err(error) = written {
            debug!(%error, "write failed; the client is gone");
            break;
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
) -> std::io::Result<()> {
    let mut segments = detached.interleave(buffer);
    while !segments.is_done() {
        let written = writer.write_vectored(&segments.io_slices()).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        segments.advance(written);
    }
    Ok(())
}
