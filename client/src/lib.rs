//! Client library of the mailbox IPC broker, `mailboxd`.
//!
//! - [`Client`]: async (tokio). One connection shared by cheap clones; many
//!   calls may be in flight at once from many tasks.
//! - [`blocking::Client`]: plain `std` sockets, no runtime, for simple
//!   programs and `mailboxctl`.
//!
//! Both are thin I/O loops over one shared, I/O-free bookkeeping module
//! (`session.rs`: ids, frames, routing, typed answers), so they behave the
//! same. Every broker error reaches the caller typed by [`ErrorKind`] (see
//! [`Error::kind`]).
//!
//! The broker's socket is found by the rule of
//! [`mailbox_proto::socket_path::resolve`]: an explicit path, else
//! `$MAILBOX_SOCKET`, else `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`, else
//! `/run/mailbox/mailboxd.sock`.
//!
//! Before sending anything, a client checks who answers on the socket
//! (`SO_PEERCRED`): root, the service user `mailbox`, its own uid, or the
//! user named by `$MAILBOX_BROKER_UID` or [`ConnectOptions::broker_user`];
//! anyone else is [`Error::UntrustedBroker`].
//!
//! This crate does not retry or reconnect: timeouts are the broker's
//! ([`Wait`]), and a broken connection fails every call on it. It only
//! stops waiting on its own when the broker fails to answer a timed
//! request within its timeout plus [`ANSWER_GRACE`] (a stopped or hung
//! broker): [`Error::NoAnswer`].

pub mod blocking;
mod connect;
mod duration;
mod error;
mod session;
#[cfg(test)]
mod test_support;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use mailbox_proto::{socket_path, Request, RequestId, Response, ServerFrame, Welcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

pub use connect::{ConnectOptions, ANSWER_GRACE, BROKER_UID_VARIABLE};
pub use duration::{parse_duration, ParseDurationError};
pub use error::Error;
pub use mailbox_proto::{
    validate_key, Address, BrokerError, BrokerStatus, Bytes, Capacity, DeadLetter, DeliveryPolicy,
    Details, ErrorKind, MailboxInfo, MailboxSettings, Message, Metadata, NameInfo, ReceiveOptions,
    SendOptions, Source, Stage, Target, Verdict, Wait, DEFAULT_INBOX_CAPACITY,
    DEFAULT_MAX_MESSAGE_SIZE, MAX_KEY_LEN, MAX_MESSAGE_SIZE_LIMIT,
};
pub use session::{
    wait_at_most, BatchReceipt, Held, Page, PipelineError, SendReceipt, StreamError, StreamReceipt,
    PAGE_ROWS,
};

use session::{Batcher, ReceiveTally, SendTally, Session, StreamReceiveTally, StreamSendTally};

/// Waits for an answer at most `limit` (then [`Error::NoAnswer`]; dropping
/// the wait cancels its request), or as long as it takes for `None`.
async fn bounded(
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

/// Bytes the reader asks of the socket per read, at least.
const READ_CHUNK: usize = 64 * 1024;

/// An async connection to `mailboxd`.
///
/// Cloning is cheap and every clone uses the same connection; it closes when
/// the last clone is dropped. `Client` is `Send + Sync`: many tasks may call
/// it at once, their requests are written in batches (many frames per
/// `write`) by one writer task, and one reader task hands each answer to its
/// caller, in whatever order the broker answers.
///
/// Must be created inside a tokio runtime (it spawns those two tasks).
///
/// # Cancellation
///
/// Dropping the future of a waiting send, receive, call or name claim (for
/// example through `tokio::time::timeout` or `select!`) sends a `Cancel` for
/// it, so the broker withdraws it. The broker may already have handed
/// messages over when the cancel reaches it (one, or a whole `receive_many`
/// batch); they are not dropped: the client keeps them, per source and in
/// order, and gives them to this connection's next receives from that
/// source (any of `receive`, `try_receive`, `receive_many` (up to its
/// `max`), `fetch`, ... on that mailbox; `receive_inbox`, `receive_from`
/// (that sender's only), ... on the inbox) before asking the broker.
/// Messages taken with manual acknowledgement stay held by the connection
/// and are kept apart, for its next `receive_held` (or `fetch` with
/// `manual_ack`) from the same source. A dropped send may or may not have
/// been accepted; of a dropped batch send, a front part may have been. A
/// name granted just as its claim was dropped is released again; the reply
/// to a dropped call is dropped.
///
/// # Failures
///
/// A broker error comes back as [`Error::Broker`]. When the connection dies,
/// every call waiting on it resolves with [`Error::Disconnected`] (or the
/// broker's `Goodbye`, as [`Error::Rejected`]), and so does every later call.
///
/// ```no_run
/// use mailbox_client::{Client, MailboxSettings};
///
/// # async fn demo() -> Result<(), mailbox_client::Error> {
/// let client = Client::connect_default().await?;
/// client.create("jobs", MailboxSettings::default()).await?;
///
/// let worker = client.clone();
/// let job = tokio::spawn(async move { worker.receive("jobs").await });
/// client.send("jobs", "resize photo 42").await?;
/// let message = job.await.expect("worker task")?;
/// assert_eq!(message.payload, "resize photo 42");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    connection: Arc<Connection>,
}

/// The tasks of one connection; the last [`Client`] clone stops them.
struct Connection {
    shared: Arc<Shared>,
    welcome: Welcome,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // No caller is left, so nothing queued or unanswered matters; the
        // socket closes with the tasks and the broker withdraws what waited.
        self.reader.abort();
        self.writer.abort();
    }
}

/// What the caller of a request registered for its answer.
struct Waiter {
    /// Where the answer goes; `None` for a request nobody awaits (a cancel,
    /// the release of an abandoned name).
    reply: Option<oneshot::Sender<Result<Response, Error>>>,
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
struct Stash {
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
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer when `State::outgoing` has frames or the connection closed.
    writable: Notify,
}

struct State {
    session: Session<Waiter>,
    /// Frames waiting for the writer.
    outgoing: BytesMut,
    /// Messages the broker handed over for receives whose callers had gone;
    /// the next receives from the same place take them first, oldest first.
    orphans: HashMap<Stash, VecDeque<Message>>,
    /// Why the connection is over, once it is.
    closed: Option<Error>,
}

/// A request's state right after it was started.
enum Begun {
    /// Answered without asking the broker (a kept message).
    Ready(Response),
    /// Sent or queued; the answer will come.
    Waiting(PendingCall),
}

/// A request waiting for its answer; dropping it early cancels it.
struct PendingCall {
    shared: Arc<Shared>,
    id: RequestId,
    reply: oneshot::Receiver<Result<Response, Error>>,
    /// Whether to send a `Cancel` if dropped before the answer (a request
    /// that may wait, not yet cancelled).
    cancel_on_drop: bool,
    orphan: Orphan,
    answered: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panicking holder (every update
        // is a single step), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts `request`, or answers a receive from the kept messages.
    fn begin(self: &Arc<Self>, request: Request) -> Result<Begun, Error> {
        let mut state = self.lock();
        let may_wait = match &request {
            Request::Receive { wait, .. }
            | Request::ReceiveMany { wait, .. }
            | Request::ReceiveWith { wait, .. }
            | Request::Send { wait, .. }
            | Request::SendMany { wait, .. }
            | Request::SendWith { wait, .. }
            | Request::Call { wait, .. }
            | Request::ClaimName { wait, .. } => *wait != Wait::Never,
            _ => false,
        };
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
        let id = state.session.start(request, waiter, &mut state.outgoing)?;
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

    /// Gives up a name whose claim succeeded after its caller had left.
    fn release_abandoned(&self, state: &mut State, name: String) {
        if state.closed.is_some() {
            return;
        }
        let waiter = Waiter {
            reply: None,
            orphan: Orphan::Drop,
        };
        let release = session::release_name_request(&name);
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
    fn close(&self, state: &mut State, error: Error) {
        if state.closed.is_some() {
            return;
        }
        for (_, waiter) in state.session.drain() {
            if let Some(reply) = waiter.reply {
                let _ = reply.send(Err(error.replicate()));
            }
        }
        state.outgoing.clear();
        state.closed = Some(error);
        self.writable.notify_one();
    }

    /// Hands decoded frames to their callers; false when one of them ended
    /// the connection.
    fn deliver(&self, frames: Vec<ServerFrame>) -> bool {
        let mut state = self.lock();
        for frame in frames {
            match state.session.route(frame) {
                Ok(routed) => {
                    let result = session::into_result(routed.result);
                    if let Some(name) = state.answer(routed.waiter, result) {
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
    fn answer(&mut self, waiter: Waiter, result: Result<Response, Error>) -> Option<String> {
        let reply = waiter.reply?;
        // The caller may have dropped its future after the broker handed
        // messages over (its cancel crossed the answer on the wire): keep
        // them instead of losing them. Any other answer nobody awaits
        // (typically `Cancelled`) is dropped.
        match reply.send(result) {
            Err(Ok(response)) => self.adopt(waiter.orphan, response),
            _ => None,
        }
    }
}

impl PendingCall {
    /// Waits for the answer.
    async fn wait(mut self) -> Result<Response, Error> {
        let result = (&mut self.reply).await;
        self.answered = true;
        // A dropped sender means the reader task is gone with the connection.
        result.unwrap_or(Err(Error::Disconnected))
    }

    /// Asks the broker to withdraw this request, still waiting for its answer
    /// (`Cancelled`, or whatever the broker had answered already).
    fn cancel(&mut self) {
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
        if let Ok(Ok(response)) = self.reply.try_recv() {
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

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("connection_id", &self.connection.welcome.connection_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the broker listening at `path` and performs the handshake,
    /// with the default [`ConnectOptions`].
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::connect_with(path, &ConnectOptions::default()).await
    }

    /// Connects to the broker listening at `path`, checks that it runs as a
    /// user `options` trust ([`Error::UntrustedBroker`] otherwise), and
    /// performs the handshake, all within `options`' timeout if it has one
    /// ([`Error::NoAnswer`] otherwise).
    pub async fn connect_with(
        path: impl AsRef<Path>,
        options: &ConnectOptions,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        let connecting = async {
            let stream = UnixStream::connect(path)
                .await
                .map_err(|source| Error::Connect {
                    path: path.to_owned(),
                    hint: connect::connect_hint(path, &source).into(),
                    source,
                })?;
            connect::check_broker(
                std::os::unix::io::AsRawFd::as_raw_fd(&stream),
                path,
                options,
            )?;
            Self::from_stream(stream).await
        };
        match options.timeout {
            None => connecting.await,
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .unwrap_or(Err(Error::NoAnswer { waited: limit })),
        }
    }

    /// Connects to the broker's socket found by the usual rule:
    /// `$MAILBOX_SOCKET`, else `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`, else
    /// `/run/mailbox/mailboxd.sock`.
    pub async fn connect_default() -> Result<Self, Error> {
        Self::connect(socket_path::resolve(None::<PathBuf>)).await
    }

    /// Performs the handshake on an already connected stream (the caller
    /// chose its peer: no credentials are checked).
    pub async fn from_stream(mut stream: UnixStream) -> Result<Self, Error> {
        let mut outgoing = BytesMut::new();
        session::encode_hello(&session::default_client_name(), &mut outgoing)?;
        stream
            .write_all(&outgoing)
            .await
            .map_err(Error::from_connection_io)?;
        outgoing.clear();
        let mut incoming = BytesMut::with_capacity(READ_CHUNK);
        let welcome = loop {
            if let Some(frame) = session::decode_server_frame(&mut incoming)? {
                break session::accept_handshake(frame)?;
            }
            match stream.read_buf(&mut incoming).await {
                Ok(0) => return Err(Error::Disconnected),
                Ok(_) => {}
                Err(error) => return Err(Error::from_connection_io(error)),
            }
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                session: Session::new(&welcome),
                outgoing,
                orphans: HashMap::new(),
                closed: None,
            }),
            writable: Notify::new(),
        });
        let (read_half, write_half) = stream.into_split();
        let reader = tokio::spawn(read_loop(Arc::clone(&shared), read_half, incoming));
        let writer = tokio::spawn(write_loop(Arc::clone(&shared), write_half));
        Ok(Self {
            connection: Arc::new(Connection {
                shared,
                welcome,
                reader,
                writer,
            }),
        })
    }

    /// The broker's id for this connection, as message metadata shows it.
    pub fn connection_id(&self) -> u64 {
        self.connection.welcome.connection_id
    }

    /// The broker's version, as it announced it in the handshake.
    pub fn broker_version(&self) -> &str {
        &self.connection.welcome.broker_version
    }

    /// One request, one answer; a timed request gives up on a broker that
    /// does not answer within its timeout plus [`ANSWER_GRACE`] (dropping
    /// the wait cancels the request, and whatever crossed the cancel is
    /// kept as for any dropped receive).
    async fn roundtrip(&self, request: Request) -> Result<Response, Error> {
        let limit = connect::answer_limit(&request, None);
        match self.connection.shared.begin(request)? {
            Begun::Ready(response) => Ok(response),
            Begun::Waiting(call) => bounded(limit, call.wait()).await,
        }
    }

    /// Creates a mailbox owned by this process's uid, with the broker's
    /// default mode; `Ok(false)` when this uid owns it already with the same
    /// settings. Kind `MailboxExists` when its settings differ or another
    /// uid owns it.
    pub async fn create(&self, name: &str, settings: MailboxSettings) -> Result<bool, Error> {
        self.create_with(name, settings, None, None).await
    }

    /// Like [`create`](Self::create), with the mode (`0o[owner][group][others]`,
    /// each receive 4, send 2, manage 1) and group given in the same
    /// request: the mailbox never exists with other rights. When this uid
    /// owns it already with the same settings, `mode` and `group` are
    /// applied to it.
    pub async fn create_with(
        &self,
        name: &str,
        settings: MailboxSettings,
        mode: Option<u32>,
        group: Option<u32>,
    ) -> Result<bool, Error> {
        let request = session::create_request(name, settings, mode, group);
        session::expect_created(self.roundtrip(request).await?)
    }

    /// Deletes a mailbox; operations waiting on it fail with `MailboxDeleted`.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        let request = Request::DeleteMailbox {
            name: name.to_owned(),
        };
        session::expect_deleted(self.roundtrip(request).await?)
    }

    /// Describes every mailbox (that this user has some right on), sorted
    /// by name, fetching page after page ([`list_page`](Self::list_page)),
    /// so that it works however many there are.
    pub async fn list(&self) -> Result<Vec<MailboxInfo>, Error> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.list_page(after.as_deref(), PAGE_ROWS).await?;
            match session::follow_page(&mut all, after.as_deref(), page)? {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One page of [`list`](Self::list): at most `max` mailboxes whose
    /// names sort after `after` (`None`: from the first), and where the
    /// next page starts.
    pub async fn list_page(
        &self,
        after: Option<&str>,
        max: u32,
    ) -> Result<Page<MailboxInfo>, Error> {
        let request = session::mailbox_page_request(after, max);
        session::expect_mailbox_page(self.roundtrip(request).await?)
    }

    /// Describes one mailbox.
    pub async fn info(&self, name: &str) -> Result<MailboxInfo, Error> {
        let request = Request::MailboxInfo {
            name: name.to_owned(),
        };
        session::expect_info(self.roundtrip(request).await?)
    }

    /// The broker's figures.
    pub async fn status(&self) -> Result<BrokerStatus, Error> {
        session::expect_status(self.roundtrip(Request::Status).await?)
    }

    /// Sends a message, waiting as long as it takes for room.
    pub async fn send(
        &self,
        mailbox: &str,
        payload: impl Into<Bytes>,
    ) -> Result<SendReceipt, Error> {
        self.send_with(mailbox, payload.into(), Wait::Forever).await
    }

    /// Sends a message only if there is room now; otherwise fails with kind
    /// `WouldBlock` and nothing was sent.
    pub async fn try_send(
        &self,
        mailbox: &str,
        payload: impl Into<Bytes>,
    ) -> Result<SendReceipt, Error> {
        self.send_with(mailbox, payload.into(), Wait::Never).await
    }

    /// Sends a message, waiting at most `timeout` for room; on kind `Timeout`
    /// the message was withdrawn and will never be delivered.
    pub async fn send_timeout(
        &self,
        mailbox: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<SendReceipt, Error> {
        let wait = session::wait_at_most(timeout);
        self.send_with(mailbox, payload.into(), wait).await
    }

    /// Sends a message, waiting as `wait` says.
    pub async fn send_with(
        &self,
        mailbox: &str,
        payload: Bytes,
        wait: Wait,
    ) -> Result<SendReceipt, Error> {
        let request = Request::Send {
            mailbox: mailbox.to_owned(),
            payload,
            wait,
        };
        session::expect_sent(self.roundtrip(request).await?)
    }

    /// Takes the next message, waiting as long as it takes.
    pub async fn receive(&self, mailbox: &str) -> Result<Message, Error> {
        self.receive_with(mailbox, Wait::Forever).await
    }

    /// Takes the next message if there is one now.
    pub async fn try_receive(&self, mailbox: &str) -> Result<Option<Message>, Error> {
        let request = Request::Receive {
            mailbox: mailbox.to_owned(),
            wait: Wait::Never,
        };
        session::optional_message(self.roundtrip(request).await)
    }

    /// Takes the next message, waiting at most `timeout` (then kind `Timeout`).
    pub async fn receive_timeout(
        &self,
        mailbox: &str,
        timeout: Duration,
    ) -> Result<Message, Error> {
        self.receive_with(mailbox, session::wait_at_most(timeout))
            .await
    }

    /// Takes the next message, waiting as `wait` says.
    pub async fn receive_with(&self, mailbox: &str, wait: Wait) -> Result<Message, Error> {
        let request = Request::Receive {
            mailbox: mailbox.to_owned(),
            wait,
        };
        session::expect_message(self.roundtrip(request).await?)
    }

    /// Sends several messages at once, in order, waiting as long as it takes
    /// for room for all of them. They get consecutive sequence numbers.
    ///
    /// `Ok` means all were accepted. [`Error::Partial`] means only the first
    /// [`admitted`](Error::admitted) were (the rest never will be), an
    /// [`Error::Broker`] that none was: for example kind `MessageTooLarge`
    /// when any payload is above the mailbox's limit, or when the whole
    /// batch would be above the broker's frame limit, which is refused
    /// without sending anything. For more than fits one frame, use
    /// [`send_stream`](Self::send_stream).
    ///
    /// Dropping the future cancels the batch's wait; what the broker had
    /// admitted by then stays sent.
    ///
    /// ```no_run
    /// use mailbox_client::{Client, Error};
    ///
    /// # async fn demo() -> Result<(), Error> {
    /// let client = Client::connect_default().await?;
    /// let receipt = client.send_many("jobs", ["a", "b", "c"]).await?;
    /// println!("sent as #{:?}", receipt.sequences());
    /// match client.try_send_many("jobs", ["d", "e"]).await {
    ///     Ok(_) => println!("all sent"),
    ///     Err(Error::Partial { admitted, .. }) => println!("only {admitted} sent"),
    ///     Err(error) => return Err(error), // none sent (or connection lost)
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_many(
        &self,
        mailbox: &str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
    ) -> Result<BatchReceipt, Error> {
        self.send_many_with(mailbox, payloads, Wait::Forever).await
    }

    /// Sends several messages as far as there is room now: those that do not
    /// fit at once are not sent ([`Error::Partial`] of kind `WouldBlock`, or
    /// [`Error::Broker`] of kind `WouldBlock` when none fitted).
    pub async fn try_send_many(
        &self,
        mailbox: &str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
    ) -> Result<BatchReceipt, Error> {
        self.send_many_with(mailbox, payloads, Wait::Never).await
    }

    /// Sends several messages, waiting at most `timeout` for room for all of
    /// them; those not admitted by then are withdrawn ([`Error::Partial`] or
    /// [`Error::Broker`] of kind `Timeout`).
    pub async fn send_many_timeout(
        &self,
        mailbox: &str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
        timeout: Duration,
    ) -> Result<BatchReceipt, Error> {
        let wait = session::wait_at_most(timeout);
        self.send_many_with(mailbox, payloads, wait).await
    }

    /// Sends several messages, waiting as `wait` says (see
    /// [`send_many`](Self::send_many)).
    pub async fn send_many_with(
        &self,
        mailbox: &str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
        wait: Wait,
    ) -> Result<BatchReceipt, Error> {
        let (request, count) = session::send_many_request(mailbox, payloads, wait);
        session::expect_sent_many(self.roundtrip(request).await?, count)
    }

    /// Takes up to `max` messages (at least 1; 0 counts as 1): waits as long
    /// as it takes for the first, then takes every one available up to
    /// `max`, in order. Messages kept from cancelled receives on `mailbox`
    /// (see [Cancellation](Self#cancellation)) come first, without asking the
    /// broker.
    ///
    /// The answer comes in one frame, which this client accepts up to
    /// 16 MiB + 64 KiB; a larger one ends the connection and its messages
    /// are lost, so keep `max` times the mailbox's message size below that.
    ///
    /// ```no_run
    /// # async fn demo(client: mailbox_client::Client) -> Result<(), mailbox_client::Error> {
    /// for message in client.receive_many("jobs", 64).await? {
    ///     println!("#{}: {:?}", message.metadata.sequence, message.payload);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn receive_many(&self, mailbox: &str, max: u32) -> Result<Vec<Message>, Error> {
        self.receive_many_with(mailbox, max, Wait::Forever).await
    }

    /// Takes up to `max` of the messages available now; none (an empty
    /// vector) when the mailbox is empty.
    pub async fn try_receive_many(&self, mailbox: &str, max: u32) -> Result<Vec<Message>, Error> {
        let request = session::receive_many_request(mailbox, max, Wait::Never);
        session::optional_messages(self.roundtrip(request).await, max)
    }

    /// Takes up to `max` messages, waiting at most `timeout` for the first
    /// (then kind `Timeout`).
    pub async fn receive_many_timeout(
        &self,
        mailbox: &str,
        max: u32,
        timeout: Duration,
    ) -> Result<Vec<Message>, Error> {
        self.receive_many_with(mailbox, max, session::wait_at_most(timeout))
            .await
    }

    /// Takes up to `max` messages, waiting for the first as `wait` says.
    pub async fn receive_many_with(
        &self,
        mailbox: &str,
        max: u32,
        wait: Wait,
    ) -> Result<Vec<Message>, Error> {
        let request = session::receive_many_request(mailbox, max, wait);
        session::expect_received_many(self.roundtrip(request).await?, max)
    }

    /// Subscribes this connection to a broadcast mailbox; `Ok(false)` when it
    /// was subscribed already. The subscription ends with the connection.
    pub async fn subscribe(&self, mailbox: &str) -> Result<bool, Error> {
        let request = Request::Subscribe {
            mailbox: mailbox.to_owned(),
        };
        session::expect_subscribed(self.roundtrip(request).await?)
    }

    /// Ends this connection's subscription; its unread backlog is released.
    pub async fn unsubscribe(&self, mailbox: &str) -> Result<(), Error> {
        let request = Request::Unsubscribe {
            mailbox: mailbox.to_owned(),
        };
        session::expect_unsubscribed(self.roundtrip(request).await?)
    }

    // -----------------------------------------------------------------------
    // Direct communication, acknowledgements, calls and names (protocol 2).

    /// This connection's process address: where [`send_to`](Self::send_to)
    /// of another process reaches this connection's inbox, and what
    /// [`Metadata::sender_connection`] says of the messages it sends. The
    /// same number as [`connection_id`](Self::connection_id).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), mailbox_client::Error> {
    /// let client = mailbox_client::Client::connect_default().await?;
    /// println!("reach me with `mailboxctl send --to {}`", client.address());
    /// # Ok(()) }
    /// ```
    pub fn address(&self) -> u64 {
        self.connection.welcome.connection_id
    }

    /// Sends a message straight to a process's inbox (by address or by a
    /// well-known name it holds), waiting as long as it takes for room in
    /// it. Kind `NoSuchProcess` when no connected process has that address
    /// or name.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), mailbox_client::Error> {
    /// let client = mailbox_client::Client::connect_default().await?;
    /// client.send_to("logger", "started").await?; // a well-known name
    /// client.send_to(42, "hello").await?; // a process address
    /// # Ok(()) }
    /// ```
    pub async fn send_to(
        &self,
        process: impl Into<Address>,
        payload: impl Into<Bytes>,
    ) -> Result<SendReceipt, Error> {
        let request = session::send_to_request(process.into(), payload.into(), Wait::Forever);
        session::expect_sent(self.roundtrip(request).await?)
    }

    /// Sends a message to a process's inbox only if there is room now;
    /// otherwise fails with kind `WouldBlock` and nothing was sent.
    pub async fn try_send_to(
        &self,
        process: impl Into<Address>,
        payload: impl Into<Bytes>,
    ) -> Result<SendReceipt, Error> {
        let request = session::send_to_request(process.into(), payload.into(), Wait::Never);
        session::expect_sent(self.roundtrip(request).await?)
    }

    /// Sends a message to a process's inbox, waiting at most `timeout` for
    /// room; on kind `Timeout` it was withdrawn and will never be delivered.
    pub async fn send_to_timeout(
        &self,
        process: impl Into<Address>,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<SendReceipt, Error> {
        let wait = session::wait_at_most(timeout);
        let request = session::send_to_request(process.into(), payload.into(), wait);
        session::expect_sent(self.roundtrip(request).await?)
    }

    /// The general send: to a mailbox or a process ([`Target`]), with a
    /// routing key, a time-to-live and the [`Stage`] to wait for
    /// ([`SendOptions`]), waiting as `wait` says for all of it.
    ///
    /// With [`Stage::Queued`] it is answered when the broker holds the
    /// message, with [`Stage::Received`] when a receiver took it, with
    /// [`Stage::Acknowledged`] when a receiver acknowledged it. A wait that
    /// ends before anyone took the message fails with kind `Timeout` (or
    /// `WouldBlock`) and the message is withdrawn; one that ends after a
    /// receiver took it but before it acknowledged fails with kind
    /// `TimeoutInFlight`, and the message was **not** withdrawn. Dropping
    /// the future cancels the wait, with the same two outcomes.
    ///
    /// ```no_run
    /// use mailbox_client::{Client, SendOptions, Stage, Target, Wait};
    ///
    /// # async fn demo() -> Result<(), mailbox_client::Error> {
    /// let client = Client::connect_default().await?;
    /// let options = SendOptions {
    ///     stage: Stage::Acknowledged,
    ///     key: Some("customer-17".into()),
    ///     ttl_millis: Some(30_000),
    /// };
    /// let receipt = client
    ///     .post(Target::mailbox("orders"), "ship it", options, Wait::Forever)
    ///     .await?;
    /// println!("order #{} processed", receipt.sequence);
    /// # Ok(()) }
    /// ```
    pub async fn post(
        &self,
        to: Target,
        payload: impl Into<Bytes>,
        options: SendOptions,
        wait: Wait,
    ) -> Result<SendReceipt, Error> {
        let request = session::post_request(to, payload.into(), options, wait);
        session::expect_sent(self.roundtrip(request).await?)
    }

    /// Takes the next message from this connection's inbox, from any
    /// sender, waiting as long as it takes.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), mailbox_client::Error> {
    /// let client = mailbox_client::Client::connect_default().await?;
    /// let message = client.receive_inbox().await?;
    /// println!("{:?} from process {}", message.payload, message.metadata.sender_connection);
    /// # Ok(()) }
    /// ```
    pub async fn receive_inbox(&self) -> Result<Message, Error> {
        let request = session::inbox_request(None, false, Wait::Forever);
        session::expect_message(self.roundtrip(request).await?)
    }

    /// Takes the next message from this connection's inbox if there is one
    /// now.
    pub async fn try_receive_inbox(&self) -> Result<Option<Message>, Error> {
        let request = session::inbox_request(None, false, Wait::Never);
        session::optional_message(self.roundtrip(request).await)
    }

    /// Takes the next message from this connection's inbox, waiting at most
    /// `timeout` (then kind `Timeout`).
    pub async fn receive_inbox_timeout(&self, timeout: Duration) -> Result<Message, Error> {
        let request = session::inbox_request(None, false, session::wait_at_most(timeout));
        session::expect_message(self.roundtrip(request).await?)
    }

    /// Takes the next message that `process` sent to this connection's
    /// inbox, waiting as long as it takes; messages from others stay there,
    /// in order, for other receives.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), mailbox_client::Error> {
    /// let client = mailbox_client::Client::connect_default().await?;
    /// client.send_to("calculator", "2 + 2").await?;
    /// let answer = client.receive_from("calculator").await?;
    /// # Ok(()) }
    /// ```
    pub async fn receive_from(&self, process: impl Into<Address>) -> Result<Message, Error> {
        let request = session::inbox_request(Some(process.into()), false, Wait::Forever);
        session::expect_message(self.roundtrip(request).await?)
    }

    /// Takes the next message from `process` in this connection's inbox if
    /// there is one now.
    pub async fn try_receive_from(
        &self,
        process: impl Into<Address>,
    ) -> Result<Option<Message>, Error> {
        let request = session::inbox_request(Some(process.into()), false, Wait::Never);
        session::optional_message(self.roundtrip(request).await)
    }

    /// Takes the next message from `process` in this connection's inbox,
    /// waiting at most `timeout` (then kind `Timeout`).
    pub async fn receive_from_timeout(
        &self,
        process: impl Into<Address>,
        timeout: Duration,
    ) -> Result<Message, Error> {
        let wait = session::wait_at_most(timeout);
        let request = session::inbox_request(Some(process.into()), false, wait);
        session::expect_message(self.roundtrip(request).await?)
    }

    /// The general receive: from a mailbox or this connection's inbox
    /// ([`Source`]), one message (`options.max` of `None`) or a batch of up
    /// to `max` (0 counts as 1), with manual acknowledgement and a receiver
    /// priority ([`ReceiveOptions`]), waiting for the first message as
    /// `wait` says. With `Wait::Never` and nothing to take it fails with
    /// kind `WouldBlock`. Messages kept from cancelled receives from the
    /// same source (see [Cancellation](Self#cancellation)) come first.
    ///
    /// Messages taken with `manual_ack` are held until settled: wrap each
    /// with [`Held::from_source`] and [`ack`](Self::ack) or
    /// [`nack`](Self::nack) it.
    ///
    /// ```no_run
    /// use mailbox_client::{Client, Held, ReceiveOptions, Source, Wait};
    ///
    /// # async fn demo() -> Result<(), mailbox_client::Error> {
    /// let client = Client::connect_default().await?;
    /// let source = Source::Mailbox("jobs".into());
    /// let options = ReceiveOptions { max: Some(16), manual_ack: true, priority: 10 };
    /// for message in client.fetch(source.clone(), options, Wait::Forever).await? {
    ///     let held = Held::from_source(&source, message);
    ///     // ... process it, then:
    ///     client.ack(&held).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn fetch(
        &self,
        source: Source,
        options: ReceiveOptions,
        wait: Wait,
    ) -> Result<Vec<Message>, Error> {
        let max = options.max.map(|max| max.max(1));
        let request = session::fetch_request(source, options, wait);
        session::expect_fetched(self.roundtrip(request).await?, max)
    }

    /// Takes the next message from `mailbox` with manual acknowledgement,
    /// waiting for it as `wait` says: the broker holds it for this
    /// connection until it is settled with [`ack`](Self::ack) or
    /// [`nack`](Self::nack), and puts it back at the head of the mailbox if
    /// the connection ends first. Kind `InvalidRequest` on a broadcast
    /// mailbox. A held message that crossed the cancel of a dropped call is
    /// kept, still held, for this connection's next held receive from
    /// `mailbox`.
    ///
    /// ```no_run
    /// use mailbox_client::{Client, Wait};
    ///
    /// # async fn demo() -> Result<(), mailbox_client::Error> {
    /// let client = Client::connect_default().await?;
    /// let held = client.receive_held("jobs", Wait::Forever).await?;
    /// match std::str::from_utf8(&held.message.payload) {
    ///     Ok(job) => {
    ///         println!("doing {job}");
    ///         client.ack(&held).await?;
    ///     }
    ///     // Back to the tail, for someone else (or later).
    ///     Err(_) => client.nack(&held, true).await?,
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn receive_held(&self, mailbox: &str, wait: Wait) -> Result<Held, Error> {
        let request = session::held_request(mailbox, wait);
        let response = self.roundtrip(request).await?;
        session::expect_held(response, &Source::Mailbox(mailbox.to_owned()))
    }

    /// Takes the next message from this connection's inbox with manual
    /// acknowledgement, as [`receive_held`](Self::receive_held) does for a
    /// mailbox.
    pub async fn receive_inbox_held(&self, wait: Wait) -> Result<Held, Error> {
        let request = session::inbox_request(None, true, wait);
        let response = self.roundtrip(request).await?;
        session::expect_held(response, &Source::Inbox { from: None })
    }

    /// Acknowledges a held message: done with it, it leaves the broker (and
    /// a sender waiting for [`Stage::Acknowledged`] is answered). Kind
    /// `NotHeld` when this connection does not hold it (any more): e.g. the
    /// mailbox's acknowledgement timeout
    /// ([`MailboxSettings::ack_timeout_millis`]) passed and it went back,
    /// even if it was delivered to this connection again (that delivery is
    /// another [`Held`]).
    pub async fn ack(&self, held: &Held) -> Result<(), Error> {
        self.settle(held, Verdict::Ack).await
    }

    /// Gives a held message back: it returns to its mailbox (or inbox), to
    /// the head or, with `to_tail`, to the tail, and its redelivery count
    /// goes up (past the mailbox's maximum deliveries it is dead-lettered).
    pub async fn nack(&self, held: &Held, to_tail: bool) -> Result<(), Error> {
        self.settle(held, Verdict::Nack { to_tail }).await
    }

    /// Settles a held message with `verdict` ([`ack`](Self::ack) and
    /// [`nack`](Self::nack) are the two verdicts).
    pub async fn settle(&self, held: &Held, verdict: Verdict) -> Result<(), Error> {
        let response = self.roundtrip(held.settle_request(verdict)).await?;
        session::expect_settled(response)
    }

    /// Sends `payload` as a call's request to `to` (a mailbox or a process)
    /// and waits at most `timeout` for the reply, which it returns (its
    /// [`Metadata::call`] is the call's id). Kind `NoReply` when the process
    /// that took the request left (or the request was dropped) without
    /// replying, `Timeout` when the time ran out (the handler's late reply
    /// then fails with `CallEnded`). Dropping the future cancels the call
    /// the same way.
    ///
    /// Many calls may be in flight on one connection at once, from clones
    /// of this client.
    ///
    /// ```no_run
    /// use mailbox_client::{Client, Target};
    /// use std::time::Duration;
    ///
    /// # async fn demo() -> Result<(), mailbox_client::Error> {
    /// let client = Client::connect_default().await?;
    /// let reply = client
    ///     .call(Target::process("resolver"), "example.org", Duration::from_secs(2))
    ///     .await?;
    /// println!("{:?}", reply.payload);
    /// # Ok(()) }
    /// ```
    pub async fn call(
        &self,
        to: Target,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, Error> {
        let wait = session::wait_at_most(timeout);
        self.call_with(to, payload, SendOptions::default(), wait)
            .await
    }

    /// A call with a routing key and a time-to-live for its request
    /// (`options.stage` is ignored), waiting for the reply as `wait` says.
    pub async fn call_with(
        &self,
        to: Target,
        payload: impl Into<Bytes>,
        options: SendOptions,
        wait: Wait,
    ) -> Result<Message, Error> {
        let request = session::call_request(to, payload.into(), options, wait);
        session::expect_message(self.roundtrip(request).await?)
    }

    /// Answers a call whose request this connection received: `request` is
    /// that message, whose [`Metadata::call`] names the call. A message that
    /// is no call's request is refused here, without asking the broker, as
    /// kind `NotHeld`; the broker answers `NotHeld` too for a call this
    /// connection does not hold (answered already), and `CallEnded` when
    /// the caller stopped waiting.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), mailbox_client::Error> {
    /// let client = mailbox_client::Client::connect_default().await?;
    /// client.claim_name("upper").await?;
    /// loop {
    ///     let request = client.receive_inbox().await?;
    ///     if request.metadata.call().is_some() {
    ///         let answer = request.payload.to_ascii_uppercase();
    ///         client.reply(&request, answer).await?;
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn reply(&self, request: &Message, payload: impl Into<Bytes>) -> Result<(), Error> {
        let request = session::reply_request(request, payload.into())?;
        session::expect_replied(self.roundtrip(request).await?)
    }

    /// Claims the well-known name `name` for this connection, failing at
    /// once with kind `NameTaken` when another process holds it. Others can
    /// then reach this connection's inbox by that name. It is released by
    /// [`release_name`](Self::release_name) or when the connection ends.
    ///
    /// ```no_run
    /// use mailbox_client::{Client, ErrorKind, Wait};
    ///
    /// # async fn demo() -> Result<(), mailbox_client::Error> {
    /// let client = Client::connect_default().await?;
    /// if let Err(error) = client.claim_name("scheduler").await {
    ///     if error.kind() != Some(ErrorKind::NameTaken) {
    ///         return Err(error);
    ///     }
    ///     // Stand by until the active scheduler goes away.
    ///     client.claim_name_with("scheduler", Wait::Forever).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn claim_name(&self, name: &str) -> Result<(), Error> {
        self.claim_name_with(name, Wait::Never).await
    }

    /// Claims a well-known name, queueing for it while another process
    /// holds it as `wait` says (`Wait::Never`: fail at once with
    /// `NameTaken`; a timeout: `Timeout`). Dropping the future withdraws
    /// the claim; if the name was granted just then, it is released again.
    pub async fn claim_name_with(&self, name: &str, wait: Wait) -> Result<(), Error> {
        let response = self
            .roundtrip(session::claim_name_request(name, wait))
            .await?;
        session::expect_name_claimed(response)
    }

    /// Gives up a name this connection holds; the next queued claimer gets
    /// it.
    pub async fn release_name(&self, name: &str) -> Result<(), Error> {
        let response = self.roundtrip(session::release_name_request(name)).await?;
        session::expect_name_released(response)
    }

    /// Every claimed name with its owner, sorted by name.
    pub async fn names(&self) -> Result<Vec<NameInfo>, Error> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.names_page(after.as_deref(), PAGE_ROWS).await?;
            match session::follow_page(&mut all, after.as_deref(), page)? {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One page of [`names`](Self::names): at most `max` names sorting
    /// after `after`, and where the next page starts.
    pub async fn names_page(&self, after: Option<&str>, max: u32) -> Result<Page<NameInfo>, Error> {
        let request = session::name_page_request(after, max);
        session::expect_name_page(self.roundtrip(request).await?)
    }

    /// Changes a mailbox's owner (root only), group or mode; `None` keeps
    /// what it is. Needs the manage right.
    pub async fn set_permissions(
        &self,
        mailbox: &str,
        owner: Option<u32>,
        group: Option<u32>,
        mode: Option<u32>,
    ) -> Result<(), Error> {
        let response = self
            .roundtrip(Request::SetPermissions {
                name: mailbox.to_owned(),
                owner,
                group,
                mode,
            })
            .await?;
        session::expect_permissions_set(response)
    }

    /// Discards every queued message of `mailbox` (not those in flight);
    /// returns how many. Needs the manage right.
    pub async fn purge(&self, mailbox: &str) -> Result<u64, Error> {
        let response = self
            .roundtrip(Request::Purge {
                name: mailbox.to_owned(),
            })
            .await?;
        session::expect_purged(response)
    }

    /// Sets the capacity of this connection's inbox; messages already in it stay.
    pub async fn set_inbox_capacity(&self, capacity: Capacity) -> Result<(), Error> {
        let response = self
            .roundtrip(session::inbox_capacity_request(capacity))
            .await?;
        session::expect_inbox_capacity_set(response)
    }

    /// Sets who may send to this connection's inbox: `mode` (only the send
    /// bits count; the broker's default, `0o600`, admits this uid and root
    /// alone, so `0o622` opens it to everyone) and `group` (this process
    /// must be a member, unless root).
    pub async fn set_inbox_permissions(
        &self,
        mode: Option<u32>,
        group: Option<u32>,
    ) -> Result<(), Error> {
        let response = self
            .roundtrip(Request::SetInboxPermissions { mode, group })
            .await?;
        session::expect_inbox_permissions_set(response)
    }

    /// Sends every payload to `mailbox` with up to `window` sends in flight.
    ///
    /// Returns the receipts in input order. At the first failure no further
    /// payload is sent, the answers of those in flight are still collected,
    /// and the [`PipelineError`] says exactly which positions were accepted.
    pub async fn send_pipelined<I>(
        &self,
        mailbox: &str,
        payloads: I,
        window: usize,
        wait: Wait,
    ) -> Result<Vec<SendReceipt>, PipelineError>
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        let mut tally = SendTally::new(window);
        let mut payloads = payloads.into_iter().fuse();
        let mut in_flight: VecDeque<(usize, PendingCall)> = VecDeque::new();
        loop {
            for _ in 0..tally.room(in_flight.len()) {
                let Some(payload) = payloads.next() else {
                    break;
                };
                let position = tally.issue();
                let request = Request::Send {
                    mailbox: mailbox.to_owned(),
                    payload: payload.into(),
                    wait,
                };
                match self.connection.shared.begin(request) {
                    Ok(Begun::Waiting(call)) => in_flight.push_back((position, call)),
                    Ok(Begun::Ready(response)) => tally.record(position, Ok(response)),
                    Err(error) => {
                        tally.not_sent(position, error);
                        break;
                    }
                }
            }
            let Some((position, call)) = in_flight.pop_front() else {
                break;
            };
            tally.record(
                position,
                bounded(connect::wait_limit(wait), call.wait()).await,
            );
        }
        tally.finish()
    }

    /// Receives `count` messages from `mailbox` with up to `window` receives
    /// in flight, handing each to `each` in the order the broker gave them.
    ///
    /// Never asks for more than `count` messages. At the first failure the
    /// outstanding receives are cancelled, but a message the broker handed
    /// over before the cancel still reaches `each`; then the failure is
    /// returned. Returns how many messages `each` got.
    pub async fn receive_pipelined(
        &self,
        mailbox: &str,
        count: usize,
        window: usize,
        wait: Wait,
        mut each: impl FnMut(Message),
    ) -> Result<usize, Error> {
        let mut tally = ReceiveTally::new(count, window);
        let mut in_flight: VecDeque<PendingCall> = VecDeque::new();
        let mut cancelled = false;
        loop {
            for _ in 0..tally.room(in_flight.len()) {
                let request = Request::Receive {
                    mailbox: mailbox.to_owned(),
                    wait,
                };
                match self.connection.shared.begin(request) {
                    Ok(Begun::Waiting(call)) => {
                        tally.issue();
                        in_flight.push_back(call);
                    }
                    Ok(Begun::Ready(response)) => {
                        tally.issue();
                        if let Some(message) = tally.record(Ok(response)) {
                            each(message);
                        }
                    }
                    Err(error) => {
                        tally.record(Err(error));
                        break;
                    }
                }
            }
            if tally.failed() && !cancelled {
                cancelled = true;
                in_flight.iter_mut().for_each(PendingCall::cancel);
            }
            let Some(call) = in_flight.pop_front() else {
                break;
            };
            if let Some(message) =
                tally.record(bounded(connect::wait_limit(wait), call.wait()).await)
            {
                each(message);
            }
        }
        tally.finish()
    }

    /// Sends every payload to `mailbox` in batches (`SendMany`) of up to
    /// `batch` payloads, with up to `window` batches in flight, as
    /// [`blocking::Client::send_stream`] does (a batch is also cut short
    /// where it would not fit the broker's frame limit).
    ///
    /// Returns how many were accepted (all of them) with each batch's
    /// receipt. When a batch stops early or fails, no further batch is sent,
    /// the answers of those in flight are still collected, and the
    /// [`StreamError`] says exactly which positions were accepted. Dropping
    /// the future cancels the batches in flight; what the broker admitted
    /// of them stays sent.
    pub async fn send_stream<I>(
        &self,
        mailbox: &str,
        payloads: I,
        batch: usize,
        window: usize,
        wait: Wait,
    ) -> Result<StreamReceipt, StreamError>
    where
        I: IntoIterator<Item = Bytes>,
    {
        let max_frame_len = self.connection.welcome.max_frame_len;
        let mut batches = Batcher::new(payloads.into_iter(), batch, max_frame_len, mailbox);
        let mut tally = StreamSendTally::new(window);
        let mut in_flight: VecDeque<(Range<usize>, PendingCall)> = VecDeque::new();
        loop {
            for _ in 0..tally.room(in_flight.len()) {
                let Some((positions, payloads)) = batches.next_batch() else {
                    break;
                };
                let request = Request::SendMany {
                    mailbox: mailbox.to_owned(),
                    payloads,
                    wait,
                };
                match self.connection.shared.begin(request) {
                    Ok(Begun::Waiting(call)) => {
                        tally.issue(&positions);
                        in_flight.push_back((positions, call));
                    }
                    Ok(Begun::Ready(response)) => {
                        tally.issue(&positions);
                        tally.record(positions, Ok(response));
                    }
                    Err(error) => {
                        tally.not_sent(&positions, error);
                        break;
                    }
                }
            }
            let Some((positions, call)) = in_flight.pop_front() else {
                break;
            };
            tally.record(
                positions,
                bounded(connect::wait_limit(wait), call.wait()).await,
            );
        }
        tally.finish()
    }

    /// Receives `count` messages from `mailbox` by batches (`ReceiveMany`)
    /// of up to `max`, with up to `window` of them in flight, handing each
    /// message to `each` in the order the broker gave them, as
    /// [`blocking::Client::receive_stream`] does. Returns how many messages
    /// `each` got.
    ///
    /// Never asks for more than it still needs, so no message beyond the
    /// `count`th is taken. At the first failure the outstanding receives are
    /// cancelled, but messages the broker handed over before the cancel
    /// still reach `each`; then the failure is returned.
    pub async fn receive_stream(
        &self,
        mailbox: &str,
        count: usize,
        max: u32,
        window: usize,
        wait: Wait,
        mut each: impl FnMut(Message),
    ) -> Result<usize, Error> {
        let mut tally = StreamReceiveTally::new(count, max, window);
        let mut in_flight: VecDeque<(u32, PendingCall)> = VecDeque::new();
        let mut cancelled = false;
        loop {
            while let Some(max) = tally.next_max(in_flight.len()) {
                let request = session::receive_many_request(mailbox, max, wait);
                match self.connection.shared.begin(request) {
                    Ok(Begun::Waiting(call)) => {
                        tally.issue(max);
                        in_flight.push_back((max, call));
                    }
                    Ok(Begun::Ready(response)) => {
                        tally.issue(max);
                        tally
                            .record(max, Ok(response))
                            .into_iter()
                            .for_each(&mut each);
                    }
                    Err(error) => {
                        tally.not_sent(error);
                        break;
                    }
                }
            }
            if tally.failed() && !cancelled {
                cancelled = true;
                in_flight.iter_mut().for_each(|(_, call)| call.cancel());
            }
            let Some((max, call)) = in_flight.pop_front() else {
                break;
            };
            let messages = tally.record(max, bounded(connect::wait_limit(wait), call.wait()).await);
            messages.into_iter().for_each(&mut each);
        }
        tally.finish()
    }
}

/// Reads answers and hands them to their callers until the connection ends.
async fn read_loop(shared: Arc<Shared>, mut read_half: OwnedReadHalf, mut incoming: BytesMut) {
    loop {
        let mut frames = Vec::new();
        let decoded = loop {
            match session::decode_server_frame(&mut incoming) {
                Ok(Some(frame)) => frames.push(frame),
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
        let error = match read_half.read_buf(&mut incoming).await {
            Ok(0) => Error::Disconnected,
            Ok(_) => continue,
            Err(error) => Error::from_connection_io(error),
        };
        shared.close(&mut shared.lock(), error);
        return;
    }
}

/// Writes queued frames, as many per `write` as have accumulated.
async fn write_loop(shared: Arc<Shared>, mut write_half: OwnedWriteHalf) {
    let mut batch = BytesMut::new();
    loop {
        shared.writable.notified().await;
        {
            let mut state = shared.lock();
            if state.closed.is_some() {
                return;
            }
            std::mem::swap(&mut batch, &mut state.outgoing);
        }
        if batch.is_empty() {
            continue;
        }
        if let Err(error) = write_half.write_all(&batch).await {
            shared.close(&mut shared.lock(), Error::from_connection_io(error));
            return;
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fake_broker, message, messages, sent_many, FakeBroker};
    use mailbox_proto::ClientFrame;
    use std::future::Future;

    // The tests run on a multi-threaded runtime because they block a thread
    // joining the fake broker, which only ends once the client's aborted
    // tasks have released the socket (on another worker).

    async fn within<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .expect("test timed out")
    }

    async fn connected(
        handler: impl FnMut(&ClientFrame) -> Vec<ServerFrame> + Send + 'static,
    ) -> (Client, FakeBroker) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socket pair");
        let broker = fake_broker(theirs, handler);
        ours.set_nonblocking(true).expect("nonblocking");
        let stream = UnixStream::from_std(ours).expect("tokio stream");
        let client = Client::from_stream(stream).await.expect("handshake");
        (client, broker)
    }

    fn answer(id: RequestId, result: Result<Response, BrokerError>) -> ServerFrame {
        ServerFrame::Response { id, result }
    }

    fn cancelled(request: RequestId) -> ServerFrame {
        answer(
            request,
            Err(BrokerError::new(ErrorKind::Cancelled, "cancelled")),
        )
    }

    #[test]
    fn client_is_cheap_to_share() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Client>();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_get_their_own_answers_out_of_order() {
        // Receives are held until a send arrives, then all answered at once.
        let mut held = Vec::new();
        let (client, broker) = connected(move |frame| match &frame.request {
            Request::Receive { .. } => {
                held.push(frame.id);
                Vec::new()
            }
            Request::Send { .. } => {
                let mut replies: Vec<ServerFrame> = held
                    .drain(..)
                    .enumerate()
                    .map(|(i, id)| answer(id, Ok(Response::Received(message(i as u64, b"m")))))
                    .collect();
                replies.push(answer(
                    frame.id,
                    Ok(Response::Sent {
                        sequence: 1,
                        recipients: 1,
                    }),
                ));
                replies
            }
            _ => vec![answer(
                frame.id,
                Ok(Response::MailboxPage {
                    mailboxes: Vec::new(),
                    next: None,
                }),
            )],
        })
        .await;
        within(async {
            let receivers: Vec<_> = (0..8)
                .map(|_| {
                    let client = client.clone();
                    tokio::spawn(async move { client.receive("jobs").await })
                })
                .collect();
            // Wait until the broker holds all eight receives.
            while client.connection.shared.lock().session.in_flight() < 8 {
                tokio::task::yield_now().await;
            }
            assert!(client.list().await.expect("listed").is_empty());
            client.send("jobs", "go").await.expect("sent");
            let mut sequences = Vec::new();
            for receiver in receivers {
                let message = receiver.await.expect("task").expect("message");
                sequences.push(message.metadata.sequence);
            }
            sequences.sort_unstable();
            assert_eq!(sequences, (0..8).collect::<Vec<_>>());
        })
        .await;
        drop(client);
        assert_eq!(broker.finish().frames.len(), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_receive_is_cancelled() {
        let (client, broker) = connected(|frame| match &frame.request {
            Request::Receive {
                wait: Wait::Forever,
                ..
            } => Vec::new(),
            Request::Receive { .. } => vec![answer(
                frame.id,
                Err(BrokerError::new(ErrorKind::WouldBlock, "empty")),
            )],
            Request::Cancel { request } => vec![
                cancelled(*request),
                answer(frame.id, Ok(Response::CancelResult { cancelled: true })),
            ],
            _ => vec![answer(
                frame.id,
                Ok(Response::MailboxPage {
                    mailboxes: Vec::new(),
                    next: None,
                }),
            )],
        })
        .await;
        within(async {
            let gave_up =
                tokio::time::timeout(Duration::from_millis(50), client.receive("jobs")).await;
            assert!(gave_up.is_err());
            client.list().await.expect("listed");
            assert_eq!(client.try_receive("jobs").await.expect("no error"), None);
        })
        .await;
        drop(client);
        let frames = broker.finish().frames;
        let kinds: Vec<_> = frames
            .iter()
            .map(|frame| match &frame.request {
                Request::Receive { .. } => "receive",
                Request::Cancel { request } if *request == frames[0].id => "cancel",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["receive", "cancel", "other", "receive"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_crossing_the_cancel_goes_to_the_next_receive() {
        // The broker hands the message over just as the cancel arrives.
        let (client, broker) = connected(|frame| match &frame.request {
            Request::Receive { .. } => Vec::new(),
            Request::Cancel { request } => vec![
                answer(*request, Ok(Response::Received(message(1, b"kept")))),
                answer(frame.id, Ok(Response::CancelResult { cancelled: false })),
            ],
            _ => vec![answer(
                frame.id,
                Ok(Response::MailboxPage {
                    mailboxes: Vec::new(),
                    next: None,
                }),
            )],
        })
        .await;
        within(async {
            let gave_up =
                tokio::time::timeout(Duration::from_millis(50), client.receive("jobs")).await;
            assert!(gave_up.is_err());
            // Answered after the cancel, so the orphan has been routed by now.
            client.list().await.expect("listed");
            let message = client.receive("jobs").await.expect("kept message");
            assert_eq!(message.payload, "kept");
        })
        .await;
        drop(client);
        let frames = broker.finish().frames;
        assert_eq!(
            frames.len(),
            3,
            "the second receive never reached the broker"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_already_in_the_channel_is_kept_when_its_caller_leaves() {
        let (client, _broker) = connected(|_| Vec::new()).await;
        let shared = &client.connection.shared;
        let request = Request::Receive {
            mailbox: "jobs".into(),
            wait: Wait::Forever,
        };
        let Ok(Begun::Waiting(call)) = shared.begin(request) else {
            panic!("expected a waiting call");
        };
        // The reader routes the answer, then the caller drops its future
        // before polling it again.
        let routed = ServerFrame::Response {
            id: call.id,
            result: Ok(Response::Received(message(9, b"late"))),
        };
        assert!(shared.deliver(vec![routed]));
        drop(call);
        let kept = within(client.try_receive("jobs")).await.expect("no error");
        assert_eq!(kept.map(|m| m.metadata.sequence), Some(9));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_connection_fails_waiting_and_later_calls() {
        let (client, broker) = connected(|_| Vec::new()).await;
        within(async {
            let waiting = {
                let client = client.clone();
                tokio::spawn(async move { client.receive("jobs").await })
            };
            while client.connection.shared.lock().session.in_flight() < 1 {
                tokio::task::yield_now().await;
            }
            broker.hang_up();
            let error = waiting.await.expect("task").expect_err("should fail");
            assert!(matches!(error, Error::Disconnected), "{error}");
            assert!(matches!(client.list().await, Err(Error::Disconnected)));
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_goodbye_reaches_every_waiting_call() {
        let (client, _broker) = connected(|frame| match &frame.request {
            Request::Status => vec![ServerFrame::Goodbye(BrokerError::new(
                ErrorKind::BrokerShuttingDown,
                "stopping",
            ))],
            _ => Vec::new(),
        })
        .await;
        within(async {
            let waiting = {
                let client = client.clone();
                tokio::spawn(async move { client.receive("jobs").await })
            };
            while client.connection.shared.lock().session.in_flight() < 1 {
                tokio::task::yield_now().await;
            }
            let error = client.status().await.expect_err("should fail");
            assert_eq!(error.kind(), Some(ErrorKind::BrokerShuttingDown));
            let error = waiting.await.expect("task").expect_err("should fail");
            assert_eq!(error.kind(), Some(ErrorKind::BrokerShuttingDown));
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipelined_sends_and_receives() {
        let mut sequence = 0;
        let (client, broker) = connected(move |frame| {
            sequence += 1;
            let result = match &frame.request {
                Request::Send { .. } => Ok(Response::Sent {
                    sequence,
                    recipients: 1,
                }),
                _ => Ok(Response::Received(message(sequence, b"m"))),
            };
            vec![answer(frame.id, result)]
        })
        .await;
        within(async {
            let payloads = (0..50).map(|i| format!("message {i}"));
            let receipts = client
                .send_pipelined("jobs", payloads, 8, Wait::Forever)
                .await
                .expect("accepted");
            assert_eq!(receipts.len(), 50);
            assert!(receipts.windows(2).all(|w| w[0].sequence < w[1].sequence));
            let mut got = 0;
            let count = client
                .receive_pipelined("jobs", 20, 8, Wait::Forever, |_| got += 1)
                .await
                .expect("received");
            assert_eq!((count, got), (20, 20));
        })
        .await;
        drop(client);
        let log = broker.finish();
        assert_eq!(log.frames.len(), 70);
        assert!(log.largest_batch > 1, "frames are batched per write");
    }

    fn sequences(messages: &[Message]) -> Vec<u64> {
        messages.iter().map(|m| m.metadata.sequence).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_crossing_the_cancel_is_kept_whole_for_the_next_receives() {
        // The broker hands three messages over just as the cancel arrives.
        let (client, broker) = connected(|frame| match &frame.request {
            Request::ReceiveMany { .. } | Request::Receive { .. } => Vec::new(),
            Request::Cancel { request } => vec![
                answer(*request, Ok(Response::ReceivedMany(messages(1, 3)))),
                answer(frame.id, Ok(Response::CancelResult { cancelled: false })),
            ],
            _ => vec![answer(
                frame.id,
                Ok(Response::MailboxPage {
                    mailboxes: Vec::new(),
                    next: None,
                }),
            )],
        })
        .await;
        within(async {
            let gave_up =
                tokio::time::timeout(Duration::from_millis(50), client.receive_many("jobs", 10))
                    .await;
            assert!(gave_up.is_err());
            // Answered after the cancel, so the orphans have been routed.
            client.list().await.expect("listed");
            let first = client.receive_many("jobs", 2).await.expect("kept");
            assert_eq!(sequences(&first), vec![1, 2]);
            let last = client.receive("jobs").await.expect("kept");
            assert_eq!(last.metadata.sequence, 3);
        })
        .await;
        drop(client);
        assert_eq!(
            broker.finish().frames.len(),
            3,
            "the later receives never reached the broker"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_already_in_the_channel_is_kept_when_its_caller_leaves() {
        let (client, _broker) = connected(|_| Vec::new()).await;
        let shared = &client.connection.shared;
        let requests = [
            session::receive_many_request("jobs", 10, Wait::Forever),
            Request::Receive {
                mailbox: "jobs".into(),
                wait: Wait::Forever,
            },
        ];
        let calls: Vec<PendingCall> = requests
            .into_iter()
            .map(|request| match shared.begin(request) {
                Ok(Begun::Waiting(call)) => call,
                _ => panic!("expected a waiting call"),
            })
            .collect();
        // The reader routes both answers, then the callers leave.
        let routed = vec![
            answer(calls[0].id, Ok(Response::ReceivedMany(messages(7, 2)))),
            answer(calls[1].id, Ok(Response::Received(message(9, b"m")))),
        ];
        assert!(shared.deliver(routed));
        drop(calls);
        let kept = within(client.try_receive_many("jobs", 10))
            .await
            .expect("no error");
        assert_eq!(sequences(&kept), vec![7, 8, 9]);
        assert!(shared.lock().orphans.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_and_streams() {
        let mut next_sent = 1;
        let mut next_received = 1;
        let (client, broker) = connected(move |frame| {
            let result = match &frame.request {
                Request::SendMany {
                    payloads,
                    wait: Wait::Never,
                    ..
                } => Ok(sent_many(
                    next_sent,
                    payloads.len() / 2,
                    Some(BrokerError::new(ErrorKind::WouldBlock, "full")),
                )),
                Request::SendMany { payloads, .. } => {
                    next_sent += payloads.len() as u64;
                    Ok(sent_many(
                        next_sent - payloads.len() as u64,
                        payloads.len(),
                        None,
                    ))
                }
                Request::ReceiveMany {
                    wait: Wait::Never, ..
                } => Err(BrokerError::new(ErrorKind::WouldBlock, "empty")),
                Request::ReceiveMany { max, .. } => {
                    let count = u64::from(*max).min(3);
                    next_received += count;
                    Ok(Response::ReceivedMany(messages(
                        next_received - count,
                        count,
                    )))
                }
                _ => Err(BrokerError::new(ErrorKind::Internal, "?")),
            };
            vec![answer(frame.id, result)]
        })
        .await;
        within(async {
            let receipt = client.send_many("jobs", ["a", "b"]).await.expect("sent");
            assert_eq!(receipt.sequences(), 1..3);
            let partial = client
                .try_send_many("jobs", ["c", "d", "e", "f"])
                .await
                .expect_err("half sent");
            assert!(
                matches!(partial, Error::Partial { admitted: 2, .. }),
                "{partial}"
            );
            assert!(client
                .try_receive_many("jobs", 4)
                .await
                .expect("empty is no error")
                .is_empty());

            let payloads = (0..500u32).map(|i| Bytes::from(i.to_le_bytes().to_vec()));
            let receipt = client
                .send_stream("jobs", payloads, 32, 4, Wait::Forever)
                .await
                .expect("accepted");
            assert_eq!(receipt.accepted, 500);
            assert_eq!(receipt.batches.len(), 16);
            assert_eq!(receipt.batches[0].first_sequence, 3);

            let mut got = Vec::new();
            let count = client
                .receive_stream("jobs", 20, 8, 3, Wait::Forever, |m| {
                    got.push(m.metadata.sequence)
                })
                .await
                .expect("received");
            assert_eq!(count, 20);
            assert_eq!(got, (1..=20).collect::<Vec<_>>());
        })
        .await;
        drop(client);
        let log = broker.finish();
        let streamed: Vec<Bytes> = log
            .frames
            .iter()
            .filter_map(|frame| match &frame.request {
                Request::SendMany {
                    payloads,
                    wait: Wait::Forever,
                    ..
                } if payloads.len() > 2 => Some(payloads.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let expected: Vec<Bytes> = (0..500u32)
            .map(|i| Bytes::from(i.to_le_bytes().to_vec()))
            .collect();
        assert_eq!(streamed, expected);
        assert!(log.largest_batch > 1, "frames are batched per write");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_receive_cancels_after_a_failure_and_keeps_raced_messages() {
        let mut receives = 0;
        let mut held = Vec::new();
        let (client, broker) = connected(move |frame| match &frame.request {
            Request::ReceiveMany { .. } => {
                receives += 1;
                match receives {
                    1 => vec![answer(frame.id, Ok(Response::ReceivedMany(messages(1, 4))))],
                    2 => vec![answer(
                        frame.id,
                        Err(BrokerError::new(ErrorKind::Timeout, "late")),
                    )],
                    _ => {
                        held.push(frame.id);
                        Vec::new()
                    }
                }
            }
            Request::Cancel { request } => {
                let raced = held.first() == Some(request);
                let result = if raced {
                    Ok(Response::ReceivedMany(messages(5, 2)))
                } else {
                    Err(BrokerError::new(ErrorKind::Cancelled, "cancelled"))
                };
                vec![
                    answer(*request, result),
                    answer(frame.id, Ok(Response::CancelResult { cancelled: !raced })),
                ]
            }
            _ => Vec::new(),
        })
        .await;
        within(async {
            let mut got = Vec::new();
            let error = client
                .receive_stream("jobs", 100, 4, 4, Wait::Forever, |m| {
                    got.push(m.metadata.sequence)
                })
                .await
                .expect_err("should fail");
            assert_eq!(error.kind(), Some(ErrorKind::Timeout));
            assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
            assert!(client.connection.shared.lock().orphans.is_empty());
        })
        .await;
        drop(client);
        let cancels = broker
            .finish()
            .frames
            .iter()
            .filter(|f| matches!(f.request, Request::Cancel { .. }))
            .count();
        assert!(cancels >= 2, "every outstanding receive was cancelled");
    }

    /// A message with a call id and a sender of its own.
    fn from_sender(sequence: u64, sender: u64) -> Message {
        let mut message = message(sequence, b"m");
        message.metadata.sender_connection = sender;
        message
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_message_crossing_the_cancel_waits_for_the_next_held_receive() {
        let (client, broker) = connected(|frame| match &frame.request {
            Request::ReceiveWith {
                wait: Wait::Forever,
                ..
            } => Vec::new(),
            Request::Cancel { request } => vec![
                answer(*request, Ok(Response::Received(message(1, b"held")))),
                answer(frame.id, Ok(Response::CancelResult { cancelled: false })),
            ],
            Request::Receive { .. } | Request::ReceiveWith { .. } => vec![answer(
                frame.id,
                Err(BrokerError::new(ErrorKind::WouldBlock, "empty")),
            )],
            _ => vec![answer(
                frame.id,
                Ok(Response::MailboxPage {
                    mailboxes: Vec::new(),
                    next: None,
                }),
            )],
        })
        .await;
        within(async {
            let gave_up = tokio::time::timeout(
                Duration::from_millis(50),
                client.receive_held("jobs", Wait::Forever),
            )
            .await;
            assert!(gave_up.is_err());
            client.list().await.expect("listed");
            // A plain receive does not take a message held for acknowledgement.
            assert_eq!(client.try_receive("jobs").await.expect("no error"), None);
            let held = client
                .receive_held("jobs", Wait::Never)
                .await
                .expect("kept");
            assert_eq!(held.mailbox.as_deref(), Some("jobs"));
            assert_eq!(held.message.payload, "held");
        })
        .await;
        drop(client);
        let frames = broker.finish().frames;
        assert_eq!(frames.len(), 4, "the last receive never reached the broker");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kept_inbox_messages_go_to_inbox_receives_by_sender() {
        let (client, broker) = connected(|frame| match &frame.request {
            Request::ReceiveWith {
                wait: Wait::Forever,
                options: ReceiveOptions { max: Some(_), .. },
                ..
            } => Vec::new(),
            Request::Cancel { request } => vec![
                answer(
                    *request,
                    Ok(Response::ReceivedMany(vec![
                        from_sender(1, 40),
                        from_sender(2, 41),
                        from_sender(3, 40),
                    ])),
                ),
                answer(frame.id, Ok(Response::CancelResult { cancelled: false })),
            ],
            Request::ReceiveWith { .. } | Request::Receive { .. } => vec![answer(
                frame.id,
                Err(BrokerError::new(ErrorKind::WouldBlock, "empty")),
            )],
            _ => vec![answer(
                frame.id,
                Ok(Response::MailboxPage {
                    mailboxes: Vec::new(),
                    next: None,
                }),
            )],
        })
        .await;
        within(async {
            let batch = ReceiveOptions {
                max: Some(10),
                ..ReceiveOptions::default()
            };
            let gave_up = tokio::time::timeout(
                Duration::from_millis(50),
                client.fetch(Source::Inbox { from: None }, batch, Wait::Forever),
            )
            .await;
            assert!(gave_up.is_err());
            client.list().await.expect("listed");
            // Not for a mailbox's receives, nor for a sender known by name.
            assert_eq!(client.try_receive("jobs").await.expect("no error"), None);
            assert_eq!(
                client.try_receive_from("svc").await.expect("no error"),
                None
            );
            let from_41 = client.try_receive_from(41).await.expect("no error");
            assert_eq!(from_41.map(|m| m.metadata.sequence), Some(2));
            assert_eq!(
                client
                    .receive_inbox()
                    .await
                    .expect("kept")
                    .metadata
                    .sequence,
                1
            );
            assert_eq!(
                client
                    .receive_from(40)
                    .await
                    .expect("kept")
                    .metadata
                    .sequence,
                3
            );
            assert!(client.connection.shared.lock().orphans.is_empty());
        })
        .await;
        drop(client);
        assert_eq!(
            broker.finish().frames.len(),
            5,
            "fetch, cancel, list, the mailbox's and the named sender's receives"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_name_granted_as_its_claim_is_dropped_is_released_again() {
        let (client, broker) = connected(|frame| match &frame.request {
            Request::ClaimName { .. } => Vec::new(),
            Request::Cancel { request } => vec![
                answer(*request, Ok(Response::NameClaimed)),
                answer(frame.id, Ok(Response::CancelResult { cancelled: false })),
            ],
            Request::ReleaseName { .. } => vec![answer(frame.id, Ok(Response::NameReleased))],
            _ => vec![answer(
                frame.id,
                Ok(Response::MailboxPage {
                    mailboxes: Vec::new(),
                    next: None,
                }),
            )],
        })
        .await;
        within(async {
            let gave_up = tokio::time::timeout(
                Duration::from_millis(50),
                client.claim_name_with("svc", Wait::Forever),
            )
            .await;
            assert!(gave_up.is_err());
            // Answered after the crossing grant, so the release is queued.
            client.list().await.expect("listed");
            while client.connection.shared.lock().session.in_flight() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        drop(client);
        let frames = broker.finish().frames;
        assert!(
            frames
                .iter()
                .any(|frame| frame.request == Request::ReleaseName { name: "svc".into() }),
            "{frames:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_calls_wait_on_one_connection_and_get_their_own_replies() {
        // The broker holds three calls, then replies in reverse order.
        let mut held: Vec<(RequestId, Bytes)> = Vec::new();
        let (client, _broker) = connected(move |frame| match &frame.request {
            Request::Call { payload, .. } => {
                held.push((frame.id, payload.clone()));
                if held.len() < 3 {
                    return Vec::new();
                }
                held.drain(..)
                    .rev()
                    .map(|(id, payload)| {
                        let mut reply = message(id, b"");
                        reply.payload = payload;
                        answer(id, Ok(Response::Received(reply)))
                    })
                    .collect()
            }
            _ => Vec::new(),
        })
        .await;
        within(async {
            let calls: Vec<_> = ["a", "b", "c"]
                .into_iter()
                .map(|payload| {
                    let client = client.clone();
                    tokio::spawn(async move {
                        client
                            .call(Target::process("svc"), payload, Duration::from_secs(5))
                            .await
                    })
                })
                .collect();
            for (call, payload) in calls.into_iter().zip(["a", "b", "c"]) {
                let reply = call.await.expect("task").expect("reply");
                assert_eq!(reply.payload, payload);
            }
        })
        .await;
    }
}
