//! How a client opens its connection, shared by both APIs: which broker it
//! trusts (the peer credentials of the socket, checked before a byte is
//! sent), how long connecting and each timed request may take, and what
//! to say when the socket cannot be opened.
//!
//! It does not read or write frames: the drivers do, with the deadlines
//! decided here.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::RawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use mailbox_proto::socket_path::{self, Origin, SocketPath};
use mailbox_proto::{accounts, Request, Wait};

use crate::error::Error;

/// The environment variable that names one more user a client accepts as
/// the broker (a uid, or a user name).
pub const BROKER_UID_VARIABLE: &str = "MAILBOX_BROKER_UID";

/// The service user a broker installed as a system service runs as.
pub const SERVICE_USER: &str = "mailbox";

/// How much longer than a request's own timeout a client waits for the
/// broker's answer before it gives up with [`Error::NoAnswer`]: the broker
/// answers a timed-out request itself, so this only runs out when the
/// broker is stopped, hung or overloaded.
pub const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// How to connect: the broker's expected user and a time limit.
///
/// By default a client talks only to a broker running as root, as the
/// service user `mailbox` (when that user exists), or as the client's own
/// uid; `$MAILBOX_BROKER_UID` (a uid or a user name) or
/// [`broker_user`](Self::broker_user) names one more. Anything else
/// answering on the socket is refused with [`Error::UntrustedBroker`]
/// before the client sends it anything.
///
/// ```
/// use mailbox_client::ConnectOptions;
/// use std::time::{Duration, Instant};
///
/// let options = ConnectOptions::new()
///     .timeout(Duration::from_secs(1))
///     .broker_user("alice");
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) broker_user: Option<String>,
    /// `Some(false)`: do not announce that this client takes memory files.
    pub(crate) accept_files: Option<bool>,
}

impl ConnectOptions {
    /// The defaults: no time limit, the broker user from
    /// `$MAILBOX_BROKER_UID` if set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connecting and the handshake must finish within `timeout`, else
    /// [`Error::NoAnswer`] (a stopped broker still accepts connections
    /// into its backlog, and then never answers).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Also accept a broker running as this user (a uid in digits, or a
    /// user name); overrides `$MAILBOX_BROKER_UID`.
    pub fn broker_user(mut self, user: impl Into<String>) -> Self {
        self.broker_user = Some(user.into());
        self
    }

    /// Whether the client (blocking or async) tells the broker that it
    /// takes memory-file payloads as files (`AcceptFiles`, sent with its
    /// first request; the default). Without it the broker sends such
    /// payloads' bytes inline, as to any older client, and refuses this
    /// client (kind `MessageTooLarge`, the message left for others) one
    /// too long for its frames; either way a received message reads the
    /// same through `payload`.
    pub fn accept_files(mut self, accept: bool) -> Self {
        self.accept_files = Some(accept);
        self
    }

    /// The user named by the option, else by the environment variable.
    fn named_user(&self) -> Option<String> {
        self.broker_user.clone().or_else(|| {
            std::env::var(BROKER_UID_VARIABLE)
                .ok()
                .filter(|value| !value.is_empty())
        })
    }
}

/// The uid of a user given as digits or as a name.
fn resolve_user(user: &str) -> io::Result<Option<u32>> {
    match user.parse::<u32>() {
        Ok(uid) => Ok(Some(uid)),
        Err(_) => accounts::user_id(user),
    }
}

/// The process at the other end of a connected Unix socket: (pid, uid).
pub(crate) fn peer_credentials(fd: RawFd) -> io::Result<(u32, u32)> {
    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `credentials` is a valid `ucred` and `len` its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut credentials as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((credentials.pid as u32, credentials.uid))
}

/// Checks that the process listening on `fd`'s other end is a broker this
/// client trusts (see [`ConnectOptions`]).
pub(crate) fn check_broker(fd: RawFd, path: &Path, options: &ConnectOptions) -> Result<(), Error> {
    let (pid, uid) = peer_credentials(fd).map_err(|source| Error::Connect {
        path: path.to_owned(),
        hint: "cannot read the peer credentials of the socket".into(),
        source,
    })?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if uid == 0 || uid == me {
        return Ok(());
    }
    let named = options.named_user();
    if let Some(user) = &named {
        match resolve_user(user) {
            Ok(Some(trusted)) if trusted == uid => return Ok(()),
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Error::Connect {
                    path: path.to_owned(),
                    hint: format!(
                        "{BROKER_UID_VARIABLE} (or --broker-uid) names {user:?}, which is no \
                         user here; give a uid or an existing user name"
                    )
                    .into(),
                    source: io::Error::new(io::ErrorKind::InvalidInput, "unknown broker user"),
                })
            }
            Err(source) => {
                return Err(Error::Connect {
                    path: path.to_owned(),
                    hint: format!("cannot look up the broker user {user:?}").into(),
                    source,
                })
            }
        }
    }
    // An absent service user (or a failed lookup) trusts nobody more.
    if let Ok(Some(service)) = accounts::user_id(SERVICE_USER) {
        if service == uid {
            return Ok(());
        }
    }
    Err(Error::UntrustedBroker {
        path: path.to_owned(),
        uid,
        pid,
        named: named.map(String::into_boxed_str),
    })
}

/// Connects a blocking stream to `path`. With a `limit`, the connect itself
/// is bounded too: a stopped broker's full listen backlog makes `connect(2)`
/// block, so it is tried non-blocking, again every few milliseconds, until
/// the limit ([`Error::NoAnswer`]).
pub(crate) fn connect_stream(path: &Path, limit: Option<Duration>) -> Result<UnixStream, Error> {
    let failed = |source: io::Error| Error::Connect {
        path: path.to_owned(),
        hint: connect_hint(path, &source).into(),
        source,
    };
    let Some(limit) = limit else {
        return UnixStream::connect(path).map_err(failed);
    };
    let deadline = Instant::now() + limit;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= address.sun_path.len() || bytes.contains(&0) {
        return Err(failed(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket path is too long or has a NUL byte",
        )));
    }
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (to, from) in address.sun_path.iter_mut().zip(bytes) {
        *to = *from as libc::c_char;
    }
    // SAFETY: creating a socket has no memory preconditions.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(failed(io::Error::last_os_error()));
    }
    // SAFETY: the socket was just created and is owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    loop {
        // SAFETY: `address` is a valid sockaddr_un of the size given.
        let rc = unsafe {
            libc::connect(
                socket.as_raw_fd(),
                (&address as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            break;
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            // The listen backlog is full: the broker is not accepting.
            Some(libc::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Some(libc::EAGAIN) => return Err(Error::NoAnswer { waited: limit }),
            _ => return Err(failed(error)),
        }
    }
    let stream = UnixStream::from(socket);
    stream.set_nonblocking(false).map_err(failed)?;
    Ok(stream)
}

/// How long to wait for the answer to `request` before giving up on the
/// broker: its own timeout plus [`ANSWER_GRACE`] (just the grace for a
/// non-blocking request), `None` for a request that may wait forever, and
/// `untimed` for a request without a wait of its own (create, list, ...).
pub(crate) fn answer_limit(request: &Request, untimed: Option<Duration>) -> Option<Duration> {
    match crate::ops::wait_of(request) {
        Some(wait) => wait_limit(wait),
        None => untimed,
    }
}

/// How long to wait for an answer to a request that waits as `wait` says:
/// its timeout plus [`ANSWER_GRACE`], just the grace for [`Wait::Never`],
/// `None` for [`Wait::Forever`].
pub(crate) fn wait_limit(wait: Wait) -> Option<Duration> {
    match wait {
        Wait::Forever => None,
        Wait::Never => Some(ANSWER_GRACE),
        Wait::Timeout { millis } => {
            Some(Duration::from_millis(millis).saturating_add(ANSWER_GRACE))
        }
    }
}

/// The socket a client connects to when none is named: the first of the
/// rule's candidates where a socket exists ([`socket_path::for_client`]).
pub(crate) fn default_socket() -> SocketPath {
    socket_path::for_client(None)
}

/// `error`, from connecting to the `chosen` default socket, with a hint
/// that names every place looked at when no broker was found at any.
pub(crate) fn explain_default(error: Error, chosen: &SocketPath) -> Error {
    match error {
        Error::Connect { path, source, .. }
            if source.kind() == io::ErrorKind::NotFound
                && !matches!(chosen.origin, Origin::Explicit | Origin::Environment) =>
        {
            let uid = socket_path::effective_uid();
            let places: Vec<String> =
                socket_path::client_candidates(None, socket_path::environment(uid), uid)
                    .iter()
                    .map(|candidate| candidate.path.display().to_string())
                    .collect();
            Error::Connect {
                path,
                source,
                hint: not_found_hint(&places).into(),
            }
        }
        other => other,
    }
}

/// What to say when no broker is at any of `places`.
fn not_found_hint(places: &[String]) -> String {
    format!(
        "no broker is running where one is looked for ({}); start one with `mailboxd`, or \
         set MAILBOX_SOCKET or --socket to the socket of a running one",
        places.join(", ")
    )
}

/// What to do about a socket that could not be connected to, in words.
pub(crate) fn connect_hint(path: &Path, error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::PermissionDenied => permission_hint(path),
        io::ErrorKind::WouldBlock => "the broker's queue of new connections is full: it is \
            not accepting them (stopped or overloaded); check mailboxd's state and log"
            .to_owned(),
        _ => "is the broker running? start it with `mailboxd` or set MAILBOX_SOCKET".to_owned(),
    }
}

/// Which part of `path` this process may not use, whose it is and what
/// would let it in: a directory it cannot search, or the socket it cannot
/// write to.
fn permission_hint(path: &Path) -> String {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let describe = |what: &str, at: &Path, need: &str| -> String {
        let fix = if what == "the socket" {
            "membership of its group, or a wider mode: [socket] mode and group in \
             mailboxd.toml, SocketMode= and SocketGroup= under systemd"
        } else {
            "membership of its group, or a mode that lets others search it, like 0755"
        };
        match std::fs::metadata(at) {
            Ok(meta) => format!(
                "a permission problem, not a stopped broker: uid {me} may not {need} {what} \
                 {} (owner {}, group {}, mode {:04o}); ask the broker's administrator for \
                 access ({fix})",
                at.display(),
                user_text(meta.uid()),
                group_text(meta.gid()),
                meta.mode() & 0o7777
            ),
            Err(_) => format!(
                "a permission problem, not a stopped broker: uid {me} may not {need} {what} \
                 {}; ask the broker's administrator for access",
                at.display()
            ),
        }
    };
    let ancestors: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .filter(|dir| !dir.as_os_str().is_empty())
        .collect();
    for dir in ancestors.into_iter().rev() {
        if !accessible(dir, libc::X_OK) {
            return describe("the directory", dir, "enter");
        }
    }
    describe("the socket", path, "write to")
}

/// Whether this process may use `path` as `mode` says (`access(2)`).
fn accessible(path: &Path, mode: libc::c_int) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string.
    unsafe { libc::access(c_path.as_ptr(), mode) == 0 }
}

fn user_text(uid: u32) -> String {
    match account_name(uid, true) {
        Some(name) => format!("{name} ({uid})"),
        None => format!("uid {uid}"),
    }
}

fn group_text(gid: u32) -> String {
    match account_name(gid, false) {
        Some(name) => format!("{name} ({gid})"),
        None => format!("gid {gid}"),
    }
}

/// The name of a user or group id, read from `/etc/passwd` or `/etc/group`
/// (for messages only: a missing name just leaves the number).
fn account_name(id: u32, user: bool) -> Option<String> {
    let file = if user { "/etc/passwd" } else { "/etc/group" };
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let number = fields.nth(1)?;
        (number.parse::<u32>().ok()? == id).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_pair_is_our_own_uid_and_trusted() {
        let (ours, _theirs) = UnixStream::pair().expect("pair");
        let (pid, uid) = peer_credentials(ours.as_raw_fd()).expect("credentials");
        assert_eq!(pid, std::process::id());
        // SAFETY: geteuid cannot fail.
        assert_eq!(uid, unsafe { libc::geteuid() });
        check_broker(ours.as_raw_fd(), Path::new("/x"), &ConnectOptions::new())
            .expect("own uid is trusted");
    }

    #[test]
    fn timed_requests_get_their_timeout_plus_the_grace() {
        let receive = |wait| Request::Receive {
            mailbox: "q".into(),
            wait,
        };
        let second = Some(Duration::from_secs(1));
        assert_eq!(answer_limit(&receive(Wait::Forever), second), None);
        assert_eq!(
            answer_limit(&receive(Wait::Never), None),
            Some(ANSWER_GRACE)
        );
        assert_eq!(
            answer_limit(&receive(Wait::Timeout { millis: 500 }), None),
            Some(Duration::from_millis(500) + ANSWER_GRACE)
        );
        assert_eq!(answer_limit(&Request::Status, None), None);
        assert_eq!(answer_limit(&Request::Status, second), second);
    }

    #[test]
    fn users_resolve_from_digits_or_names() {
        assert_eq!(resolve_user("0").expect("digits"), Some(0));
        assert_eq!(resolve_user("root").expect("name"), Some(0));
        assert_eq!(resolve_user("no-such-user-here").expect("name"), None);
    }
}
