//! Binding the broker's socket: create its directory, clear a stale socket,
//! refuse to start beside a live broker; give it the configured mode and group.

use std::io;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another broker answers on the path.
    #[error(
        "another broker is already listening on {0}; stop it first or choose another --socket"
    )]
    InUse(PathBuf),
    /// The directory could not be created.
    #[error("cannot create the socket directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Something else is in the way, or binding failed.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
}

/// Binds a listener on `path`, creating its parent directory. A socket file
/// nobody answers on is a leftover of a broker that died, and is replaced.
/// Must be called inside a tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener, BindError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| BindError::Directory {
            path: parent.to_owned(),
            source,
        })?;
    }
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
/// connect through permissions it should not have had.
pub fn bind_with_permissions(
    path: &Path,
    mode: Option<u32>,
    group: Option<u32>,
) -> Result<UnixListener, BindError> {
    if mode.is_none() && group.is_none() {
        return bind(path);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| BindError::Directory {
            path: parent.to_owned(),
            source,
        })?;
    }
    // What is at the path now: a live broker, a stale socket (replaced by
    // the rename), or something that is not ours to replace.
    if std::fs::symlink_metadata(path).is_ok() {
        match StdUnixStream::connect(path) {
            Ok(_) => return Err(BindError::InUse(path.to_owned())),
            Err(_) if is_socket(path) => {}
            Err(error) => {
                return Err(BindError::Bind {
                    path: path.to_owned(),
                    source: error,
                })
            }
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
    let placed = set_socket_permissions(&temporary, mode, group)
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = placed {
        let _ = std::fs::remove_file(&temporary);
        return Err(failed(error));
    }
    Ok(listener)
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
