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

/// Gives the socket file at `path` the configured `mode` and `group` (the
/// `[socket]` section), after binding it. Unchanged where `None`.
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
