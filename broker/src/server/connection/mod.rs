//! One client connection, from `accept` to close: admitted (or refused) by
//! its peer's credentials ([`admission`]), a handshake ([`handshake`]), then a
//! reader task that decodes requests and drives the core ([`reader`], over a
//! read buffer sized as bytes arrive: [`read_buffer`]) and a writer task that
//! drains the connection's outbox ([`writer`]). This file holds what ties
//! them together: serving one admitted connection, and why it closed.
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

mod admission;
mod handshake;
mod incoming;
#[cfg(test)]
mod incoming_tests;
mod read_buffer;
mod reader;
#[cfg(test)]
mod tests;
mod writer;

use std::sync::Arc;

use mailbox_proto::{BrokerError, ErrorKind};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::buffers::Account;
use super::outbox::Outbox;
use super::{clock, Shared};
use crate::core::{ConnectionId, Outcome};

pub(crate) use admission::{admit, Admission};

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

/// Serves an admitted connection: its writer task, and its reader until it
/// stops; then takes it out of the core (what it held goes back, what it
/// waited for is withdrawn) and lets the writer flush within the shutdown
/// grace.
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
    let mut writer_task = tokio::spawn(writer::write_loop(writer, outbox.clone(), write_timeout));
    let reason = reader::read_loop(&shared, id, reader, &outbox, &account, &stop).await;
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
            "this connection closes",
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
