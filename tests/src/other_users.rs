//! Clients and brokers of other users: `setpriv --reuid N --regid N
//! --clear-groups` (util-linux) runs a program as uid and gid `N`, which
//! needs root, in a directory every user can reach.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::require_tool;

/// The uid and gid clients of "another user" run as (nobody, nogroup).
pub const OTHER: u32 = 65534;

/// Whether this process is root (the cross-uid tests need to be); says so
/// when it is not, for the test to skip itself.
pub fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("note: not root, so this test cannot run clients as other uids; skipped");
    false
}

/// A command that runs `program` as uid and gid `uid`, without
/// supplementary groups (`setpriv` execs it: the pid is `program`'s).
pub fn as_uid(uid: u32, program: &Path) -> Command {
    let id = uid.to_string();
    let mut command = Command::new(require_tool("setpriv", "apt-get install util-linux"));
    command
        .args(["--reuid", &id, "--regid", &id, "--clear-groups"])
        .arg(program);
    command
}

/// A temporary directory named `prefix…` whose ancestors every user may
/// traverse, itself mode 0755.
pub fn shared_temp_dir(prefix: &str) -> tempfile::TempDir {
    let reachable = |dir: &Path| {
        dir.ancestors().all(|ancestor| {
            std::fs::metadata(ancestor).is_ok_and(|meta| meta.permissions().mode() & 0o001 != 0)
        })
    };
    let base = std::env::temp_dir();
    let base = if reachable(&base) {
        base
    } else {
        PathBuf::from("/tmp")
    };
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod temp dir");
    dir
}
