//! The tokio side of the broker: accepts connections on a Unix socket, runs
//! one reader and one writer task per connection and one deadline task, and
//! carries the core's replies to the right sockets.
//!
//! Tasks share one `Shared`: the [`Core`] and every connection's
//! `Outbox` behind one `std::sync::Mutex`. The lock is held only to apply a
//! batch of decoded requests and queue their replies, never across an
//! `.await` or a system call.
//!
//! Boundary: nothing here decides mailbox semantics; it decodes frames, drives
//! the core and writes results.

mod buffers;
mod connection;
mod descriptors;
mod held_files;
mod log_limit;
mod notify;
mod outbox;
mod regions;
mod reload;
mod socket;
mod spin;
mod timer;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::os::fd::OwnedFd;

use mailbox_proto::memfile;
use mailbox_proto::{codec, ClientFrame, ErrorKind, PayloadFile, Response, ServerFrame};
use tokio::net::UnixListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::core::{
    AccessPolicy, Clock, ConnectionId, ConnectionMap, Core, Limits, Outcome, RegionChange,
};
use crate::systemd::Notifier;
use buffers::Buffers;
use held_files::HeldFiles;
use log_limit::{RepeatedLines, Verdict};
use outbox::Outbox;
use regions::{RegionFile, RegionFiles};

pub use reload::{Control, Declaration, Reload};
pub use socket::{
    bind, bind_recorded, bind_with_permissions, set_socket_permissions, BindError, BoundSocket,
    DirectoryRule,
};

/// Limits on what connections hold outside the mailboxes: replies not yet
/// written (outboxes) and read buffers holding part of a frame. Counted
/// broker-wide and per uid (see `buffers.rs` for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// `limits.max_buffered_bytes`: all connections together.
    pub max_buffered_bytes: usize,
    /// `limits.max_buffered_bytes_per_uid`: the connections of one uid.
    pub max_buffered_bytes_per_uid: usize,
    /// `limits.frame_timeout`: once a frame's first bytes arrived, how long
    /// the rest may take.
    pub frame_timeout: Duration,
    /// `limits.write_timeout`: how long writing replies to a client may make
    /// no progress (it does not read) before the connection is cut.
    pub write_timeout: Duration,
    /// `limits.max_held_files`: memory files of message payloads the broker
    /// holds at most, all uids together (each is one of its descriptors
    /// while its message lives); past it a `SendFile` is `BrokerFull`.
    pub max_held_files: usize,
    /// `limits.max_held_files_per_uid`: the same for the files one uid sent
    /// (root is not held to it), so that one user cannot take them all.
    pub max_held_files_per_uid: usize,
}

impl Default for BufferLimits {
    fn default() -> Self {
        Self {
            max_buffered_bytes: 256 << 20,
            max_buffered_bytes_per_uid: 64 << 20,
            frame_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_held_files: 4096,
            max_held_files_per_uid: 1024,
        }
    }
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Limits enforced by the core.
    pub limits: Limits,
    /// Access rules enforced by the core.
    pub access: AccessPolicy,
    /// Mailboxes that exist from the start (the configuration's).
    pub mailboxes: Vec<Declaration>,
    /// Reaches the running server to reload its configuration.
    pub control: Control,
    /// `limits.max_frame_size`: the largest frame body accepted from a
    /// client (announced to it in `Welcome::max_frame_len`).
    pub max_frame_size: u32,
    /// `limits.handshake_timeout`: how long a new connection may take to
    /// send its hello.
    pub handshake_timeout: Duration,
    /// A connection's reader stops reading requests while more than this
    /// many bytes of replies wait to be written to it, so a client that never
    /// reads cannot make the broker buffer without bound.
    pub outbox_high_water: usize,
    /// `limits.max_unread_reply_bytes`: a connection whose replies waiting
    /// to be written (queued, or taken
    /// by a writer the client does not read from) would go past this many
    /// bytes is closed with a `Goodbye` (`TooManyRequests`). The
    /// high-water mark only pauses a connection's own requests; this bounds
    /// the answers to its waiting ones, which other connections' sends
    /// decide (thousands of posted receives, each handed a message). Raised
    /// to at least the high-water mark plus two of the largest frames.
    pub max_unread_reply_bytes: usize,
    /// Limits on connection buffers (unread replies, partly read frames).
    pub buffers: BufferLimits,
    /// How long shutdown waits for connections to flush before closing them.
    pub shutdown_grace: Duration,
    /// After handling requests, keep polling the sockets this long before
    /// sleeping, so the next request of a conversation finds the broker
    /// awake (a wake-up costs more than the whole request). Zero turns it
    /// off; the price is CPU time spent polling after every burst.
    pub spin: Duration,
    /// Where to report readiness, status, watchdog pings and stopping
    /// (systemd's `sd_notify`); disabled by default.
    pub notifier: Notifier,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            access: AccessPolicy::default(),
            mailboxes: Vec::new(),
            control: Control::default(),
            max_frame_size: codec::DEFAULT_MAX_FRAME_LEN,
            handshake_timeout: Duration::from_secs(10),
            outbox_high_water: 8 * 1024 * 1024,
            max_unread_reply_bytes: 64 * 1024 * 1024,
            buffers: BufferLimits::default(),
            shutdown_grace: Duration::from_secs(5),
            spin: Duration::ZERO,
            notifier: Notifier::disabled(),
        }
    }
}

impl Config {
    /// [`Config::max_unread_reply_bytes`] as enforced: never so low that
    /// one large answer past the high-water mark would cut a reading client
    /// off.
    pub(crate) fn max_unread_reply_bytes(&self) -> usize {
        let floor = self
            .outbox_high_water
            .saturating_add(2 * self.max_frame_size as usize);
        self.max_unread_reply_bytes.max(floor)
    }

    /// The limits the server enforces itself, by their configuration names
    /// and as enforced, for `Status` to report after the core's own
    /// (durations in milliseconds: their names end in `_timeout`, see
    /// [`mailbox_proto::Limit::unit`]).
    pub(crate) fn server_limits(&self) -> Vec<mailbox_proto::Limit> {
        let bytes = |n: usize| n as u64;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        [
            ("max_frame_size", u64::from(self.max_frame_size)),
            ("handshake_timeout", millis(self.handshake_timeout)),
            (
                "max_unread_reply_bytes",
                bytes(self.max_unread_reply_bytes()),
            ),
            ("max_buffered_bytes", bytes(self.buffers.max_buffered_bytes)),
            (
                "max_buffered_bytes_per_uid",
                bytes(self.buffers.max_buffered_bytes_per_uid),
            ),
            ("frame_timeout", millis(self.buffers.frame_timeout)),
            ("write_timeout", millis(self.buffers.write_timeout)),
            ("max_held_files", self.buffers.max_held_files as u64),
            (
                "max_held_files_per_uid",
                self.buffers.max_held_files_per_uid as u64,
            ),
        ]
        .into_iter()
        .map(|(name, value)| mailbox_proto::Limit {
            name: name.to_owned(),
            value,
        })
        .collect()
    }
}

/// The state behind the lock.
#[derive(Debug)]
pub(crate) struct State {
    pub core: Core,
    pub outboxes: ConnectionMap<Arc<Outbox>>,
    /// The deadline the timer task sleeps until, so that a request with an
    /// earlier one wakes it.
    pub timer_armed_for: Option<Instant>,
    /// Where [`State::apply`] collects replies: kept, empty, between
    /// requests, so that applying one allocates nothing for it.
    outcome: Outcome,
    /// The memory files of the shared-memory regions the core holds.
    regions: RegionFiles,
    /// Denied requests logged per connection (only of connections that had
    /// one): a connection gets a few lines, then counts.
    denials: ConnectionMap<RepeatedLines>,
    /// Connections refused at `accept`, for the log: a flood of them gets
    /// a few lines, then counts.
    refusals: RepeatedLines,
    /// The limits the server enforces ([`Config::server_limits`]), which
    /// `status` reports after the core's, followed by the descriptor
    /// figures of [`State::refresh_server_limits`].
    server_limits: Vec<mailbox_proto::Limit>,
    /// The memory files of messages held (for `status`'s `held_files`).
    held_files: Arc<HeldFiles>,
    /// The open-file limit and count, for `status`.
    descriptor_figures: descriptors::Figures,
}

impl State {
    /// Applies one request of connection `id` and queues every reply it
    /// decided on its connection's outbox.
    pub fn apply(&mut self, id: ConnectionId, frame: ClientFrame, now: &Clock) {
        if matches!(frame.request, mailbox_proto::Request::Status) {
            self.refresh_server_limits();
        }
        let mut out = std::mem::take(&mut self.outcome);
        self.core.apply(id, frame.id, frame.request, now, &mut out);
        self.route(&mut out);
        // A burst (a delete answering thousands of waiters) does not keep
        // its room for good.
        if out.replies.capacity() > 1024 {
            out = Outcome::new();
        }
        self.outcome = out;
    }

    /// Sets the server's limits for the core's `status` to report, with
    /// the descriptor figures of now after them: `open_files_limit` (the
    /// soft `RLIMIT_NOFILE`), `open_files` (descriptors open, read at most
    /// once a second) and `held_files` (memory files of messages held).
    /// The last two are figures, not limits: the name/value list carries
    /// them so that the wire does not change (`mailboxctl status` shows
    /// them apart).
    pub fn refresh_server_limits(&mut self) {
        let (limit, open) = self.descriptor_figures.read();
        let figure = |name: &str, value: u64| mailbox_proto::Limit {
            name: name.to_owned(),
            value,
        };
        let mut limits = self.server_limits.clone();
        limits.push(figure(
            "open_files_limit",
            if limit == usize::MAX {
                mailbox_proto::Limit::NONE
            } else {
                limit as u64
            },
        ));
        if let Some(open) = open {
            limits.push(figure("open_files", open as u64));
        }
        limits.push(figure("held_files", self.held_files.total() as u64));
        self.core.set_server_limits(limits);
    }

    /// Queues every reply in `out` on its connection's outbox, and empties it.
    pub fn route(&mut self, out: &mut Outcome) {
        for warning in out.warnings.drain(..) {
            tracing::warn!("{warning}");
        }
        if !out.regions.is_empty() {
            self.carry_out_regions(out);
        }
        for mut reply in out.replies.drain(..) {
            // The answer to an open carries the region's descriptor.
            let mut descriptors = Vec::new();
            if let Ok(mailbox_proto::Response::RegionOpened { region, access }) = &reply.result {
                match self.regions.get(&region.name) {
                    Some(file) => descriptors.push(file.descriptor(*access)),
                    None => {
                        reply.result = Err(mailbox_proto::BrokerError::new(
                            ErrorKind::Internal,
                            format!("region {} has no memory file", region.name),
                        ));
                    }
                }
            }
            // Memory-file payloads go as files to a connection that takes
            // files; others get the bytes inline (the core never hands them
            // one longer than their frames carry).
            if let Ok(response) = &mut reply.result {
                if self.core.accepts_files(reply.ticket.connection) {
                    carry_files(response, &mut descriptors);
                }
            }
            // A reply to a connection that is gone has nobody to read it; the
            // core never hands a message to one (disconnect withdrew its waits).
            if let Err(error) = &reply.result {
                if error.kind == ErrorKind::PermissionDenied {
                    self.log_denial(reply.ticket.connection, error);
                }
            }
            if let Some(outbox) = self.outboxes.get(&reply.ticket.connection) {
                outbox.push_with_descriptors(
                    ServerFrame::Response {
                        id: reply.ticket.request,
                        result: reply.result,
                    },
                    descriptors,
                );
            }
        }
    }

    /// Makes and drops the memory files of the regions the core created
    /// and deleted. A file that cannot be made (out of memory, out of
    /// descriptors) undoes the region in the core and turns its `Created`
    /// answer into the error. These are system calls under the lock, as
    /// an exception: creating and deleting a region is rare next to
    /// everything else, and doing it here keeps the core's answer and the
    /// file in step (nobody can open a region whose file is not there).
    fn carry_out_regions(&mut self, out: &mut Outcome) {
        for change in std::mem::take(&mut out.regions) {
            match change {
                RegionChange::Created { ticket, name, size } => {
                    match RegionFile::create(&name, size) {
                        Ok(file) => {
                            self.regions.insert(name, file);
                        }
                        Err(error) => {
                            warn!(region = %name, size, %error, "cannot make a region's memory file");
                            self.core.abandon_region(&name);
                            let failed = mailbox_proto::BrokerError::new(
                                ErrorKind::BrokerFull,
                                format!("the memory file of region {name} ({size} bytes) cannot be made: {error}"),
                            );
                            for reply in out
                                .replies
                                .iter_mut()
                                .filter(|reply| reply.ticket == ticket)
                            {
                                reply.result = Err(failed.clone());
                            }
                        }
                    }
                }
                RegionChange::Deleted { name } => {
                    self.regions.remove(&name);
                }
            }
        }
    }

    /// Logs a denied request, a few per connection and interval: a client
    /// sending thousands of denied requests would otherwise write a line
    /// each (20,000 denials, 7.4 MB of log in 0.13 s).
    fn log_denial(&mut self, connection: ConnectionId, error: &mailbox_proto::BrokerError) {
        let now = Instant::now();
        let verdict = if self.outboxes.contains_key(&connection) {
            self.denials
                .entry(connection)
                .or_insert_with(|| RepeatedLines::new(now))
                .line(now)
        } else {
            Verdict::Write
        };
        match verdict {
            Verdict::Suppress => return,
            Verdict::WriteAfterSummary(suppressed) => {
                log_suppressed_denials(connection, suppressed);
            }
            Verdict::Write => {}
        }
        warn!(connection = connection.0, %error, "permission denied");
    }

    /// Forgets a closed connection's log counts, saying how many of its
    /// denials were not logged.
    pub fn forget_log_counts(&mut self, connection: ConnectionId) {
        if let Some(lines) = self.denials.remove(&connection) {
            if lines.suppressed() > 0 {
                log_suppressed_denials(connection, lines.suppressed());
            }
        }
    }

    /// Whether the timer must be woken to see an earlier deadline.
    pub fn timer_needs_wake(&mut self) -> bool {
        match (self.core.next_deadline(), self.timer_armed_for) {
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

fn log_suppressed_denials(connection: ConnectionId, suppressed: u64) {
    warn!(
        connection = connection.0,
        suppressed,
        "permission denied {suppressed} more times on this connection (not logged: at most {} \
         lines per connection every {:?})",
        log_limit::LINES_PER_INTERVAL,
        log_limit::INTERVAL,
    );
}

/// What every task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    pub config: Config,
    pub timer_wake: Notify,
    /// Tells the spinner a request was handled.
    pub activity: Notify,
    active: AtomicBool,
    next_connection: AtomicU64,
    /// What connections hold in buffers, counted against the limits.
    pub buffers: Arc<Buffers>,
    /// The most connections the descriptor limit leaves room for.
    pub connection_ceiling: usize,
    /// Refused connections being told why.
    pub refusing: AtomicUsize,
    /// The memory files of messages held, counted against their limits.
    pub held_files: Arc<HeldFiles>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // The core is only mutated through methods that keep it consistent
        // at every return; a panic inside one is a bug we would rather keep
        // serving through than turn into a crash loop.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that a request was handled, for the spinner.
    pub fn note_activity(&self) {
        if !self.config.spin.is_zero() {
            self.active.store(true, Ordering::Relaxed);
            self.activity.notify_one();
        }
    }

    /// Whether a request was handled since the last call.
    pub fn take_activity(&self) -> bool {
        self.active.swap(false, Ordering::Relaxed)
    }

    fn next_connection_id(&self) -> ConnectionId {
        ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed))
    }
}

/// The current time, read once per batch of requests.
pub(crate) fn clock() -> Clock {
    let unix_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Clock {
        now: Instant::now(),
        unix_nanos,
    }
}

/// Serves `listener` until `shutdown` completes, then stops accepting,
/// answers every waiting client with `BrokerShuttingDown`, flushes and closes
/// every connection and returns. Removing the socket file is the caller's
/// business (it bound it).
///
/// With [`Config::notifier`] enabled it tells the service manager `READY=1`
/// as it starts accepting, keeps a `STATUS=` line current and pings the
/// watchdog while serving, and says `STOPPING=1` when shutdown begins.
pub async fn run(
    listener: UnixListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let held_files = Arc::new(HeldFiles::new(
        config.buffers.max_held_files,
        config.buffers.max_held_files_per_uid,
    ));
    if let Some(warning) = descriptors::fit_warning(
        config.limits.max_connections,
        config.buffers.max_held_files,
        descriptors::open_files_limit(),
    ) {
        warn!("{warning}");
    }
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            core: Core::new(config.limits, Instant::now()),
            outboxes: ConnectionMap::default(),
            timer_armed_for: None,
            outcome: Outcome::new(),
            regions: RegionFiles::default(),
            denials: ConnectionMap::default(),
            refusals: RepeatedLines::new(Instant::now()),
            server_limits: config.server_limits(),
            held_files: Arc::clone(&held_files),
            descriptor_figures: descriptors::Figures::default(),
        }),
        buffers: Arc::new(Buffers::new(config.buffers)),
        connection_ceiling: descriptors::connection_ceiling(),
        refusing: AtomicUsize::new(0),
        held_files,
        config,
        timer_wake: Notify::new(),
        activity: Notify::new(),
        active: AtomicBool::new(false),
        next_connection: AtomicU64::new(1),
    });
    reload::start(&shared);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(timer::run(shared.clone(), stop_rx.clone()));
    if !shared.config.spin.is_zero() {
        tasks.spawn(spin::run(shared.clone(), stop_rx.clone()));
    }
    if shared.config.notifier.is_enabled() {
        let status = notify::status_line(&shared.lock());
        shared.config.notifier.ready(&status);
        tasks.spawn(notify::run(shared.clone(), stop_rx.clone()));
    }

    let mut spare = descriptors::Spare::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let id = shared.next_connection_id();
                    match connection::admit(&shared, id, stream, &stop_rx) {
                        connection::Admission::Serve(serving) => {
                            tasks.spawn(serving);
                        }
                        connection::Admission::Refuse(refusing) => {
                            tasks.spawn(refusing);
                        }
                        connection::Admission::Close => {}
                    }
                }
                Err(error) if descriptors::is_exhausted(&error) => {
                    // The connection waiting is closed with the spare
                    // descriptor, so the loop neither spins on it nor
                    // leaves it (and everyone after it) hanging.
                    spare.shed(&listener, &error).await;
                }
                Err(error) => {
                    // Keep serving the connections we have and retry
                    // shortly rather than spin or exit.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(result) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(error) = result {
                    warn!(%error, "a connection task failed");
                }
            }
        }
    }

    info!("shutting down: answering waiting clients");
    shared
        .config
        .notifier
        .stopping("shutting down: answering waiting clients");
    drop(listener);
    {
        let mut state = shared.lock();
        let mut out = Outcome::new();
        state.core.shut_down(&clock(), &mut out);
        state.route(&mut out);
        // Under the lock, so that a connection finishing its handshake
        // either sees the stop or has its outbox here to be shut down.
        let _ = stop_tx.send(true);
        // Each outbox queues a goodbye and closes; its reader, woken by
        // the close, ends the connection, and its writer flushes and
        // closes the socket.
        for outbox in state.outboxes.values() {
            outbox.shut_down();
        }
    }
    let grace = shared.config.shutdown_grace;
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        warn!("connections did not close within {grace:?}; closing them");
        tasks.shutdown().await;
    }
    info!("stopped");
    Ok(())
}

/// Turns the memory-file payloads among `response`'s messages into
/// descriptors (appended to `descriptors`, in message order): a single
/// `Received` becomes `ReceivedFile`, any other answer that carries
/// messages is wrapped in `WithFiles` with those payloads left empty.
/// One helper for every kind of answer (`Response::messages_mut`); an
/// answer without file payloads is left as it is.
fn carry_files(response: &mut Response, descriptors: &mut Vec<Arc<OwnedFd>>) {
    let files = memfile::files_in(response.messages());
    if files.is_empty() {
        return;
    }
    if matches!(response, Response::Received(_)) {
        if let Response::Received(message) = std::mem::replace(response, Response::FilesAccepted) {
            *response = Response::ReceivedFile {
                len: message.payload.len() as u64,
                metadata: message.metadata,
            };
        }
        descriptors.extend(files.into_iter().map(|(_, file)| file));
        return;
    }
    let messages = response.messages_mut();
    let mut named = Vec::with_capacity(files.len());
    for (index, file) in files {
        let payload = std::mem::take(&mut messages[index].payload);
        named.push(PayloadFile {
            index: index as u32,
            len: payload.len() as u64,
        });
        descriptors.push(file);
    }
    let inner = std::mem::replace(response, Response::FilesAccepted);
    *response = Response::WithFiles {
        response: Box::new(inner),
        files: named,
    };
}
