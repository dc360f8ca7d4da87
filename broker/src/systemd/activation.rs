//! Socket activation: the service manager binds the socket (`mailboxd.socket`)
//! and passes it, already listening, as file descriptor 3, with
//! `$LISTEN_FDS` (how many descriptors, from 3 on) and `$LISTEN_PID` (which
//! process they are meant for) in the environment.
//!
//! The socket then belongs to the service manager: it keeps it open while the
//! broker restarts, so clients connecting meanwhile wait in the backlog
//! instead of failing, and the broker must not unlink the socket file when
//! it stops.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;

use tracing::debug;

/// The first passed descriptor (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// Why the environment asks for socket activation but it cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// `$LISTEN_PID` is not a number.
    #[error(
        "LISTEN_PID={0:?} is not a process id; start mailboxd from its mailboxd.socket unit, or \
         unset LISTEN_PID and LISTEN_FDS"
    )]
    BadPid(OsString),
    /// `$LISTEN_FDS` is not a number.
    #[error(
        "LISTEN_FDS={0:?} is not a number of file descriptors; start mailboxd from its \
         mailboxd.socket unit, or unset LISTEN_PID and LISTEN_FDS"
    )]
    BadCount(OsString),
    /// More than one descriptor was passed.
    #[error(
        "the service manager passed {0} file descriptors (LISTEN_FDS={0}); mailboxd listens on \
         exactly one socket: give mailboxd.socket a single ListenStream="
    )]
    TooMany(u32),
    /// Descriptor 3 is not a listening Unix stream socket.
    #[error(
        "file descriptor 3 passed by the service manager (LISTEN_FDS=1) is {0}, not a listening \
         Unix stream socket; mailboxd.socket needs ListenStream=/path/to/mailboxd.sock (and not \
         Accept=yes)"
    )]
    WrongKind(String),
    /// Descriptor 3 could not be inspected or set up.
    #[error(
        "cannot use file descriptor 3 passed by the service manager: {0}; check mailboxd.socket \
         (one ListenStream=, no Accept=yes)"
    )]
    Io(#[source] io::Error),
}

/// Takes the listening socket the service manager passed, if it passed one
/// to this process: `Ok(None)` when `$LISTEN_FDS` or `$LISTEN_PID` is unset,
/// `$LISTEN_FDS` is 0 or `$LISTEN_PID` names another process. The socket is
/// checked to be a listening `AF_UNIX` stream socket, made non-blocking and
/// close-on-exec.
///
/// `$LISTEN_PID`, `$LISTEN_FDS` and `$LISTEN_FDNAMES` are removed from the
/// environment in every case, so no child process mistakes them for its own.
/// Call it once, before starting any thread (changing the environment is not
/// thread-safe), and before anything else could claim descriptor 3.
pub fn take_listener() -> Result<Option<UnixListener>, ActivationError> {
    let pid = std::env::var_os("LISTEN_PID");
    let fds = std::env::var_os("LISTEN_FDS");
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    let count = passed_count(pid.as_deref(), fds.as_deref(), std::process::id())?;
    match count {
        0 => return Ok(None),
        1 => {}
        _ => return Err(ActivationError::TooMany(count)),
    }
    if let Some(found) = describe_unless_listening_unix_stream(LISTEN_FDS_START)? {
        return Err(ActivationError::WrongKind(found));
    }
    set_close_on_exec(LISTEN_FDS_START).map_err(ActivationError::Io)?;
    // SAFETY: the activation protocol hands descriptor 3 to this process,
    // which opened nothing before reading the environment, so no other
    // handle owns it; it was just checked to be a listening Unix socket.
    let listener = unsafe { UnixListener::from_raw_fd(LISTEN_FDS_START) };
    listener
        .set_nonblocking(true)
        .map_err(ActivationError::Io)?;
    Ok(Some(listener))
}

/// How many descriptors were passed to process `own_pid`, from the values of
/// `$LISTEN_PID` and `$LISTEN_FDS` (the rules of `sd_listen_fds`: both must
/// be set, and the pid must be ours).
pub fn passed_count(
    pid: Option<&OsStr>,
    fds: Option<&OsStr>,
    own_pid: u32,
) -> Result<u32, ActivationError> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(0);
    };
    let pid: u32 = parse_number(pid).ok_or_else(|| ActivationError::BadPid(pid.to_owned()))?;
    if pid != own_pid {
        debug!(
            listen_pid = pid,
            "LISTEN_FDS is meant for another process; binding the socket ourselves"
        );
        return Ok(0);
    }
    parse_number(fds).ok_or_else(|| ActivationError::BadCount(fds.to_owned()))
}

fn parse_number(value: &OsStr) -> Option<u32> {
    let text = std::str::from_utf8(value.as_bytes()).ok()?;
    text.parse().ok()
}

/// `None` when `fd` is a listening `AF_UNIX` stream socket, else what it is
/// instead, in words.
fn describe_unless_listening_unix_stream(fd: RawFd) -> Result<Option<String>, ActivationError> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `struct stat` to a pointer valid for one.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } == -1 {
        let error = io::Error::last_os_error();
        return if error.raw_os_error() == Some(libc::EBADF) {
            Ok(Some("not open".to_owned()))
        } else {
            Err(ActivationError::Io(error))
        };
    }
    // SAFETY: fstat succeeded, so it initialised the whole struct.
    let mode = unsafe { stat.assume_init() }.st_mode & libc::S_IFMT;
    if mode != libc::S_IFSOCK {
        let kind = match mode {
            libc::S_IFREG => "a regular file",
            libc::S_IFDIR => "a directory",
            libc::S_IFIFO => "a pipe",
            libc::S_IFCHR => "a character device",
            libc::S_IFBLK => "a block device",
            libc::S_IFLNK => "a symbolic link",
            _ => "not a socket",
        };
        return Ok(Some(kind.to_owned()));
    }
    let family = socket_family(fd).map_err(ActivationError::Io)?;
    if family != libc::AF_UNIX {
        let name = match family {
            libc::AF_INET => "an AF_INET socket".to_owned(),
            libc::AF_INET6 => "an AF_INET6 socket".to_owned(),
            other => format!("a socket of address family {other}"),
        };
        return Ok(Some(name));
    }
    let kind = socket_option(fd, libc::SO_TYPE).map_err(ActivationError::Io)?;
    if kind != libc::SOCK_STREAM {
        let name = match kind {
            libc::SOCK_DGRAM => "a Unix datagram socket (ListenDatagram=)",
            libc::SOCK_SEQPACKET => "a Unix seqpacket socket (ListenSequentialPacket=)",
            _ => "a Unix socket of another type",
        };
        return Ok(Some(name.to_owned()));
    }
    if socket_option(fd, libc::SO_ACCEPTCONN).map_err(ActivationError::Io)? == 0 {
        return Ok(Some(
            "a Unix stream socket that is not listening (one connection, as Accept=yes passes)"
                .to_owned(),
        ));
    }
    Ok(None)
}

fn socket_family(fd: RawFd) -> io::Result<libc::c_int> {
    let mut address = std::mem::MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut length = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `length` bytes to `address`, which
    // is valid for that many.
    let result = unsafe { libc::getsockname(fd, address.as_mut_ptr().cast(), &mut length) };
    if result == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, so every field is initialised whatever
    // getsockname wrote.
    Ok(libc::c_int::from(
        unsafe { address.assume_init() }.ss_family,
    ))
}

fn socket_option(fd: RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `length` are valid for writes of the sizes given.
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut length,
        )
    };
    if result == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

fn set_close_on_exec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with F_GETFD/F_SETFD has no memory-safety preconditions.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags == -1 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn os(text: &str) -> Option<&OsStr> {
        Some(OsStr::new(text))
    }

    #[test]
    fn descriptors_count_only_when_meant_for_this_process() {
        assert_eq!(passed_count(os("42"), os("1"), 42).expect("ours"), 1);
        assert_eq!(passed_count(os("43"), os("1"), 42).expect("theirs"), 0);
        assert_eq!(passed_count(None, os("1"), 42).expect("no pid"), 0);
        assert_eq!(passed_count(os("42"), None, 42).expect("no fds"), 0);
        assert_eq!(passed_count(os("42"), os("0"), 42).expect("none"), 0);
        assert!(matches!(
            passed_count(os("me"), os("1"), 42),
            Err(ActivationError::BadPid(_))
        ));
        assert!(matches!(
            passed_count(os("42"), os("one"), 42),
            Err(ActivationError::BadCount(_))
        ));
    }

    #[test]
    fn only_a_listening_unix_stream_socket_is_accepted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = UnixListener::bind(dir.path().join("listening")).expect("bind");
        assert_eq!(
            describe_unless_listening_unix_stream(listener.as_raw_fd()).expect("inspect"),
            None
        );

        let (connected, _other) = std::os::unix::net::UnixStream::pair().expect("pair");
        let found = describe_unless_listening_unix_stream(connected.as_raw_fd())
            .expect("inspect")
            .expect("refused");
        assert!(found.contains("not listening"), "{found}");

        let datagram = std::os::unix::net::UnixDatagram::unbound().expect("datagram");
        let found = describe_unless_listening_unix_stream(datagram.as_raw_fd())
            .expect("inspect")
            .expect("refused");
        assert!(found.contains("datagram"), "{found}");

        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
        let found = describe_unless_listening_unix_stream(tcp.as_raw_fd())
            .expect("inspect")
            .expect("refused");
        assert!(found.contains("AF_INET"), "{found}");

        let file = std::fs::File::create(dir.path().join("file")).expect("file");
        let found = describe_unless_listening_unix_stream(file.as_raw_fd())
            .expect("inspect")
            .expect("refused");
        assert_eq!(found, "a regular file");
    }
}
