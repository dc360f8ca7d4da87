//! One client connection: a reader task that decodes requests and drives the
//! core, and a writer task that drains the connection's outbox.
//!
//! The reader decodes every complete frame in its buffer and applies them all
//! under one lock before it reads again, so a pipelining client costs one
//! lock and one read per batch, not per message. A protocol violation
//! (undecodable frame, oversized length, bad handshake) is answered with a
//! `Goodbye` naming it and closes only this connection.
//!
//! A connection is admitted (or refused) at `accept`, by its peer's
//! credentials, before it says hello: the connection limits count it from
//! then on. Its read buffer grows only as bytes arrive, beyond a small free
//! part only as the buffer limits allow ([`super::buffers`]), and a frame
//! must complete within the frame timeout once it started.

use bytes::BytesMut;
use mailbox_proto::{
    decode_client_frame, decode_frame, encode_server_frame_detached, BrokerError, Detached,
    ErrorKind, Hello, ServerFrame, Welcome, HELLO_MAGIC, PROTOCOL_VERSION,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tracing::{debug, info, info_span, warn, Instrument};

use super::buffers::{Account, FREE_READ_BYTES};
use super::log_limit::Verdict;
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
    /// The client read none of its replies for the write timeout.
    Stalled,
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

/// What to do with a connection just accepted.
pub(crate) enum Admission<S, R> {
    /// Serve it: it is registered and counted.
    Serve(S),
    /// Tell it why it is refused, then close it.
    Refuse(R),
    /// Close it without a word (the broker is stopping, or too many
    /// refusals are under way).
    Close,
}

/// Refused connections being told why at once; past this many, further
/// ones are closed without a word, so that a flood of them costs no more
/// than this many descriptors for a moment.
const MAX_REFUSING: usize = 64;

/// How long a refused connection has to send its hello and read the
/// goodbye before it is closed.
const REFUSAL_TIME: Duration = Duration::from_millis(500);

/// Admits a connection just accepted, by its peer's credentials: within the
/// connection limits it is registered (counted from now, before its hello)
/// and served until it closes or the broker stops; otherwise it is told why
/// in a `Goodbye` and closed.
///
/// The futures are not `async fn`s': the one serving is what every
/// connected client costs while it waits, and an outer async wrapper would
/// keep second copies of its arguments.
pub(crate) fn admit(
    shared: &Arc<Shared>,
    id: ConnectionId,
    stream: UnixStream,
    stop: &watch::Receiver<bool>,
) -> Admission<impl Future<Output = ()>, impl Future<Output = ()>> {
    let peer = peer_of(&stream);
    let groups = peer_groups(std::os::fd::AsRawFd::as_raw_fd(&stream));
    let (outbox, account) = {
        let mut state = shared.lock();
        if *stop.borrow() {
            return Admission::Close;
        }
        if let Err(refused) = state.core.may_connect_with_groups(&peer, &groups) {
            let verdict = state.refusals.line(Instant::now());
            drop(state);
            log_refusal(&peer, &refused, verdict);
            let Some(slot) = RefusalSlot::take(shared) else {
                return Admission::Close;
            };
            return Admission::Refuse(refuse(stream, refused, slot));
        }
        let account = Arc::new(shared.buffers.open(peer.uid));
        let outbox = Arc::new(Outbox::with_account(
            shared.config.max_unread_reply_bytes(),
            account.clone(),
        ));
        state.core.connect_with_groups(id, peer, groups);
        state.outboxes.insert(id, outbox.clone());
        (outbox, account)
    };
    let span = info_span!("connection", id = id.0, pid = peer.pid, uid = peer.uid);
    Admission::Serve(
        serve_connected(shared.clone(), id, stream, outbox, account, stop.clone()).instrument(span),
    )
}

fn log_refusal(peer: &Peer, refused: &BrokerError, verdict: Verdict) {
    match verdict {
        Verdict::Suppress => return,
        Verdict::WriteAfterSummary(suppressed) => warn!(
            suppressed,
            "{suppressed} more connections were refused (not logged: at most {} lines every {:?})",
            super::log_limit::LINES_PER_INTERVAL,
            super::log_limit::INTERVAL
        ),
        Verdict::Write => {}
    }
    warn!(pid = peer.pid, uid = peer.uid, error = %refused, "connection refused");
}

/// One of the [`MAX_REFUSING`] refusals under way.
struct RefusalSlot(Arc<Shared>);

impl RefusalSlot {
    fn take(shared: &Arc<Shared>) -> Option<Self> {
        let under_way = shared.refusing.fetch_add(1, Ordering::Relaxed);
        if under_way >= MAX_REFUSING {
            shared.refusing.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Self(shared.clone()))
    }
}

impl Drop for RefusalSlot {
    fn drop(&mut self) {
        self.0.refusing.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Tells a refused connection why. Its hello is read first (clients send it
/// at once): closing a socket with unread data in it makes the client see
/// a reset instead of the goodbye.
async fn refuse(mut stream: UnixStream, refused: BrokerError, _slot: RefusalSlot) {
    let mut hello = BytesMut::with_capacity(256);
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        while frame_total(&hello).is_none_or(|total| hello.len() < total.min(4096)) {
            match stream.read_buf(&mut hello).await {
                Ok(0) | Err(_) => break,
                Ok(_) if hello.len() >= 4096 => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    let mut goodbye = Vec::with_capacity(256);
    if mailbox_proto::encode_server_frame(&ServerFrame::Goodbye(refused), &mut goodbye, u32::MAX)
        .is_ok()
    {
        let _ = tokio::time::timeout(REFUSAL_TIME, stream.write_all(&goodbye)).await;
    }
    let _ = stream.shutdown().await;
}

async fn serve_connected(
    shared: Arc<Shared>,
    id: ConnectionId,
    stream: UnixStream,
    outbox: Arc<Outbox>,
    account: Arc<Account>,
    stop: watch::Receiver<bool>,
) {
    let (reader, writer) = stream.into_split();
    let write_timeout = shared.config.buffers.write_timeout;
    let mut writer_task = tokio::spawn(write_loop(writer, outbox.clone(), write_timeout));
    let reason = read_loop(&shared, id, reader, &outbox, &account, &stop).await;
    match &reason {
        CloseReason::ClientClosed => debug!("client closed the connection"),
        CloseReason::Shutdown => debug!("closed for shutdown"),
        CloseReason::ProtocolViolation(error) => warn!(%error, "closing: protocol violation"),
        CloseReason::Io(error) => info!(%error, "closing: read failed"),
        CloseReason::WriterStopped => info!("closing: writing to the client failed"),
        CloseReason::Overflowed => warn!(
            limit = shared.config.max_unread_reply_bytes(),
            "closing: the client does not read its replies"
        ),
        CloseReason::Stalled => warn!(
            timeout = ?write_timeout,
            "closing: the client read none of its replies within limits.write_timeout"
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
        state.forget_log_counts(id);
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
    mut reader: OwnedReadHalf,
    outbox: &Arc<Outbox>,
    account: &Account,
    stop: &watch::Receiver<bool>,
) -> CloseReason {
    let config = &shared.config;
    let mut buffer = BytesMut::with_capacity(256);
    if let Err(reason) = accept_hello(&mut reader, &mut buffer, config, stop).await {
        return goodbye(outbox, reason);
    }
    outbox.push(ServerFrame::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        broker_version: env!("CARGO_PKG_VERSION").to_owned(),
        connection_id: id.0,
        max_frame_len: config.max_frame_size,
    }));

    let mut busy = false;
    // Read buffer bytes counted in the connection's account.
    let mut counted = 0;
    // When the frame at the front of the buffer started to arrive.
    let mut frame_started: Option<Instant> = None;
    loop {
        let before = buffer.len();
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
                        return goodbye(outbox, frame_too_slow(config, &buffer));
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
            let mut read = std::pin::pin!(reader.read_buf(&mut buffer));
            match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
                Poll::Ready(read) => read,
                Poll::Pending => tokio::select! {
                    read = read => read,
                    () = outbox.closed() => return closed(outbox),
                    () = sleep_until(deadline) => {
                        return goodbye(outbox, frame_too_slow(config, &buffer));
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
fn frame_too_slow(config: &super::Config, buffer: &BytesMut) -> CloseReason {
    let promised = frame_total(buffer)
        .map_or_else(|| "its length".to_owned(), |total| format!("{total} bytes"));
    CloseReason::ProtocolViolation(BrokerError::new(
        ErrorKind::ProtocolViolation,
        format!(
            "a frame did not complete within {:?} of its first bytes (limits.frame_timeout): \
             {} of its {promised} arrived",
            config.buffers.frame_timeout,
            buffer.len()
        ),
    ))
}

/// The whole length (header included) of the frame at the front of
/// `buffer`, once its header is there.
fn frame_total(buffer: &BytesMut) -> Option<usize> {
    let header: [u8; 4] = buffer.get(..4)?.try_into().ok()?;
    Some(4 + u32::from_le_bytes(header) as usize)
}

/// The part of a read buffer of `capacity` bytes that counts against the
/// buffer limits.
fn counted_bytes(capacity: usize) -> usize {
    capacity.saturating_sub(FREE_READ_BYTES)
}

/// Brings the account to what the buffer holds now (it shrinks as frames
/// are split off it).
fn settle(account: &Account, counted: &mut usize, buffer: &BytesMut) {
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
fn grow(buffer: &mut BytesMut, chunk: usize, account: &Account, counted: &mut usize) -> bool {
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
    } else if outbox.stalled() {
        CloseReason::Stalled
    } else {
        // The writer stopped: the client is gone or stopped reading.
        CloseReason::WriterStopped
    }
}

/// Queues a goodbye saying why the connection closes, and passes the reason on.
fn goodbye(outbox: &Outbox, reason: CloseReason) -> CloseReason {
    let error = match &reason {
        CloseReason::ProtocolViolation(error) => Some(error.clone()),
        CloseReason::Shutdown => Some(BrokerError::new(
            ErrorKind::BrokerShuttingDown,
            "the broker is stopping",
        )),
        CloseReason::ClientClosed
        | CloseReason::Io(_)
        | CloseReason::WriterStopped
        | CloseReason::Overflowed
        | CloseReason::Stalled => None,
    };
    if let Some(error) = error {
        outbox.say_goodbye(error);
    }
    reason
}

/// Payloads at least this large are written from where they are, not
/// copied into the write buffer.
const DETACH_PAYLOADS_FROM: usize = 16 * 1024;

/// Writes what the outbox holds until it closes. A write that makes no
/// progress for `timeout` (the client reads nothing) stalls the outbox:
/// the connection is cut and what it held is released.
async fn write_loop(mut writer: OwnedWriteHalf, outbox: Arc<Outbox>, timeout: Duration) {
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
        // Most batches go out whole in one write at once. Only a batch the
        // socket cannot take at once waits, in a boxed future: this
        // future is as large as its largest wait and every idle connection
        // holds one, so the waiting writes inline cost 144 bytes a
        // connection (and large payloads are rare next to their copying).
        let written = if detached.pieces.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::buffers::Buffers;
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
}
