//! A blocking client on a plain [`std::os::unix::net::UnixStream`], for
//! programs without an async runtime (and for `mailboxctl`).
//!
//! It owns the socket and the read and write buffers; ids, encoding and
//! routing are the crate's `session`, requests and their answers its `ops`,
//! windows of requests in flight its `pipeline`, and its public operation
//! methods are written once for both clients in its `methods`. There is no hidden runtime and no background thread:
//! each call writes its request and reads until its own answer has arrived,
//! filing answers to other requests (of a pipeline) under their ids until
//! they are asked for.

mod socket;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mailbox_proto::{BrokerError, ErrorKind, Message, Request, RequestId, Response, Wait, Welcome};

use crate::connect::{self, ConnectOptions};
use crate::descriptors::{self, Descriptors};
use crate::error::Error;
use crate::ops::messages::{self, Receive, SendMessage};
use crate::ops::pages::{Paged, Pages};
use crate::ops::{into_result, Operation};
use crate::pipeline::{Pipeline, Window};
use crate::session::{self, Session};
use crate::SendReceipt;
use socket::{is_timeout, read_some, set_timeouts};

/// A blocking connection to `mailboxd`.
///
/// Every method sends one request and waits for its answer, except the
/// pipelined ones, which keep many requests in flight on the one connection.
/// A broker error comes back as [`Error::Broker`], typed by
/// [`Error::kind`]; once the connection has failed, every later call fails
/// with the same error.
///
/// ```no_run
/// use mailbox_client::{blocking::Client, MailboxSettings};
///
/// let mut client = Client::connect_default()?;
/// client.create("jobs", MailboxSettings::default())?;
/// let receipt = client.send("jobs", "resize photo 42")?;
/// println!("sent as #{}", receipt.sequence);
/// if let Some(message) = client.try_receive("jobs")? {
///     println!("got {:?} from pid {}", message.payload, message.metadata.sender_pid);
/// }
/// # Ok::<(), mailbox_client::Error>(())
/// ```
pub struct Client {
    stream: UnixStream,
    welcome: Welcome,
    session: Session<()>,
    incoming: BytesMut,
    outgoing: BytesMut,
    /// Answers that arrived while waiting for another request's answer,
    /// with the descriptors they carried.
    answered: HashMap<RequestId, (Result<Response, BrokerError>, Descriptors)>,
    /// Descriptors that arrived and no frame has taken yet (see
    /// `descriptors.rs`).
    received: VecDeque<OwnedFd>,
    /// Why the connection is unusable, once it is.
    closed: Option<Error>,
    /// Whether the socket has read and write timeouts set (for a timed
    /// request), to clear before an untimed one.
    timed: bool,
    /// When the timed request in progress gives up, and its whole wait
    /// (for its [`Error::NoAnswer`]).
    deadline: Option<(Instant, Duration)>,
    /// How long a request without a timeout of its own may wait for its
    /// answer ([`Client::set_untimed_limit`]).
    untimed_limit: Option<Duration>,
    /// The id of the `AcceptFiles` sent with the first request, until its
    /// answer (which nobody waits for) arrives.
    accepting_files: Option<RequestId>,
    /// Payloads of at least this many bytes go as memory files
    /// ([`Client::set_file_threshold`]).
    file_threshold: Option<usize>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Client")
            .field("connection_id", &self.welcome.connection_id)
            .field("in_flight", &self.session.in_flight())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the broker listening at `path` and performs the
    /// handshake, with the default [`ConnectOptions`].
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::connect_with(path, &ConnectOptions::default())
    }

    /// Connects to the broker listening at `path`, checks that it runs as a
    /// user `options` trust ([`Error::UntrustedBroker`] otherwise: nothing
    /// is sent), and performs the handshake within `options`' timeout if it
    /// has one ([`Error::NoAnswer`] otherwise).
    pub fn connect_with(path: impl AsRef<Path>, options: &ConnectOptions) -> Result<Self, Error> {
        let path = path.as_ref();
        let deadline = options.timeout.map(|limit| (Instant::now() + limit, limit));
        let stream = connect::connect_stream(path, options.timeout)?;
        connect::check_broker(stream.as_raw_fd(), path, options)?;
        Self::handshake(stream, deadline, options.accept_files.unwrap_or(true))
    }

    /// Connects to the broker's socket found by the usual rule (as
    /// [`connect_default`](Self::connect_default)) with `options`.
    pub fn connect_default_with(options: &ConnectOptions) -> Result<Self, Error> {
        let chosen = connect::default_socket();
        Self::connect_with(&chosen.path, options)
            .map_err(|error| connect::explain_default(error, &chosen))
    }

    /// Connects to the broker's socket found by the usual rule
    /// ([`mailbox_proto::socket_path`]): `$MAILBOX_SOCKET`, else the first
    /// of `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`,
    /// `/tmp/mailbox-UID/mailboxd.sock` and `/run/mailbox/mailboxd.sock`
    /// where a socket exists.
    pub fn connect_default() -> Result<Self, Error> {
        Self::connect_default_with(&ConnectOptions::new())
    }

    /// Performs the handshake on an already connected stream (for example
    /// one end of a socket pair; the caller chose its peer: no credentials
    /// are checked).
    ///
    /// Such a client does not announce that it takes memory-file payloads
    /// (they reach it inline); [`from_stream_with`](Self::from_stream_with)
    /// with the default options does.
    pub fn from_stream(stream: UnixStream) -> Result<Self, Error> {
        Self::handshake(stream, None, false)
    }

    /// [`from_stream`](Self::from_stream) with `options`' timeout and
    /// [`accept_files`](ConnectOptions::accept_files) (default: on).
    pub fn from_stream_with(stream: UnixStream, options: &ConnectOptions) -> Result<Self, Error> {
        let deadline = options.timeout.map(|limit| (Instant::now() + limit, limit));
        Self::handshake(stream, deadline, options.accept_files.unwrap_or(true))
    }

    /// Says hello and waits for the welcome, until the deadline if given
    /// (with the whole limit, for the error).
    fn handshake(
        mut stream: UnixStream,
        deadline: Option<(Instant, Duration)>,
        accept_files: bool,
    ) -> Result<Self, Error> {
        let no_answer = |error: Error| match (deadline, &error) {
            (Some((_, waited)), Error::Io(io)) if is_timeout(io) => Error::NoAnswer { waited },
            _ => error,
        };
        let mut outgoing = BytesMut::new();
        session::encode_hello(&session::default_client_name(), &mut outgoing)?;
        set_timeouts(&stream, deadline.map(|(at, _)| at)).map_err(Error::Io)?;
        stream
            .write_all(&outgoing)
            .map_err(|error| no_answer(Error::from_connection_io(error)))?;
        outgoing.clear();
        let mut incoming = BytesMut::new();
        // The broker sends none before its welcome.
        let mut received = VecDeque::new();
        let welcome = loop {
            if let Some(frame) = session::decode_server_frame(&mut incoming)? {
                break session::accept_handshake(frame)?;
            }
            set_timeouts(&stream, deadline.map(|(at, _)| at)).map_err(Error::Io)?;
            read_some(&mut stream, &mut incoming, &mut received).map_err(no_answer)?;
        };
        set_timeouts(&stream, None).map_err(Error::Io)?;
        let speaks_files = welcome.protocol_version >= 5;
        let mut client = Self {
            stream,
            session: Session::new(&welcome),
            welcome,
            incoming,
            outgoing,
            answered: HashMap::new(),
            received,
            closed: None,
            timed: false,
            deadline: None,
            untimed_limit: None,
            accepting_files: None,
            file_threshold: None,
        };
        if accept_files && speaks_files {
            // Leaves with the first request's write: no round trip of its own.
            client.accepting_files = Some(client.start(Request::AcceptFiles)?);
        }
        Ok(client)
    }

    /// The broker's id for this connection, as message metadata shows it.
    pub fn connection_id(&self) -> u64 {
        self.welcome.connection_id
    }

    /// Makes requests that have no timeout of their own (create, list,
    /// subscribe, ack, ...) give up with [`Error::NoAnswer`] when the broker
    /// has not answered within `limit` (`None`, the default: wait as long
    /// as it takes). Timed requests always give up after their timeout plus
    /// [`ANSWER_GRACE`](crate::ANSWER_GRACE).
    pub fn set_untimed_limit(&mut self, limit: Option<Duration>) {
        self.untimed_limit = limit;
    }

    /// Makes one-message sends (`send`, `try_send`, `send_timeout`,
    /// `send_with`, `send_to`, ...) of payloads of at least `threshold`
    /// bytes travel as sealed memory files, as
    /// [`send_file`](Self::send_file) does: the payload is copied once,
    /// into the file, and then neither the socket nor the broker copies
    /// it. `None` (the default) keeps every payload inline;
    /// [`DEFAULT_FILE_THRESHOLD`](crate::DEFAULT_FILE_THRESHOLD) (64 KiB)
    /// is a good value. Such a send has the file limit (the broker's
    /// `max_file_size`, 1 GiB by default) rather than the mailbox's
    /// `max_message_size`. A payload that cannot be put in a memory file
    /// (out of memory) goes inline.
    pub fn set_file_threshold(&mut self, threshold: Option<usize>) {
        self.file_threshold = threshold;
    }

    /// `request` as a `SendFile` with its file, when it is a one-message
    /// send at or above the file threshold.
    fn as_file(&self, request: Request) -> (Request, Option<crate::SealedFile>) {
        let Some(threshold) = self.file_threshold else {
            return (request, None);
        };
        if self.welcome.protocol_version < 5 {
            return (request, None);
        }
        let (to, payload, options, wait) = match request {
            Request::Send {
                mailbox,
                payload,
                wait,
            } if payload.len() >= threshold => (
                mailbox_proto::Target::Mailbox(mailbox),
                payload,
                Box::default(),
                wait,
            ),
            Request::SendWith {
                to,
                payload,
                options,
                wait,
            } if payload.len() >= threshold => (to, payload, options, wait),
            other => return (other, None),
        };
        match crate::SealedFile::from_bytes(&payload) {
            Ok(file) => (
                Request::SendFile {
                    to,
                    len: file.len(),
                    options,
                    wait,
                    payload: Bytes::new(),
                },
                Some(file),
            ),
            Err(_) => (
                Request::SendWith {
                    to,
                    payload,
                    options,
                    wait,
                },
                None,
            ),
        }
    }

    /// The broker's version, as it announced it in the handshake.
    pub fn broker_version(&self) -> &str {
        &self.welcome.broker_version
    }

    /// Sends `payload` to `to` and takes the next message from `from`, both
    /// requests leaving in one write, and returns both outcomes: one step of
    /// a request/reply conversation (a client sends a request and waits for
    /// the reply; a server sends a reply and waits for the next request)
    /// without a round trip between the two halves.
    ///
    /// Both wait as long as it takes. If the send fails, the receive is
    /// cancelled, so the call does not wait for a reply to a request that was
    /// never sent; its outcome is then an error of kind `Cancelled`, or the
    /// message it had already taken (nothing is dropped).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), mailbox_client::Error> {
    /// let mut client = mailbox_client::blocking::Client::connect_default()?;
    /// let (sent, reply) = client.send_and_receive("requests", &b"ping"[..], "replies");
    /// sent?;
    /// assert_eq!(&reply?.payload[..], b"pong");
    /// # Ok(()) }
    /// ```
    pub fn send_and_receive(
        &mut self,
        to: &str,
        payload: impl Into<Bytes>,
        from: &str,
    ) -> (Result<SendReceipt, Error>, Result<Message, Error>) {
        let mut send = SendMessage {
            mailbox: to,
            payload: payload.into(),
            wait: Wait::Forever,
        };
        let send = match self.start(send.request()) {
            Ok(id) => id,
            Err(error) => {
                let refused = Err(error.replicate());
                return (Err(error), refused);
            }
        };
        let mut receive = Receive {
            mailbox: from,
            wait: Wait::Forever,
        };
        let receive = match self.start(receive.request()) {
            Ok(id) => id,
            Err(error) => {
                let sent = messages::sent(self.flush().and_then(|()| self.wait_for(send)));
                return (sent, Err(error));
            }
        };
        if let Err(error) = self.flush() {
            return (Err(error.replicate()), Err(error));
        }
        let sent = messages::sent(self.wait_for(send));
        self.receive_after(sent, receive)
    }

    /// One step of a request/reply conversation, as
    /// [`send_and_receive`](Self::send_and_receive), reading one answer
    /// instead of two: the send goes as `SendQuietly`, which the broker
    /// answers only when it fails, so a conversation costs each side one
    /// wake-up per step. Returns whether the message was sent, and the
    /// message received.
    ///
    /// The quiet send does not wait: when `to` has no room now (or, with
    /// zero capacity, no receiver waiting now) it is sent again as a
    /// blocking send, behind the receive already posted, and waits as
    /// `send_and_receive`'s does. No sequence number is reported; use
    /// `send_and_receive` for the receipt. If the send fails, the receive
    /// is cancelled and its outcome is `Cancelled`, or the message it had
    /// already taken (nothing is dropped).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), mailbox_client::Error> {
    /// let mut client = mailbox_client::blocking::Client::connect_default()?;
    /// let (sent, reply) = client.exchange("requests", &b"ping"[..], "replies");
    /// sent?;
    /// assert_eq!(&reply?.payload[..], b"pong");
    /// # Ok(()) }
    /// ```
    pub fn exchange(
        &mut self,
        to: &str,
        payload: impl Into<Bytes>,
        from: &str,
    ) -> (Result<(), Error>, Result<Message, Error>) {
        let payload = payload.into();
        let quiet = match self.start(Request::SendQuietly {
            mailbox: to.to_owned(),
            payload: payload.clone(),
        }) {
            Ok(id) => id,
            Err(error) => {
                let refused = Err(error.replicate());
                return (Err(error), refused);
            }
        };
        let mut receive = Receive {
            mailbox: from,
            wait: Wait::Forever,
        };
        let receive = match self.start(receive.request()) {
            Ok(id) => id,
            Err(error) => {
                // The quiet send's outcome is known once the broker answers
                // a request behind it.
                let sent = self.start(Request::Status).and_then(|status| {
                    let sent = self
                        .flush()
                        .and_then(|()| self.quiet_outcome(quiet, status));
                    self.drain_answers(vec![status]);
                    sent
                });
                return (sent, Err(error));
            }
        };
        if let Err(error) = self.flush() {
            return (Err(error.replicate()), Err(error));
        }
        let mut sent = self.quiet_outcome(quiet, receive);
        if matches!(&sent, Err(Error::Broker(error)) if error.kind == ErrorKind::WouldBlock) {
            // No room now: wait for it as a blocking send would.
            let mut send = SendMessage {
                mailbox: to,
                payload,
                wait: Wait::Forever,
            };
            sent = match self.start(send.request()) {
                Ok(id) => messages::sent(self.flush().and_then(|()| self.wait_for(id))).map(drop),
                Err(error) => Err(error),
            };
        }
        self.receive_after(sent, receive)
    }

    /// The second half of a request/reply step whose send's outcome is
    /// `sent`: the answer to the posted `receive`, which is withdrawn first
    /// when the send failed (no reply will come to a request that was not
    /// sent); a message it had already taken is returned all the same.
    fn receive_after<T>(
        &mut self,
        sent: Result<T, Error>,
        receive: RequestId,
    ) -> (Result<T, Error>, Result<Message, Error>) {
        let mut cancel = None;
        if sent.is_err() {
            match self
                .start(Request::Cancel { request: receive })
                .and_then(|id| self.flush().map(|()| id))
            {
                Ok(id) => cancel = Some(id),
                Err(error) => return (sent, Err(error)),
            }
        }
        let received = messages::received(self.wait_for(receive));
        if let Some(id) = cancel {
            // Its answer only says whether the receive was still waiting,
            // which `received` already tells.
            let _ = self.wait_for(id);
        }
        (sent, received)
    }

    /// The outcome of the quiet send `quiet`, known as soon as its error or
    /// the answer to `later` (a request behind it) arrives: the broker
    /// answers a connection's requests in order, so an answer to `later`
    /// with no error before it means the send was admitted. The answer to
    /// `later` stays filed for its caller.
    fn quiet_outcome(&mut self, quiet: RequestId, later: RequestId) -> Result<(), Error> {
        loop {
            if let Some((result, _)) = self.answered.remove(&quiet) {
                return into_result(result).map(drop);
            }
            if self.answered.contains_key(&later) {
                self.session.forget(quiet);
                return Ok(());
            }
            self.pump()?;
        }
    }

    /// Runs one operation: its request, and its answer decoded.
    pub(crate) fn run<O: Operation>(&mut self, mut operation: O) -> Result<O::Output, Error> {
        let (answer, descriptors) = self.roundtrip(operation.request());
        operation.decode_with(answer, descriptors)
    }

    /// Reads every page of a listing, each with the operation `page` makes.
    pub(crate) fn all_pages<O: Paged>(
        &mut self,
        page: impl Fn(Option<O::Cursor>) -> O,
    ) -> Result<Vec<O::Row>, Error> {
        let mut pages = Pages::new(page);
        while let Some(operation) = pages.next() {
            let page = self.run(operation)?;
            pages.record(page)?;
        }
        Ok(pages.finish())
    }

    /// Runs a window of requests in flight to its end: many requests per
    /// `write`, many answers per `read`. The cancels of a window that
    /// cancels after a failure are answered before it returns, so that
    /// none is left filed.
    pub(crate) fn run_window<W: Window>(&mut self, window: W) -> W::Output {
        let mut pipeline = Pipeline::new(window, self.welcome.max_frame_len);
        let wait = pipeline.wait();
        let mut cancels: Vec<RequestId> = Vec::new();
        loop {
            while let Some((request, tag)) = pipeline.next_request() {
                match self.start(request) {
                    Ok(id) => pipeline.started(tag, id),
                    Err(error) => pipeline.not_sent(tag, error),
                }
            }
            for &mut request in pipeline.cancellations() {
                // If even the cancel cannot be sent, the connection is gone
                // and the pump below reports it.
                if let Ok(id) = self.start(Request::Cancel { request }) {
                    cancels.push(id);
                }
            }
            if pipeline.is_idle() {
                break;
            }
            let pumped = self.pump_within(wait);
            let answered = &mut self.answered;
            pipeline.collect(|id| answered.remove(id).map(|(result, _)| into_result(result)));
            if let Err(error) = pumped {
                pipeline.fail(&error, |id| {
                    answered.remove(id).map(|(result, _)| into_result(result))
                });
                break;
            }
        }
        self.drain_answers(cancels);
        pipeline.finish()
    }

    /// This connection's process address: where [`send_to`](Self::send_to)
    /// of another process reaches this connection's inbox, and what
    /// [`Metadata::sender_connection`](crate::Metadata::sender_connection)
    /// says of the messages it sends. The same number as
    /// [`connection_id`](Self::connection_id).
    ///
    /// ```no_run
    /// let client = mailbox_client::blocking::Client::connect_default()?;
    /// println!("reach me with `mailboxctl send --to {}`", client.address());
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn address(&self) -> u64 {
        self.welcome.connection_id
    }

    /// Waits for the answers of requests whose outcome does not matter (the
    /// cancels of a pipeline), so that none is left filed.
    fn drain_answers(&mut self, mut ids: Vec<RequestId>) {
        while !ids.is_empty() {
            ids.retain(|id| self.answered.remove(id).is_none());
            if !ids.is_empty() && self.pump().is_err() {
                return;
            }
        }
    }

    /// One request, one answer. A timed request gives up on a broker that
    /// does not answer within its timeout plus [`ANSWER_GRACE`]
    /// ([`Error::NoAnswer`]), and closes the connection: its answer may
    /// still come, and nothing else could be told apart from it.
    ///
    /// [`ANSWER_GRACE`]: crate::ANSWER_GRACE
    fn roundtrip(&mut self, request: Request) -> (Result<Response, Error>, Descriptors) {
        let (request, file) = self.as_file(request);
        let limit = connect::answer_limit(&request, self.untimed_limit);
        let id = match self.start(request) {
            Ok(id) => id,
            Err(error) => return (Err(error), Vec::new()),
        };
        self.deadline = limit.map(|limit| (Instant::now() + limit, limit));
        let answer = match self.flush_with(file.as_ref().map(crate::SealedFile::as_fd)) {
            Ok(()) => self.wait_with_descriptors(id),
            Err(error) => (Err(error), Vec::new()),
        };
        self.deadline = None;
        answer
    }

    /// Writes what is queued and reads once, for a pipeline whose requests
    /// wait as `wait` says: the read gives up after that wait plus
    /// [`ANSWER_GRACE`](crate::ANSWER_GRACE) without a byte from the broker
    /// ([`Error::NoAnswer`]).
    fn pump_within(&mut self, wait: Wait) -> Result<(), Error> {
        let limit = connect::wait_limit(wait);
        self.deadline = limit.map(|limit| (Instant::now() + limit, limit));
        let pumped = self.flush().and_then(|()| self.pump());
        self.deadline = None;
        pumped
    }

    /// Reads until the request `id` is answered (descriptors that came
    /// with the answer are closed).
    fn wait_for(&mut self, id: RequestId) -> Result<Response, Error> {
        self.wait_with_descriptors(id).0
    }

    /// Reads until the request `id` is answered, with the descriptors its
    /// answer carried.
    fn wait_with_descriptors(&mut self, id: RequestId) -> (Result<Response, Error>, Descriptors) {
        loop {
            if let Some((result, descriptors)) = self.answered.remove(&id) {
                return (into_result(result), descriptors);
            }
            if let Err(error) = self.pump() {
                return (Err(error), Vec::new());
            }
        }
    }

    /// Makes the socket's next read or write wait at most until the
    /// deadline of the request in progress, or without limit when it has
    /// none; a deadline already past is [`Error::NoAnswer`] (and closes the
    /// connection).
    fn apply_deadline(&mut self) -> Result<(), Error> {
        if let Some(error) = &self.closed {
            return Err(error.replicate());
        }
        match self.deadline {
            None if !self.timed => return Ok(()),
            None => self.timed = false,
            Some((at, waited)) => {
                if at <= Instant::now() {
                    return Err(self.close(Error::NoAnswer { waited }));
                }
                self.timed = true;
            }
        }
        if let Err(error) = set_timeouts(&self.stream, self.deadline.map(|(at, _)| at)) {
            return Err(self.close(Error::Io(error)));
        }
        Ok(())
    }

    /// Queues a request's frame for the next [`flush`](Self::flush).
    fn start(&mut self, request: Request) -> Result<RequestId, Error> {
        if let Some(error) = &self.closed {
            return Err(error.replicate());
        }
        self.session.start(request, (), &mut self.outgoing)
    }

    /// Sends `file` to `mailbox` as a memory-file payload: the broker checks
    /// its seals and size and passes the same file to each receiver that
    /// takes files (the others get its bytes), without copying it. Waits
    /// for room as [`send`](Self::send) does. A file that is not sealed
    /// (see [`SealedFile`](crate::SealedFile)) or not as long as it says
    /// fails with kind `InvalidRequest`, and only this send fails.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut client = mailbox_client::blocking::Client::connect_default()?;
    /// let mut writer = mailbox_client::FileWriter::new(1 << 20)?;
    /// writer.as_mut_slice().fill(7);
    /// client.send_file("frames", &writer.seal()?)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_file(
        &mut self,
        mailbox: &str,
        file: &crate::SealedFile,
    ) -> Result<SendReceipt, Error> {
        let request = Request::SendFile {
            to: mailbox_proto::Target::Mailbox(mailbox.to_owned()),
            len: file.len(),
            options: Box::default(),
            wait: Wait::Forever,
            payload: bytes::Bytes::new(),
        };
        let limit = connect::answer_limit(&request, self.untimed_limit);
        let id = self.start(request)?;
        self.deadline = limit.map(|limit| (Instant::now() + limit, limit));
        let answer = match self.flush_with(Some(file.as_fd())) {
            Ok(()) => self.wait_for(id),
            Err(error) => Err(error),
        };
        self.deadline = None;
        messages::sent(answer)
    }

    /// Writes every queued frame with as few `write` calls as the socket allows.
    fn flush(&mut self) -> Result<(), Error> {
        self.flush_with(None)
    }

    /// [`flush`](Self::flush), `file` going as `SCM_RIGHTS` with the first
    /// byte written: the last queued frame is the one that carries it,
    /// and a descriptor may arrive before its frame (never after).
    fn flush_with(&mut self, file: Option<std::os::fd::BorrowedFd<'_>>) -> Result<(), Error> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        self.apply_deadline()?;
        let mut start = 0;
        if let Some(file) = file {
            match descriptors::send_with(&self.stream, &self.outgoing, file) {
                Ok(sent) => start = sent,
                Err(error) => {
                    self.outgoing.clear();
                    let error = self.no_answer(Error::from_connection_io(error));
                    return Err(self.close(error));
                }
            }
        }
        let written = self.stream.write_all(&self.outgoing[start..]);
        self.outgoing.clear();
        written.map_err(|error| {
            let error = self.no_answer(Error::from_connection_io(error));
            self.close(error)
        })
    }

    /// Reads once (blocking until something arrives) and files every whole
    /// answer under its request's id.
    fn pump(&mut self) -> Result<(), Error> {
        self.apply_deadline()?;
        if let Err(error) = read_some(&mut self.stream, &mut self.incoming, &mut self.received) {
            let error = self.no_answer(error);
            return Err(self.close(error));
        }
        loop {
            let received = &mut self.received;
            let session = &mut self.session;
            let routed = session::decode_server_frame(&mut self.incoming).and_then(|frame| {
                frame
                    .map(|frame| {
                        let descriptors = descriptors::take_for(&frame, received)?;
                        session.route(frame).map(|routed| (routed, descriptors))
                    })
                    .transpose()
            });
            match routed {
                Ok(Some((routed, descriptors))) => {
                    if self.accepting_files == Some(routed.id) {
                        // Nobody waits for it; an error only means payloads
                        // keep coming inline.
                        self.accepting_files = None;
                        continue;
                    }
                    let (result, descriptors) = descriptors::map_files(routed.result, descriptors);
                    self.answered.insert(routed.id, (result, descriptors));
                }
                Ok(None) => return Ok(()),
                Err(error) => return Err(self.close(error)),
            }
        }
    }

    /// A read or write that ran into the socket's timeout (set for a timed
    /// request) is the broker not answering.
    fn no_answer(&self, error: Error) -> Error {
        match (&error, self.deadline) {
            (Error::Io(io), Some((_, waited))) if self.timed && is_timeout(io) => {
                Error::NoAnswer { waited }
            }
            _ => error,
        }
    }

    /// Marks the connection unusable for good and returns `error`.
    fn close(&mut self, error: Error) -> Error {
        self.session.drain().for_each(drop);
        if self.closed.is_none() {
            self.closed = Some(error.replicate());
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        error
    }
}
