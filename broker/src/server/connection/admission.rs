//! Admission at `accept`: the peer's credentials (`SO_PEERCRED`,
//! `SO_PEERGROUPS`) checked against the connection limits before the hello;
//! a connection within them is registered and served, one beyond them is
//! told why in a `Goodbye` (a bounded number at a time) and closed.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mailbox_proto::{BrokerError, ServerFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tracing::{info_span, warn, Instrument};

use super::read_buffer::frame_total;
use super::serve_connected;
use crate::core::{ConnectionId, Peer};
use crate::server::log_limit::Verdict;
use crate::server::outbox::Outbox;
use crate::server::Shared;

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
            crate::server::log_limit::LINES_PER_INTERVAL,
            crate::server::log_limit::INTERVAL
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
