//! Reading a client's bytes with the descriptors that come along
//! (`SCM_RIGHTS`), and giving each frame the ones it carries: the rule of
//! "Descriptors" in `PROTOCOL.md`, client to broker. Only `SendFile`
//! carries one (a sealed memory file).
//!
//! The reader reads with `recvmsg` (`MSG_CMSG_CLOEXEC`); every descriptor
//! is an [`OwnedFd`] from the moment it arrives, so whatever becomes of
//! it (a refused request, a closed connection) it is closed when dropped.
//! A connection holds at most [`MAX_QUEUED`] that no frame has taken yet;
//! more are closed as they arrive, and the frames that claim them fail.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use bytes::BytesMut;
use mailbox_proto::memfile::map_sealed;
use mailbox_proto::{BrokerError, ClientFrame, ErrorKind, Request};

use crate::server::held_files::{self, HeldFiles};

/// Descriptors a connection may have queued, not yet taken by a frame.
pub(super) const MAX_QUEUED: usize = 16;

pub(super) use mailbox_proto::descriptors::Received;

/// One `recvmsg` into the spare capacity of `buffer`, without waiting; the
/// descriptors that came along go to the back of `queue` (past
/// [`MAX_QUEUED`] they are closed, and the frames that claim them fail).
pub(super) fn receive(
    socket: &impl AsRawFd,
    buffer: &mut BytesMut,
    queue: &mut VecDeque<OwnedFd>,
) -> io::Result<Received> {
    mailbox_proto::descriptors::receive(socket, buffer, libc::MSG_DONTWAIT, |file| {
        if queue.len() < MAX_QUEUED {
            queue.push_back(file);
        }
    })
}

/// Gives `frame` its descriptors from the front of `queue`, checked and
/// mapped; `Err` is the answer of this request alone (the connection
/// goes on). `last` says no bytes are left after this frame: descriptors
/// still queued then came with no frame that claims them. A memory file
/// kept counts against `files` for `uid`, its sender, until its payload
/// is gone (past `limits.max_held_files` or the uid's share it is
/// `BrokerFull`, and closed).
pub(super) fn attach(
    frame: &mut ClientFrame,
    queue: &mut VecDeque<OwnedFd>,
    last: bool,
    (files, uid): (&Arc<HeldFiles>, u32),
) -> Result<(), BrokerError> {
    let count = frame.descriptor_count();
    let refused = |message: String| BrokerError::new(ErrorKind::InvalidRequest, message);
    if count == 0 {
        return Ok(());
    }
    if queue.len() < count {
        queue.clear();
        return Err(refused(format!(
            "this request carries {count} descriptor(s) (SCM_RIGHTS with its first byte), \
             but none came with it"
        )));
    }
    let mut taken: Vec<OwnedFd> = queue.drain(..count).collect();
    if last && !queue.is_empty() {
        let surplus = queue.len();
        queue.clear();
        let came = count + surplus;
        // Past the queue's bound the rest were closed as they arrived,
        // uncounted.
        let came = if came >= MAX_QUEUED {
            format!(
                "{came} or more came with it (a connection keeps at most {MAX_QUEUED} not yet \
                 claimed and closes the rest)"
            )
        } else {
            format!("{came} came with it")
        };
        return Err(refused(format!(
            "this request carries {count} descriptor(s), but {came}"
        )));
    }
    if let Request::SendFile { len, payload, .. } = &mut frame.request {
        let Some(file) = taken.pop() else {
            return Err(refused("no memory file came with this send".to_owned()));
        };
        let ticket = files.admit(uid)?;
        let mapped = map_sealed(file, *len, true).map_err(|why| refused(why.to_string()))?;
        *payload = held_files::counted(mapped, ticket);
    }
    Ok(())
}
