//! A connection's queue of frames waiting to be written to its socket.
//!
//! Replies are decided under the core's lock by whichever task handled the
//! request, often not the connection's own. They are pushed here without any
//! I/O; the connection's writer task takes everything queued at once and
//! writes it with one system call, so frames that become ready together
//! leave together.
//!
//! Two bounds keep a client that does not read from making the broker hold
//! its replies without end. Its own requests: the reader stops applying
//! them while more than the high-water mark is queued (`wait_below`,
//! `queued_bytes`). Replies to its *waiting* requests, decided by other
//! connections' traffic (a message for each of thousands of posted
//! receives: the core releases a message from its budget when it hands it
//! over, so nothing else limits them): past the outbox's hard limit the
//! connection is cut off (`push`). What every outbox holds also counts
//! against the broker-wide and per-uid limits of [`super::buffers`]: a reply
//! past them cuts the connection off too, unless it is the only one it has
//! (within the limits' overdraft).
//!
//! The replies a connection's reader decides for its own requests, it may
//! write itself ([`Outbox::hold`], [`Outbox::write_held`]): when the writer
//! holds nothing and they are small, they go out with one non-blocking
//! write at the end of the reader's batch, without waking the writer task
//! (a task poll and the outbox's hand-over per request). What the socket
//! does not take at once goes to the writer before anything queued after
//! it, and the writer's write timeout applies to it as to any batch.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use mailbox_proto::{encode_server_frame, BrokerError, ErrorKind, Message, Response, ServerFrame};
use tokio::sync::Notify;

use super::buffers::Account;

/// Queued replies the reader writes itself at most this large (approximate
/// size): below the writer's threshold for writing payloads from where they
/// are, so a direct write copies what the writer would have copied too.
const DIRECT_MAX: usize = 16 * 1024;

/// What a descriptor queued with a frame counts as, in bytes, against the
/// outbox's bounds and the buffer limits: each is one of the broker's open
/// files until the writer sends it (and the last reference to a delivered
/// message's file), so the byte bounds that hold a client that does not
/// read bound its descriptors too. With the defaults a connection pauses
/// its own requests past 128 queued (`outbox_high_water`, 8 MiB), is cut
/// past 1,024 (`max_unread_reply_bytes`, 64 MiB), and one uid's
/// connections hold at most 1,280 (`max_buffered_bytes_per_uid` and its
/// overdraft), all of them 5,120 (`max_buffered_bytes`).
pub(crate) const DESCRIPTOR_WEIGHT: usize = 64 * 1024;

/// Frames queued for one connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Bytes queued and being written past which the connection is cut off.
    limit: usize,
    /// `State::bytes`, readable without the lock: the reader checks it
    /// after every request it applies.
    queued: AtomicUsize,
    /// `State::closed`, readable without the lock: the reader checks it
    /// before every request it applies.
    closed: AtomicBool,
    /// The reader is applying requests and writes what they queue itself
    /// ([`Outbox::write_held`]): [`Outbox::push`] leaves the writer asleep
    /// meanwhile. Set and cleared by the reader only; read under the lock.
    held: AtomicBool,
    /// Wakes the writer when frames arrive or the outbox closes.
    ready: Notify,
    /// Wakes a reader that paused because too much was queued.
    drained: Notify,
    /// Where its queued and written bytes count (none in unit tests).
    account: Option<Arc<Account>>,
}

#[derive(Debug, Default)]
struct State {
    frames: Vec<ServerFrame>,
    /// The descriptors `frames` carry (each frame's
    /// [`ServerFrame::descriptor_count`]), in the order of the frames.
    /// Shared with whoever else holds them (a region's memory file stays
    /// the broker's); dropped once sent, or with the frames.
    descriptors: Vec<Arc<OwnedFd>>,
    /// Approximate encoded size of `frames`, for backpressure.
    bytes: usize,
    /// Approximate size of the batch the writer took and is writing (or of
    /// `rest`, which it will write next).
    writing: usize,
    /// The end of a batch the reader wrote itself and the socket did not
    /// take: the writer writes it before any frame queued after it.
    rest: Option<Vec<u8>>,
    /// A frame was queued while the reader held the outbox, and the writer
    /// was not woken for it: [`Outbox::write_held`] owes it a wake-up
    /// unless it writes the frame itself.
    wake_owed: bool,
    /// No more frames will come: the writer flushes what is left and stops.
    closed: bool,
    /// Closed because replies went past the limit unread.
    overflowed: bool,
    /// Closed because the broker is stopping.
    stopping: bool,
    /// Closed because the client read nothing for the write timeout.
    stalled: bool,
    /// The task waiting in [`Outbox::closed`] (the connection's reader),
    /// woken by the close only: not by every batch the writer takes (a
    /// wake-up per round trip, measured). A slot rather than a `Notify`:
    /// the reader sets this watch up every time it waits for its socket,
    /// and a waker under the lock it takes anyway costs a fraction of
    /// registering with a `Notify` (about 400 instructions a request on
    /// rtt, measured).
    closed_waker: Option<Waker>,
}

/// What the writer gets from [`Outbox::take`].
pub(crate) enum Batch {
    /// Frames, with their approximate encoded size and the descriptors
    /// they carry, in order (see "Descriptors" in `PROTOCOL.md`: they go
    /// out as ancillary data of the batch's first write).
    Frames(Vec<ServerFrame>, usize, Vec<Arc<OwnedFd>>),
    /// Encoded bytes to write before anything else: what the socket did
    /// not take of a batch the reader wrote itself.
    Encoded(Vec<u8>),
    Closed,
}

/// About what a frame costs queued, and to write: every part that grows
/// with the request or the broker's state is counted (a list of thousands
/// of mailboxes is not 64 bytes), so backpressure and the limit see it.
fn approximate_size(frame: &ServerFrame) -> usize {
    fn message_size(message: &Message) -> usize {
        let details = message.metadata.details.as_ref().map_or(0, |details| {
            64 + details.key.as_ref().map_or(0, String::len)
                + details
                    .dead_letter
                    .as_ref()
                    .map_or(0, |dead| dead.mailbox.len() + dead.reason.len())
        });
        64 + details + message.payload.len()
    }
    fn error_size(error: &BrokerError) -> usize {
        64 + error.message.len()
    }
    let ServerFrame::Response { result, .. } = frame else {
        return match frame {
            ServerFrame::Goodbye(error) => error_size(error),
            _ => 64,
        };
    };
    match result {
        Ok(Response::Received(message)) => message_size(message),
        Ok(Response::ReceivedMany(messages)) => {
            64 + messages.iter().map(message_size).sum::<usize>()
        }
        Ok(Response::Mailboxes(list))
        | Ok(Response::MailboxPage {
            mailboxes: list, ..
        }) => {
            64 + list
                .iter()
                .map(|info| {
                    192 + info.name.len()
                        + info.settings.dead_letter.as_ref().map_or(0, String::len)
                })
                .sum::<usize>()
        }
        Ok(Response::Info(info)) => {
            192 + info.name.len() + info.settings.dead_letter.as_ref().map_or(0, String::len)
        }
        // A page's cursor (at most a name) fits in the 64 bytes of slack.
        Ok(Response::Names(names)) | Ok(Response::NamePage { names, .. }) => {
            64 + names.iter().map(|name| 64 + name.name.len()).sum::<usize>()
        }
        Ok(Response::Status(status)) => 128 + status.broker_version.len(),
        Ok(Response::SentMany {
            stopped: Some(error),
            ..
        }) => 64 + error_size(error),
        Ok(_) => 64,
        Err(error) => error_size(error),
    }
}

impl Outbox {
    /// An empty outbox that cuts its connection off once more than `limit`
    /// bytes of replies are queued or being written.
    pub fn new(limit: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            limit,
            queued: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            held: AtomicBool::new(false),
            ready: Notify::new(),
            drained: Notify::new(),
            account: None,
        }
    }

    /// Like [`Outbox::new`], its bytes counted in `account`.
    pub fn with_account(limit: usize, account: Arc<Account>) -> Self {
        Self {
            account: Some(account),
            ..Self::new(limit)
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the frame list
        // inconsistent, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a frame; frames pushed after [`Outbox::close`] are dropped
    /// (the connection is gone and the core has forgotten it).
    ///
    /// A frame that would take the replies queued and being written past
    /// the limit closes the outbox instead: what is queued is dropped, a
    /// `Goodbye` says why, and the reader, woken by the close, ends the
    /// connection (the core withdraws its waiting requests and returns the
    /// messages it held unacknowledged). Replies handed over meanwhile are
    /// dropped with the rest: the client was not reading them.
    pub fn push(&self, frame: ServerFrame) {
        self.push_with_descriptors(frame, Vec::new());
    }

    /// [`Outbox::push`] of a frame that carries `descriptors` (as many as
    /// its [`ServerFrame::descriptor_count`]). Dropped with the frame when
    /// the frame is.
    pub fn push_with_descriptors(&self, frame: ServerFrame, descriptors: Vec<Arc<OwnedFd>>) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        let size = approximate_size(&frame) + descriptors.len() * DESCRIPTOR_WEIGHT;
        let pending = state.bytes + state.writing;
        if pending.saturating_add(size) > self.limit {
            let message = format!(
                "closing the connection: over {} bytes of replies are waiting and the client is \
                 not reading them; read replies as they come, or keep fewer requests in flight",
                self.limit
            );
            self.overflow(state, message);
            return;
        }
        if let Some(account) = &self.account {
            // A client that reads its replies gets one waiting, whatever
            // the others hold, as long as the overdraft lasts.
            let admitted =
                account.try_reserve(size) || (pending == 0 && account.try_overdraw(size));
            if !admitted {
                let (max_bytes, max_bytes_per_uid) = self.limits_of(account);
                let message = format!(
                    "closing the connection: the broker's buffers for unread replies are full \
                     ({max_bytes} bytes in all, {max_bytes_per_uid} per uid: \
                     limits.max_buffered_bytes, limits.max_buffered_bytes_per_uid) and this \
                     client has {pending} bytes of replies it has not read; read replies as \
                     they come"
                );
                self.overflow(state, message);
                return;
            }
        }
        state.bytes += size;
        self.queued.store(state.bytes, Ordering::Relaxed);
        state.frames.push(frame);
        state.descriptors.extend(descriptors);
        let first = state.frames.len() == 1;
        if first && self.held.load(Ordering::Relaxed) {
            state.wake_owed = true;
            return;
        }
        drop(state);
        if first {
            self.ready.notify_one();
        }
    }

    /// Called by the connection's reader before it applies requests: the
    /// frames queued until [`Outbox::write_held`] do not wake the writer.
    /// The reader must call `write_held` before it waits for anything.
    pub fn hold(&self) {
        self.held.store(true, Ordering::Relaxed);
    }

    /// Ends [`Outbox::hold`]. If the writer holds nothing (no batch being
    /// written, nothing left over) and what is queued is small, writes it
    /// with `try_write`, which must never wait (a non-blocking write of
    /// the connection's socket), under the outbox's lock, so that no frame
    /// queued meanwhile can pass it; what the socket did not take (all of
    /// it on an error: the writer meets the error and stops) goes to the
    /// writer, still counted, before anything queued later. Otherwise
    /// wakes the writer if a frame queued during the hold needs it.
    pub fn write_held(&self, try_write: impl FnOnce(&[u8]) -> io::Result<usize>) {
        let mut state = self.lock();
        self.held.store(false, Ordering::Relaxed);
        let wake = std::mem::take(&mut state.wake_owed);
        if state.frames.is_empty() {
            return;
        }
        // Descriptors go with `sendmsg`, which only the writer does.
        let direct = !state.closed
            && state.writing == 0
            && state.rest.is_none()
            && state.descriptors.is_empty()
            && state.bytes <= DIRECT_MAX;
        if !direct {
            drop(state);
            if wake {
                self.ready.notify_one();
            }
            return;
        }
        let mut buffer = Vec::with_capacity(state.bytes);
        // Taken, not drained: as after the writer's `take`, an idle
        // connection's outbox keeps no allocation.
        for frame in std::mem::take(&mut state.frames) {
            // As in the writer: only a reply larger than the frame limit
            // can fail, and the core never builds one.
            if let Err(error) = encode_server_frame(&frame, &mut buffer, u32::MAX) {
                tracing::warn!(%error, "dropping unencodable frame");
            }
        }
        let bytes = std::mem::take(&mut state.bytes);
        self.queued.store(0, Ordering::Relaxed);
        let written = try_write(&buffer).unwrap_or(0);
        let rest = written < buffer.len();
        if rest {
            buffer.drain(..written);
            state.rest = Some(buffer);
            state.writing = bytes;
        } else if let Some(account) = &self.account {
            account.release(bytes);
        }
        drop(state);
        self.drained.notify_waiters();
        if rest {
            self.ready.notify_one();
        }
    }

    fn limits_of(&self, account: &Account) -> (usize, usize) {
        let limits = account.buffers().limits();
        (limits.max_buffered_bytes, limits.max_buffered_bytes_per_uid)
    }

    /// Cuts the connection off for replies it does not read: what is queued
    /// is dropped, a `Goodbye` (`TooManyRequests`) says why, and the reader,
    /// woken by the close, ends the connection.
    fn overflow(&self, mut state: MutexGuard<'_, State>, message: String) {
        state.frames.clear();
        state.descriptors.clear();
        let dropped = std::mem::take(&mut state.bytes);
        self.queued.store(0, Ordering::Relaxed);
        let goodbye = ServerFrame::Goodbye(BrokerError::new(ErrorKind::TooManyRequests, message));
        if let Some(account) = &self.account {
            account.release(dropped);
            let size = approximate_size(&goodbye);
            account.force(size);
            state.bytes = size;
        }
        state.frames.push(goodbye);
        state.overflowed = true;
        self.close_locked(state);
    }

    /// Closes the outbox because the client read none of its replies for
    /// the write timeout; nothing more is written.
    pub fn stall(&self) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.stalled = true;
        self.close_locked(state);
    }

    /// Whether it was closed by [`Outbox::stall`].
    pub fn stalled(&self) -> bool {
        self.lock().stalled
    }

    /// Closes the outbox for the broker's shutdown: a goodbye saying so
    /// follows the frames already queued, and the reader, woken by the
    /// close, ends the connection. Does nothing to an outbox already closed.
    pub fn shut_down(&self) {
        self.close_with_goodbye(
            BrokerError::new(ErrorKind::BrokerShuttingDown, "this connection closes"),
            true,
        );
    }

    /// Closes the outbox with a goodbye saying why, after the frames
    /// already queued: one goodbye, however the connection ends (a later
    /// shutdown finds the outbox closed and adds none).
    pub fn say_goodbye(&self, error: BrokerError) {
        self.close_with_goodbye(error, false);
    }

    fn close_with_goodbye(&self, error: BrokerError, stopping: bool) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.frames.push(ServerFrame::Goodbye(error));
        state.stopping = stopping;
        self.close_locked(state);
    }

    /// Whether it was closed by [`Outbox::shut_down`].
    pub fn stopping(&self) -> bool {
        self.lock().stopping
    }

    /// Closes the outbox after the frames already queued.
    pub fn close(&self) {
        self.close_locked(self.lock());
    }

    /// Every way of closing ends here: marks the outbox closed, lets the
    /// lock go, and wakes whoever waits on it. The writer flushes what is
    /// queued and stops; a reader paused on backpressure must see the close
    /// too, or a dead client's connection would never be torn down; and the
    /// reader watching for the close ends the connection.
    fn close_locked(&self, mut state: MutexGuard<'_, State>) {
        state.closed = true;
        self.closed.store(true, Ordering::Release);
        let closed_waker = state.closed_waker.take();
        drop(state);
        self.ready.notify_one();
        self.drained.notify_waiters();
        if let Some(waker) = closed_waker {
            waker.wake();
        }
    }

    /// Whether the outbox was closed (the writer stopped).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether it was closed because replies went past the limit unread.
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Approximate bytes queued (not counting the batch being written).
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Waits until the outbox is closed. One task at a time may wait (the
    /// connection's reader): a second would take the first one's place.
    pub fn closed(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            let mut state = self.lock();
            if state.closed {
                return Poll::Ready(());
            }
            // Left in place when the wait ends otherwise: a later close
            // then wakes the reader once for nothing, which it tolerates.
            if !state
                .closed_waker
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()))
            {
                state.closed_waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    /// Waits for frames, and takes all of them. The outbox is left with no
    /// allocation at all: an idle connection should cost next to nothing,
    /// and one allocation per written batch is cheap.
    pub async fn take(&self) -> Batch {
        loop {
            {
                let mut state = self.lock();
                // What the reader left over goes first; it stays counted
                // (`writing`) until the writer asks for more again.
                if let Some(rest) = state.rest.take() {
                    return Batch::Encoded(rest);
                }
                // The writer asks for more only once it wrote what it took.
                let written = std::mem::take(&mut state.writing);
                if let Some(account) = &self.account {
                    account.release(written);
                }
                if !state.frames.is_empty() {
                    let frames = std::mem::take(&mut state.frames);
                    let bytes = std::mem::take(&mut state.bytes);
                    let descriptors = std::mem::take(&mut state.descriptors);
                    self.queued.store(0, Ordering::Relaxed);
                    state.writing = bytes;
                    drop(state);
                    self.drained.notify_waiters();
                    return Batch::Frames(frames, bytes, descriptors);
                }
                if state.closed {
                    return Batch::Closed;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Waits until at most `high_water` bytes are queued (or it closed).
    pub async fn wait_below(&self, high_water: usize) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let state = self.lock();
                if state.bytes <= high_water || state.closed {
                    return;
                }
            }
            drained.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailbox_proto::{Capacity, MailboxInfo, MailboxSettings};

    fn received(len: usize) -> ServerFrame {
        ServerFrame::Response {
            id: 1,
            result: Ok(Response::Received(mailbox_proto::fixtures::message(
                1,
                vec![0u8; len],
            ))),
        }
    }

    fn mailboxes(count: usize) -> ServerFrame {
        let info = MailboxInfo {
            name: "m".repeat(200),
            settings: MailboxSettings {
                capacity: Capacity::Unbounded,
                ..MailboxSettings::default()
            },
            mode: 0o760,
            ..MailboxInfo::default()
        };
        ServerFrame::Response {
            id: 2,
            result: Ok(Response::Mailboxes(vec![info; count])),
        }
    }

    #[test]
    fn a_list_of_mailboxes_counts_for_what_it_holds() {
        // It used to count as 64 bytes whatever its length, so a client
        // asking for thousands of lists never reached the high-water mark.
        let outbox = Outbox::new(usize::MAX);
        outbox.push(mailboxes(1000));
        assert!(outbox.queued_bytes() > 1000 * 200);
    }

    #[tokio::test]
    async fn replies_past_the_limit_close_the_outbox_with_a_goodbye() {
        let outbox = Outbox::new(10_000);
        outbox.push(received(4_000));
        outbox.push(received(4_000));
        assert!(!outbox.is_closed());
        // The writer takes both and writes them (slowly): they still count.
        let Batch::Frames(frames, _, _) = outbox.take().await else {
            panic!("expected frames");
        };
        assert_eq!(frames.len(), 2);
        outbox.push(received(1_000));
        assert!(!outbox.is_closed());
        outbox.push(received(2_000));
        assert!(outbox.is_closed() && outbox.overflowed());
        // What was queued is dropped; the goodbye says why.
        let Batch::Frames(frames, _, _) = outbox.take().await else {
            panic!("expected the goodbye");
        };
        match &frames[..] {
            [ServerFrame::Goodbye(error)] => assert_eq!(error.kind, ErrorKind::TooManyRequests),
            other => panic!("expected only a goodbye, got {other:?}"),
        }
        outbox.push(received(1));
        assert!(matches!(outbox.take().await, Batch::Closed));
        outbox.closed().await;
    }

    #[tokio::test]
    async fn past_the_buffer_limits_a_client_with_replies_unread_is_cut_and_one_without_is_served()
    {
        use crate::server::buffers::Buffers;
        use crate::server::BufferLimits;
        let buffers = Arc::new(Buffers::new(BufferLimits {
            max_buffered_bytes: 100_000,
            max_buffered_bytes_per_uid: 100_000,
            ..BufferLimits::default()
        }));
        let hog = Outbox::with_account(usize::MAX, Arc::new(buffers.open(1)));
        hog.push(received(90_000));
        let reader = Outbox::with_account(usize::MAX, Arc::new(buffers.open(2)));
        // Nothing else waiting: served, from the overdraft.
        reader.push(received(20_000));
        assert!(!reader.is_closed());
        // A second reply while the first is unread: cut, told why.
        reader.push(received(1_000));
        assert!(reader.is_closed() && reader.overflowed());
        let Batch::Frames(frames, _, _) = reader.take().await else {
            panic!("expected the goodbye");
        };
        match &frames[..] {
            [ServerFrame::Goodbye(error)] => {
                assert_eq!(error.kind, ErrorKind::TooManyRequests);
                assert!(
                    error.message.contains("limits.max_buffered_bytes"),
                    "{error}"
                );
            }
            other => panic!("expected only a goodbye, got {other:?}"),
        }
        // The overdraft is bounded too: past it, even a first reply is refused.
        let late = Outbox::with_account(usize::MAX, Arc::new(buffers.open(3)));
        late.push(received(40_000));
        assert!(late.is_closed());
        // What the hog held is released once it is written.
        assert!(matches!(hog.take().await, Batch::Frames(..)));
        let next = hog.take();
        tokio::pin!(next);
        assert!(futures_poll_once(next.as_mut()).await.is_none());
        let fresh = Outbox::with_account(usize::MAX, Arc::new(buffers.open(4)));
        fresh.push(received(50_000));
        fresh.push(received(10_000));
        assert!(!fresh.is_closed());
    }

    #[tokio::test]
    async fn a_written_batch_no_longer_counts() {
        let outbox = Outbox::new(10_000);
        outbox.push(received(8_000));
        assert!(matches!(outbox.take().await, Batch::Frames(..)));
        // The writer asks for more: what it took is written.
        let next = outbox.take();
        tokio::pin!(next);
        assert!(futures_poll_once(next.as_mut()).await.is_none());
        outbox.push(received(8_000));
        assert!(!outbox.is_closed());
        assert!(matches!(next.await, Batch::Frames(..)));
    }

    #[tokio::test]
    async fn a_reader_waiting_for_the_close_is_woken_by_each_way_of_closing() {
        type Close = fn(&Outbox);
        let closes: [Close; 3] = [Outbox::close, Outbox::shut_down, |outbox| {
            outbox.push(received(20_000))
        }];
        for close in closes {
            let outbox = std::sync::Arc::new(Outbox::new(10_000));
            let waiting = tokio::spawn({
                let outbox = outbox.clone();
                async move { outbox.closed().await }
            });
            // Let it register, and stay waiting.
            tokio::task::yield_now().await;
            assert!(!waiting.is_finished());
            close(&outbox);
            tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
                .await
                .expect("the close woke the waiting reader")
                .expect("the waiting task ran");
        }
    }

    #[tokio::test]
    async fn the_reader_writes_its_replies_itself_when_the_writer_is_idle() {
        let outbox = Outbox::new(100_000);
        let next = outbox.take();
        tokio::pin!(next);
        assert!(futures_poll_once(next.as_mut()).await.is_none());
        outbox.hold();
        outbox.push(received(100));
        outbox.push(received(100));
        let mut written = Vec::new();
        outbox.write_held(|bytes| {
            written.extend_from_slice(bytes);
            Ok(bytes.len())
        });
        // Both frames, in order, in one write; nothing left for the writer,
        // which was not woken.
        let mut expected = Vec::new();
        for _ in 0..2 {
            encode_server_frame(&received(100), &mut expected, u32::MAX).unwrap();
        }
        assert_eq!(written, expected);
        assert_eq!(outbox.queued_bytes(), 0);
        assert!(futures_poll_once(next.as_mut()).await.is_none());
        // Outside a hold, a frame wakes the writer as before.
        outbox.push(received(1));
        assert!(matches!(next.await, Batch::Frames(frames, _, _) if frames.len() == 1));
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_goes_to_the_writer_first_and_still_counts() {
        let outbox = Outbox::new(10_000);
        outbox.hold();
        outbox.push(received(4_000));
        outbox.write_held(|_| Ok(10));
        // A frame queued later waits behind the rest.
        outbox.push(received(1_000));
        let mut expected = Vec::new();
        encode_server_frame(&received(4_000), &mut expected, u32::MAX).unwrap();
        match outbox.take().await {
            Batch::Encoded(rest) => assert_eq!(rest, expected[10..]),
            _ => panic!("expected the rest first"),
        }
        // The rest counts until written: 4,000 + 1,000 + 6,000 is past the limit.
        outbox.push(received(5_000));
        assert!(outbox.is_closed() && outbox.overflowed());
    }

    #[tokio::test]
    async fn the_reader_leaves_its_replies_to_a_busy_writer() {
        let outbox = Outbox::new(100_000);
        outbox.push(received(100));
        // The writer took a batch and is writing it.
        assert!(matches!(outbox.take().await, Batch::Frames(..)));
        outbox.hold();
        outbox.push(received(100));
        outbox.write_held(|_| panic!("written past the writer's batch"));
        // The writer is woken for it once it asks for more.
        assert!(matches!(outbox.take().await, Batch::Frames(frames, _, _) if frames.len() == 1));
        // An error leaves everything to the writer, which meets it too.
        let next = outbox.take();
        tokio::pin!(next);
        assert!(futures_poll_once(next.as_mut()).await.is_none());
        outbox.hold();
        outbox.push(received(100));
        outbox.write_held(|_| Err(std::io::ErrorKind::BrokenPipe.into()));
        assert!(matches!(next.await, Batch::Encoded(rest) if !rest.is_empty()));
    }

    /// Polls a future once: its output if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        let mut future = future;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
