//! A connection's queue of frames waiting to be written to its socket.
//!
//! Replies are decided under the core's lock by whichever task handled the
//! request, often not the connection's own. They are pushed here without any
//! I/O; the connection's writer task takes everything queued at once and
//! writes it with one system call, so frames that become ready together
//! leave together.

use std::sync::{Mutex, MutexGuard};

use mailbox_proto::{Response, ServerFrame};
use tokio::sync::Notify;

/// Frames queued for one connection.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer when frames arrive or the outbox closes.
    ready: Notify,
    /// Wakes a reader that paused because too much was queued.
    drained: Notify,
}

#[derive(Debug, Default)]
struct State {
    frames: Vec<ServerFrame>,
    /// Approximate encoded size of `frames`, for backpressure.
    bytes: usize,
    /// No more frames will come: the writer flushes what is left and stops.
    closed: bool,
}

/// What the writer gets from [`Outbox::take`].
pub(crate) enum Batch {
    /// Frames, with their approximate encoded size.
    Frames(Vec<ServerFrame>, usize),
    Closed,
}

fn approximate_size(frame: &ServerFrame) -> usize {
    match frame {
        ServerFrame::Response {
            result: Ok(Response::Received(message)),
            ..
        } => 64 + message.payload.len(),
        ServerFrame::Response {
            result: Ok(Response::ReceivedMany(messages)),
            ..
        } => 64 + messages.iter().map(|m| 64 + m.payload.len()).sum::<usize>(),
        _ => 64,
    }
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the frame list
        // inconsistent, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a frame; frames pushed after [`Outbox::close`] are dropped
    /// (the connection is gone and the core has forgotten it).
    pub fn push(&self, frame: ServerFrame) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.bytes += approximate_size(&frame);
        state.frames.push(frame);
        let first = state.frames.len() == 1;
        drop(state);
        if first {
            self.ready.notify_one();
        }
    }

    /// Closes the outbox after the frames already queued.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
        // A reader paused on backpressure must see the close too, or a dead
        // client's connection would never be torn down.
        self.drained.notify_waiters();
    }

    /// Whether the outbox was closed (the writer stopped).
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Waits for frames, and takes all of them. The outbox is left with no
    /// allocation at all: an idle connection should cost next to nothing,
    /// and one allocation per written batch is cheap.
    pub async fn take(&self) -> Batch {
        loop {
            {
                let mut state = self.lock();
                if !state.frames.is_empty() {
                    let frames = std::mem::take(&mut state.frames);
                    let bytes = std::mem::take(&mut state.bytes);
                    drop(state);
                    self.drained.notify_waiters();
                    return Batch::Frames(frames, bytes);
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
