//! Helpers of the unit tests: command lines parsed as `main` parses them,
//! and the broker's refusals.

use mailbox_client::{BrokerError, Error, ErrorKind};

use crate::args::{Cli, Command};

/// The broker refusing a request with `kind`.
pub(crate) fn broker(kind: ErrorKind) -> Error {
    Error::Broker(BrokerError::new(kind, "the broker's words"))
}

/// The command of a valid command line (the program's name left out).
pub(crate) fn command(args: &[&str]) -> Command {
    Cli::parse_for_test(args)
        .expect("valid command line")
        .command
}

/// The usage error of an invalid command line.
pub(crate) fn usage_error(args: &[&str]) -> clap::Error {
    Cli::parse_for_test(args).expect_err("a usage error")
}

/// `recv NAME --nonblock`.
pub(crate) fn recv(name: &str) -> Command {
    command(&["recv", name, "--nonblock"])
}
