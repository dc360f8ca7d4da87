//! Harness for the end-to-end tests: starts a real `mailboxd` on a temporary
//! socket and runs real `mailboxctl` processes against it.
//!
//! Cargo only tells a package's own tests where its binaries are, so this
//! crate finds `mailboxd` and `mailboxctl` next to the test executable in the
//! workspace's target directory (`target/<profile>/`), or where
//! `MAILBOXD_BIN` / `MAILBOXCTL_BIN` point, and the client library's
//! examples in `target/<profile>/examples/`. The README's test command
//! builds them first (`cargo build --workspace --bins --examples`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub mod configured_broker;
pub mod other_users;
pub mod private_tmp;
pub mod raw_client;
pub mod service_manager;
pub mod watch;

/// Finds a workspace binary by name.
pub fn binary(name: &str) -> PathBuf {
    let env_name = format!("{}_BIN", name.to_ascii_uppercase());
    if let Some(path) = std::env::var_os(&env_name) {
        return PathBuf::from(path);
    }
    built(
        name,
        &format!("build it first with `cargo build --workspace --bins` or set {env_name}"),
    )
}

/// Finds an example of the workspace by name (`client/examples/NAME.rs`).
pub fn example(name: &str) -> PathBuf {
    built(
        &format!("examples/{name}"),
        "build it first with `cargo build --workspace --examples`",
    )
}

/// `target/<profile>/RELATIVE`, beside this test executable, which must
/// exist (else the test fails saying `how` to build it).
fn built(relative: &str, how: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<relative>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = profile_dir.join(relative);
    assert!(path.exists(), "{} not found; {how}", path.display());
    path
}

/// Upper bound for anything a test waits for; generous because CI machines
/// are small and shared. Tests never assert on speed.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `condition` until it holds or [`PATIENCE`] runs out.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running `mailboxd`, killed when dropped.
pub struct Broker {
    child: Option<Child>,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker on a fresh temporary socket and waits until it accepts
    /// connections.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`Broker::start`], with extra `mailboxd` arguments.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_configured(args, |_| {})
    }

    /// The broker's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The broker's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// How many descriptors the broker has open (`/proc/PID/fd`).
    pub fn descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("the broker's /proc/PID/fd")
            .count()
    }

    /// The broker's descriptors once every connection but `watcher`'s is
    /// gone and the count has stopped moving (a connection's socket closes
    /// a little after its client exits, later still on a loaded machine):
    /// for tests that no descriptor leaks.
    pub fn settled_descriptors(&self, watcher: &mut mailbox_client::blocking::Client) -> usize {
        wait_until("only the watcher is connected", || {
            watcher.status().expect("status").connections == 1
        });
        let mut last = self.descriptors();
        wait_until("the broker's descriptors settle", || {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.descriptors();
            std::mem::replace(&mut last, now) == now
        });
        last
    }

    /// A `mailboxctl` command aimed at this broker.
    pub fn ctl(&self) -> Command {
        let mut command = Command::new(binary("mailboxctl"));
        command.arg("--socket").arg(&self.socket);
        command.stdin(Stdio::null());
        command
    }

    /// Runs `mailboxctl ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.ctl().args(args).output().expect("run mailboxctl")
    }

    /// Runs `mailboxctl ARGS`, asserts it succeeded, returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "mailboxctl {args:?} failed with {:?}: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Runs `mailboxctl ARGS` with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .ctl()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mailboxctl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        child.wait_with_output().expect("wait mailboxctl")
    }

    /// Starts `mailboxctl ARGS` in the background, output captured.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let child = self
            .ctl()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mailboxctl");
        Running { child: Some(child) }
    }

    /// `mailboxctl --json info NAME`, parsed.
    pub fn info(&self, name: &str) -> serde_json::Value {
        let text = self.ok(&["--json", "info", name]);
        serde_json::from_str(text.trim()).expect("info is one JSON object")
    }

    /// Waits until `mailboxctl info NAME` shows `field == value`.
    pub fn wait_for_info(&self, name: &str, field: &str, value: u64) {
        wait_until(&format!("{name}.{field} == {value}"), || {
            self.info(name)[field].as_u64() == Some(value)
        });
    }

    /// Sends SIGTERM and waits for the broker to exit; returns its status and
    /// what it logged.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running broker");
        signal(child.id(), libc::SIGTERM);
        let status = wait_timeout(&mut child).expect("mailboxd exits after SIGTERM");
        let mut log = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut log);
        }
        (status, log)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A background `mailboxctl`, killed when dropped.
pub struct Running {
    child: Option<Child>,
}

impl Running {
    /// Wraps a child process so it is killed when dropped.
    pub fn from_child(child: Child) -> Self {
        Self { child: Some(child) }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Waits (at most [`PATIENCE`]) for it to exit; returns its output.
    pub fn finish(mut self) -> Output {
        let mut child = self.child.take().expect("running child");
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return child.wait_with_output().expect("collect output");
            }
            if start.elapsed() > PATIENCE {
                let _ = child.kill();
                let output = child.wait_with_output().expect("collect output");
                panic!(
                    "process did not finish: stderr {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits at most `limit` for it to exit; kills it and fails if it is
    /// still running then, naming it `what`.
    pub fn finish_within(mut self, limit: Duration, what: &str) -> Output {
        let started = Instant::now();
        while self.is_running() {
            assert!(
                started.elapsed() < limit,
                "{what} still runs after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.finish()
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let result = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(result, 0, "kill({pid}, {signal}) failed");
}

fn wait_timeout(child: &mut Child) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    None
}

impl Broker {
    /// Like [`Broker::start_with`], with `configure` adjusting the `mailboxd`
    /// command (environment, descriptors, stderr) before it is spawned.
    pub fn start_configured(args: &[&str], configure: impl FnOnce(&mut Command)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("run").join("mailboxd.sock");
        let mut command = Command::new(binary("mailboxd"));
        command
            .arg("--socket")
            .arg(&socket)
            .args(["--log-level", "warn"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        configure(&mut command);
        let child = command.spawn().expect("spawn mailboxd");
        Self::adopt(child, socket, dir)
    }

    /// Takes charge of a broker started some other way (socket activation,
    /// a wrapper) that listens on `socket`, keeping `dir` until it is dropped;
    /// waits until the socket accepts connections. SIGTERM goes to `child`.
    /// Fails at once, with what it said, if the process exits instead.
    pub fn adopt(child: Child, socket: PathBuf, dir: tempfile::TempDir) -> Self {
        let mut broker = Self {
            child: Some(child),
            socket,
            _dir: dir,
        };
        wait_until("mailboxd accepts connections", || {
            if let Some(child) = broker.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut said = String::new();
                    if let Some(mut stderr) = child.stderr.take() {
                        let _ = stderr.read_to_string(&mut said);
                    }
                    panic!("mailboxd exited with {status} before accepting connections: {said}");
                }
            }
            UnixStream::connect(&broker.socket).is_ok()
        });
        broker
    }
}

/// The path of an external tool the tests need, found on `PATH`; fails the
/// test, saying what to install, when it is missing (`.ci/run` installs
/// what the tests need).
pub fn require_tool(name: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed; install it with `{install}`"))
}

// ---------------------------------------------------------------------------
// Helpers for the step-3 tests: process groups, peers, gates, JSON lines.

/// A background process in a process group of its own, together with every
/// process it starts (e.g. the commands of `mailboxctl recv --exec`): the
/// whole group is killed with SIGKILL when dropped, so that no grandchild
/// outlives the test (or holds its output pipes open).
pub struct Group {
    child: Option<Child>,
}

impl Group {
    /// Spawns `command` (its stdout and stderr captured) as the leader of a
    /// new process group.
    pub fn spawn(command: &mut Command) -> Self {
        use std::os::unix::process::CommandExt;
        let child = command
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn process group");
        Self { child: Some(child) }
    }

    /// The leader's pid (also the group's id).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the leader is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Sends `signal` to the leader only (its children stay).
    pub fn signal_leader(&self, signal_number: libc::c_int) {
        signal(self.pid(), signal_number);
    }

    /// Waits (at most [`PATIENCE`]) for the leader to exit, kills what is
    /// left of its group, and returns the leader's output.
    pub fn finish(mut self) -> Output {
        let mut child = self.child.take().expect("running group");
        let pgid = child.id();
        let exited = wait_timeout(&mut child).is_some();
        kill_group(pgid);
        let output = child.wait_with_output().expect("collect output");
        assert!(
            exited,
            "process group {pgid} did not finish: stderr {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Sends `signal` to the leader, then [`finish`](Self::finish)es.
    pub fn stop(self, signal_number: libc::c_int) -> Output {
        self.signal_leader(signal_number);
        self.finish()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// SIGKILLs every process of the group `pgid` (none left is no error).
fn kill_group(pgid: u32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
    }
}

impl Running {
    /// Sends `signal` to it, then waits for it to exit; returns its output.
    pub fn stop(self, signal_number: libc::c_int) -> Output {
        signal(self.pid(), signal_number);
        self.finish()
    }
}

impl Broker {
    /// Starts `mailboxctl ARGS` in the background in a process group of its
    /// own (see [`Group`]): for `recv --exec`, whose commands are killed
    /// with it.
    pub fn spawn_group(&self, args: &[&str]) -> Group {
        Group::spawn(self.ctl().args(args))
    }

    /// A command running the client library's example `name` against this
    /// broker (found by `$MAILBOX_SOCKET`, as the examples say), stdin
    /// closed.
    pub fn example(&self, name: &str) -> Command {
        let mut command = Command::new(example(name));
        command
            .env("MAILBOX_SOCKET", &self.socket)
            .stdin(Stdio::null());
        command
    }

    /// Starts `mailbox-peer ROLE SOCKET MAILBOX COUNT` in the background,
    /// output captured.
    pub fn peer(&self, role: &str, mailbox: &str, count: u64) -> Running {
        let child = Command::new(binary("mailbox-peer"))
            .arg(role)
            .arg(&self.socket)
            .arg(mailbox)
            .arg(count.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mailbox-peer");
        Running::from_child(child)
    }

    /// `mailboxctl --json names`, parsed: one object per claimed name.
    pub fn names(&self) -> Vec<serde_json::Value> {
        json_lines(self.ok(&["--json", "names"]).as_bytes())
    }
}

/// Parses output of one JSON object per line.
pub fn json_lines(output: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(output)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line:?}")))
        .collect()
}

/// Runs `command` (a `mailboxd` expected to refuse to start) with stdout
/// and stdin null and stderr captured, and waits for it to exit; fails the
/// test, killing it, if it is still running after [`PATIENCE`].
pub fn failed_start(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailboxd");
    if wait_timeout(&mut child).is_none() {
        panic!("mailboxd started instead of refusing to");
    }
    child.wait_with_output().expect("mailboxd output")
}

/// The exit code of a process that exited normally.
pub fn exit_code(output: &Output) -> i32 {
    output.status.code().unwrap_or_else(|| {
        panic!(
            "killed by a signal ({:?}); stderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Whether `path` is a socket (a symbolic link is not followed).
pub fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// What a process wrote on stderr, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts `output` exited with `code`, showing its stderr otherwise.
#[track_caller]
pub fn assert_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: stdout {:?} stderr {:?}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A gate for shell commands (e.g. `recv --exec`) to wait at: a file that
/// does not exist until [`Gate::open`]; removed with its directory when
/// dropped.
pub struct Gate {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self {
            path: dir.path().join("open"),
            _dir: dir,
        }
    }

    /// A shell snippet that waits until the gate opens (at most
    /// [`PATIENCE`], then it fails).
    pub fn shell_wait(&self) -> String {
        let tries = PATIENCE.as_millis() / 10;
        format!(
            "i=0; while [ ! -e '{}' ]; do i=$((i+1)); [ $i -gt {tries} ] && exit 99; \
             sleep 0.01; done",
            self.path.display()
        )
    }

    /// Opens it: every waiting snippet goes on.
    pub fn open(&self) {
        std::fs::write(&self.path, b"").expect("open the gate");
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

/// One create, send and receive through the `witness` mailbox: proof that
/// the broker still serves `client` (each call sends a payload of its own).
pub fn witness_round_trip(client: &mut mailbox_client::blocking::Client) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let payload = format!("ping {}", NEXT.fetch_add(1, Ordering::Relaxed));
    client
        .create("witness", mailbox_client::MailboxSettings::default())
        .expect("create witness");
    client
        .send("witness", payload.clone())
        .expect("send to witness");
    let message = client
        .receive_timeout("witness", PATIENCE)
        .expect("receive from witness");
    assert_eq!(message.payload, payload.as_bytes());
}

/// A well-behaved client of the broker on `socket` (read timeout: a wedged
/// broker fails the test instead of hanging it).
pub fn client_at(socket: &Path) -> mailbox_client::blocking::Client {
    let stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    // Announces memory files as `connect` does.
    mailbox_client::blocking::Client::from_stream_with(
        stream,
        &mailbox_client::ConnectOptions::new(),
    )
    .expect("handshake")
}

impl Broker {
    /// A well-behaved client of this broker (see [`client_at`]).
    pub fn client(&self) -> mailbox_client::blocking::Client {
        client_at(&self.socket)
    }
}

/// A process's resident memory in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .expect("VmRSS in kB")
        * 1024
}
