//! A blocking client on a plain [`std::os::unix::net::UnixStream`], for
//! programs without an async runtime (and for `mailboxctl`).
//!
//! It owns the socket and the read and write buffers; everything else (ids,
//! encoding, routing, typed answers, pipeline tallies) is [`crate::session`].
//! There is no hidden runtime and no background thread: each call writes its
//! request and reads until its own answer has arrived, filing answers to
//! other requests (of a pipeline) under their ids until they are asked for.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mailbox_proto::{
    socket_path, Address, BrokerError, BrokerStatus, Capacity, MailboxInfo, MailboxSettings,
    Message, NameInfo, ReceiveOptions, Request, RequestId, Response, SendOptions, Source, Target,
    Verdict, Wait, Welcome,
};

use crate::connect::{self, ConnectOptions};
use crate::error::Error;
use crate::session::{
    self, BatchReceipt, Batcher, Held, Page, PipelineError, ReceiveTally, SendReceipt, SendTally,
    Session, StreamError, StreamReceipt, StreamReceiveTally, StreamSendTally, PAGE_ROWS,
};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

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
    /// Answers that arrived while waiting for another request's answer.
    answered: HashMap<RequestId, Result<Response, BrokerError>>,
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
        Self::handshake(stream, deadline)
    }

    /// Connects to the broker's socket found by the usual rule (as
    /// [`connect_default`](Self::connect_default)) with `options`.
    pub fn connect_default_with(options: &ConnectOptions) -> Result<Self, Error> {
        Self::connect_with(socket_path::resolve(None::<PathBuf>), options)
    }

    /// Connects to the broker's socket found by the usual rule:
    /// `$MAILBOX_SOCKET`, else `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`, else
    /// `/run/mailbox/mailboxd.sock`.
    pub fn connect_default() -> Result<Self, Error> {
        Self::connect(socket_path::resolve(None::<PathBuf>))
    }

    /// Performs the handshake on an already connected stream (for example
    /// one end of a socket pair; the caller chose its peer: no credentials
    /// are checked).
    pub fn from_stream(stream: UnixStream) -> Result<Self, Error> {
        Self::handshake(stream, None)
    }

    /// Says hello and waits for the welcome, until the deadline if given
    /// (with the whole limit, for the error).
    fn handshake(
        mut stream: UnixStream,
        deadline: Option<(Instant, Duration)>,
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
        let welcome = loop {
            if let Some(frame) = session::decode_server_frame(&mut incoming)? {
                break session::accept_handshake(frame)?;
            }
            set_timeouts(&stream, deadline.map(|(at, _)| at)).map_err(Error::Io)?;
            read_some(&mut stream, &mut incoming).map_err(no_answer)?;
        };
        set_timeouts(&stream, None).map_err(Error::Io)?;
        Ok(Self {
            stream,
            session: Session::new(&welcome),
            welcome,
            incoming,
            outgoing,
            answered: HashMap::new(),
            closed: None,
            timed: false,
            deadline: None,
            untimed_limit: None,
        })
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

    /// The broker's version, as it announced it in the handshake.
    pub fn broker_version(&self) -> &str {
        &self.welcome.broker_version
    }

    /// Creates a mailbox owned by this process's uid, with the broker's
    /// default mode; `Ok(false)` when this uid owns it already with the same
    /// settings. Kind `MailboxExists` when its settings differ or another
    /// uid owns it.
    pub fn create(&mut self, name: &str, settings: MailboxSettings) -> Result<bool, Error> {
        self.create_with(name, settings, None, None)
    }

    /// Like [`create`](Self::create), with the mode (`0o[owner][group][others]`,
    /// each receive 4, send 2, manage 1) and group given in the same
    /// request: the mailbox never exists with other rights. When this uid
    /// owns it already with the same settings, `mode` and `group` are
    /// applied to it.
    pub fn create_with(
        &mut self,
        name: &str,
        settings: MailboxSettings,
        mode: Option<u32>,
        group: Option<u32>,
    ) -> Result<bool, Error> {
        let response = self.roundtrip(session::create_request(name, settings, mode, group))?;
        session::expect_created(response)
    }

    /// Deletes a mailbox; operations waiting on it fail with `MailboxDeleted`.
    pub fn delete(&mut self, name: &str) -> Result<(), Error> {
        let response = self.roundtrip(Request::DeleteMailbox {
            name: name.to_owned(),
        })?;
        session::expect_deleted(response)
    }

    /// Describes every mailbox (that this user has some right on), sorted
    /// by name, fetching page after page ([`list_page`](Self::list_page)),
    /// so that it works however many there are.
    pub fn list(&mut self) -> Result<Vec<MailboxInfo>, Error> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.list_page(after.as_deref(), PAGE_ROWS)?;
            match session::follow_page(&mut all, after.as_deref(), page)? {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One page of [`list`](Self::list): at most `max` mailboxes whose
    /// names sort after `after` (`None`: from the first), and where the
    /// next page starts.
    pub fn list_page(&mut self, after: Option<&str>, max: u32) -> Result<Page<MailboxInfo>, Error> {
        session::expect_mailbox_page(self.roundtrip(session::mailbox_page_request(after, max))?)
    }

    /// Describes one mailbox.
    pub fn info(&mut self, name: &str) -> Result<MailboxInfo, Error> {
        let response = self.roundtrip(Request::MailboxInfo {
            name: name.to_owned(),
        })?;
        session::expect_info(response)
    }

    /// The broker's figures.
    pub fn status(&mut self) -> Result<BrokerStatus, Error> {
        let response = self.roundtrip(Request::Status)?;
        session::expect_status(response)
    }

    /// Sends a message, waiting as long as it takes for room.
    pub fn send(&mut self, mailbox: &str, payload: impl Into<Bytes>) -> Result<SendReceipt, Error> {
        self.send_with(mailbox, payload.into(), Wait::Forever)
    }

    /// Sends a message only if there is room now; otherwise fails with kind
    /// `WouldBlock` and nothing was sent.
    pub fn try_send(
        &mut self,
        mailbox: &str,
        payload: impl Into<Bytes>,
    ) -> Result<SendReceipt, Error> {
        self.send_with(mailbox, payload.into(), Wait::Never)
    }

    /// Sends a message, waiting at most `timeout` for room; on kind `Timeout`
    /// the message was withdrawn and will never be delivered.
    pub fn send_timeout(
        &mut self,
        mailbox: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<SendReceipt, Error> {
        self.send_with(mailbox, payload.into(), session::wait_at_most(timeout))
    }

    /// Sends a message, waiting as `wait` says.
    pub fn send_with(
        &mut self,
        mailbox: &str,
        payload: Bytes,
        wait: Wait,
    ) -> Result<SendReceipt, Error> {
        let response = self.roundtrip(Request::Send {
            mailbox: mailbox.to_owned(),
            payload,
            wait,
        })?;
        session::expect_sent(response)
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
        let send = match self.start(Request::Send {
            mailbox: to.to_owned(),
            payload: payload.into(),
            wait: Wait::Forever,
        }) {
            Ok(id) => id,
            Err(error) => {
                let refused = Err(error.replicate());
                return (Err(error), refused);
            }
        };
        let receive = match self.start(Request::Receive {
            mailbox: from.to_owned(),
            wait: Wait::Forever,
        }) {
            Ok(id) => id,
            Err(error) => {
                let sent = self
                    .flush()
                    .and_then(|()| self.wait_for(send))
                    .and_then(session::expect_sent);
                return (sent, Err(error));
            }
        };
        if let Err(error) = self.flush() {
            return (Err(error.replicate()), Err(error));
        }
        let sent = self.wait_for(send).and_then(session::expect_sent);
        let mut cancel = None;
        if sent.is_err() {
            // No reply will come to a request that was not sent.
            match self
                .start(Request::Cancel { request: receive })
                .and_then(|id| self.flush().map(|()| id))
            {
                Ok(id) => cancel = Some(id),
                Err(error) => return (sent, Err(error)),
            }
        }
        let received = self.wait_for(receive).and_then(session::expect_message);
        if let Some(id) = cancel {
            // Its answer only says whether the receive was still waiting,
            // which `received` already tells.
            let _ = self.wait_for(id);
        }
        (sent, received)
    }

    /// Takes the next message, waiting as long as it takes.
    pub fn receive(&mut self, mailbox: &str) -> Result<Message, Error> {
        self.receive_with(mailbox, Wait::Forever)
    }

    /// Takes the next message if there is one now.
    pub fn try_receive(&mut self, mailbox: &str) -> Result<Option<Message>, Error> {
        let result = self.roundtrip(Request::Receive {
            mailbox: mailbox.to_owned(),
            wait: Wait::Never,
        });
        session::optional_message(result)
    }

    /// Takes the next message, waiting at most `timeout` (then kind `Timeout`).
    pub fn receive_timeout(&mut self, mailbox: &str, timeout: Duration) -> Result<Message, Error> {
        self.receive_with(mailbox, session::wait_at_most(timeout))
    }

    /// Takes the next message, waiting as `wait` says.
    pub fn receive_with(&mut self, mailbox: &str, wait: Wait) -> Result<Message, Error> {
        let response = self.roundtrip(Request::Receive {
            mailbox: mailbox.to_owned(),
            wait,
        })?;
        session::expect_message(response)
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
    /// ```no_run
    /// use mailbox_client::{blocking::Client, Error};
    ///
    /// let mut client = Client::connect_default()?;
    /// let receipt = client.send_many("jobs", ["a", "b", "c"])?;
    /// assert_eq!(receipt.admitted, 3);
    /// println!("sent as #{:?}", receipt.sequences());
    ///
    /// // Without waiting: on a full mailbox only a front part may be sent.
    /// let payloads = vec!["d", "e", "f"];
    /// match client.try_send_many("jobs", payloads.clone()) {
    ///     Ok(_) => println!("all sent"),
    ///     Err(Error::Partial { admitted, .. }) => {
    ///         println!("{:?} still to send", &payloads[admitted as usize..])
    ///     }
    ///     Err(error) => return Err(error), // none sent (or connection lost)
    /// }
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn send_many(
        &mut self,
        mailbox: &str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
    ) -> Result<BatchReceipt, Error> {
        self.send_many_with(mailbox, payloads, Wait::Forever)
    }

    /// Sends several messages as far as there is room now: those that do not
    /// fit at once are not sent ([`Error::Partial`] of kind `WouldBlock`, or
    /// [`Error::Broker`] of kind `WouldBlock` when none fitted).
    pub fn try_send_many(
        &mut self,
        mailbox: &str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
    ) -> Result<BatchReceipt, Error> {
        self.send_many_with(mailbox, payloads, Wait::Never)
    }

    /// Sends several messages, waiting at most `timeout` for room for all of
    /// them; those not admitted by then are withdrawn ([`Error::Partial`] or
    /// [`Error::Broker`] of kind `Timeout`).
    pub fn send_many_timeout(
        &mut self,
        mailbox: &str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
        timeout: Duration,
    ) -> Result<BatchReceipt, Error> {
        self.send_many_with(mailbox, payloads, session::wait_at_most(timeout))
    }

    /// Sends several messages, waiting as `wait` says (see
    /// [`send_many`](Self::send_many)).
    pub fn send_many_with(
        &mut self,
        mailbox: &str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
        wait: Wait,
    ) -> Result<BatchReceipt, Error> {
        let (request, count) = session::send_many_request(mailbox, payloads, wait);
        let response = self.roundtrip(request)?;
        session::expect_sent_many(response, count)
    }

    /// Takes up to `max` messages (at least 1; 0 counts as 1): waits as long
    /// as it takes for the first, then takes every one available up to
    /// `max`, in order.
    ///
    /// The answer comes in one frame, which this client accepts up to
    /// 16 MiB + 64 KiB; a larger one ends the connection and its messages
    /// are lost, so keep `max` times the mailbox's message size below that.
    ///
    /// ```no_run
    /// use mailbox_client::blocking::Client;
    ///
    /// let mut client = Client::connect_default()?;
    /// for message in client.receive_many("jobs", 64)? {
    ///     println!("#{}: {:?}", message.metadata.sequence, message.payload);
    /// }
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn receive_many(&mut self, mailbox: &str, max: u32) -> Result<Vec<Message>, Error> {
        self.receive_many_with(mailbox, max, Wait::Forever)
    }

    /// Takes up to `max` of the messages available now; none (an empty
    /// vector) when the mailbox is empty.
    pub fn try_receive_many(&mut self, mailbox: &str, max: u32) -> Result<Vec<Message>, Error> {
        let result = self.roundtrip(session::receive_many_request(mailbox, max, Wait::Never));
        session::optional_messages(result, max)
    }

    /// Takes up to `max` messages, waiting at most `timeout` for the first
    /// (then kind `Timeout`).
    pub fn receive_many_timeout(
        &mut self,
        mailbox: &str,
        max: u32,
        timeout: Duration,
    ) -> Result<Vec<Message>, Error> {
        self.receive_many_with(mailbox, max, session::wait_at_most(timeout))
    }

    /// Takes up to `max` messages, waiting for the first as `wait` says.
    pub fn receive_many_with(
        &mut self,
        mailbox: &str,
        max: u32,
        wait: Wait,
    ) -> Result<Vec<Message>, Error> {
        let response = self.roundtrip(session::receive_many_request(mailbox, max, wait))?;
        session::expect_received_many(response, max)
    }

    /// Subscribes this connection to a broadcast mailbox; `Ok(false)` when it
    /// was subscribed already. The subscription ends with the connection.
    pub fn subscribe(&mut self, mailbox: &str) -> Result<bool, Error> {
        let response = self.roundtrip(Request::Subscribe {
            mailbox: mailbox.to_owned(),
        })?;
        session::expect_subscribed(response)
    }

    /// Ends this connection's subscription; its unread backlog is released.
    pub fn unsubscribe(&mut self, mailbox: &str) -> Result<(), Error> {
        let response = self.roundtrip(Request::Unsubscribe {
            mailbox: mailbox.to_owned(),
        })?;
        session::expect_unsubscribed(response)
    }

    // -----------------------------------------------------------------------
    // Direct communication, acknowledgements, calls and names (protocol 2).

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

    /// Sends a message straight to a process's inbox (by address or by a
    /// well-known name it holds), waiting as long as it takes for room in
    /// it. Kind `NoSuchProcess` when no connected process has that address
    /// or name.
    ///
    /// ```no_run
    /// use mailbox_client::blocking::Client;
    ///
    /// let mut client = Client::connect_default()?;
    /// client.send_to("logger", "started")?; // a well-known name
    /// client.send_to(42, "hello")?; // a process address
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn send_to(
        &mut self,
        process: impl Into<Address>,
        payload: impl Into<Bytes>,
    ) -> Result<SendReceipt, Error> {
        let request = session::send_to_request(process.into(), payload.into(), Wait::Forever);
        session::expect_sent(self.roundtrip(request)?)
    }

    /// Sends a message to a process's inbox only if there is room now;
    /// otherwise fails with kind `WouldBlock` and nothing was sent.
    pub fn try_send_to(
        &mut self,
        process: impl Into<Address>,
        payload: impl Into<Bytes>,
    ) -> Result<SendReceipt, Error> {
        let request = session::send_to_request(process.into(), payload.into(), Wait::Never);
        session::expect_sent(self.roundtrip(request)?)
    }

    /// Sends a message to a process's inbox, waiting at most `timeout` for
    /// room; on kind `Timeout` it was withdrawn and will never be delivered.
    pub fn send_to_timeout(
        &mut self,
        process: impl Into<Address>,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<SendReceipt, Error> {
        let wait = session::wait_at_most(timeout);
        let request = session::send_to_request(process.into(), payload.into(), wait);
        session::expect_sent(self.roundtrip(request)?)
    }

    /// The general send: to a mailbox or a process ([`Target`]), with a
    /// routing key, a time-to-live and the [`Stage`](crate::Stage) to wait
    /// for ([`SendOptions`]), waiting as `wait` says for all of it.
    ///
    /// With [`Stage::Queued`](crate::Stage::Queued) it is answered when the
    /// broker holds the message, with `Received` when a receiver took it,
    /// with `Acknowledged` when a receiver acknowledged it. A wait that ends
    /// before anyone took the message fails with kind `Timeout` (or
    /// `WouldBlock`) and the message is withdrawn; one that ends after a
    /// receiver took it but before it acknowledged fails with kind
    /// `TimeoutInFlight`, and the message was **not** withdrawn.
    ///
    /// ```no_run
    /// use mailbox_client::{blocking::Client, SendOptions, Stage, Target, Wait};
    ///
    /// let mut client = Client::connect_default()?;
    /// let options = SendOptions {
    ///     stage: Stage::Acknowledged,
    ///     key: Some("customer-17".into()),
    ///     ttl_millis: Some(30_000),
    /// };
    /// let receipt = client.post(Target::mailbox("orders"), "ship it", options, Wait::Forever)?;
    /// println!("order #{} processed", receipt.sequence);
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn post(
        &mut self,
        to: Target,
        payload: impl Into<Bytes>,
        options: SendOptions,
        wait: Wait,
    ) -> Result<SendReceipt, Error> {
        let request = session::post_request(to, payload.into(), options, wait);
        session::expect_sent(self.roundtrip(request)?)
    }

    /// Takes the next message from this connection's inbox, from any
    /// sender, waiting as long as it takes.
    ///
    /// ```no_run
    /// use mailbox_client::blocking::Client;
    ///
    /// let mut client = Client::connect_default()?;
    /// let message = client.receive_inbox()?;
    /// println!("{:?} from process {}", message.payload, message.metadata.sender_connection);
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn receive_inbox(&mut self) -> Result<Message, Error> {
        let request = session::inbox_request(None, false, Wait::Forever);
        session::expect_message(self.roundtrip(request)?)
    }

    /// Takes the next message from this connection's inbox if there is one
    /// now.
    pub fn try_receive_inbox(&mut self) -> Result<Option<Message>, Error> {
        let request = session::inbox_request(None, false, Wait::Never);
        session::optional_message(self.roundtrip(request))
    }

    /// Takes the next message from this connection's inbox, waiting at most
    /// `timeout` (then kind `Timeout`).
    pub fn receive_inbox_timeout(&mut self, timeout: Duration) -> Result<Message, Error> {
        let request = session::inbox_request(None, false, session::wait_at_most(timeout));
        session::expect_message(self.roundtrip(request)?)
    }

    /// Takes the next message that `process` sent to this connection's
    /// inbox, waiting as long as it takes; messages from others stay there,
    /// in order, for other receives.
    ///
    /// ```no_run
    /// use mailbox_client::blocking::Client;
    ///
    /// let mut client = Client::connect_default()?;
    /// client.send_to("calculator", "2 + 2")?;
    /// let answer = client.receive_from("calculator")?;
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn receive_from(&mut self, process: impl Into<Address>) -> Result<Message, Error> {
        let request = session::inbox_request(Some(process.into()), false, Wait::Forever);
        session::expect_message(self.roundtrip(request)?)
    }

    /// Takes the next message from `process` in this connection's inbox if
    /// there is one now.
    pub fn try_receive_from(
        &mut self,
        process: impl Into<Address>,
    ) -> Result<Option<Message>, Error> {
        let request = session::inbox_request(Some(process.into()), false, Wait::Never);
        session::optional_message(self.roundtrip(request))
    }

    /// Takes the next message from `process` in this connection's inbox,
    /// waiting at most `timeout` (then kind `Timeout`).
    pub fn receive_from_timeout(
        &mut self,
        process: impl Into<Address>,
        timeout: Duration,
    ) -> Result<Message, Error> {
        let wait = session::wait_at_most(timeout);
        let request = session::inbox_request(Some(process.into()), false, wait);
        session::expect_message(self.roundtrip(request)?)
    }

    /// The general receive: from a mailbox or this connection's inbox
    /// ([`Source`]), one message (`options.max` of `None`) or a batch of up
    /// to `max` (0 counts as 1), with manual acknowledgement and a receiver
    /// priority ([`ReceiveOptions`]), waiting for the first message as
    /// `wait` says. With `Wait::Never` and nothing to take it fails with
    /// kind `WouldBlock`.
    ///
    /// Messages taken with `manual_ack` are held until settled: wrap each
    /// with [`Held::from_source`] and [`ack`](Self::ack) or
    /// [`nack`](Self::nack) it.
    ///
    /// ```no_run
    /// use mailbox_client::{blocking::Client, Held, ReceiveOptions, Source, Wait};
    ///
    /// let mut client = Client::connect_default()?;
    /// let source = Source::Mailbox("jobs".into());
    /// let options = ReceiveOptions { max: Some(16), manual_ack: true, priority: 10 };
    /// for message in client.fetch(source.clone(), options, Wait::Forever)? {
    ///     let held = Held::from_source(&source, message);
    ///     // ... process it, then:
    ///     client.ack(&held)?;
    /// }
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn fetch(
        &mut self,
        source: Source,
        options: ReceiveOptions,
        wait: Wait,
    ) -> Result<Vec<Message>, Error> {
        let max = options.max.map(|max| max.max(1));
        let request = session::fetch_request(source, options, wait);
        session::expect_fetched(self.roundtrip(request)?, max)
    }

    /// Takes the next message from `mailbox` with manual acknowledgement,
    /// waiting for it as `wait` says: the broker holds it for this
    /// connection until it is settled with [`ack`](Self::ack) or
    /// [`nack`](Self::nack), and puts it back at the head of the mailbox if
    /// the connection ends first. Kind `InvalidRequest` on a broadcast
    /// mailbox.
    ///
    /// ```no_run
    /// use mailbox_client::{blocking::Client, Wait};
    ///
    /// let mut client = Client::connect_default()?;
    /// let held = client.receive_held("jobs", Wait::Forever)?;
    /// match std::str::from_utf8(&held.message.payload) {
    ///     Ok(job) => {
    ///         println!("doing {job}");
    ///         client.ack(&held)?;
    ///     }
    ///     // Back to the tail, for someone else (or later).
    ///     Err(_) => client.nack(&held, true)?,
    /// }
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn receive_held(&mut self, mailbox: &str, wait: Wait) -> Result<Held, Error> {
        let request = session::held_request(mailbox, wait);
        let response = self.roundtrip(request)?;
        session::expect_held(response, &Source::Mailbox(mailbox.to_owned()))
    }

    /// Takes the next message from this connection's inbox with manual
    /// acknowledgement, as [`receive_held`](Self::receive_held) does for a
    /// mailbox.
    pub fn receive_inbox_held(&mut self, wait: Wait) -> Result<Held, Error> {
        let request = session::inbox_request(None, true, wait);
        let response = self.roundtrip(request)?;
        session::expect_held(response, &Source::Inbox { from: None })
    }

    /// Acknowledges a held message: done with it, it leaves the broker (and
    /// a sender waiting for [`Stage::Acknowledged`](crate::Stage) is
    /// answered). Kind `NotHeld` when this connection does not hold it (any
    /// more): e.g. the mailbox's acknowledgement timeout
    /// ([`MailboxSettings::ack_timeout_millis`]) passed and it went back,
    /// even if it was delivered to this connection again (that delivery is
    /// another [`Held`]).
    pub fn ack(&mut self, held: &Held) -> Result<(), Error> {
        self.settle(held, Verdict::Ack)
    }

    /// Gives a held message back: it returns to its mailbox (or inbox), to
    /// the head or, with `to_tail`, to the tail, and its redelivery count
    /// goes up (past the mailbox's maximum deliveries it is dead-lettered).
    pub fn nack(&mut self, held: &Held, to_tail: bool) -> Result<(), Error> {
        self.settle(held, Verdict::Nack { to_tail })
    }

    /// Settles a held message with `verdict` ([`ack`](Self::ack) and
    /// [`nack`](Self::nack) are the two verdicts).
    pub fn settle(&mut self, held: &Held, verdict: Verdict) -> Result<(), Error> {
        let response = self.roundtrip(held.settle_request(verdict))?;
        session::expect_settled(response)
    }

    /// Sends `payload` as a call's request to `to` (a mailbox or a process)
    /// and waits at most `timeout` for the reply, which it returns (its
    /// [`Metadata::call`](crate::Metadata::call) is the call's id). Kind
    /// `NoReply` when the process that took the request left (or the
    /// request was dropped) without replying, `Timeout` when the time ran
    /// out (the handler's late reply then fails with `CallEnded`).
    ///
    /// ```no_run
    /// use mailbox_client::{blocking::Client, Target};
    /// use std::time::Duration;
    ///
    /// let mut client = Client::connect_default()?;
    /// let reply = client.call(Target::process("resolver"), "example.org", Duration::from_secs(2))?;
    /// println!("{:?}", reply.payload);
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn call(
        &mut self,
        to: Target,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, Error> {
        let wait = session::wait_at_most(timeout);
        self.call_with(to, payload, SendOptions::default(), wait)
    }

    /// A call with a routing key and a time-to-live for its request
    /// (`options.stage` is ignored), waiting for the reply as `wait` says.
    pub fn call_with(
        &mut self,
        to: Target,
        payload: impl Into<Bytes>,
        options: SendOptions,
        wait: Wait,
    ) -> Result<Message, Error> {
        let request = session::call_request(to, payload.into(), options, wait);
        session::expect_message(self.roundtrip(request)?)
    }

    /// Answers a call whose request this connection received: `request` is
    /// that message, whose [`Metadata::call`](crate::Metadata::call) names
    /// the call. A message that is no call's request is refused here,
    /// without asking the broker, as kind `NotHeld`; the broker answers
    /// `NotHeld` too for a call this connection does not hold (answered
    /// already), and `CallEnded` when the caller stopped waiting.
    ///
    /// ```no_run
    /// use mailbox_client::blocking::Client;
    ///
    /// let mut client = Client::connect_default()?;
    /// client.claim_name("upper")?;
    /// loop {
    ///     let request = client.receive_inbox()?;
    ///     if request.metadata.call().is_some() {
    ///         let answer = request.payload.to_ascii_uppercase();
    ///         client.reply(&request, answer)?;
    ///     }
    /// }
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn reply(&mut self, request: &Message, payload: impl Into<Bytes>) -> Result<(), Error> {
        let request = session::reply_request(request, payload.into())?;
        session::expect_replied(self.roundtrip(request)?)
    }

    /// Claims the well-known name `name` for this connection, failing at
    /// once with kind `NameTaken` when another process holds it. Others can
    /// then reach this connection's inbox by that name. It is released by
    /// [`release_name`](Self::release_name) or when the connection ends.
    ///
    /// ```no_run
    /// use mailbox_client::{blocking::Client, ErrorKind, Wait};
    ///
    /// let mut client = Client::connect_default()?;
    /// if let Err(error) = client.claim_name("scheduler") {
    ///     if error.kind() != Some(ErrorKind::NameTaken) {
    ///         return Err(error);
    ///     }
    ///     // Stand by until the active scheduler goes away.
    ///     client.claim_name_with("scheduler", Wait::Forever)?;
    /// }
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn claim_name(&mut self, name: &str) -> Result<(), Error> {
        self.claim_name_with(name, Wait::Never)
    }

    /// Claims a well-known name, queueing for it while another process
    /// holds it as `wait` says (`Wait::Never`: fail at once with
    /// `NameTaken`; a timeout: `Timeout`).
    pub fn claim_name_with(&mut self, name: &str, wait: Wait) -> Result<(), Error> {
        let response = self.roundtrip(session::claim_name_request(name, wait))?;
        session::expect_name_claimed(response)
    }

    /// Gives up a name this connection holds; the next queued claimer gets
    /// it.
    pub fn release_name(&mut self, name: &str) -> Result<(), Error> {
        let response = self.roundtrip(session::release_name_request(name))?;
        session::expect_name_released(response)
    }

    /// Every claimed name with its owner, sorted by name.
    pub fn names(&mut self) -> Result<Vec<NameInfo>, Error> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.names_page(after.as_deref(), PAGE_ROWS)?;
            match session::follow_page(&mut all, after.as_deref(), page)? {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One page of [`names`](Self::names): at most `max` names sorting
    /// after `after`, and where the next page starts.
    pub fn names_page(&mut self, after: Option<&str>, max: u32) -> Result<Page<NameInfo>, Error> {
        session::expect_name_page(self.roundtrip(session::name_page_request(after, max))?)
    }

    /// Changes a mailbox's owner (root only), group or mode; `None` keeps
    /// what it is. Needs the manage right.
    pub fn set_permissions(
        &mut self,
        mailbox: &str,
        owner: Option<u32>,
        group: Option<u32>,
        mode: Option<u32>,
    ) -> Result<(), Error> {
        let response = self.roundtrip(Request::SetPermissions {
            name: mailbox.to_owned(),
            owner,
            group,
            mode,
        })?;
        session::expect_permissions_set(response)
    }

    /// Discards every queued message of `mailbox` (not those in flight);
    /// returns how many. Needs the manage right.
    pub fn purge(&mut self, mailbox: &str) -> Result<u64, Error> {
        let response = self.roundtrip(Request::Purge {
            name: mailbox.to_owned(),
        })?;
        session::expect_purged(response)
    }

    /// Sets the capacity of this connection's inbox (default
    /// [`DEFAULT_INBOX_CAPACITY`](crate::DEFAULT_INBOX_CAPACITY)); messages
    /// already in it stay.
    pub fn set_inbox_capacity(&mut self, capacity: Capacity) -> Result<(), Error> {
        let response = self.roundtrip(session::inbox_capacity_request(capacity))?;
        session::expect_inbox_capacity_set(response)
    }

    /// Sets who may send to this connection's inbox: `mode` (only the send
    /// bits count; the broker's default, `0o600`, admits this uid and root
    /// alone, so `0o622` opens it to everyone) and `group` (this process
    /// must be a member, unless root).
    pub fn set_inbox_permissions(
        &mut self,
        mode: Option<u32>,
        group: Option<u32>,
    ) -> Result<(), Error> {
        let response = self.roundtrip(Request::SetInboxPermissions { mode, group })?;
        session::expect_inbox_permissions_set(response)
    }

    /// Sends every payload to `mailbox` with up to `window` sends in flight,
    /// writing many requests per `write` and reading many answers per `read`.
    ///
    /// Returns the receipts in input order. At the first failure no further
    /// payload is sent, the answers of those in flight are still collected,
    /// and the [`PipelineError`] says exactly which positions were accepted.
    ///
    /// The answers of one window must fit in the socket's buffers while this
    /// method writes (a send's answer is about 20 bytes, so windows of
    /// thousands are fine).
    pub fn send_pipelined<I>(
        &mut self,
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
        // Request id -> position in the input.
        let mut in_flight: HashMap<RequestId, usize> = HashMap::new();
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
                match self.start(request) {
                    Ok(id) => {
                        in_flight.insert(id, position);
                    }
                    Err(error) => {
                        tally.not_sent(position, error);
                        break;
                    }
                }
            }
            if in_flight.is_empty() {
                break;
            }
            let pumped = self.pump_within(wait);
            in_flight.retain(|id, position| match self.answered.remove(id) {
                Some(result) => {
                    tally.record(*position, session::into_result(result));
                    false
                }
                None => true,
            });
            if let Err(error) = pumped {
                for (_, position) in in_flight.drain() {
                    tally.record(position, Err(error.replicate()));
                }
                break;
            }
        }
        tally.finish()
    }

    /// Receives `count` messages from `mailbox` with up to `window` receives
    /// in flight, handing each to `each` in the order the broker gave them.
    ///
    /// Never asks for more than `count` messages. At the first failure the
    /// outstanding receives are cancelled, but a message the broker handed
    /// over before the cancel still reaches `each`, so nothing is lost; then
    /// the failure is returned. Returns how many messages `each` got.
    pub fn receive_pipelined(
        &mut self,
        mailbox: &str,
        count: usize,
        window: usize,
        wait: Wait,
        mut each: impl FnMut(Message),
    ) -> Result<usize, Error> {
        let mut tally = ReceiveTally::new(count, window);
        let mut in_flight: VecDeque<RequestId> = VecDeque::new();
        let mut cancels: Vec<RequestId> = Vec::new();
        let mut cancelling = false;
        loop {
            for _ in 0..tally.room(in_flight.len()) {
                let request = Request::Receive {
                    mailbox: mailbox.to_owned(),
                    wait,
                };
                match self.start(request) {
                    Ok(id) => {
                        tally.issue();
                        in_flight.push_back(id);
                    }
                    Err(error) => {
                        tally.record(Err(error));
                        break;
                    }
                }
            }
            if tally.failed() && !cancelling {
                cancelling = true;
                for &request in &in_flight {
                    // If even the cancel cannot be sent, the connection is
                    // gone and the pump below reports it.
                    if let Ok(id) = self.start(Request::Cancel { request }) {
                        cancels.push(id);
                    }
                }
            }
            if in_flight.is_empty() {
                break;
            }
            let pumped = self.pump_within(wait);
            while let Some(result) = in_flight.front().and_then(|id| self.answered.remove(id)) {
                in_flight.pop_front();
                if let Some(message) = tally.record(session::into_result(result)) {
                    each(message);
                }
            }
            if let Err(error) = pumped {
                // Answers filed behind an unanswered one still carry messages.
                for id in in_flight.drain(..) {
                    let result = match self.answered.remove(&id) {
                        Some(result) => session::into_result(result),
                        None => Err(error.replicate()),
                    };
                    if let Some(message) = tally.record(result) {
                        each(message);
                    }
                }
                break;
            }
        }
        self.drain_answers(cancels);
        tally.finish()
    }

    /// Sends every payload to `mailbox` in batches (`SendMany`) of up to
    /// `batch` payloads, with up to `window` batches in flight: many frames
    /// per `write`, many answers per `read`. A batch is also cut short where
    /// it would not fit the broker's frame limit, so any payloads a single
    /// send would take can be streamed.
    ///
    /// Returns how many were accepted (all of them) with each batch's
    /// receipt. When a batch stops early or fails, no further batch is sent,
    /// the answers of those in flight are still collected, and the
    /// [`StreamError`] says exactly which positions were accepted.
    ///
    /// ```no_run
    /// use mailbox_client::{blocking::Client, Bytes, Wait};
    ///
    /// let mut client = Client::connect_default()?;
    /// let payloads = (0..100_000u32).map(|i| Bytes::from(i.to_le_bytes().to_vec()));
    /// match client.send_stream("jobs", payloads, 256, 4, Wait::Forever) {
    ///     Ok(receipt) => println!("{} sent", receipt.accepted),
    ///     Err(error) => eprintln!("{error}; accepted: {:?}", error.accepted),
    /// }
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn send_stream<I>(
        &mut self,
        mailbox: &str,
        payloads: I,
        batch: usize,
        window: usize,
        wait: Wait,
    ) -> Result<StreamReceipt, StreamError>
    where
        I: IntoIterator<Item = Bytes>,
    {
        let max_frame_len = self.welcome.max_frame_len;
        let mut batches = Batcher::new(payloads.into_iter(), batch, max_frame_len, mailbox);
        let mut tally = StreamSendTally::new(window);
        let mut in_flight: Vec<(RequestId, Range<usize>)> = Vec::new();
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
                match self.start(request) {
                    Ok(id) => {
                        tally.issue(&positions);
                        in_flight.push((id, positions));
                    }
                    Err(error) => {
                        tally.not_sent(&positions, error);
                        break;
                    }
                }
            }
            if in_flight.is_empty() {
                break;
            }
            let pumped = self.pump_within(wait);
            in_flight.retain(|(id, positions)| match self.answered.remove(id) {
                Some(result) => {
                    tally.record(positions.clone(), session::into_result(result));
                    false
                }
                None => true,
            });
            if let Err(error) = pumped {
                for (_, positions) in in_flight.drain(..) {
                    tally.record(positions, Err(error.replicate()));
                }
                break;
            }
        }
        tally.finish()
    }

    /// Receives `count` messages from `mailbox` by batches (`ReceiveMany`) of
    /// up to `max`, with up to `window` of them in flight, handing each
    /// message to `each` in the order the broker gave them. Returns how many
    /// messages `each` got.
    ///
    /// Never asks for more than it still needs: the `max`s of the receives
    /// in flight never add up to more than `count` minus what was received,
    /// so no message beyond the `count`th is taken from the mailbox. At the
    /// first failure the outstanding receives are cancelled, but messages
    /// the broker handed over before the cancel still reach `each`; then the
    /// failure is returned.
    ///
    /// ```no_run
    /// use mailbox_client::{blocking::Client, Wait};
    ///
    /// let mut client = Client::connect_default()?;
    /// let mut bytes = 0;
    /// let got = client.receive_stream("jobs", 100_000, 1024, 2, Wait::Forever, |message| {
    ///     bytes += message.payload.len();
    /// })?;
    /// println!("{got} messages, {bytes} bytes");
    /// # Ok::<(), mailbox_client::Error>(())
    /// ```
    pub fn receive_stream(
        &mut self,
        mailbox: &str,
        count: usize,
        max: u32,
        window: usize,
        wait: Wait,
        mut each: impl FnMut(Message),
    ) -> Result<usize, Error> {
        let mut tally = StreamReceiveTally::new(count, max, window);
        let mut in_flight: VecDeque<(RequestId, u32)> = VecDeque::new();
        let mut cancels: Vec<RequestId> = Vec::new();
        let mut cancelling = false;
        loop {
            while let Some(max) = tally.next_max(in_flight.len()) {
                match self.start(session::receive_many_request(mailbox, max, wait)) {
                    Ok(id) => {
                        tally.issue(max);
                        in_flight.push_back((id, max));
                    }
                    Err(error) => {
                        tally.not_sent(error);
                        break;
                    }
                }
            }
            if tally.failed() && !cancelling {
                cancelling = true;
                for &(request, _) in &in_flight {
                    // If even the cancel cannot be sent, the connection is
                    // gone and the pump below reports it.
                    if let Ok(id) = self.start(Request::Cancel { request }) {
                        cancels.push(id);
                    }
                }
            }
            if in_flight.is_empty() {
                break;
            }
            let pumped = self.pump_within(wait);
            while let Some(result) = in_flight
                .front()
                .and_then(|(id, _)| self.answered.remove(id))
            {
                if let Some((_, max)) = in_flight.pop_front() {
                    tally
                        .record(max, session::into_result(result))
                        .into_iter()
                        .for_each(&mut each);
                }
            }
            if let Err(error) = pumped {
                // Answers filed behind an unanswered one still carry messages.
                for (id, max) in in_flight.drain(..) {
                    let result = match self.answered.remove(&id) {
                        Some(result) => session::into_result(result),
                        None => Err(error.replicate()),
                    };
                    tally.record(max, result).into_iter().for_each(&mut each);
                }
                break;
            }
        }
        self.drain_answers(cancels);
        tally.finish()
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
    fn roundtrip(&mut self, request: Request) -> Result<Response, Error> {
        let limit = connect::answer_limit(&request, self.untimed_limit);
        let id = self.start(request)?;
        self.deadline = limit.map(|limit| (Instant::now() + limit, limit));
        let answer = self.flush().and_then(|()| self.wait_for(id));
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

    /// Reads until the request `id` is answered.
    fn wait_for(&mut self, id: RequestId) -> Result<Response, Error> {
        loop {
            if let Some(result) = self.answered.remove(&id) {
                return session::into_result(result);
            }
            self.pump()?;
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

    /// Writes every queued frame with as few `write` calls as the socket allows.
    fn flush(&mut self) -> Result<(), Error> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        self.apply_deadline()?;
        let written = self.stream.write_all(&self.outgoing);
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
        if let Err(error) = read_some(&mut self.stream, &mut self.incoming) {
            let error = self.no_answer(error);
            return Err(self.close(error));
        }
        loop {
            let routed = session::decode_server_frame(&mut self.incoming)
                .and_then(|frame| frame.map(|frame| self.session.route(frame)).transpose());
            match routed {
                Ok(Some(routed)) => {
                    self.answered.insert(routed.id, routed.result);
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

/// Whether an I/O error is a socket timeout (`SO_RCVTIMEO`, `SO_SNDTIMEO`).
fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Sets the socket's read and write timeouts to the time left until
/// `deadline` (at least a millisecond), or clears them.
fn set_timeouts(stream: &UnixStream, deadline: Option<Instant>) -> io::Result<()> {
    let left = deadline.map(|at| {
        at.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    });
    stream.set_read_timeout(left)?;
    stream.set_write_timeout(left)
}

/// Reads once into `incoming`, straight into its spare capacity (no copy
/// through an intermediate buffer); the end of the stream is
/// [`Error::Disconnected`].
fn read_some(stream: &mut UnixStream, incoming: &mut BytesMut) -> Result<(), Error> {
    if incoming.capacity() - incoming.len() < READ_CHUNK / 4 {
        incoming.reserve(READ_CHUNK);
    }
    loop {
        let spare = incoming.spare_capacity_mut();
        // SAFETY: read(2) writes at most `spare.len()` bytes into memory we
        // own; it does not need that memory initialised.
        let read =
            unsafe { libc::read(stream.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        match read {
            0 => return Err(Error::Disconnected),
            read if read > 0 => {
                // SAFETY: the kernel initialised the first `read` spare bytes.
                unsafe { incoming.set_len(incoming.len() + read as usize) };
                return Ok(());
            }
            _ => {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::from_connection_io(error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{
        fake_broker, fake_broker_limited, message, messages, sent_many, FakeBroker,
    };
    use mailbox_proto::{ClientFrame, ErrorKind, ServerFrame};

    fn connected(
        handler: impl FnMut(&ClientFrame) -> Vec<ServerFrame> + Send + 'static,
    ) -> (Client, FakeBroker) {
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        let broker = fake_broker(theirs, handler);
        let client = Client::from_stream(ours).expect("handshake");
        (client, broker)
    }

    fn answer(frame: &ClientFrame, result: Result<Response, BrokerError>) -> Vec<ServerFrame> {
        vec![ServerFrame::Response {
            id: frame.id,
            result,
        }]
    }

    #[test]
    fn list_and_names_follow_the_pages_to_the_end() {
        // A broker with names "m0".."m9", three to a page.
        let names: Vec<String> = (0..10).map(|n| format!("m{n}")).collect();
        let page_of = move |after: &Option<String>| {
            let rest: Vec<String> = names
                .iter()
                .filter(|name| after.as_ref().is_none_or(|after| *name > after))
                .cloned()
                .collect();
            let page: Vec<String> = rest.iter().take(3).cloned().collect();
            let next = (rest.len() > 3).then(|| page[2].clone());
            (page, next)
        };
        let (mut client, broker) = connected(move |frame| match &frame.request {
            Request::ListMailboxPage { after, .. } => {
                let (page, next) = page_of(after);
                let mailboxes = page
                    .into_iter()
                    .map(|name| MailboxInfo {
                        name,
                        mode: 0o760,
                        ..MailboxInfo::default()
                    })
                    .collect();
                answer(frame, Ok(Response::MailboxPage { mailboxes, next }))
            }
            Request::ListNamePage { after, .. } => {
                let (page, next) = page_of(after);
                let names = page
                    .into_iter()
                    .map(|name| NameInfo {
                        name,
                        process: 1,
                        pid: 2,
                        uid: 3,
                        queued_claims: 0,
                    })
                    .collect();
                answer(frame, Ok(Response::NamePage { names, next }))
            }
            _ => answer(frame, Err(BrokerError::new(ErrorKind::Internal, "no"))),
        });
        let listed: Vec<String> = client
            .list()
            .expect("list")
            .into_iter()
            .map(|info| info.name)
            .collect();
        let named: Vec<String> = client
            .names()
            .expect("names")
            .into_iter()
            .map(|info| info.name)
            .collect();
        let expected: Vec<String> = (0..10).map(|n| format!("m{n}")).collect();
        assert_eq!(listed, expected);
        assert_eq!(named, expected);
        drop(client);
        // Four pages each: 3 + 3 + 3 + 1.
        assert_eq!(broker.finish().frames.len(), 8);
    }

    #[test]
    fn requests_get_their_answers() {
        let (mut client, broker) = connected(|frame| match &frame.request {
            Request::CreateMailbox { .. } => answer(frame, Ok(Response::Created { created: true })),
            Request::Send { .. } => answer(
                frame,
                Ok(Response::Sent {
                    sequence: 1,
                    recipients: 1,
                }),
            ),
            Request::Receive { .. } => answer(frame, Ok(Response::Received(message(1, b"hi")))),
            _ => answer(frame, Err(BrokerError::new(ErrorKind::NoSuchMailbox, "no"))),
        });
        assert!(client
            .create("jobs", MailboxSettings::default())
            .expect("created"));
        let receipt = client.send("jobs", "hi").expect("sent");
        assert_eq!(receipt.sequence, 1);
        assert_eq!(client.receive("jobs").expect("message").payload, "hi");
        let error = client.delete("jobs").expect_err("should fail");
        assert_eq!(error.kind(), Some(ErrorKind::NoSuchMailbox));
        drop(client);
        let log = broker.finish();
        assert_eq!(log.frames.len(), 4);
    }

    #[test]
    fn empty_mailbox_is_none_and_timeouts_are_typed() {
        let (mut client, _broker) = connected(|frame| match &frame.request {
            Request::Receive {
                wait: Wait::Never, ..
            } => answer(frame, Err(BrokerError::new(ErrorKind::WouldBlock, "empty"))),
            Request::Receive {
                wait: Wait::Timeout { millis: 250 },
                ..
            } => answer(frame, Err(BrokerError::new(ErrorKind::Timeout, "late"))),
            _ => answer(frame, Err(BrokerError::new(ErrorKind::Internal, "?"))),
        });
        assert_eq!(client.try_receive("jobs").expect("no error"), None);
        let error = client
            .receive_timeout("jobs", Duration::from_millis(250))
            .expect_err("should fail");
        assert_eq!(error.kind(), Some(ErrorKind::Timeout));
    }

    #[test]
    fn pipelined_sends_batch_frames_and_return_receipts_in_order() {
        let mut sequence = 0;
        let (mut client, broker) = connected(move |frame| {
            sequence += 1;
            answer(
                frame,
                Ok(Response::Sent {
                    sequence,
                    recipients: 1,
                }),
            )
        });
        let payloads = (0..100).map(|i| Bytes::from(format!("message {i}")));
        let receipts = client
            .send_pipelined("jobs", payloads, 16, Wait::Forever)
            .expect("all accepted");
        assert_eq!(
            receipts.iter().map(|r| r.sequence).collect::<Vec<_>>(),
            (1..=100).collect::<Vec<_>>()
        );
        drop(client);
        let log = broker.finish();
        assert_eq!(log.frames.len(), 100);
        assert_eq!(log.largest_batch, 16, "one write carries a whole window");
    }

    #[test]
    fn pipelined_sends_stop_at_a_refusal_and_say_which_were_accepted() {
        // The broker answers a window of four in reverse order; the third
        // payload is too large.
        let mut held = Vec::new();
        let (mut client, _broker) = connected(move |frame| {
            held.push(frame.clone());
            if held.len() < 4 {
                return Vec::new();
            }
            held.drain(..)
                .rev()
                .map(|frame| {
                    let result = match &frame.request {
                        Request::Send { payload, .. } if payload.len() > 3 => Err(
                            BrokerError::new(ErrorKind::MessageTooLarge, "above 3 bytes"),
                        ),
                        _ => Ok(Response::Sent {
                            sequence: frame.id,
                            recipients: 1,
                        }),
                    };
                    ServerFrame::Response {
                        id: frame.id,
                        result,
                    }
                })
                .collect()
        });
        let payloads = ["a", "b", "large", "c", "never sent"];
        let error = client
            .send_pipelined("jobs", payloads, 4, Wait::Never)
            .expect_err("should fail");
        assert_eq!(error.failed_at, 2);
        assert_eq!(error.error.kind(), Some(ErrorKind::MessageTooLarge));
        assert_eq!(
            error.accepted.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            vec![0, 1, 3]
        );
        assert!(error.unknown.is_empty());
        assert_eq!(error.issued, 4);
    }

    #[test]
    fn pipelined_receives_keep_a_window_and_cancel_after_a_failure() {
        let mut sequence = 0;
        let (mut client, broker) = connected(move |frame| match &frame.request {
            Request::Receive { .. } if sequence < 5 => {
                sequence += 1;
                answer(frame, Ok(Response::Received(message(sequence, b"m"))))
            }
            // The sixth receive times out; later ones wait until cancelled.
            Request::Receive { .. } if sequence == 5 => {
                sequence += 1;
                answer(frame, Err(BrokerError::new(ErrorKind::Timeout, "late")))
            }
            Request::Receive { .. } => Vec::new(),
            Request::Cancel { request } => vec![
                ServerFrame::Response {
                    id: *request,
                    result: Err(BrokerError::new(ErrorKind::Cancelled, "cancelled")),
                },
                ServerFrame::Response {
                    id: frame.id,
                    result: Ok(Response::CancelResult { cancelled: true }),
                },
            ],
            _ => Vec::new(),
        });
        let mut got = Vec::new();
        let error = client
            .receive_pipelined("jobs", 10, 4, Wait::Forever, |m| {
                got.push(m.metadata.sequence)
            })
            .expect_err("should fail");
        assert_eq!(error.kind(), Some(ErrorKind::Timeout));
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        // The connection is still usable and nothing is left filed.
        assert!(client.answered.is_empty());
        assert_eq!(client.session.in_flight(), 0);
        drop(client);
        let log = broker.finish();
        let receives = log
            .frames
            .iter()
            .filter(|f| matches!(f.request, Request::Receive { .. }))
            .count();
        assert!(receives <= 10, "never more than count receives");
    }

    #[test]
    fn pipelined_receives_stop_at_count() {
        let mut sequence = 0;
        let (mut client, broker) = connected(move |frame| {
            sequence += 1;
            answer(frame, Ok(Response::Received(message(sequence, b"m"))))
        });
        let mut got = 0;
        let count = client
            .receive_pipelined("jobs", 7, 3, Wait::Forever, |_| got += 1)
            .expect("received");
        assert_eq!((count, got), (7, 7));
        drop(client);
        assert_eq!(broker.finish().frames.len(), 7);
    }

    fn refusal(kind: ErrorKind) -> BrokerError {
        BrokerError::new(kind, "test")
    }

    /// The payloads of every `SendMany` the broker saw, batch by batch.
    fn batches_seen(frames: &[ClientFrame]) -> Vec<Vec<Bytes>> {
        frames
            .iter()
            .filter_map(|frame| match &frame.request {
                Request::SendMany { payloads, .. } => Some(payloads.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn batch_sends_are_all_sent_partly_sent_or_not_sent() {
        let (mut client, broker) = connected(|frame| match &frame.request {
            Request::SendMany { payloads, wait, .. } => {
                let result = match wait {
                    Wait::Forever => sent_many(1, payloads.len(), None),
                    // Room for two only.
                    Wait::Never => sent_many(4, 2, Some(refusal(ErrorKind::WouldBlock))),
                    Wait::Timeout { .. } => sent_many(6, 0, Some(refusal(ErrorKind::Timeout))),
                };
                answer(frame, Ok(result))
            }
            _ => answer(frame, Err(refusal(ErrorKind::Internal))),
        });
        let receipt = client.send_many("jobs", ["a", "b", "c"]).expect("all sent");
        assert_eq!(receipt.sequences(), 1..4);

        let payloads = ["d", "e", "f"];
        let error = client
            .try_send_many("jobs", payloads)
            .expect_err("only some sent");
        let Error::Partial {
            admitted,
            first_sequence,
            ref error,
        } = error
        else {
            panic!("expected a partial send, got {error}");
        };
        assert_eq!((admitted, first_sequence), (2, 4));
        assert_eq!(error.kind, ErrorKind::WouldBlock);
        assert_eq!(&payloads[admitted as usize..], ["f"]);

        let error = client
            .send_many_timeout("jobs", ["g"], Duration::from_millis(5))
            .expect_err("none sent");
        assert!(matches!(error, Error::Broker(_)), "{error}");
        assert_eq!(error.kind(), Some(ErrorKind::Timeout));
        drop(client);
        let log = broker.finish();
        assert_eq!(
            batches_seen(&log.frames),
            vec![vec!["a", "b", "c"], vec!["d", "e", "f"], vec!["g"]]
        );
        assert_eq!(
            log.frames[2].request,
            Request::SendMany {
                mailbox: "jobs".into(),
                payloads: vec![Bytes::from("g")],
                wait: Wait::Timeout { millis: 5 },
            }
        );
    }

    #[test]
    fn batch_receives_take_what_is_there_up_to_max() {
        let (mut client, broker) = connected(|frame| match &frame.request {
            Request::ReceiveMany {
                wait: Wait::Never, ..
            } => answer(frame, Err(refusal(ErrorKind::WouldBlock))),
            Request::ReceiveMany {
                wait: Wait::Timeout { .. },
                ..
            } => answer(frame, Err(refusal(ErrorKind::Timeout))),
            // Three messages are there.
            Request::ReceiveMany { max, .. } => answer(
                frame,
                Ok(Response::ReceivedMany(messages(1, u64::from(*max).min(3)))),
            ),
            _ => answer(frame, Err(refusal(ErrorKind::Internal))),
        });
        let got = client.receive_many("jobs", 5).expect("messages");
        assert_eq!(
            got.iter().map(|m| m.metadata.sequence).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(client.receive_many("jobs", 0).expect("one").len(), 1);
        assert!(client
            .try_receive_many("jobs", 5)
            .expect("empty is no error")
            .is_empty());
        let error = client
            .receive_many_timeout("jobs", 5, Duration::from_millis(5))
            .expect_err("should fail");
        assert_eq!(error.kind(), Some(ErrorKind::Timeout));
        drop(client);
        let maxes: Vec<u32> = broker
            .finish()
            .frames
            .iter()
            .filter_map(|frame| match frame.request {
                Request::ReceiveMany { max, .. } => Some(max),
                _ => None,
            })
            .collect();
        assert_eq!(maxes, vec![5, 1, 5, 5]);
    }

    #[test]
    fn a_batch_above_the_frame_limit_is_refused_without_sending() {
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        let broker = fake_broker_limited(theirs, 1024, |frame| match &frame.request {
            Request::SendMany { payloads, .. } => {
                answer(frame, Ok(sent_many(1, payloads.len(), None)))
            }
            _ => answer(frame, Err(refusal(ErrorKind::Internal))),
        });
        let mut client = Client::from_stream(ours).expect("handshake");
        let large = (0..10).map(|_| Bytes::from(vec![1u8; 200]));
        let error = client.send_many("jobs", large).expect_err("refused");
        assert!(matches!(error, Error::Broker(_)), "{error}");
        assert_eq!(error.kind(), Some(ErrorKind::MessageTooLarge));
        assert!(error.to_string().contains("nothing was sent"), "{error}");
        // The connection is still fine.
        let receipt = client.send_many("jobs", ["small"]).expect("sent");
        assert_eq!(receipt.admitted, 1);
        drop(client);
        assert_eq!(batches_seen(&broker.finish().frames), vec![vec!["small"]]);
    }

    #[test]
    fn streamed_sends_keep_a_window_of_batches() {
        let mut next = 1;
        let (mut client, broker) = connected(move |frame| match &frame.request {
            Request::SendMany { payloads, .. } => {
                let first = next;
                next += payloads.len() as u64;
                answer(frame, Ok(sent_many(first, payloads.len(), None)))
            }
            _ => answer(frame, Err(refusal(ErrorKind::Internal))),
        });
        let input: Vec<Bytes> = (0..1000u32)
            .map(|i| Bytes::from(i.to_le_bytes().to_vec()))
            .collect();
        let receipt = client
            .send_stream("jobs", input.clone(), 64, 4, Wait::Forever)
            .expect("all accepted");
        assert_eq!(receipt.accepted, 1000);
        assert_eq!(receipt.batches.len(), 16);
        assert_eq!(receipt.batches[15].sequences(), 961..1001);
        drop(client);
        let log = broker.finish();
        let seen = batches_seen(&log.frames);
        assert!(seen.iter().all(|batch| batch.len() <= 64));
        assert_eq!(seen.concat(), input, "every payload once, in order");
        assert_eq!(log.largest_batch, 4, "one write carries a whole window");
    }

    #[test]
    fn streamed_sends_cut_batches_to_fit_the_frame_limit() {
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        let broker = fake_broker_limited(theirs, 1024, |frame| match &frame.request {
            Request::SendMany { payloads, .. } => {
                answer(frame, Ok(sent_many(1, payloads.len(), None)))
            }
            _ => answer(frame, Err(refusal(ErrorKind::Internal))),
        });
        let mut client = Client::from_stream(ours).expect("handshake");
        let input: Vec<Bytes> = (0..50).map(|_| Bytes::from(vec![2u8; 100])).collect();
        let receipt = client
            .send_stream("jobs", input.clone(), 64, 2, Wait::Forever)
            .expect("all accepted");
        assert_eq!(receipt.accepted, 50);
        drop(client);
        let seen = batches_seen(&broker.finish().frames);
        assert!(seen.len() > 1 && seen.iter().all(|batch| batch.len() < 10));
        assert_eq!(seen.concat(), input);
    }

    #[test]
    fn a_streamed_send_stops_at_a_partial_batch_and_says_what_was_accepted() {
        // Three batches of five arrive together; the second stops after
        // three messages, the others are accepted whole.
        let mut held = Vec::new();
        let (mut client, broker) = connected(move |frame| {
            held.push(frame.clone());
            if held.len() < 3 {
                return Vec::new();
            }
            held.drain(..)
                .enumerate()
                .map(|(index, frame)| {
                    let result = match index {
                        1 => sent_many(6, 3, Some(refusal(ErrorKind::Timeout))),
                        _ => sent_many(1 + 5 * index as u64, 5, None),
                    };
                    ServerFrame::Response {
                        id: frame.id,
                        result: Ok(result),
                    }
                })
                .collect()
        });
        let input = (0..30).map(|i| Bytes::from(vec![i as u8]));
        let error = client
            .send_stream("jobs", input, 5, 3, Wait::Timeout { millis: 10 })
            .expect_err("should stop");
        assert_eq!(error.failed_at, 8);
        assert_eq!(error.error.kind(), Some(ErrorKind::Timeout));
        assert_eq!(
            error
                .accepted
                .iter()
                .map(|(positions, _)| positions.clone())
                .collect::<Vec<_>>(),
            vec![0..5, 5..8, 10..15]
        );
        assert_eq!(error.accepted[1].1.sequences(), 6..9);
        assert_eq!(error.accepted_count(), 13);
        assert!(error.unknown.is_empty());
        assert_eq!(error.issued, 15);
        drop(client);
        assert_eq!(
            batches_seen(&broker.finish().frames).len(),
            3,
            "no batch after the stop"
        );
    }

    #[test]
    fn streamed_receives_never_take_beyond_count() {
        // Three messages at most are available per receive.
        let mut next = 1;
        let (mut client, broker) = connected(move |frame| match &frame.request {
            Request::ReceiveMany { max, .. } => {
                let count = u64::from(*max).min(3);
                next += count;
                answer(
                    frame,
                    Ok(Response::ReceivedMany(messages(next - count, count))),
                )
            }
            _ => answer(frame, Err(refusal(ErrorKind::Internal))),
        });
        let mut got = Vec::new();
        let count = client
            .receive_stream("jobs", 20, 8, 3, Wait::Forever, |m| {
                got.push(m.metadata.sequence)
            })
            .expect("received");
        assert_eq!(count, 20);
        assert_eq!(got, (1..=20).collect::<Vec<_>>());
        drop(client);
        // Each receive was answered before the next arrived, so the broker
        // had handed over `delivered` when each asked for its `max`.
        let mut delivered = 0;
        for frame in broker.finish().frames {
            let Request::ReceiveMany { max, .. } = frame.request else {
                panic!("unexpected {frame:?}");
            };
            assert!(delivered + max <= 20, "asked beyond count");
            delivered += max.min(3);
        }
        assert_eq!(delivered, 20);
    }

    #[test]
    fn a_streamed_receive_cancels_after_a_failure_and_keeps_raced_messages() {
        let mut receives = 0;
        let mut held = Vec::new();
        let (mut client, broker) = connected(move |frame| match &frame.request {
            Request::ReceiveMany { .. } => {
                receives += 1;
                match receives {
                    1 => answer(frame, Ok(Response::ReceivedMany(messages(1, 4)))),
                    2 => answer(frame, Err(refusal(ErrorKind::Timeout))),
                    _ => {
                        held.push(frame.id);
                        Vec::new()
                    }
                }
            }
            // The first held receive got two messages just before its
            // cancel arrived; the others are withdrawn.
            Request::Cancel { request } => {
                let raced = held.first() == Some(request);
                let result = if raced {
                    Ok(Response::ReceivedMany(messages(5, 2)))
                } else {
                    Err(refusal(ErrorKind::Cancelled))
                };
                vec![
                    ServerFrame::Response {
                        id: *request,
                        result,
                    },
                    ServerFrame::Response {
                        id: frame.id,
                        result: Ok(Response::CancelResult { cancelled: !raced }),
                    },
                ]
            }
            _ => Vec::new(),
        });
        let mut got = Vec::new();
        let error = client
            .receive_stream("jobs", 100, 4, 4, Wait::Forever, |m| {
                got.push(m.metadata.sequence)
            })
            .expect_err("should fail");
        assert_eq!(error.kind(), Some(ErrorKind::Timeout));
        assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
        assert!(client.answered.is_empty());
        assert_eq!(client.session.in_flight(), 0);
        drop(client);
        let log = broker.finish();
        let cancels = log
            .frames
            .iter()
            .filter(|f| matches!(f.request, Request::Cancel { .. }))
            .count();
        assert!(cancels >= 2, "every outstanding receive was cancelled");
    }

    #[test]
    fn a_refused_handshake_is_rejected() {
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        let broker = crate::test_support::refusing_broker(
            theirs,
            BrokerError::new(ErrorKind::UnsupportedVersion, "speak 2"),
        );
        let error = Client::from_stream(ours).expect_err("should fail");
        assert!(matches!(error, Error::Rejected(_)), "{error}");
        assert_eq!(error.kind(), Some(ErrorKind::UnsupportedVersion));
        broker.finish();
    }

    #[test]
    fn a_goodbye_fails_this_and_every_later_call() {
        let (mut client, _broker) = connected(|_| {
            vec![ServerFrame::Goodbye(BrokerError::new(
                ErrorKind::BrokerShuttingDown,
                "stopping",
            ))]
        });
        let error = client.list().expect_err("should fail");
        assert_eq!(error.kind(), Some(ErrorKind::BrokerShuttingDown));
        let again = client.status().expect_err("should fail");
        assert_eq!(again.kind(), Some(ErrorKind::BrokerShuttingDown));
    }

    #[test]
    fn a_vanished_broker_is_disconnected() {
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        let broker = fake_broker(theirs, |_| Vec::new());
        let mut client = Client::from_stream(ours).expect("handshake");
        broker.hang_up();
        assert!(matches!(client.list(), Err(Error::Disconnected)));
    }

    #[test]
    fn a_missing_socket_is_a_connect_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = Client::connect(dir.path().join("none.sock")).expect_err("should fail");
        assert!(matches!(error, Error::Connect { .. }), "{error}");
    }

    #[test]
    fn connects_through_a_socket_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("broker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            fake_broker(stream, |frame| {
                answer(
                    frame,
                    Ok(Response::MailboxPage {
                        mailboxes: Vec::new(),
                        next: None,
                    }),
                )
            })
            .finish()
        });
        let mut client = Client::connect(&path).expect("connects");
        assert!(client.list().expect("listed").is_empty());
        drop(client);
        assert_eq!(server.join().expect("server thread").frames.len(), 1);
    }

    /// A fake broker that answers every protocol 2 request in one fixed way.
    fn protocol_2_broker(frame: &ClientFrame) -> Vec<ServerFrame> {
        let refuse = |kind| Err(BrokerError::new(kind, "test"));
        let result = match &frame.request {
            Request::SendWith {
                to: Target::Process(Address::Name(name)),
                ..
            } if name == "nobody" => refuse(ErrorKind::NoSuchProcess),
            Request::SendWith { .. } => Ok(Response::Sent {
                sequence: 1,
                recipients: 1,
            }),
            Request::ReceiveWith {
                wait: Wait::Never, ..
            } => refuse(ErrorKind::WouldBlock),
            Request::ReceiveWith {
                options: ReceiveOptions { max: Some(max), .. },
                ..
            } => Ok(Response::ReceivedMany(messages(1, u64::from(*max)))),
            Request::ReceiveWith {
                from: Source::Inbox { from: Some(_) },
                ..
            } => Ok(Response::Received(message(2, b"from one"))),
            Request::ReceiveWith { .. } => {
                let mut request = message(3, b"request");
                request.metadata.details = Some(Box::new(mailbox_proto::Details {
                    call: Some(77),
                    ..Default::default()
                }));
                Ok(Response::Received(request))
            }
            Request::Settle { .. } => Ok(Response::Settled),
            Request::Call { payload, .. } => {
                let mut reply = message(1, b"");
                reply.payload = payload.clone();
                Ok(Response::Received(reply))
            }
            Request::Reply { .. } => Ok(Response::Replied),
            Request::ClaimName {
                wait: Wait::Never, ..
            } => refuse(ErrorKind::NameTaken),
            Request::ClaimName { .. } => Ok(Response::NameClaimed),
            Request::ReleaseName { .. } => Ok(Response::NameReleased),
            Request::ListNamePage { .. } => Ok(Response::NamePage {
                names: vec![NameInfo {
                    name: "svc".into(),
                    process: 1,
                    pid: 2,
                    uid: 3,
                    queued_claims: 0,
                }],
                next: None,
            }),
            Request::SetInboxCapacity { .. } => Ok(Response::InboxCapacitySet),
            _ => refuse(ErrorKind::Internal),
        };
        answer(frame, result)
    }

    #[test]
    fn direct_messages_acks_calls_and_names() {
        let (mut client, broker) = connected(protocol_2_broker);
        assert_eq!(client.address(), client.connection_id());
        assert_eq!(client.send_to("worker", "hi").expect("sent").sequence, 1);
        assert_eq!(
            client
                .send_to("nobody", "hi")
                .expect_err("no such process")
                .kind(),
            Some(ErrorKind::NoSuchProcess)
        );
        client.try_send_to(7, "hi").expect("sent");
        client
            .send_to_timeout(7, "hi", Duration::from_millis(10))
            .expect("sent");
        let options = SendOptions {
            stage: mailbox_proto::Stage::Acknowledged,
            key: Some("k".into()),
            ttl_millis: None,
        };
        client
            .post(Target::mailbox("jobs"), "x", options.clone(), Wait::Forever)
            .expect("posted");

        assert_eq!(client.try_receive_inbox().expect("no error"), None);
        assert_eq!(client.try_receive_from(7).expect("no error"), None);
        assert_eq!(client.receive_from(7).expect("message").payload, "from one");
        assert_eq!(
            client
                .receive_from_timeout("svc", Duration::from_secs(1))
                .expect("message")
                .metadata
                .sequence,
            2
        );
        let request = client.receive_inbox().expect("message");
        assert_eq!(request.metadata.call(), Some(77));
        client.reply(&request, "answer").expect("replied");
        let not_a_call = client.receive_from(7).expect("message");
        assert_eq!(
            client.reply(&not_a_call, "x").expect_err("no call").kind(),
            Some(ErrorKind::NotHeld)
        );

        let batch = client
            .fetch(
                Source::Mailbox("jobs".into()),
                ReceiveOptions {
                    max: Some(3),
                    manual_ack: true,
                    priority: 5,
                },
                Wait::Forever,
            )
            .expect("batch");
        assert_eq!(batch.len(), 3);
        let held = client.receive_held("jobs", Wait::Forever).expect("held");
        assert_eq!(held.mailbox.as_deref(), Some("jobs"));
        client.ack(&held).expect("acked");
        let held = client.receive_inbox_held(Wait::Forever).expect("held");
        assert_eq!(held.mailbox, None);
        client.nack(&held, true).expect("nacked");

        let reply = client
            .call(Target::process("svc"), "ping", Duration::from_secs(1))
            .expect("reply");
        assert_eq!(reply.payload, "ping");
        client
            .call_with(Target::mailbox("rpc"), "pong", options, Wait::Forever)
            .expect("reply");

        assert_eq!(
            client.claim_name("svc").expect_err("taken").kind(),
            Some(ErrorKind::NameTaken)
        );
        client
            .claim_name_with("svc", Wait::Forever)
            .expect("claimed");
        assert_eq!(client.names().expect("names")[0].name, "svc");
        client.release_name("svc").expect("released");
        client
            .set_inbox_capacity(Capacity::Unbounded)
            .expect("capacity set");

        drop(client);
        let requests: Vec<Request> = broker
            .finish()
            .frames
            .into_iter()
            .map(|frame| frame.request)
            .collect();
        // The refused reply never reached the broker.
        let replies: Vec<&Request> = requests
            .iter()
            .filter(|r| matches!(r, Request::Reply { .. }))
            .collect();
        assert_eq!(
            replies,
            [&Request::Reply {
                call: 77,
                payload: Bytes::from_static(b"answer")
            }]
        );
        let settles: Vec<&Request> = requests
            .iter()
            .filter(|r| matches!(r, Request::Settle { .. }))
            .collect();
        assert_eq!(
            settles,
            [
                &Request::Settle {
                    mailbox: Some("jobs".into()),
                    sequence: 3,
                    verdict: Verdict::Ack,
                    redeliveries: Some(0),
                },
                &Request::Settle {
                    mailbox: None,
                    sequence: 3,
                    verdict: Verdict::Nack { to_tail: true },
                    redeliveries: Some(0),
                },
            ]
        );
        assert!(requests.contains(&Request::ReceiveWith {
            from: Source::Inbox {
                from: Some(Address::Name("svc".into()))
            },
            options: ReceiveOptions::default(),
            wait: Wait::Timeout { millis: 1000 },
        }));
        assert!(requests.contains(&Request::SetInboxCapacity {
            capacity: Capacity::Unbounded
        }));
    }
}
