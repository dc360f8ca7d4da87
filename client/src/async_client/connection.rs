//! The tasks and shared state of one async connection: the writer that
//! sends queued frames in batches, the reader that hands each answer to its
//! caller, the pending calls that cancel their request when dropped, and
//! the messages kept from receives whose callers left.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use mailbox_proto::{Address, Message, Request, RequestId, Response, ServerFrame, Source, Wait};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{oneshot, Notify};

use crate::descriptors::{self, Descriptors};
use crate::error::Error;
use crate::ops::names::ReleaseName;
use crate::ops::{into_result, wait_of, Operation};
use crate::session::{self, Session};

/// Waits for an answer at most `limit` (then [`Error::NoAnswer`]; dropping
/// the wait cancels its request), or as long as it takes for `None`.
pub(crate) async fn bounded(
    limit: Option<Duration>,
    answer: impl std::future::Future<Output = Result<Response, Error>>,
) -> Result<Response, Error> {
    match limit {
        None => answer.await,
        Some(limit) => tokio::time::timeout(limit, answer)
            .await
            .unwrap_or(Err(Error::NoAnswer { waited: limit })),
    }
}

/// An answer and the descriptors its frame carried.
pub(crate) type Answer = (Result<Response, Error>, Descriptors);

/// [`bounded`] for an answer with its descriptors.
pub(crate) async fn bounded_answer(
    limit: Option<Duration>,
    answer: impl std::future::Future<Output = Answer>,
) -> Answer {
    match limit {
        None => answer.await,
        Some(limit) => tokio::time::timeout(limit, answer)
            .await
            .unwrap_or_else(|_| (Err(Error::NoAnswer { waited: limit }), Vec::new())),
    }
}

/// Bytes the reader asks of the socket per read, at least.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// What the caller of a request registered for its answer.
pub(crate) struct Waiter {
    /// Where the answer goes; `None` for a request nobody awaits (a cancel,
    /// the release of an abandoned name).
    reply: Option<oneshot::Sender<Answer>>,
    /// What becomes of the answer if its caller has left.
    orphan: Orphan,
}

/// What becomes of a successful answer whose caller has left.
#[derive(Debug, Clone)]
enum Orphan {
    /// Nothing worth keeping.
    Drop,
    /// A receive's messages: kept for this connection's next receives from
    /// the same place.
    Keep(Stash),
    /// A name claim that succeeded after all: the name is released again,
    /// since nobody knows this connection holds it.
    Release(String),
}

/// Where kept messages came from, and so which receives may take them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Stash {
    /// The mailbox; `None` for this connection's inbox.
    mailbox: Option<String>,
    /// Whether they are held for manual acknowledgement: only receives with
    /// manual acknowledgement take those (and then settle them), only
    /// receives without take the others.
    held: bool,
}

/// A receive, as the kept messages see it.
struct StashRequest {
    stash: Stash,
    /// `None`: one message (`Received`); `Some(max)`: up to `max`
    /// (`ReceivedMany`).
    max: Option<u32>,
    /// The only sender to take from (inbox receives).
    from: Option<Address>,
}

impl StashRequest {
    /// How `request` takes kept messages, if it is a receive.
    fn of(request: &Request) -> Option<Self> {
        let (mailbox, held, max, from) = match request {
            Request::Receive { mailbox, .. } => (Some(mailbox.clone()), false, None, None),
            Request::ReceiveMany { mailbox, max, .. } => {
                (Some(mailbox.clone()), false, Some(*max), None)
            }
            Request::ReceiveWith { from, options, .. } => {
                let (mailbox, sender) = match from {
                    Source::Mailbox(name) => (Some(name.clone()), None),
                    Source::Inbox { from } => (None, from.clone()),
                };
                (mailbox, options.manual_ack, options.max, sender)
            }
            _ => return None,
        };
        Some(Self {
            stash: Stash { mailbox, held },
            max,
            from,
        })
    }
}

/// The connection state shared by the callers and the two tasks.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Wakes the writer when `State::outgoing` has frames or the connection closed.
    pub(crate) writable: Notify,
}

pub(crate) struct State {
    pub(crate) session: Session<Waiter>,
    /// Frames waiting for the writer.
    pub(crate) outgoing: BytesMut,
    /// Descriptors that go with frames in `outgoing` (`SendFile`): each
    /// with the offset of its frame's first byte, in order. The writer
    /// sends each with that byte, so a descriptor never arrives after its
    /// frame starts, nor with an earlier frame (the broker closes
    /// descriptors no frame claims).
    pub(crate) files: Vec<(usize, OwnedFd)>,
    /// Messages the broker handed over for receives whose callers had gone;
    /// the next receives from the same place take them first, oldest first.
    pub(crate) orphans: HashMap<Stash, VecDeque<Message>>,
    /// Why the connection is over, once it is.
    pub(crate) closed: Option<Error>,
}

/// A request's state right after it was started.
pub(crate) enum Begun {
    /// Answered without asking the broker (a kept message).
    Ready(Response),
    /// Sent or queued; the answer will come.
    Waiting(PendingCall),
}

/// A request waiting for its answer; dropping it early cancels it.
pub(crate) struct PendingCall {
    shared: Arc<Shared>,
    pub(crate) id: RequestId,
    reply: oneshot::Receiver<Answer>,
    /// Whether to send a `Cancel` if dropped before the answer (a request
    /// that may wait, not yet cancelled).
    cancel_on_drop: bool,
    orphan: Orphan,
    answered: bool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panicking holder (every update
        // is a single step), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts `request`, or answers a receive from the kept messages.
    pub(crate) fn begin(self: &Arc<Self>, request: Request) -> Result<Begun, Error> {
        self.begin_carrying(request, None)
    }

    /// [`begin`](Self::begin) of a request whose frame carries `file`
    /// (`SendFile`), sent with the frame's first byte.
    pub(crate) fn begin_carrying(
        self: &Arc<Self>,
        request: Request,
        file: Option<OwnedFd>,
    ) -> Result<Begun, Error> {
        let mut state = self.lock();
        let may_wait = wait_of(&request).is_some_and(|wait| wait != Wait::Never);
        let receive = StashRequest::of(&request);
        if let Some(receive) = &receive {
            if let Some(kept) = state.take_orphans(receive) {
                return Ok(Begun::Ready(kept));
            }
        }
        if let Some(error) = &state.closed {
            return Err(error.replicate());
        }
        let orphan = match (receive, &request) {
            (Some(receive), _) => Orphan::Keep(receive.stash),
            (None, Request::ClaimName { name, .. }) => Orphan::Release(name.clone()),
            (None, _) => Orphan::Drop,
        };
        let (sender, reply) = oneshot::channel();
        let waiter = Waiter {
            reply: Some(sender),
            orphan: orphan.clone(),
        };
        let state = &mut *state;
        let offset = state.outgoing.len();
        let id = state.session.start(request, waiter, &mut state.outgoing)?;
        if let Some(file) = file {
            state.files.push((offset, file));
        }
        self.writable.notify_one();
        Ok(Begun::Waiting(PendingCall {
            shared: Arc::clone(self),
            id,
            reply,
            cancel_on_drop: may_wait,
            orphan,
            answered: false,
        }))
    }

    /// Queues `request` with nobody awaiting its answer (`AcceptFiles` at
    /// connect: it leaves with the first write, no round trip of its own).
    pub(crate) fn announce(&self, request: Request) -> Result<(), Error> {
        let mut state = self.lock();
        let waiter = Waiter {
            reply: None,
            orphan: Orphan::Drop,
        };
        let state = &mut *state;
        state.session.start(request, waiter, &mut state.outgoing)?;
        self.writable.notify_one();
        Ok(())
    }

    /// Gives up a name whose claim succeeded after its caller had left.
    fn release_abandoned(&self, state: &mut State, name: String) {
        if state.closed.is_some() {
            return;
        }
        let waiter = Waiter {
            reply: None,
            orphan: Orphan::Drop,
        };
        let release = ReleaseName(&name).request();
        if state
            .session
            .start(release, waiter, &mut state.outgoing)
            .is_ok()
        {
            self.writable.notify_one();
        }
    }

    /// Queues a `Cancel` for `request` if it still waits for its answer.
    fn cancel(&self, state: &mut State, request: RequestId) {
        if state.closed.is_some() || !state.session.is_pending(request) {
            return;
        }
        let waiter = Waiter {
            reply: None,
            orphan: Orphan::Drop,
        };
        let cancel = Request::Cancel { request };
        // A cancel cannot be too large to encode; if it somehow fails, the
        // request simply keeps waiting and its answer is handled as usual.
        if state
            .session
            .start(cancel, waiter, &mut state.outgoing)
            .is_ok()
        {
            self.writable.notify_one();
        }
    }

    /// Ends the connection: every waiting call gets `error`, later calls too.
    pub(crate) fn close(&self, state: &mut State, error: Error) {
        if state.closed.is_some() {
            return;
        }
        for (_, waiter) in state.session.drain() {
            if let Some(reply) = waiter.reply {
                let _ = reply.send((Err(error.replicate()), Vec::new()));
            }
        }
        state.outgoing.clear();
        state.files.clear();
        state.closed = Some(error);
        self.writable.notify_one();
    }

    /// Hands decoded frames, with their descriptors, to their callers;
    /// false when one of them ended the connection.
    pub(crate) fn deliver(&self, frames: Vec<(ServerFrame, Descriptors)>) -> bool {
        let mut state = self.lock();
        for (frame, carried) in frames {
            match state.session.route(frame) {
                Ok(routed) => {
                    let result = into_result(routed.result);
                    if let Some(name) = state.answer(routed.waiter, result, carried) {
                        self.release_abandoned(&mut state, name);
                    }
                }
                Err(error) => {
                    self.close(&mut state, error);
                    return false;
                }
            }
        }
        true
    }
}

impl State {
    /// Answers a receive from the messages kept for its source, if there
    /// are any it may take: one message, or a batch up to its `max`, oldest
    /// first (of one sender's only, for a receive from one sender).
    fn take_orphans(&mut self, receive: &StashRequest) -> Option<Response> {
        let kept = self.orphans.get_mut(&receive.stash)?;
        let limit = receive.max.map_or(1, |max| max.max(1) as usize);
        let taken: Vec<Message> = match &receive.from {
            None => kept.drain(..limit.min(kept.len())).collect(),
            Some(Address::Process(sender)) => {
                let mut taken = Vec::new();
                let mut rest = VecDeque::with_capacity(kept.len());
                for message in kept.drain(..) {
                    if taken.len() < limit && message.metadata.sender_connection == *sender {
                        taken.push(message);
                    } else {
                        rest.push_back(message);
                    }
                }
                *kept = rest;
                taken
            }
            // Who holds a name cannot be told from a message's metadata, so
            // this receive goes to the broker.
            Some(Address::Name(_)) => return None,
        };
        if kept.is_empty() {
            self.orphans.remove(&receive.stash);
        }
        match receive.max {
            _ if taken.is_empty() => None,
            None => taken.into_iter().next().map(Response::Received),
            Some(_) => Some(Response::ReceivedMany(taken)),
        }
    }

    /// Keeps the messages of an answer whose receive's caller has gone, in
    /// order, for the next receives from `stash`.
    fn keep_orphans(&mut self, stash: Stash, response: Response) {
        let messages = match response {
            Response::Received(message) => vec![message],
            Response::ReceivedMany(messages) => messages,
            _ => return,
        };
        if !messages.is_empty() {
            self.orphans.entry(stash).or_default().extend(messages);
        }
    }

    /// Takes care of a successful answer whose caller has left; returns a
    /// name to release.
    fn adopt(&mut self, orphan: Orphan, response: Response) -> Option<String> {
        match (orphan, response) {
            (Orphan::Keep(stash), response) => {
                self.keep_orphans(stash, response);
                None
            }
            (Orphan::Release(name), Response::NameClaimed) => Some(name),
            _ => None,
        }
    }

    /// Gives one answer to its caller; returns a name to release when the
    /// answer was a claim nobody awaits any more.
    fn answer(
        &mut self,
        waiter: Waiter,
        result: Result<Response, Error>,
        carried: Descriptors,
    ) -> Option<String> {
        let reply = waiter.reply?;
        // The caller may have dropped its future after the broker handed
        // messages over (its cancel crossed the answer on the wire): keep
        // them instead of losing them. Any other answer nobody awaits
        // (typically `Cancelled`) is dropped, its descriptors closed.
        match reply.send((result, carried)) {
            Err((Ok(response), _)) => self.adopt(waiter.orphan, response),
            _ => None,
        }
    }
}

impl PendingCall {
    /// Waits for the answer.
    pub(crate) async fn wait(self) -> Result<Response, Error> {
        self.wait_with_descriptors().await.0
    }

    /// Waits for the answer and the descriptors its frame carried.
    pub(crate) async fn wait_with_descriptors(mut self) -> Answer {
        let answer = (&mut self.reply).await;
        self.answered = true;
        // A dropped sender means the reader task is gone with the connection.
        answer.unwrap_or_else(|_| (Err(Error::Disconnected), Vec::new()))
    }

    /// Asks the broker to withdraw this request, still waiting for its answer
    /// (`Cancelled`, or whatever the broker had answered already).
    pub(crate) fn cancel(&mut self) {
        if self.cancel_on_drop {
            self.cancel_on_drop = false;
            self.shared.cancel(&mut self.shared.lock(), self.id);
        }
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        // Under the lock the reader cannot route this request's answer
        // concurrently: either it has already been put in the channel (take
        // it from there) or it will find the channel closed (and keep a
        // message as an orphan).
        let mut state = self.shared.lock();
        self.reply.close();
        if let Ok((Ok(response), _)) = self.reply.try_recv() {
            let orphan = std::mem::replace(&mut self.orphan, Orphan::Drop);
            if let Some(name) = state.adopt(orphan, response) {
                self.shared.release_abandoned(&mut state, name);
            }
            return;
        }
        if self.cancel_on_drop {
            self.shared.cancel(&mut state, self.id);
        }
    }
}

/// Reads answers and hands them to their callers until the connection ends.
pub(crate) async fn read_loop(
    shared: Arc<Shared>,
    read_half: OwnedReadHalf,
    mut incoming: BytesMut,
) {
    // Descriptors that arrived and no frame has taken yet.
    let mut received: VecDeque<OwnedFd> = VecDeque::new();
    loop {
        let mut frames = Vec::new();
        let decoded = loop {
            match session::decode_server_frame(&mut incoming) {
                Ok(Some(frame)) => match descriptors::take_for(&frame, &mut received) {
                    Ok(carried) => frames.push(descriptors::map_frame(frame, carried)),
                    Err(error) => break Err(error),
                },
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        // Deliver what decoded before a bad frame: those answers are sound.
        if !shared.deliver(frames) {
            return;
        }
        if let Err(error) = decoded {
            shared.close(&mut shared.lock(), error);
            return;
        }
        incoming.reserve(READ_CHUNK);
        let error = match read_some(&read_half, &mut incoming, &mut received).await {
            Ok(0) => Error::Disconnected,
            Ok(_) => continue,
            Err(error) => Error::from_connection_io(error),
        };
        shared.close(&mut shared.lock(), error);
        return;
    }
}

/// Reads once (`recvmsg`, keeping the descriptors that came along), when
/// the socket is readable.
async fn read_some(
    read_half: &OwnedReadHalf,
    incoming: &mut BytesMut,
    received: &mut VecDeque<OwnedFd>,
) -> std::io::Result<usize> {
    let stream = read_half.as_ref();
    loop {
        stream.readable().await?;
        match stream.try_io(Interest::READABLE, || {
            descriptors::receive(stream, incoming, received)
        }) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

/// Writes queued frames, as many per `write` as have accumulated.
pub(crate) async fn write_loop(shared: Arc<Shared>, mut write_half: OwnedWriteHalf) {
    let mut batch = BytesMut::new();
    let mut files = Vec::new();
    loop {
        shared.writable.notified().await;
        {
            let mut state = shared.lock();
            if state.closed.is_some() {
                return;
            }
            std::mem::swap(&mut batch, &mut state.outgoing);
            std::mem::swap(&mut files, &mut state.files);
        }
        if batch.is_empty() {
            continue;
        }
        if let Err(error) = write_batch(&mut write_half, &batch, files.drain(..)).await {
            shared.close(&mut shared.lock(), Error::from_connection_io(error));
            return;
        }
        batch.clear();
    }
}

/// Writes `batch`, each of `files` sent (`sendmsg`, `SCM_RIGHTS`) with the
/// first byte of its frame, at its offset; the rest with plain writes.
async fn write_batch(
    write_half: &mut OwnedWriteHalf,
    batch: &[u8],
    files: impl Iterator<Item = (usize, OwnedFd)>,
) -> std::io::Result<()> {
    let files: Vec<_> = files.collect();
    let mut written = 0;
    for (at, (offset, file)) in files.iter().enumerate() {
        let offset = (*offset).min(batch.len());
        write_half.write_all(&batch[written..offset]).await?;
        written = offset;
        // Never past the next file's frame, which must bring its own.
        let end = files.get(at + 1).map_or(batch.len(), |(next, _)| *next);
        let stream = write_half.as_ref();
        loop {
            stream.writable().await?;
            match stream.try_io(Interest::WRITABLE, || {
                descriptors::send_with(stream, &batch[written..end], file.as_fd())
            }) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(error),
                Ok(sent) => {
                    written += sent;
                    break;
                }
            }
        }
    }
    write_half.write_all(&batch[written..]).await
}
