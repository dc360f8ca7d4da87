//! Where the broker's socket is, for the broker and its clients alike.

use std::ffi::OsString;
use std::path::PathBuf;

/// Environment variable naming the socket explicitly.
pub const SOCKET_ENV: &str = "MAILBOX_SOCKET";

/// The socket used when nothing else names one.
pub const SYSTEM_SOCKET: &str = "/run/mailbox/mailboxd.sock";

/// The socket path in force: `explicit` if given, else `$MAILBOX_SOCKET`, else
/// `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`, else [`SYSTEM_SOCKET`].
///
/// ```
/// use mailbox_proto::socket_path::resolve_with;
/// let env = |key: &str| (key == "XDG_RUNTIME_DIR").then(|| "/run/user/1000".into());
/// assert_eq!(
///     resolve_with(None, env),
///     std::path::PathBuf::from("/run/user/1000/mailbox/mailboxd.sock")
/// );
/// ```
pub fn resolve_with(explicit: Option<PathBuf>, env: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    if let Some(path) = explicit {
        return path;
    }
    if let Some(path) = env(SOCKET_ENV).filter(|value| !value.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR").filter(|value| !value.is_empty()) {
        return PathBuf::from(dir).join("mailbox").join("mailboxd.sock");
    }
    PathBuf::from(SYSTEM_SOCKET)
}

/// [`resolve_with`] over the process environment.
pub fn resolve(explicit: Option<PathBuf>) -> PathBuf {
    resolve_with(explicit, |key| std::env::var_os(key))
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

    #[test]
    fn explicit_path_wins() {
        let env = env_of(&[("MAILBOX_SOCKET", "/a"), ("XDG_RUNTIME_DIR", "/b")]);
        assert_eq!(resolve_with(Some("/x".into()), env), PathBuf::from("/x"));
    }

    #[test]
    fn env_variable_beats_runtime_dir() {
        let env = env_of(&[("MAILBOX_SOCKET", "/a.sock"), ("XDG_RUNTIME_DIR", "/b")]);
        assert_eq!(resolve_with(None, env), PathBuf::from("/a.sock"));
    }

    #[test]
    fn system_socket_is_the_last_resort() {
        assert_eq!(
            resolve_with(None, env_of(&[])),
            PathBuf::from(SYSTEM_SOCKET)
        );
        let empty = env_of(&[("MAILBOX_SOCKET", ""), ("XDG_RUNTIME_DIR", "")]);
        assert_eq!(resolve_with(None, empty), PathBuf::from(SYSTEM_SOCKET));
    }
}
