//! What mailboxctl says when it fails: one line on stderr, `<what
//! happened>; <what to do>`, about the command that was given (its
//! mailbox, its process, its time limit), and the exit code that goes with
//! it ([`exit::code`]).

use std::io;

use mailbox_client::{Address, Error, ErrorKind};

use crate::args::{Command, RegionCommand, StageArg};
use crate::exit;

/// A failure to report: one line (`<what happened>; <what to do>`) and an exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    /// `<what happened>; <what to do>`, on one line.
    pub(crate) line: String,
    /// The exit code ([`exit`]).
    pub(crate) code: u8,
}

impl Failure {
    /// A failure of mailboxctl's own: what happened, what to do, and its code.
    pub(crate) fn new(code: u8, what: impl AsRef<str>, todo: impl AsRef<str>) -> Self {
        Self {
            line: format!("{}; {}", one_line(what.as_ref()), one_line(todo.as_ref())),
            code,
        }
    }

    /// A client error while running `command`.
    pub(crate) fn client(error: Error, command: &Command) -> Self {
        Self {
            line: one_line(&describe(&error, command)),
            code: exit::code(&error),
        }
    }

    /// A failure of the `--as NAME` claim.
    pub(crate) fn claim(error: Error, name: &str, command: &Command) -> Self {
        let code = exit::code(&error);
        match error.kind() {
            Some(ErrorKind::NameTaken) => Self::new(
                code,
                format!("the name {name} is held by another process"),
                "see who holds it with `mailboxctl names`, or pick another name for --as",
            ),
            Some(ErrorKind::InvalidName) => Self::new(
                code,
                format!("invalid name {name:?} for --as"),
                "use 1 to 255 of letters, digits and . _ / -",
            ),
            _ => Self::client(error, command),
        }
    }

    /// Standard output could not be written.
    pub(crate) fn stdout(error: io::Error) -> Self {
        Self::new(
            exit::FAILURE,
            format!("cannot write to standard output: {error}"),
            "check where mailboxctl's output goes (the message is lost if it was received)",
        )
    }
}

/// Keeps a failure on one line whatever the broker put in its message.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// What happened and what to do about it, for a client error.
fn describe(error: &Error, command: &Command) -> String {
    let name = command.mailbox().unwrap_or("?");
    let subject = command.subject();
    let waited = match command {
        Command::Send { wait, .. } | Command::Recv { wait, .. } => wait.timeout,
        Command::Call { timeout, .. } => *timeout,
        _ => None,
    };
    let within = waited.map(|d| format!(" within {d:?}")).unwrap_or_default();
    // The broker's own message, up to its own advice (which ours replaces).
    let broker_message =
        |error: &mailbox_client::BrokerError| match error.message.split("; ").next().map(str::trim)
        {
            Some(said) if !said.is_empty() => said.to_owned(),
            _ => error.kind.to_string(),
        };
    let bug = "this looks like a bug; please report it with the broker's log";
    match error {
        Error::Connect { .. } => error.to_string(),
        Error::UntrustedBroker { .. } => {
            format!("{error} (or pass --broker-uid); else check --socket and $MAILBOX_SOCKET")
        }
        Error::NoAnswer { waited } => format!(
            "the broker did not answer within {waited:?} (the timeout plus a grace of {:?}); \
             it may be stopped (SIGSTOP) or overloaded: check mailboxd's state and log",
            mailbox_client::ANSWER_GRACE
        ),
        Error::Disconnected => {
            "the broker closed the connection; check that mailboxd is still running and read its log".to_owned()
        }
        Error::Io(io) => {
            format!("i/o error talking to the broker: {io}; check that mailboxd is still running")
        }
        Error::Protocol(what) => format!(
            "the broker sent something unexpected ({what}); \
             use the mailboxctl that came with this mailboxd"
        ),
        Error::Rejected(refusal) => match refusal.kind {
            ErrorKind::BrokerShuttingDown => {
                "the broker is shutting down; retry once mailboxd runs again".to_owned()
            }
            ErrorKind::UnsupportedVersion => format!(
                "the broker refused this client's protocol version ({}); \
                 use the mailboxctl that came with this mailboxd",
                broker_message(refusal)
            ),
            ErrorKind::TooManyRequests => format!(
                "the broker refused the connection: {}; close other connections or ask \
                 the administrator to raise the limit in mailboxd.toml",
                broker_message(refusal)
            ),
            _ => format!(
                "the broker ended the connection ({}); read the broker's log",
                broker_message(refusal)
            ),
        },
        // mailboxctl sends no batches; described for completeness.
        Error::Partial { admitted, .. } => format!(
            "{error}; send the messages after the first {admitted} of the batch again"
        ),
        Error::Broker(refusal) => {
            let said = broker_message(refusal);
            if let Command::Region { command } = command {
                if let Some(line) = describe_region(refusal.kind, &said, command) {
                    return line;
                }
            }
            match refusal.kind {
                ErrorKind::InvalidName => match command.process() {
                    Some(Address::Name(process)) if command.mailbox().is_none() => format!(
                        "invalid process name {process:?}; \
                         use 1 to 255 of letters, digits and . _ / -"
                    ),
                    _ => format!(
                        "invalid mailbox name {name:?}; \
                         use 1 to 255 of letters, digits and . _ / -"
                    ),
                },
                ErrorKind::InvalidSettings => format!(
                    "invalid mailbox settings ({said}); \
                     fix the options (see `mailboxctl create --help`)"
                ),
                ErrorKind::MessageTooLarge => format!(
                    "message refused: {said}; send a smaller message or create the mailbox \
                     with a larger --max-size"
                ),
                ErrorKind::WrongMessageSize => format!(
                    "message refused: {said}; send exactly the mailbox's fixed size \
                     (see `mailboxctl info {name}`)"
                ),
                ErrorKind::NoSuchMailbox => {
                    format!("no mailbox named {name}; create it with `mailboxctl create {name}`")
                }
                ErrorKind::MailboxExists => format!(
                    "{said}; compare with `mailboxctl info {name}` or delete it first with \
                     `mailboxctl delete {name}`"
                ),
                ErrorKind::WouldBlock => match command {
                    Command::Recv { name: None, .. } => format!(
                        "{subject} is empty; try again later or drop --nonblock to wait"
                    ),
                    Command::Recv { .. } => format!(
                        "mailbox {name} is empty; try again later or drop --nonblock to wait"
                    ),
                    _ if command.mailbox().is_none() => format!(
                        "{subject} has no room now; try again later or drop --nonblock to wait"
                    ),
                    _ => format!(
                        "mailbox {name} has no room now (or, with capacity zero, no receiver \
                         is waiting); try again later or drop --nonblock to wait"
                    ),
                },
                ErrorKind::Timeout => match command {
                    Command::Recv { name: None, .. } => format!(
                        "no message arrived in {subject}{within}; try again or raise --timeout"
                    ),
                    Command::Recv { .. } => format!(
                        "no message arrived in {name}{within}; try again or raise --timeout"
                    ),
                    Command::Call { .. } => format!(
                        "no reply arrived{within}; the handler's late reply will be refused; \
                         try again or raise --timeout"
                    ),
                    Command::Send { stage: Some(stage), .. } if *stage != StageArg::Queued => {
                        format!(
                            "no receiver took the message from {subject}{within}, so it was \
                             withdrawn and will not be delivered; try again or raise --timeout"
                        )
                    }
                    _ if command.mailbox().is_none() => format!(
                        "no room in {subject}{within}, so the message was withdrawn and will \
                         not be delivered; try again or raise --timeout"
                    ),
                    _ => format!(
                        "no room in {name}{within}, so the message was withdrawn and will \
                         not be delivered; try again or raise --timeout"
                    ),
                },
                ErrorKind::TimeoutInFlight => format!(
                    "a receiver took the message but did not finish with it{within}; it was \
                     not withdrawn and may still be processed, so check before sending it again"
                ),
                ErrorKind::MailboxDeleted => format!(
                    "mailbox {name} was deleted while waiting; recreate it with \
                     `mailboxctl create {name}`"
                ),
                ErrorKind::BrokerFull => format!(
                    "the broker holds all it may for now ({said}); receive queued messages \
                     first or ask the administrator to raise the limit in mailboxd.toml"
                ),
                ErrorKind::BrokerShuttingDown => {
                    "the broker is shutting down; retry once mailboxd runs again".to_owned()
                }
                ErrorKind::PermissionDenied => format!(
                    "permission denied ({said}); run as a user the broker allows or ask its \
                     administrator"
                ),
                ErrorKind::NotBroadcast => format!(
                    "mailbox {name} is not a broadcast mailbox; receive from it without \
                     subscribing"
                ),
                ErrorKind::Cancelled => "the request was cancelled; try again".to_owned(),
                ErrorKind::NoSuchProcess => {
                    let process = command
                        .process()
                        .map_or_else(|| "that process".to_owned(), ToString::to_string);
                    // The broker's "no live process holds the name N" says
                    // what ours says; other words of its ("process 7 left;
                    // ...") say more.
                    let what = match said.starts_with("no live process") {
                        true => format!("no {process} is connected"),
                        false => format!("no {process} is connected: {said}"),
                    };
                    format!(
                        "{what}; start it first, or see the claimed names with `mailboxctl \
                         names`"
                    )
                }
                ErrorKind::NameTaken => format!(
                    "{said}; see who holds it with `mailboxctl names`, or pick another name"
                ),
                // Where the broker's words tell the whole story (which
                // process, which message, which mailbox), they are the
                // line, not a parenthesis repeating ours.
                ErrorKind::NoReply => format!("{said}; check the handler and call again"),
                ErrorKind::Expired => format!("{said}; send it again or raise --ttl"),
                ErrorKind::DeadLettered => format!(
                    "{said}: it was dead-lettered after as many deliveries as the mailbox \
                     allows; see its dead-letter mailbox (`mailboxctl info {name}`)"
                ),
                ErrorKind::InvalidRequest => format!(
                    "the request does not apply to {subject} ({said}); check the options \
                     against its policy (`mailboxctl info {name}`)"
                ),
                ErrorKind::CallEnded => format!("{said}; nothing to do"),
                ErrorKind::NotHeld => format!(
                    "{said}; it was settled or answered already, or came back after the \
                     mailbox's --ack-timeout"
                ),
                ErrorKind::Purged => format!(
                    "the message was purged from {subject} before a receiver took it; send it \
                     again"
                ),
                ErrorKind::SlowConsumer => format!(
                    "{said}; read faster or in batches, subscribe again, or ask the owner of \
                     {subject} for a larger --capacity"
                ),
                ErrorKind::TooManyRequests => format!(
                    "a broker limit was reached ({said}); close other connections or \
                     requests, or ask the administrator to raise it (`mailboxctl status` shows \
                     the limits)"
                ),
                ErrorKind::NoSuchRegion | ErrorKind::RegionExists => {
                    format!("{said}; see the regions with `mailboxctl region list`")
                }
                ErrorKind::NotSubscribed
                | ErrorKind::DuplicateRequestId
                | ErrorKind::ProtocolViolation
                | ErrorKind::UnsupportedVersion
                | ErrorKind::Internal => format!("the broker refused the request ({said}); {bug}"),
            }
        }
    }
}

/// What happened and what to do, for the refusals that read otherwise for
/// a region than for a mailbox; `None` for those that read alike.
fn describe_region(kind: ErrorKind, said: &str, command: &RegionCommand) -> Option<String> {
    let name = command.region().unwrap_or("?");
    Some(match kind {
        ErrorKind::InvalidName => {
            format!("invalid region name {name:?}; use 1 to 255 of letters, digits and . _ / -")
        }
        ErrorKind::InvalidSettings => format!(
            "{said}; give another --size or --mode (`mailboxctl status` shows max_region_size)"
        ),
        ErrorKind::NoSuchRegion => format!(
            "no region named {name}; create it with `mailboxctl region create {name} --size BYTES`"
        ),
        ErrorKind::RegionExists => format!(
            "{said}; compare with `mailboxctl region info {name}` or delete it first with `mailboxctl region delete {name}`"
        ),
        ErrorKind::BrokerFull => format!(
            "the region does not fit ({said}); delete regions or receive queued messages first, or ask the administrator to raise the limit in mailboxd.toml"
        ),
        ErrorKind::TooManyRequests => format!(
            "{said}; `mailboxctl region list` shows yours, `mailboxctl status` the limit"
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use mailbox_client::{BrokerError, Error, ErrorKind};

    use super::Failure;
    use crate::args::Command;
    use crate::testing::{broker, command, recv};

    #[test]
    fn failures_are_one_line_of_what_and_what_to_do() {
        let line = Failure::client(broker(ErrorKind::NoSuchMailbox), &recv("jobs")).line;
        assert_eq!(
            line,
            "no mailbox named jobs; create it with `mailboxctl create jobs`"
        );
        let line = Failure::client(broker(ErrorKind::WouldBlock), &recv("jobs")).line;
        assert!(line.starts_with("mailbox jobs is empty; "), "{line}");
        let sneaky = Error::Broker(BrokerError::new(ErrorKind::Internal, "two\nlines"));
        let line = Failure::client(sneaky, &Command::List).line;
        assert!(!line.contains('\n') && line.contains("; "), "{line}");
    }

    #[test]
    fn the_brokers_words_are_said_once() {
        let recv = command(&["recv", "news", "--timeout", "1s"]);
        for (kind, said) in [
            (
                ErrorKind::CallEnded,
                "call 3 ended: its caller stopped waiting (timeout, cancel, or it left)",
            ),
            (
                ErrorKind::NotHeld,
                "this connection holds no message 5 of jobs",
            ),
            (
                ErrorKind::NoReply,
                "process 4 took the request of call 2 and left without replying",
            ),
            (
                ErrorKind::SlowConsumer,
                "this connection's subscription to news was cut off: its backlog stayed full",
            ),
        ] {
            let line = Failure::client(Error::Broker(BrokerError::new(kind, said)), &recv).line;
            assert!(line.starts_with(&format!("{said}; ")), "{line}");
            assert_eq!(line.matches(said).count(), 1, "{line}");
        }
    }

    #[test]
    fn failures_about_processes_and_names_say_what_to_do() {
        let send = command(&["send", "--to", "worker", "hi"]);
        let line = Failure::client(broker(ErrorKind::NoSuchProcess), &send).line;
        assert!(
            line.starts_with("no process named worker is connected"),
            "{line}"
        );
        let unknown = Error::Broker(BrokerError::new(
            ErrorKind::NoSuchProcess,
            "no live process holds the name worker",
        ));
        assert_eq!(
            Failure::client(unknown, &send).line,
            "no process named worker is connected; start it first, or see the claimed \
             names with `mailboxctl names`",
            "said once, not twice"
        );
        assert!(line.contains("mailboxctl names"), "{line}");
        let line = Failure::client(broker(ErrorKind::InvalidName), &send).line;
        assert!(
            line.starts_with("invalid process name \"worker\""),
            "{line}"
        );

        let taken = Failure::claim(broker(ErrorKind::NameTaken), "svc", &Command::Names);
        assert_eq!(taken.code, 73);
        assert_eq!(
            taken.line,
            "the name svc is held by another process; see who holds it with \
             `mailboxctl names`, or pick another name for --as"
        );

        let inbox = command(&["recv", "--inbox", "--nonblock"]);
        let line = Failure::client(broker(ErrorKind::WouldBlock), &inbox).line;
        assert!(
            line.starts_with("this connection's inbox is empty; "),
            "{line}"
        );

        let call = command(&["call", "jobs", "x", "--timeout", "1s"]);
        let line = Failure::client(broker(ErrorKind::Timeout), &call).line;
        assert!(line.starts_with("no reply arrived within 1s"), "{line}");
        let failure = Failure::client(broker(ErrorKind::NoReply), &call);
        assert_eq!(failure.code, 76);

        let acked = command(&[
            "send",
            "jobs",
            "x",
            "--wait",
            "acknowledged",
            "--timeout",
            "1s",
        ]);
        let failure = Failure::client(broker(ErrorKind::TimeoutInFlight), &acked);
        assert_eq!(failure.code, 120);
        assert!(failure.line.contains("not withdrawn"), "{}", failure.line);
        for kind in [
            ErrorKind::Expired,
            ErrorKind::DeadLettered,
            ErrorKind::NotHeld,
            ErrorKind::CallEnded,
            ErrorKind::InvalidRequest,
        ] {
            let line = Failure::client(broker(kind), &acked).line;
            assert!(line.contains("; ") && !line.contains('\n'), "{line}");
        }
    }
}
