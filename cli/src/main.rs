//! `mailboxctl`: create, inspect and use the mailboxes of `mailboxd` from a
//! shell.
//!
//! It parses arguments, calls the blocking client once per step and
//! prints. It owns the command line's interface, each part in its module:
//! the arguments ([`args`]), running each command ([`commands`]), the output
//! formats ([`output`]), the exit codes ([`exit`], the one table) and the
//! one-line failure messages ([`failure`]), the completion scripts and
//! manual pages ([`documents`]); `recv --exec`'s command is
//! [`exec`]'s, the rates of `status` and `top` are [`top`]'s. It has no
//! protocol logic of its own.

mod args;
mod commands;
mod documents;
mod exec;
mod exit;
mod failure;
mod output;
#[cfg(test)]
mod testing;
mod top;

use std::process::ExitCode;

use args::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse_checked();
    match commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("mailboxctl: {}", failure.line);
            ExitCode::from(failure.code)
        }
    }
}
