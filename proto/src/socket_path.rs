//! Where the broker's socket is, for the broker and its clients alike.
//!
//! # The rule
//!
//! 1. An explicit path (`--socket`, or `socket.path` of the broker's
//!    configuration file) is the socket, for the broker and clients.
//! 2. Else `$MAILBOX_SOCKET`, when set and not empty.
//! 3. Else `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`, when `XDG_RUNTIME_DIR`
//!    is set, not empty, and a directory of the process's own uid (a login
//!    session's private directory; after `su` or `sudo` it may still name
//!    the first user's, which is passed over: see [`environment`]).
//! 4. Else the broker listens on [`SYSTEM_SOCKET`] when it runs as root or
//!    may create files in [`SYSTEM_DIRECTORY`] (a service user's broker),
//!    and on the per-user fallback `/tmp/mailbox-UID/mailboxd.sock`
//!    ([`per_user_socket`]) otherwise: a directory any user can always
//!    create, as tmux's `/tmp/tmux-UID/`.
//!
//! A client has no single answer in step 3 and 4, because it does not know
//! which broker runs: it takes the first of these candidates where a socket
//! file exists, else the first one (whose absence its error then reports):
//! `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock` (as in step 3), the per-user
//! fallback (not for root, and only when the directory is the client's own:
//! one planted by another user is passed over), then [`SYSTEM_SOCKET`]. So
//! a user's own broker comes first, and a non-root user with no
//! `XDG_RUNTIME_DIR` (cron, containers, `su`) still finds the system broker
//! when it has none of its own.
//!
//! The fallback does not follow `$TMPDIR`: the broker and its clients must
//! agree without sharing an environment (cron, `su` and `sudo` set or clear
//! `TMPDIR` differently), and a long `TMPDIR` can push the path past the
//! 107 bytes a Unix socket address holds. `$MAILBOX_SOCKET` names any other
//! place. A process with a private `/tmp` (systemd's `PrivateTmp=`) sees its
//! own fallback directory: give such services `MAILBOX_SOCKET`.
//!
//! The broker creates the fallback directory with mode 0700 and refuses it
//! when it is not a directory of its own uid or others may write to it (see
//! `mailboxd`'s socket binding).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Environment variable naming the socket explicitly.
pub const SOCKET_ENV: &str = "MAILBOX_SOCKET";

/// Environment variable naming a login session's private directory.
pub const RUNTIME_DIR_ENV: &str = "XDG_RUNTIME_DIR";

/// The system broker's socket.
pub const SYSTEM_SOCKET: &str = "/run/mailbox/mailboxd.sock";

/// The system broker's socket directory.
pub const SYSTEM_DIRECTORY: &str = "/run/mailbox";

/// The socket's file name in every directory of the rule.
pub const SOCKET_NAME: &str = "mailboxd.sock";

/// Why a socket path is the one in force: which step of the rule chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Given explicitly (`--socket`, `socket.path`).
    Explicit,
    /// `$MAILBOX_SOCKET`.
    Environment,
    /// `$XDG_RUNTIME_DIR/mailbox/`.
    RuntimeDirectory,
    /// The per-user fallback, `/tmp/mailbox-UID/`.
    PerUser,
    /// [`SYSTEM_SOCKET`].
    System,
}

impl std::fmt::Display for Origin {
    /// The step in words, for logs: `--socket`, `$MAILBOX_SOCKET`, ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Explicit => "--socket or socket.path",
            Self::Environment => "$MAILBOX_SOCKET",
            Self::RuntimeDirectory => "$XDG_RUNTIME_DIR",
            Self::PerUser => "the per-user fallback",
            Self::System => "the system socket",
        })
    }
}

/// A socket path and the step of the rule that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPath {
    /// The socket.
    pub path: PathBuf,
    /// Why this one.
    pub origin: Origin,
}

impl SocketPath {
    fn new(path: impl Into<PathBuf>, origin: Origin) -> Self {
        Self {
            path: path.into(),
            origin,
        }
    }
}

/// The per-user fallback socket of `uid`: `/tmp/mailbox-UID/mailboxd.sock`.
///
/// ```
/// use mailbox_proto::socket_path::per_user_socket;
/// assert_eq!(
///     per_user_socket(1000),
///     std::path::PathBuf::from("/tmp/mailbox-1000/mailboxd.sock")
/// );
/// ```
pub fn per_user_socket(uid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/mailbox-{uid}")).join(SOCKET_NAME)
}

/// Steps 1 and 2 of the rule, which broker and clients share: the explicit
/// path, else `$MAILBOX_SOCKET`.
fn named(explicit: Option<PathBuf>, env: &impl Fn(&str) -> Option<OsString>) -> Option<SocketPath> {
    if let Some(path) = explicit {
        return Some(SocketPath::new(path, Origin::Explicit));
    }
    let path = env(SOCKET_ENV).filter(|value| !value.is_empty())?;
    Some(SocketPath::new(path, Origin::Environment))
}

/// Step 3: `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`.
fn runtime_directory(env: &impl Fn(&str) -> Option<OsString>) -> Option<SocketPath> {
    let dir = env(RUNTIME_DIR_ENV).filter(|value| !value.is_empty())?;
    Some(SocketPath::new(
        PathBuf::from(dir).join("mailbox").join(SOCKET_NAME),
        Origin::RuntimeDirectory,
    ))
}

/// The socket a broker listens on (see [the rule](self)), given its
/// environment `env`, its effective `uid`, and whether it may create files
/// in [`SYSTEM_DIRECTORY`].
///
/// ```
/// use mailbox_proto::socket_path::{for_broker_with, Origin};
/// let no_env = |_: &str| None;
/// let broker = for_broker_with(None, no_env, 1000, false);
/// assert_eq!(broker.path, std::path::Path::new("/tmp/mailbox-1000/mailboxd.sock"));
/// assert_eq!(broker.origin, Origin::PerUser);
/// assert_eq!(for_broker_with(None, no_env, 0, false).origin, Origin::System);
/// ```
pub fn for_broker_with(
    explicit: Option<PathBuf>,
    env: impl Fn(&str) -> Option<OsString>,
    uid: u32,
    system_directory_writable: bool,
) -> SocketPath {
    if let Some(named) = named(explicit, &env).or_else(|| runtime_directory(&env)) {
        return named;
    }
    if uid == 0 || system_directory_writable {
        SocketPath::new(SYSTEM_SOCKET, Origin::System)
    } else {
        SocketPath::new(per_user_socket(uid), Origin::PerUser)
    }
}

/// The places a client looks for the broker, in order (see [the
/// rule](self)): one when a path is named, else the runtime directory's
/// (when set), the per-user fallback (not for root) and the system socket.
pub fn client_candidates(
    explicit: Option<PathBuf>,
    env: impl Fn(&str) -> Option<OsString>,
    uid: u32,
) -> Vec<SocketPath> {
    if let Some(named) = named(explicit, &env) {
        return vec![named];
    }
    let mut candidates: Vec<SocketPath> = runtime_directory(&env).into_iter().collect();
    if uid != 0 {
        candidates.push(SocketPath::new(per_user_socket(uid), Origin::PerUser));
    }
    candidates.push(SocketPath::new(SYSTEM_SOCKET, Origin::System));
    candidates
}

/// The socket a client connects to: the first of
/// [`client_candidates`] that `usable` accepts (in practice: a socket file
/// exists there, and for the per-user fallback its directory is the
/// client's own), else the first candidate.
///
/// ```
/// use mailbox_proto::socket_path::{for_client_with, SYSTEM_SOCKET};
/// use std::path::Path;
/// // A non-root user with no XDG_RUNTIME_DIR and no broker of its own
/// // finds the system broker.
/// let only_system = |path: &Path| path == Path::new(SYSTEM_SOCKET);
/// let client = for_client_with(None, |_: &str| None, 1000, only_system);
/// assert_eq!(client.path, Path::new(SYSTEM_SOCKET));
/// ```
pub fn for_client_with(
    explicit: Option<PathBuf>,
    env: impl Fn(&str) -> Option<OsString>,
    uid: u32,
    usable: impl Fn(&Path) -> bool,
) -> SocketPath {
    let mut candidates = client_candidates(explicit, env, uid);
    let chosen = candidates
        .iter()
        .position(|candidate| usable(&candidate.path))
        .unwrap_or(0);
    candidates.swap_remove(chosen)
}

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Whether this process may create files in `dir` (write and search).
fn may_create_in(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `path` is a valid NUL-terminated string; access reads it only.
    // AT_EACCESS: checked as the effective ids, which create the file.
    unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        ) == 0
    }
}

/// The process environment as the rule reads it for `uid`:
/// `XDG_RUNTIME_DIR` counts only when it is a directory of `uid` (after
/// `su` or `sudo` it may name another user's, where this user's broker
/// cannot listen and its clients would find another user's broker), so
/// broker and clients of one user agree on passing it over.
pub fn environment(uid: u32) -> impl Fn(&str) -> Option<OsString> {
    use std::os::unix::fs::MetadataExt;
    move |key| {
        let value = std::env::var_os(key)?;
        if key != RUNTIME_DIR_ENV {
            return Some(value);
        }
        std::fs::metadata(&value)
            .is_ok_and(|meta| meta.is_dir() && meta.uid() == uid)
            .then_some(value)
    }
}

/// [`for_broker_with`] for this process: its [`environment`], its effective
/// uid, and whether it may create files in [`SYSTEM_DIRECTORY`].
pub fn for_broker(explicit: Option<PathBuf>) -> SocketPath {
    let uid = effective_uid();
    for_broker_with(
        explicit,
        environment(uid),
        uid,
        may_create_in(Path::new(SYSTEM_DIRECTORY)),
    )
}

/// Whether a client of `uid` may take the candidate `path`: a socket file
/// is there, and a per-user fallback's directory is a directory of `uid`'s
/// (one planted by another user is passed over).
fn client_may_use(path: &Path, uid: u32) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket());
    if !is_socket {
        return false;
    }
    if uid == 0 || path != per_user_socket(uid) {
        return true;
    }
    path.parent()
        .and_then(|dir| std::fs::symlink_metadata(dir).ok())
        .is_some_and(|meta| meta.is_dir() && meta.uid() == uid)
}

/// [`for_client_with`] for this process: its [`environment`] and effective
/// uid, taking the first candidate where a socket exists.
pub fn for_client(explicit: Option<PathBuf>) -> SocketPath {
    let uid = effective_uid();
    for_client_with(explicit, environment(uid), uid, |path| {
        client_may_use(path, uid)
    })
}

/// The socket a client of this process connects to ([`for_client`]'s
/// path).
pub fn resolve(explicit: Option<PathBuf>) -> PathBuf {
    for_client(explicit).path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| OsString::from(v))
        }
    }

    const XDG: (&str, &str) = ("XDG_RUNTIME_DIR", "/run/user/1000");
    const XDG_SOCKET: &str = "/run/user/1000/mailbox/mailboxd.sock";
    const USER_SOCKET: &str = "/tmp/mailbox-1000/mailboxd.sock";

    /// The client's choice when the sockets in `existing` exist.
    fn client(env: &[(&str, &str)], uid: u32, existing: &[&str]) -> SocketPath {
        for_client_with(None, env_of(env), uid, |path| {
            existing.iter().any(|socket| path == Path::new(socket))
        })
    }

    #[test]
    fn explicit_path_wins() {
        let env = env_of(&[("MAILBOX_SOCKET", "/a"), XDG]);
        let broker = for_broker_with(Some("/x".into()), &env, 1000, true);
        assert_eq!(broker, SocketPath::new("/x", Origin::Explicit));
        let client = for_client_with(Some("/x".into()), &env, 1000, |_| false);
        assert_eq!(client, SocketPath::new("/x", Origin::Explicit));
    }

    #[test]
    fn env_variable_beats_runtime_dir_and_is_the_only_candidate() {
        let env = env_of(&[("MAILBOX_SOCKET", "/a.sock"), XDG]);
        let expected = SocketPath::new("/a.sock", Origin::Environment);
        assert_eq!(for_broker_with(None, &env, 1000, false), expected);
        assert_eq!(client_candidates(None, &env, 1000), [expected]);
    }

    #[test]
    fn a_broker_uses_the_runtime_dir_when_set() {
        let broker = for_broker_with(None, env_of(&[XDG]), 1000, true);
        assert_eq!(
            broker,
            SocketPath::new(XDG_SOCKET, Origin::RuntimeDirectory)
        );
    }

    #[test]
    fn a_broker_takes_the_system_socket_as_root_or_when_it_may_write_there() {
        let system = SocketPath::new(SYSTEM_SOCKET, Origin::System);
        assert_eq!(for_broker_with(None, env_of(&[]), 0, false), system);
        assert_eq!(for_broker_with(None, env_of(&[]), 0, true), system);
        // A service user's broker with its /run/mailbox.
        assert_eq!(for_broker_with(None, env_of(&[]), 999, true), system);
    }

    #[test]
    fn a_non_root_broker_without_runtime_dir_falls_back_to_its_own_directory() {
        let empty = env_of(&[("MAILBOX_SOCKET", ""), ("XDG_RUNTIME_DIR", "")]);
        assert_eq!(
            for_broker_with(None, empty, 1000, false),
            SocketPath::new(USER_SOCKET, Origin::PerUser)
        );
        assert_eq!(
            for_broker_with(None, env_of(&[]), 65534, false).path,
            Path::new("/tmp/mailbox-65534/mailboxd.sock")
        );
    }

    #[test]
    fn client_candidates_come_in_the_order_of_the_rule() {
        let paths = |env: &[(&str, &str)], uid| -> Vec<PathBuf> {
            client_candidates(None, env_of(env), uid)
                .into_iter()
                .map(|candidate| candidate.path)
                .collect()
        };
        assert_eq!(
            paths(&[XDG], 1000),
            [XDG_SOCKET, USER_SOCKET, SYSTEM_SOCKET].map(PathBuf::from)
        );
        assert_eq!(
            paths(&[], 1000),
            [USER_SOCKET, SYSTEM_SOCKET].map(PathBuf::from)
        );
        // Root has no per-user fallback: its broker never binds one.
        assert_eq!(paths(&[], 0), [SYSTEM_SOCKET].map(PathBuf::from));
    }

    #[test]
    fn a_client_takes_the_first_candidate_whose_socket_exists() {
        // Its own broker first, wherever it runs.
        assert_eq!(
            client(&[XDG], 1000, &[XDG_SOCKET, USER_SOCKET, SYSTEM_SOCKET]).path,
            Path::new(XDG_SOCKET)
        );
        assert_eq!(
            client(&[], 1000, &[USER_SOCKET, SYSTEM_SOCKET]).path,
            Path::new(USER_SOCKET)
        );
        // No broker of its own, with or without XDG_RUNTIME_DIR: the
        // system broker.
        assert_eq!(
            client(&[], 1000, &[SYSTEM_SOCKET]),
            SocketPath::new(SYSTEM_SOCKET, Origin::System)
        );
        assert_eq!(
            client(&[XDG], 1000, &[SYSTEM_SOCKET]).path,
            Path::new(SYSTEM_SOCKET)
        );
    }

    #[test]
    fn with_no_socket_anywhere_a_client_names_the_first_candidate() {
        assert_eq!(client(&[XDG], 1000, &[]).path, Path::new(XDG_SOCKET));
        assert_eq!(client(&[], 1000, &[]).path, Path::new(USER_SOCKET));
        assert_eq!(client(&[], 0, &[]).path, Path::new(SYSTEM_SOCKET));
    }

    #[test]
    fn broker_and_client_agree_when_the_broker_is_the_only_one() {
        for (env, uid, writable) in [
            (&[][..], 1000, false),
            (&[][..], 1000, true),
            (&[][..], 0, false),
            (&[XDG][..], 1000, false),
        ] {
            let broker = for_broker_with(None, env_of(env), uid, writable);
            let found = for_client_with(None, env_of(env), uid, |path| path == broker.path);
            assert_eq!(found, broker, "env {env:?}, uid {uid}, writable {writable}");
        }
    }
}
