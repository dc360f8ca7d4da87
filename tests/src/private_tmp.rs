//! Scripts run in a mount namespace of their own (`unshare --mount`) with
//! empty tmpfs on `/tmp` and `/run`, so the fixed paths of the socket rule
//! (`/tmp/mailbox-UID/`, `/run/mailbox/`) are the test's own and a real
//! broker on this machine is out of the way.

use std::process::{Command, Output};

use crate::{binary, require_tool};

/// Runs `script` (`sh`, as root) in a namespace where `/tmp` and `/run` are
/// empty tmpfs, with `$MAILBOXD` and `$MAILBOXCTL` naming copies of the
/// binaries in `/tmp/bin` (root's, mode 0755, so every user may run them).
///
/// The binaries are opened before the mounts and copied from those open
/// descriptors, because the target directory itself may be under `/tmp`
/// (a clone there) and would be hidden by the new `/tmp`.
pub fn run(script: &str) -> Output {
    let unshare = require_tool("unshare", "apt-get install util-linux");
    require_tool("setpriv", "apt-get install util-linux");
    let script = format!(
        "set -eu\n\
         exec 3<\"$MAILBOXD\" 4<\"$MAILBOXCTL\"\n\
         mount -t tmpfs -o mode=1777 tmpfs /tmp\n\
         mount -t tmpfs -o mode=0755 tmpfs /run\n\
         mkdir -m 0755 /tmp/bin\n\
         cat <&3 >/tmp/bin/mailboxd\n\
         cat <&4 >/tmp/bin/mailboxctl\n\
         exec 3<&- 4<&-\n\
         chmod 0755 /tmp/bin/mailboxd /tmp/bin/mailboxctl\n\
         MAILBOXD=/tmp/bin/mailboxd\n\
         MAILBOXCTL=/tmp/bin/mailboxctl\n\
         {script}"
    );
    Command::new(unshare)
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("MAILBOXD", binary("mailboxd"))
        .env("MAILBOXCTL", binary("mailboxctl"))
        .output()
        .expect("run unshare")
}
