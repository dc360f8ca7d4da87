//! The async client: one connection shared by cheap clones, driven by a
//! reader and a writer task ([`connection`]), running every operation of
//! [`crate::ops`] through [`Client::run`] and every window of
//! [`crate::pipeline`] through [`Client::run_window`]. Its public
//! operation methods are written once for both clients, in
//! [`crate::methods`].

mod connection;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use mailbox_proto::Welcome;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::connect::{self, ConnectOptions};
use crate::error::Error;
use crate::ops::pages::{Paged, Pages};
use crate::ops::Operation;
use crate::pipeline::{Pipeline, Window};
use crate::session::{self, Session};
use connection::{
    bounded, bounded_answer, read_loop, write_loop, Begun, PendingCall, Shared, State, READ_CHUNK,
};

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
            Self::handshake(stream, options.accept_files.unwrap_or(true)).await
        };
        match options.timeout {
            None => connecting.await,
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .unwrap_or(Err(Error::NoAnswer { waited: limit })),
        }
    }

    /// Connects to the broker's socket found by the usual rule
    /// ([`mailbox_proto::socket_path`]): `$MAILBOX_SOCKET`, else the first
    /// of `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`,
    /// `/tmp/mailbox-UID/mailboxd.sock` and `/run/mailbox/mailboxd.sock`
    /// where a socket exists.
    pub async fn connect_default() -> Result<Self, Error> {
        let chosen = connect::default_socket();
        Self::connect(&chosen.path)
            .await
            .map_err(|error| connect::explain_default(error, &chosen))
    }

    /// Performs the handshake on an already connected stream (the caller
    /// chose its peer: no credentials are checked). Such a client does not
    /// announce that it takes memory-file payloads (they reach it inline);
    /// [`from_stream_with`](Self::from_stream_with) with the default
    /// options does.
    pub async fn from_stream(stream: UnixStream) -> Result<Self, Error> {
        Self::handshake(stream, false).await
    }

    /// [`from_stream`](Self::from_stream) with `options`'
    /// [`accept_files`](ConnectOptions::accept_files) (default: on).
    pub async fn from_stream_with(
        stream: UnixStream,
        options: &ConnectOptions,
    ) -> Result<Self, Error> {
        Self::handshake(stream, options.accept_files.unwrap_or(true)).await
    }

    /// Says hello, waits for the welcome and starts the reader and writer;
    /// with `accept_files` (and a broker of protocol 5 or later) queues
    /// `AcceptFiles`, whose answer nobody awaits: it leaves with the first
    /// write, before any request of the caller.
    async fn handshake(mut stream: UnixStream, accept_files: bool) -> Result<Self, Error> {
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
                files: Vec::new(),
                orphans: HashMap::new(),
                closed: None,
            }),
            writable: Notify::new(),
        });
        if accept_files && welcome.protocol_version >= 5 {
            shared.announce(mailbox_proto::Request::AcceptFiles)?;
        }
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

    /// Runs one operation: its request, and its answer decoded (with the
    /// descriptors the answer carried). A timed request gives up on a
    /// broker that does not answer within its timeout plus
    /// [`ANSWER_GRACE`] (dropping the wait cancels the request, and
    /// whatever crossed the cancel is kept as for any dropped receive).
    pub(crate) async fn run<O: Operation>(&self, mut operation: O) -> Result<O::Output, Error> {
        let request = operation.request();
        let limit = connect::answer_limit(&request, None);
        let (answer, descriptors) = match self.connection.shared.begin(request) {
            Err(error) => (Err(error), Vec::new()),
            Ok(Begun::Ready(response)) => (Ok(response), Vec::new()),
            Ok(Begun::Waiting(call)) => bounded_answer(limit, call.wait_with_descriptors()).await,
        };
        operation.decode_with(answer, descriptors)
    }

    /// Sends `file`, a sealed memory file, as the payload of one message to
    /// `mailbox`: the broker passes the file itself to receivers that
    /// take files (the others get its bytes inline, if their frames hold
    /// them), without copying it. Waits for room as
    /// [`send`](Self::send) does. A file that is not sealed (see
    /// [`SealedFile`](crate::SealedFile)) or not as long as it says fails
    /// with kind `InvalidRequest`, and only this send fails. The file's
    /// limit is the broker's `max_file_size` (1 GiB by default), not the
    /// mailbox's `max_message_size`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = mailbox_client::Client::connect_default().await?;
    /// let mut writer = mailbox_client::FileWriter::new(1 << 20)?;
    /// writer.as_mut_slice().fill(7);
    /// client.send_file("frames", &writer.seal()?).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_file(
        &self,
        mailbox: &str,
        file: &crate::SealedFile,
    ) -> Result<crate::SendReceipt, Error> {
        // The writer task sends its own duplicate; the caller keeps `file`.
        let duplicate = file.as_fd().try_clone_to_owned().map_err(Error::Io)?;
        let request = mailbox_proto::Request::SendFile {
            to: mailbox_proto::Target::Mailbox(mailbox.to_owned()),
            len: file.len(),
            options: Box::default(),
            wait: mailbox_proto::Wait::Forever,
            payload: bytes::Bytes::new(),
        };
        let answer = match self
            .connection
            .shared
            .begin_carrying(request, Some(duplicate))
        {
            Err(error) => Err(error),
            Ok(Begun::Ready(response)) => Ok(response),
            Ok(Begun::Waiting(call)) => call.wait().await,
        };
        crate::ops::messages::sent(answer)
    }

    /// Reads every page of a listing, each with the operation `page` makes.
    pub(crate) async fn all_pages<O: Paged>(
        &self,
        page: impl Fn(Option<O::Cursor>) -> O,
    ) -> Result<Vec<O::Row>, Error> {
        let mut pages = Pages::new(page);
        while let Some(operation) = pages.next() {
            pages.record(self.run(operation).await?)?;
        }
        Ok(pages.finish())
    }

    /// Runs a window of requests in flight to its end. Each answer is
    /// awaited in request order; dropping the future drops (and so
    /// cancels) the requests in flight.
    pub(crate) async fn run_window<W: Window>(&self, window: W) -> W::Output {
        let shared = &self.connection.shared;
        let mut pipeline = Pipeline::new(window, self.connection.welcome.max_frame_len);
        let limit = connect::wait_limit(pipeline.wait());
        loop {
            while let Some((request, tag)) = pipeline.next_request() {
                match shared.begin(request) {
                    Ok(Begun::Waiting(call)) => pipeline.started(tag, call),
                    Ok(Begun::Ready(response)) => pipeline.answered(tag, response),
                    Err(error) => pipeline.not_sent(tag, error),
                }
            }
            pipeline.cancellations().for_each(PendingCall::cancel);
            let Some((tag, call)) = pipeline.oldest() else {
                break;
            };
            pipeline.record(tag, bounded(limit, call.wait()).await);
        }
        pipeline.finish()
    }

    /// This connection's process address: where [`send_to`](Self::send_to)
    /// of another process reaches this connection's inbox, and what
    /// [`Metadata::sender_connection`](crate::Metadata::sender_connection)
    /// says of the messages it sends. The same number as
    /// [`connection_id`](Self::connection_id).
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
}
