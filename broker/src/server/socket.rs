//! Binding the broker's socket: create its directory, refuse a directory
//! others could swap the socket in, clear a stale socket, refuse to start
//! beside a live broker; give it the configured mode and group; remember
//! which file it bound, so that only that one is removed at exit.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};

use mailbox_proto::socket_path::Origin;
use tokio::net::UnixListener;

/// Why the socket could not be bound. Each says what to do, in one line.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another broker answers on the path.
    #[error(
        "another broker is already listening on {0}; stop it first, or give this one another \
         socket with --socket or MAILBOX_SOCKET"
    )]
    InUse(PathBuf),
    /// The directory could not be created.
    #[error("cannot create the socket directory {}: {source}; {}", path.display(), directory_hint(source))]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The directory could be changed by someone else than the broker's
    /// user or root: whoever can write to it can replace the socket.
    #[error("refusing the socket directory {}: {reason}", path.display())]
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        reason: String,
    },
    /// A file that is not a socket is at the path.
    #[error(
        "{} is in the way: it is not a socket; remove it, or choose another path with --socket \
         or MAILBOX_SOCKET", .0.display()
    )]
    NotASocket(PathBuf),
    /// Binding failed.
    #[error("cannot listen on {}: {source}; {}", path.display(), bind_hint(source))]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// What to do when the socket's place cannot be used.
fn place_hint() -> &'static str {
    "set MAILBOX_SOCKET or --socket to a path in a directory you own, or leave both unset \
     to use the per-user fallback /tmp/mailbox-UID/"
}

/// What to do about a directory that could not be created.
fn directory_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => {
            "something that is not a directory is at that path: remove it, or choose another \
             path with --socket or MAILBOX_SOCKET"
        }
        _ => place_hint(),
    }
}

/// What to do about a failed bind.
fn bind_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::PermissionDenied => place_hint(),
        io::ErrorKind::InvalidInput => {
            "a socket path holds at most 107 bytes: give a shorter one with --socket or \
             MAILBOX_SOCKET"
        }
        _ => "choose another path with --socket or MAILBOX_SOCKET",
    }
}

/// How the socket's directory is created and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryRule {
    /// A directory others may reach the socket through (`/run/mailbox`, a
    /// path given by the administrator): created with the umask's mode;
    /// must belong to the broker's uid or root and be writable by nobody
    /// else, unless sticky like `/tmp`.
    Shared,
    /// The per-user fallback `/tmp/mailbox-UID/`, in a directory everyone
    /// may write to: created with mode 0700; must be a directory (not a
    /// symbolic link) of the broker's own uid, writable by nobody else.
    /// One that another user made first is refused, as tmux refuses its.
    Private,
}

impl DirectoryRule {
    /// The rule for a socket chosen by the step `origin` of the socket rule.
    pub fn for_origin(origin: Origin) -> Self {
        match origin {
            Origin::PerUser => Self::Private,
            _ => Self::Shared,
        }
    }
}

/// The socket file a broker bound, known by its device and inode: what is
/// at the path at exit is removed only if it is still that file (another
/// broker may have replaced it since, and its socket is not ours to remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundSocket {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl BoundSocket {
    /// Records the file now at `path` (the socket just bound).
    fn record(path: &Path) -> io::Result<Self> {
        let meta = std::fs::symlink_metadata(path)?;
        Ok(Self {
            path: path.to_owned(),
            device: meta.dev(),
            inode: meta.ino(),
        })
    }

    /// The path it was bound at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file at the path is still the one bound.
    pub fn is_still_there(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| meta.dev() == self.device && meta.ino() == self.inode)
    }

    /// Removes the socket file if it is still the one bound; `Ok(false)`
    /// when something else is at the path now (left alone) or nothing is.
    pub fn remove(&self) -> io::Result<bool> {
        if !self.is_still_there() {
            return Ok(false);
        }
        // Between the check and the unlink another broker could only
        // replace the file if it could write to the directory, which
        // `prepare_directory` allowed to nobody but us and root.
        std::fs::remove_file(&self.path).map(|()| true)
    }
}

/// Creates the socket's directory if needed and checks that nobody but the
/// broker's user and root can change what is in it (as OpenSSH and tmux
/// check theirs), by `rule` (see [`DirectoryRule`]). Only the socket's own
/// directory is checked, not the ones above it: whoever can rename a
/// parent could already run as that parent's owner.
fn prepare_directory(path: &Path, rule: DirectoryRule) -> Result<(), BindError> {
    use std::os::unix::fs::DirBuilderExt;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let directory_error = |source| BindError::Directory {
        path: parent.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    if rule == DirectoryRule::Private {
        builder.mode(0o700);
    }
    builder.create(parent).map_err(directory_error)?;
    // The private directory's link is not followed: a symbolic link planted
    // in /tmp is not our directory.
    let meta = match rule {
        DirectoryRule::Shared => std::fs::metadata(parent),
        DirectoryRule::Private => std::fs::symlink_metadata(parent),
    }
    .map_err(directory_error)?;
    let euid = mailbox_proto::socket_path::effective_uid();
    let checked = match rule {
        DirectoryRule::Shared => directory_is_safe(meta.uid(), meta.mode(), euid),
        DirectoryRule::Private if !meta.is_dir() => Err(format!(
            "it is not a directory but {}, which another user may have planted; remove it, \
             or set MAILBOX_SOCKET or --socket to a path in a directory you own",
            if meta.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "a file"
            }
        )),
        DirectoryRule::Private => private_directory_is_safe(meta.uid(), meta.mode(), euid),
    };
    checked.map_err(|reason| BindError::UnsafeDirectory {
        path: parent.to_owned(),
        reason,
    })
}

/// The rule of [`DirectoryRule::Private`], on a directory's owner and mode.
fn private_directory_is_safe(owner: u32, mode: u32, euid: u32) -> Result<(), String> {
    if owner != euid {
        return Err(format!(
            "it belongs to uid {owner}, not to the broker's uid {euid}, so its owner could \
             replace the socket; remove it if it is stale, or set MAILBOX_SOCKET or --socket \
             to a path in a directory you own"
        ));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "its mode {:04o} lets others than its owner replace the socket; make it 0700 \
             (chmod 700) or remove it",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// The rule of [`DirectoryRule::Shared`], on a directory's owner and mode.
fn directory_is_safe(owner: u32, mode: u32, euid: u32) -> Result<(), String> {
    if owner != euid && owner != 0 {
        return Err(format!(
            "it belongs to uid {owner}, not to the broker's uid {euid} or root, so its owner \
             could replace the socket; use a directory of the broker's user (--socket or \
             MAILBOX_SOCKET)"
        ));
    }
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky {
        return Err(format!(
            "its mode {:04o} lets others than its owner replace the socket; \
             remove group and other write (chmod go-w) or use another directory",
            mode & 0o7777
        ));
    }
    Ok(())
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
}

/// Binds a listener on `path`, creating its parent directory (which must be
/// safe, see [`BindError::UnsafeDirectory`]). A socket file nobody answers
/// on is a leftover of a broker that died, and is replaced. Must be called
/// inside a tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener, BindError> {
    bind_recorded(path, DirectoryRule::Shared).map(|(listener, _)| listener)
}

/// Like [`bind`], with the directory created and checked by `rule`, and
/// says which file it bound, to remove at exit.
pub fn bind_recorded(
    path: &Path,
    rule: DirectoryRule,
) -> Result<(UnixListener, BoundSocket), BindError> {
    let listener = bind_in_place(path, rule)?;
    let bound = BoundSocket::record(path).map_err(|source| BindError::Bind {
        path: path.to_owned(),
        source,
    })?;
    Ok((listener, bound))
}

fn bind_in_place(path: &Path, rule: DirectoryRule) -> Result<UnixListener, BindError> {
    prepare_directory(path, rule)?;
    match UnixListener::bind(path) {
        Ok(listener) => Ok(listener),
        Err(error) if error.kind() == io::ErrorKind::AddrInUse => {
            match StdUnixStream::connect(path) {
                Ok(_) => Err(BindError::InUse(path.to_owned())),
                Err(probe)
                    if probe.kind() == io::ErrorKind::ConnectionRefused && is_socket(path) =>
                {
                    std::fs::remove_file(path).map_err(|source| BindError::Bind {
                        path: path.to_owned(),
                        source,
                    })?;
                    UnixListener::bind(path).map_err(|source| BindError::Bind {
                        path: path.to_owned(),
                        source,
                    })
                }
                Err(_) if !is_socket(path) => Err(BindError::NotASocket(path.to_owned())),
                Err(_) => Err(BindError::Bind {
                    path: path.to_owned(),
                    source: error,
                }),
            }
        }
        Err(source) => Err(BindError::Bind {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Binds like [`bind`], but the socket appears at `path` only once it has
/// the configured `mode` and `group`: it is bound under a temporary name in
/// the same directory, given them, and renamed into place, so no client can
/// connect through permissions it should not have had. The directory is
/// created and checked by `rule`. Returns which file it bound, to remove at
/// exit ([`BoundSocket::remove`]).
pub fn bind_with_permissions(
    path: &Path,
    rule: DirectoryRule,
    mode: Option<u32>,
    group: Option<u32>,
) -> Result<(UnixListener, BoundSocket), BindError> {
    if mode.is_none() && group.is_none() {
        return bind_recorded(path, rule);
    }
    prepare_directory(path, rule)?;
    // What is at the path now: a live broker, a stale socket (replaced by
    // the rename), or something that is not ours to replace.
    if std::fs::symlink_metadata(path).is_ok() {
        match StdUnixStream::connect(path) {
            Ok(_) => return Err(BindError::InUse(path.to_owned())),
            Err(_) if is_socket(path) => {}
            Err(_) => return Err(BindError::NotASocket(path.to_owned())),
        }
    }
    let name = path.file_name().map_or_else(
        || "mailboxd.sock".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let failed = |source: io::Error| BindError::Bind {
        path: path.to_owned(),
        source,
    };
    let listener = UnixListener::bind(&temporary).map_err(failed)?;
    // Recorded under the temporary name: a rename keeps the inode.
    let placed = BoundSocket::record(&temporary).and_then(|bound| {
        set_socket_permissions(&temporary, mode, group)?;
        std::fs::rename(&temporary, path)?;
        Ok(BoundSocket {
            path: path.to_owned(),
            ..bound
        })
    });
    match placed {
        Ok(bound) => Ok((listener, bound)),
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(failed(error))
        }
    }
}

/// Gives the socket file at `path` the configured `mode` and `group` (the
/// `[socket]` section). Unchanged where `None`.
pub fn set_socket_permissions(
    path: &Path,
    mode: Option<u32>,
    group: Option<u32>,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot give {} the group {gid}: {error}", path.display()),
            )
        })?;
    }
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot give {} the mode {mode:04o}: {error}",
                    path.display()
                ),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{directory_is_safe, private_directory_is_safe};

    /// Checks `rule` on cases of (owner, mode, broker's euid, safe).
    fn check(rule: fn(u32, u32, u32) -> Result<(), String>, cases: &[(u32, u32, u32, bool)]) {
        for &(owner, mode, euid, safe) in cases {
            assert_eq!(
                rule(owner, mode, euid).is_ok(),
                safe,
                "owner {owner}, mode {mode:o}, euid {euid}"
            );
        }
    }

    #[test]
    fn the_per_user_directory_must_be_the_brokers_own_and_closed_to_others() {
        let cases = [
            // (owner, mode, broker's euid, safe)
            (1000, 0o700, 1000, true),
            (1000, 0o750, 1000, true),
            (1000, 0o755, 1000, true),
            // Root's directory is not the user's: it was not made for it.
            (0, 0o700, 1000, false),
            (65534, 0o700, 1000, false),
            (1000, 0o770, 1000, false),
            (1000, 0o1777, 1000, false),
            (1000, 0o702, 1000, false),
        ];
        check(private_directory_is_safe, &cases);
    }

    #[test]
    fn a_socket_directory_is_safe_only_if_nobody_else_can_replace_the_socket() {
        let cases = [
            // (owner, mode, broker's euid, safe)
            (0, 0o755, 0, true),
            (1000, 0o700, 1000, true),
            (0, 0o755, 1000, true),
            // /tmp: sticky, so others cannot remove or rename our socket.
            (0, 0o1777, 1000, true),
            (1000, 0o1770, 1000, true),
            (1000, 0o777, 1000, false),
            (1000, 0o775, 1000, false),
            (0, 0o757, 0, false),
            (65534, 0o700, 0, false),
            (65534, 0o1777, 0, false),
            (1001, 0o755, 1000, false),
        ];
        check(directory_is_safe, &cases);
    }
}
