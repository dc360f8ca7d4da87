//! Processes and what they share: the role processes the orchestrator
//! re-executes from its own binary (and the line protocol it speaks with
//! them), the daemons it starts (`mailboxd`, `redis-server`), the
//! monotonic clock every process reads, resident memory, file-descriptor
//! limits, and the interrupt flag.
//!
//! Every process started here is killed when its handle is dropped, so a
//! failed or interrupted run leaves nothing behind.
//!
//! The protocol between the orchestrator and a role: the role prints
//! `ready` once it is set up; a producer then waits for `go` on its stdin;
//! at the end the role prints one JSON object (its report) and exits 0.
//! Anything else on stdout, or another exit, fails the run.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;

/// What a role prints once it is set up.
const READY: &str = "ready";
/// What the orchestrator writes to start a producer.
const GO: &str = "go";

/// Nanoseconds of `CLOCK_MONOTONIC`: one clock for every process of the run,
/// so that a consumer's timestamps compare with another process's.
pub fn now_ns() -> u64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut time) };
    (time.tv_sec as u64) * 1_000_000_000 + time.tv_nsec as u64
}

/// Seconds between two [`now_ns`] readings.
pub fn seconds_between(start_ns: u64, end_ns: u64) -> f64 {
    end_ns.saturating_sub(start_ns) as f64 / 1e9
}

/// Resident memory of process `pid` (`VmRSS` of `/proc/<pid>/status`), MiB.
pub fn rss_mib(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow!("{path} has no VmRSS line"))?;
    let kib: f64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("reading {line:?} of {path}"))?;
    Ok(kib / 1024.0)
}

/// CPU time process `pid` has used so far, nanoseconds: the sum over its
/// threads of the first field of `/proc/<pid>/task/<tid>/schedstat` (time
/// on a CPU, user and system, in ns). `/proc/<pid>/stat`'s `utime` +
/// `stime` count the same in clock ticks (10 ms here), too coarse for the
/// few milliseconds a short run costs the broker. A thread that exits
/// between two readings takes its time with it (the broker's threads live
/// as long as it does).
pub fn cpu_ns(pid: u32) -> Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0u64;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = entry?.path().join("schedstat");
        // A thread gone since the listing has nothing more to count.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let on_cpu: u64 = text
            .split_whitespace()
            .next()
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| anyhow!("{} is not a schedstat line: {text:?}", path.display()))?;
        total = total.saturating_add(on_cpu);
    }
    Ok(total)
}

/// Raises this process's open-file limit towards `wanted` (the hard limit
/// too, which works as root); children inherit it. Returns the soft limit
/// in force afterwards.
pub fn raise_fd_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur >= wanted {
        return limit.rlim_cur;
    }
    let raised = libc::rlimit {
        rlim_cur: wanted,
        rlim_max: limit.rlim_max.max(wanted),
    };
    // SAFETY: `raised` is a valid rlimit; failure leaves the limit unchanged.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return wanted;
    }
    let soft_to_hard = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above; raising the soft limit up to the hard one is allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft_to_hard) } == 0 {
        limit.rlim_max
    } else {
        limit.rlim_cur
    }
}

/// Whether this process runs as root (and may change kernel limits).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT and SIGTERM into a flag that every wait checks, so that an
/// interrupted run still drops its guards (restores the POSIX mq limits,
/// kills its processes) instead of dying on the spot.
pub fn install_interrupt_handler() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; `action` is fully initialised.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_interrupt as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// Whether the run was interrupted.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The time a run may take before it counts as hung.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// A deadline `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + limit,
        }
    }

    /// Fails once the deadline passed or the run was interrupted.
    pub fn check(&self, what: &str) -> Result<()> {
        if interrupted() {
            bail!("interrupted while waiting for {what}");
        }
        if Instant::now() >= self.at {
            bail!("timed out waiting for {what}");
        }
        Ok(())
    }

    /// Polls `condition` every few milliseconds until it holds.
    pub fn wait_until(
        &self,
        what: &str,
        mut condition: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        while !condition()? {
            self.check(what)?;
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

/// Looks `name` up on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Finds `mailboxd`: `explicit`, else `$MAILBOXD_BIN`, else beside this
/// binary (the same `target/<profile>/` directory).
pub fn find_mailboxd(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = explicit.or_else(|| std::env::var_os("MAILBOXD_BIN").map(PathBuf::from)) {
        if is_executable(&path) {
            return Ok(path);
        }
        bail!("{} is not an executable mailboxd", path.display());
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let beside = exe
        .parent()
        .map(|dir| dir.join("mailboxd"))
        .filter(|path| is_executable(path))
        .ok_or_else(|| {
            anyhow!(
                "mailboxd not found beside {}; build it (cargo build --release -p \
                 mailbox-broker) or pass --mailboxd PATH / set MAILBOXD_BIN",
                exe.display()
            )
        })?;
    Ok(beside)
}

/// A role process: this binary re-executed with the hidden `role` subcommand.
#[derive(Debug)]
pub struct RoleProcess {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    exited: Option<ExitStatus>,
}

impl RoleProcess {
    /// Starts `mailbox-bench role ARGS`, named `name` in messages.
    pub fn spawn(name: impl Into<String>, args: Vec<OsString>) -> Result<RoleProcess> {
        let name = name.into();
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut child = Command::new(exe)
            .arg("role")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("{name} has no stdout"))?;
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(RoleProcess {
            name,
            child,
            stdin,
            lines,
            exited: None,
        })
    }

    /// The next line the role prints.
    fn next_line(&mut self, deadline: Deadline, what: &str) -> Result<String> {
        loop {
            match self.lines.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => return Ok(line),
                Err(RecvTimeoutError::Timeout) => {
                    deadline.check(&format!("{} {what}", self.name))?;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(deadline)?;
                    bail!(
                        "{} ended ({status}) before {what}; its error is above",
                        self.name
                    );
                }
            }
        }
    }

    /// Waits until the role is set up.
    pub fn wait_ready(&mut self, deadline: Deadline) -> Result<()> {
        let line = self.next_line(deadline, "to be ready")?;
        if line != READY {
            bail!("{} said {line:?} instead of {READY:?}", self.name);
        }
        Ok(())
    }

    /// Tells a waiting producer to start.
    pub fn go(&mut self) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("{} cannot be told to go twice", self.name))?;
        writeln!(stdin, "{GO}").with_context(|| format!("telling {} to go", self.name))?;
        stdin.flush()?;
        self.stdin = None;
        Ok(())
    }

    /// Waits for the role's report and for its successful exit.
    pub fn report(&mut self, deadline: Deadline) -> Result<Value> {
        let line = self.next_line(deadline, "to report")?;
        let report: Value = serde_json::from_str(&line)
            .with_context(|| format!("{} reported {line:?}, which is not JSON", self.name))?;
        let status = self.wait_exit(deadline)?;
        if !status.success() {
            bail!("{} exited with {status}", self.name);
        }
        Ok(report)
    }

    fn wait_exit(&mut self, deadline: Deadline) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.exited = Some(status);
                return Ok(status);
            }
            deadline.check(&format!("{} to exit", self.name))?;
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A daemon this run started (`mailboxd`, `redis-server`, `nats-server`): stopped with
/// SIGTERM by [`Daemon::stop`], killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    name: &'static str,
    child: Option<Child>,
}

impl Daemon {
    /// Starts `command`, then waits until `socket` accepts connections.
    pub fn start(name: &'static str, command: Command, socket: &Path) -> Result<Daemon> {
        Daemon::start_until(name, command, || UnixStream::connect(socket).is_ok())
    }

    /// Starts `command`, then waits until `ready` says it is (a daemon on
    /// TCP: its port accepts connections).
    pub fn start_until(
        name: &'static str,
        mut command: Command,
        mut ready: impl FnMut() -> bool,
    ) -> Result<Daemon> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let mut daemon = Daemon {
            name,
            child: Some(child),
        };
        let deadline = Deadline::after(Duration::from_secs(20));
        deadline.wait_until(&format!("{name} to accept connections"), || {
            if let Some(child) = daemon.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    daemon.child = None;
                    bail!("{name} exited at start ({status})");
                }
            }
            Ok(ready())
        })?;
        Ok(daemon)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Stops the daemon with SIGTERM (SIGKILL after 10 s).
    pub fn stop(self) -> Result<()> {
        self.stop_with(libc::SIGTERM)
    }

    /// Stops the daemon with `signal`, the one after which it exits with
    /// success (`nats-server`: SIGINT; it exits 1 on SIGTERM), SIGKILL
    /// after 10 s.
    pub fn stop_with(mut self, signal: libc::c_int) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = libc::pid_t::try_from(child.id())?;
        // SAFETY: `pid` is our own child, not yet reaped, so it names it.
        unsafe { libc::kill(pid, signal) };
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("{} exited with {status} when stopped", self.name);
                }
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not stop within 10 s of signal {signal}", self.name);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// In a role: tells the orchestrator it is set up.
pub fn announce_ready() -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY}")?;
    out.flush()?;
    Ok(())
}

/// In a producer: waits for the orchestrator's `go`.
pub fn wait_for_go() -> Result<()> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != GO {
        bail!("expected {GO:?} from the orchestrator, got {line:?}");
    }
    Ok(())
}

/// In a role: prints its report, the last thing it does.
pub fn emit_report(report: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{report}")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_some_cpu() {
        let before = cpu_ns(std::process::id()).expect("schedstat");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let after = cpu_ns(std::process::id()).expect("schedstat");
        assert!(after > before, "{before} -> {after}");
    }

    #[test]
    fn the_clock_moves_forward() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
        assert_eq!(seconds_between(1_000_000_000, 3_500_000_000), 2.5);
        assert_eq!(seconds_between(5, 1), 0.0);
    }

    #[test]
    fn our_own_rss_is_readable() {
        let rss = rss_mib(std::process::id()).unwrap();
        assert!(rss > 0.0);
    }
}
