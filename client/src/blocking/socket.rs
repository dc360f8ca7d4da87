//! The blocking client's socket: reads straight into the incoming buffer
//! (with the descriptors that come along), and the timeouts that bound a
//! timed request.

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::error::Error;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// Whether an I/O error is a socket timeout (`SO_RCVTIMEO`, `SO_SNDTIMEO`).
pub(super) fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Sets the socket's read and write timeouts to the time left until
/// `deadline` (at least a millisecond), or clears them.
pub(super) fn set_timeouts(stream: &UnixStream, deadline: Option<Instant>) -> io::Result<()> {
    let left = deadline.map(|at| {
        at.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    });
    stream.set_read_timeout(left)?;
    stream.set_write_timeout(left)
}

/// Reads once into `incoming`, straight into its spare capacity (no copy
/// through an intermediate buffer), the descriptors that came along into
/// `received`; the end of the stream is [`Error::Disconnected`].
pub(super) fn read_some(
    stream: &mut UnixStream,
    incoming: &mut BytesMut,
    received: &mut VecDeque<OwnedFd>,
) -> Result<(), Error> {
    if incoming.capacity() - incoming.len() < READ_CHUNK / 4 {
        incoming.reserve(READ_CHUNK);
    }
    match crate::descriptors::receive(stream, incoming, received) {
        Ok(0) => Err(Error::Disconnected),
        Ok(_) => Ok(()),
        Err(error) => Err(Error::from_connection_io(error)),
    }
}
