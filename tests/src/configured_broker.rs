//! A broker started from a configuration file in a directory every user can
//! reach, with `mailboxctl` linked or copied beside it (the target directory
//! may not be reachable by other users), for clients of other uids.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::other_users::{as_uid, shared_temp_dir, OTHER};
use crate::{binary, require_tool, signal, wait_until, Broker, Running};

/// The configuration most cross-uid tests start from: a socket others can
/// connect to.
pub const OPEN_SOCKET: &str = "[socket]\nmode = \"0666\"\n";

/// A broker started from a configuration file in a directory every user
/// can reach.
pub struct ConfiguredBroker {
    /// The broker itself (root's `mailboxctl` goes through it).
    pub broker: Broker,
    config: PathBuf,
    log: PathBuf,
    ctl: PathBuf,
}

impl ConfiguredBroker {
    /// Starts `mailboxd --config FILE` with `config` as the file, plus `args`.
    pub fn start(config: &str, args: &[&str]) -> Self {
        Self::start_under(&[], "info", config, args)
    }

    /// Like [`start`](Self::start), `mailboxd` run by `wrapper` (a command
    /// and its arguments, like `prlimit --nofile=N`; none: directly) and
    /// logging at `log_level`.
    pub fn start_under(wrapper: &[&str], log_level: &str, config: &str, args: &[&str]) -> Self {
        let dir = shared_temp_dir("mailbox-configured-");
        let path = dir.path().to_owned();
        let config_path = path.join("mailboxd.toml");
        std::fs::write(&config_path, config).expect("write config");
        let ctl = path.join("mailboxctl");
        let built = binary("mailboxctl");
        if std::fs::hard_link(&built, &ctl).is_err() {
            std::fs::copy(&built, &ctl).expect("copy mailboxctl");
        }
        std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755))
            .expect("chmod mailboxctl");
        let socket = path.join("mailboxd.sock");
        let log = path.join("mailboxd.log");
        let mut command = match wrapper {
            [program, rest @ ..] => {
                let mut command = Command::new(program);
                command.args(rest).arg(binary("mailboxd"));
                command
            }
            [] => Command::new(binary("mailboxd")),
        };
        let child = command
            .arg("--config")
            .arg(&config_path)
            .arg("--socket")
            .arg(&socket)
            .args(["--log-level", log_level])
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn mailboxd");
        let broker = Broker::adopt(child, socket, dir);
        Self {
            broker,
            config: config_path,
            log,
            ctl,
        }
    }

    /// The configuration file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// What the broker logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `text` `count` times or more.
    pub fn wait_for_log(&self, text: &str, count: usize) {
        wait_until(&format!("the log says {text:?} {count} times"), || {
            self.log().matches(text).count() >= count
        });
    }

    /// Replaces the configuration file and sends SIGHUP.
    pub fn reload(&self, config: &str) {
        std::fs::write(&self.config, config).expect("rewrite config");
        signal(self.broker.pid(), libc::SIGHUP);
    }

    /// `mailboxctl ARGS` as uid:gid `OTHER`, without supplementary groups.
    pub fn as_other(&self, args: &[&str]) -> Output {
        self.as_uid(OTHER, args)
    }

    /// `mailboxctl ARGS` as uid:gid `uid`, without supplementary groups.
    pub fn as_uid(&self, uid: u32, args: &[&str]) -> Output {
        self.as_uid_command(uid, args)
            .output()
            .expect("run setpriv mailboxctl")
    }

    /// The command of [`as_uid`](Self::as_uid), to start in the background.
    pub fn as_uid_command(&self, uid: u32, args: &[&str]) -> Command {
        let mut command = as_uid(uid, &self.ctl);
        command
            .arg("--socket")
            .arg(self.broker.socket())
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// `mailboxctl ARGS` in the background as uid and gid [`OTHER`], output
    /// captured (`setpriv` execs it: the pid is mailboxctl's).
    pub fn spawn_as_other(&self, args: &[&str]) -> Running {
        let child = self
            .as_uid_command(OTHER, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn setpriv mailboxctl");
        Running::from_child(child)
    }

    /// `mailboxctl ARGS` under `setpriv IDS`.
    pub fn as_user(&self, ids: &[&str], args: &[&str]) -> Output {
        self.as_user_command(ids, args)
            .output()
            .expect("run setpriv mailboxctl")
    }

    /// The command of [`as_user`](Self::as_user), to start in the background.
    pub fn as_user_command(&self, ids: &[&str], args: &[&str]) -> Command {
        let mut command = Command::new(require_tool("setpriv", "apt-get install util-linux"));
        command
            .args(ids)
            .arg(&self.ctl)
            .arg("--socket")
            .arg(self.broker.socket())
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// `mailboxctl --json status`, parsed.
    pub fn status(&self) -> Value {
        let text = self.broker.ok(&["--json", "status"]);
        serde_json::from_str(text.trim()).expect("status is one JSON object")
    }

    /// A limit as `status` reports it.
    pub fn limit(&self, name: &str) -> u64 {
        self.status()["limits"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("status has no limit {name}: {}", self.status()))
    }

    /// Whether mailbox `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.broker.run(&["info", name]).status.success()
    }
}
