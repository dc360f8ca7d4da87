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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use bytes::BytesMut;
use mailbox_proto::memfile::map_sealed;
use mailbox_proto::{BrokerError, ClientFrame, ErrorKind, Request};

/// Descriptors a connection may have queued, not yet taken by a frame.
pub(super) const MAX_QUEUED: usize = 16;

/// Memory files of payloads the broker holds at most, all connections
/// together (each is a descriptor while its message is queued or its send
/// waits): past it a `SendFile` is `BrokerFull`, so that waiting sends of
/// files cannot take the broker's descriptor limit. Not configurable yet.
pub(super) const MAX_HELD_FILES: usize = 4096;

/// Room for the most descriptors one `sendmsg` can carry (`SCM_MAX_FD`,
/// 253), in `u64`s so that it is aligned for a `cmsghdr`: without room
/// for all of them the kernel would close the rest (`MSG_CTRUNC`) before
/// this process could count them.
const CONTROL_WORDS: usize = (16 + 253 * 4usize).div_ceil(8) + 1;

/// What one [`receive`] brought.
#[derive(Debug, Clone, Copy)]
pub(super) struct Received {
    /// Bytes appended to the buffer; 0 is the end of the stream.
    pub bytes: usize,
    /// Whether ancillary data came with them. The kernel ends a read
    /// after the bytes that brought descriptors, however much more is
    /// waiting: such a read says nothing about what is left.
    pub control: bool,
}

/// One `recvmsg` into the spare capacity of `buffer`; the descriptors that
/// came along go to the back of `queue` (past [`MAX_QUEUED`] they are
/// closed).
///
/// Through `libc`, as the client's: rustix's wants the buffer
/// initialised, which would cost a memset of every read.
pub(super) fn receive(
    socket: &impl AsRawFd,
    buffer: &mut BytesMut,
    queue: &mut VecDeque<OwnedFd>,
) -> io::Result<Received> {
    let spare = buffer.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    let mut control = [0u64; CONTROL_WORDS];
    // SAFETY: an all-zero `msghdr` is valid (null pointers, zero lengths).
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `header` points at one iovec over memory we own (the spare
    // capacity, which the kernel may leave uninitialised) and at
    // `control`; both outlive the call.
    let read = unsafe {
        libc::recvmsg(
            socket.as_raw_fd(),
            &mut header,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
        )
    };
    if read < 0 {
        return Err(io::Error::last_os_error());
    }
    let read = read as usize;
    // SAFETY: the kernel filled `header.msg_controllen` bytes of `control`
    // with well-formed control messages, walked within that length; each
    // SCM_RIGHTS descriptor is new to this process and owned by nobody
    // else, so it is owned here at once.
    unsafe {
        let mut message = libc::CMSG_FIRSTHDR(&header);
        while !message.is_null() {
            if (*message).cmsg_level == libc::SOL_SOCKET && (*message).cmsg_type == libc::SCM_RIGHTS
            {
                let data = libc::CMSG_DATA(message);
                let length = (*message).cmsg_len as usize - (data as usize - message as usize);
                for index in 0..length / std::mem::size_of::<libc::c_int>() {
                    let raw = data.cast::<libc::c_int>().add(index).read_unaligned();
                    let file = OwnedFd::from_raw_fd(raw);
                    if queue.len() < MAX_QUEUED {
                        queue.push_back(file);
                    }
                }
            }
            message = libc::CMSG_NXTHDR(&header, message);
        }
        // SAFETY: the kernel initialised the first `read` spare bytes.
        buffer.set_len(buffer.len() + read);
    }
    Ok(Received {
        bytes: read,
        control: header.msg_controllen > 0 || header.msg_flags & libc::MSG_CTRUNC != 0,
    })
}

/// Gives `frame` its descriptors from the front of `queue`, checked and
/// mapped; `Err` is the answer of this request alone (the connection
/// goes on). `last` says no bytes are left after this frame: descriptors
/// still queued then came with no frame that claims them.
pub(super) fn attach(
    frame: &mut ClientFrame,
    queue: &mut VecDeque<OwnedFd>,
    last: bool,
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
        return Err(refused(format!(
            "this request carries {count} descriptor(s), but {} came with it",
            count + surplus
        )));
    }
    if let Request::SendFile { len, payload, .. } = &mut frame.request {
        let Some(file) = taken.pop() else {
            return Err(refused("no memory file came with this send".to_owned()));
        };
        if mailbox_proto::memfile::registered_files() >= MAX_HELD_FILES {
            return Err(BrokerError::new(
                ErrorKind::BrokerFull,
                format!(
                    "the broker holds {MAX_HELD_FILES} memory files of messages already; \
                     try again once some are received"
                ),
            ));
        }
        *payload = map_sealed(file, *len, true).map_err(|why| refused(why.to_string()))?;
    }
    Ok(())
}
