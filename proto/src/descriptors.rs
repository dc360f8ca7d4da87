//! Reading a socket with the descriptors that come along (`SCM_RIGHTS`):
//! the one `recvmsg` of the "Descriptors" rule in `PROTOCOL.md`, shared by
//! the broker's reader (client to broker) and both clients (broker to
//! client). Each side decides what to do with what arrives: the broker
//! bounds its queue, a client refuses a truncated read.
//!
//! Every descriptor is an [`OwnedFd`] from the moment it arrives, so
//! whatever becomes of it, it is closed when dropped.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use bytes::BytesMut;

/// The most descriptors one read can bring: the kernel's `SCM_MAX_FD` (one
/// `sendmsg` carries at most that many, and a read never returns the
/// descriptors of two).
pub const MAX_DESCRIPTORS_PER_READ: usize = 253;

/// Room for one `SCM_RIGHTS` message of [`MAX_DESCRIPTORS_PER_READ`]
/// descriptors, in `u64`s so that it is aligned for a `cmsghdr`: its header
/// (16 bytes) and the descriptors (4 bytes each), rounded up. Without room
/// for all of them the kernel would close the rest (`MSG_CTRUNC`) before
/// this process could count them.
const CONTROL_WORDS: usize = (16 + MAX_DESCRIPTORS_PER_READ * 4).div_ceil(8) + 1;

/// What one [`receive`] brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes appended to the buffer; 0 is the end of the stream.
    pub bytes: usize,
    /// Whether ancillary data came with them. The kernel ends a read after
    /// the bytes that brought descriptors, however much more is waiting:
    /// such a read says nothing about what is left.
    pub control: bool,
    /// The kernel had more descriptors than room and closed some
    /// (`MSG_CTRUNC`).
    pub truncated: bool,
}

/// One `recvmsg` (with `MSG_CMSG_CLOEXEC` and `flags`) into the spare
/// capacity of `buffer`, which grows by what was read; each descriptor
/// that came along is handed to `keep`, in order.
///
/// Through `libc`: rustix's `recvmsg` wants the buffer initialised, and
/// zeroing a 64 KiB read chunk before every read would cost every read of
/// every message, where the kernel writes the bytes anyway.
pub fn receive(
    socket: &impl AsRawFd,
    buffer: &mut BytesMut,
    flags: libc::c_int,
    mut keep: impl FnMut(OwnedFd),
) -> io::Result<Received> {
    let spare = buffer.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    // Not zeroed (1 KiB a read, on every request): the kernel says in
    // `msg_controllen` how much it wrote, and only that much is read.
    let mut control = [std::mem::MaybeUninit::<u64>::uninit(); CONTROL_WORDS];
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
            libc::MSG_CMSG_CLOEXEC | flags,
        )
    };
    if read < 0 {
        return Err(io::Error::last_os_error());
    }
    let read = read as usize;
    // SAFETY: the kernel filled `header.msg_controllen` bytes of `control`
    // with well-formed control messages, walked within that length by the
    // CMSG_* functions; each SCM_RIGHTS descriptor is new to this process
    // and owned by nobody else, so it is owned here at once.
    unsafe {
        let mut message = libc::CMSG_FIRSTHDR(&header);
        while !message.is_null() {
            if (*message).cmsg_level == libc::SOL_SOCKET && (*message).cmsg_type == libc::SCM_RIGHTS
            {
                let data = libc::CMSG_DATA(message);
                let length = (*message).cmsg_len as usize - (data as usize - message as usize);
                for index in 0..length / std::mem::size_of::<libc::c_int>() {
                    let raw = data.cast::<libc::c_int>().add(index).read_unaligned();
                    keep(OwnedFd::from_raw_fd(raw));
                }
            }
            message = libc::CMSG_NXTHDR(&header, message);
        }
        // SAFETY: the kernel initialised the first `read` spare bytes.
        buffer.set_len(buffer.len() + read);
    }
    let truncated = header.msg_flags & libc::MSG_CTRUNC != 0;
    Ok(Received {
        bytes: read,
        control: header.msg_controllen > 0 || truncated,
        truncated,
    })
}
