//! `recv --exec`: running the command for one message. It owns what the
//! command gets (the payload on stdin, the metadata in its environment,
//! escaped where an environment variable cannot hold it), the line between
//! "could not hand the message over" and "the command failed", and the
//! rule that the command never outlives `mailboxctl`.
//!
//! The command runs as `sh -c CMD` in a process group of its own, with a
//! guardian: a small process forked before `sh` is executed, holding only
//! the read end of a pipe whose write end only `mailboxctl` holds. When the
//! command ends normally, `mailboxctl` writes one byte and the guardian
//! leaves; when `mailboxctl` dies (even by SIGKILL) the pipe reads end of
//! file and the guardian kills the whole group with SIGKILL, so a task is
//! never left running to be done a second time by the next worker. `sh`
//! itself also has `PR_SET_PDEATHSIG` (SIGKILL) in case the guardian is
//! gone. mailboxctl is the subreaper of what the commands leave (the
//! guardians among them) and reaps it between commands. It does not decide what becomes of the message (ack, nack): the
//! receive loop does.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{ExitStatus, Stdio};

use mailbox_client::Message;

/// What `--exec`'s command did with one message.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) status: ExitStatus,
    /// Its standard output, when the message is a call (else it is
    /// mailboxctl's own).
    pub(crate) stdout: Vec<u8>,
}

/// The outcome of handing one message to the command.
#[derive(Debug)]
pub(crate) enum Handed {
    /// The command ran (its status says how it went).
    Ran(Ran),
    /// The message could not be handed over: `sh` could not be started
    /// (spawn failed: no `sh`, no processes or memory left, ...). Nothing ran.
    NotStarted(io::Error),
}

/// The environment `--exec`'s command gets for `message`: every variable
/// to set, or to remove (so that none leaks from mailboxctl's own).
///
/// Everything is a number or a checked mailbox name except the routing key:
/// `MAILBOX_KEY_HEX` always carries its bytes in lowercase hexadecimal, and
/// `MAILBOX_KEY` carries it as it is unless it has a NUL byte (which no
/// environment variable can hold; the broker refuses such keys, older ones
/// did not): then `MAILBOX_KEY` is left out.
pub(crate) fn environment(
    mailbox: Option<&str>,
    message: &Message,
) -> Vec<(&'static str, Option<OsString>)> {
    let metadata = &message.metadata;
    let number = |n: u64| Some(OsString::from(n.to_string()));
    let key = metadata.key();
    vec![
        ("MAILBOX_MAILBOX", mailbox.map(OsString::from)),
        ("MAILBOX_SEQUENCE", number(metadata.sequence)),
        ("MAILBOX_SENDER", number(metadata.sender_connection)),
        ("MAILBOX_SENDER_PID", number(metadata.sender_pid.into())),
        ("MAILBOX_SENDER_UID", number(metadata.sender_uid.into())),
        ("MAILBOX_SENDER_GID", number(metadata.sender_gid.into())),
        ("MAILBOX_REDELIVERIES", number(metadata.redeliveries.into())),
        (
            "MAILBOX_KEY",
            key.filter(|key| !key.contains('\0')).map(OsString::from),
        ),
        (
            "MAILBOX_KEY_HEX",
            key.map(|key| OsString::from(hex(key.as_bytes()))),
        ),
        ("MAILBOX_CALL", metadata.call().and_then(number)),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Runs `sh -c cmd` with the payload on its stdin and the metadata in its
/// environment; captures its stdout when the message is a call. `Err` is a
/// failure of mailboxctl's own after the command started (reading its
/// output, waiting for it).
pub(crate) fn execute(
    cmd: &OsStr,
    mailbox: Option<&str>,
    message: &Message,
) -> Result<Handed, io::Error> {
    let mut shell = std::process::Command::new("sh");
    shell.arg("-c").arg(cmd).stdin(Stdio::piped());
    for (variable, value) in environment(mailbox, message) {
        match value {
            Some(value) => shell.env(variable, value),
            None => shell.env_remove(variable),
        };
    }
    let is_call = message.metadata.call().is_some();
    shell.stdout(if is_call {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    // One command at a time: reaping adopted orphans waits for any child,
    // which must not take a command another thread still waits for (only
    // tests run two at once).
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    adopt_orphans();
    let (watch_read, watch_write) = match pipe() {
        Ok(ends) => ends,
        Err(error) => return Ok(Handed::NotStarted(error)),
    };
    let watch = watch_read.as_raw_fd();
    // SAFETY: getpid cannot fail.
    let parent = unsafe { libc::getpid() };
    shell.process_group(0);
    // SAFETY: `guard` only makes async-signal-safe calls and allocates
    // nothing (see there).
    unsafe {
        shell.pre_exec(move || guard(watch, parent));
    }
    let spawned = shell.spawn();
    drop(watch_read);
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => return Ok(Handed::NotStarted(error)),
    };
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let payload = message.payload.clone();
    let ran = std::thread::scope(|scope| {
        // A command that does not read all of its input is no failure of
        // mailboxctl's (its exit status says how it went).
        scope.spawn(move || {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(&payload);
            }
        });
        let mut captured = Vec::new();
        if let Some(mut stdout) = stdout {
            stdout.read_to_end(&mut captured)?;
        }
        let status = child.wait()?;
        Ok::<_, io::Error>(Ran {
            status,
            stdout: captured,
        })
    })?;
    stand_down(watch_write);
    reap_orphans();
    Ok(Handed::Ran(ran))
}

/// Makes mailboxctl the reaper of what its commands leave behind (the
/// guardian, once `sh` has exited, and background processes), so that they
/// are reaped here even where PID 1 reaps nothing (or mailboxctl is PID 1).
fn adopt_orphans() {
    // SAFETY: a plain prctl on integers; failure only means init reaps.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    reap_orphans();
}

/// Reaps every adopted process that has exited, without waiting. Called
/// only between commands, when mailboxctl has no child of its own left to
/// wait for.
fn reap_orphans() {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid int to write to.
        let reaped = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if reaped <= 0 {
            return;
        }
    }
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A pipe, both ends close-on-exec: (read, write).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just opened both; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Tells the guardian the command ended normally: it leaves without
/// killing anything.
fn stand_down(watch: OwnedFd) {
    // SAFETY: writes one byte from a live buffer to a descriptor we own.
    let _ = unsafe { libc::write(watch.as_raw_fd(), b"x".as_ptr().cast(), 1) };
}

/// In the child, before `sh` is executed: asks for SIGKILL when
/// `mailboxctl` dies, and starts the guardian of the process group.
///
/// Runs between fork and exec, so it must only make async-signal-safe
/// calls and must not allocate: it calls setpgid, prctl, getppid, fork, close_range, read, kill and _exit.
fn guard(watch: RawFd, parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: plain system calls on integers.
    unsafe {
        // Also done by `process_group`; here it is sure to come first.
        if libc::setpgid(0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        // mailboxctl died before the line above: PDEATHSIG would never fire.
        if libc::getppid() != parent {
            libc::_exit(127);
        }
        match libc::fork() {
            -1 => Err(io::Error::last_os_error()),
            0 => guardian(watch),
            _ => Ok(()),
        }
    }
}

/// The guardian: holds nothing but the read end of the watch pipe, and
/// kills its process group (the command and everything it started) if
/// that pipe ends without the one byte that says the command is done.
///
/// # Safety
///
/// Only in a freshly forked child: it closes every other descriptor.
unsafe fn guardian(watch: RawFd) -> ! {
    // SAFETY: the caller is a forked child that owns all its descriptors;
    // only async-signal-safe calls follow.
    unsafe {
        close_all_but(watch);
        let mut byte = 0u8;
        let read = loop {
            let read = libc::read(watch, (&mut byte as *mut u8).cast(), 1);
            if read < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            break read;
        };
        if read == 0 {
            libc::kill(0, libc::SIGKILL);
        }
        libc::_exit(0)
    }
}

/// Closes every descriptor but `keep` (so that the guardian holds no pipe
/// of the command's and no socket of mailboxctl's open).
///
/// # Safety
///
/// Closes descriptors others may think they own: only in a forked child.
unsafe fn close_all_but(keep: RawFd) {
    let keep = keep as libc::c_uint;
    // SAFETY: close_range takes plain integers.
    let closed = unsafe {
        (keep == 0 || libc::syscall(libc::SYS_close_range, 0, keep - 1, 0) == 0)
            && libc::syscall(libc::SYS_close_range, keep + 1, libc::c_uint::MAX, 0) == 0
    };
    if !closed {
        // Kernels before 5.9: the descriptors a process is likely to have.
        for fd in 0..4096 {
            if fd != keep as RawFd {
                // SAFETY: closing a descriptor, open or not.
                unsafe { libc::close(fd) };
            }
        }
    }
}

#[cfg(test)]
mod tests;
