//! Running the command given: read a message from stdin if it is one,
//! connect (bounded by the command's own time limit), set up this
//! connection's inbox and `--as` name, then run the command, one module per
//! group: [`mailboxes`] (create, chmod, chown, purge, delete, list, info),
//! [`messages`] (send, recv), [`peek`], [`calls`] (call), [`names`],
//! [`regions`] (`region create`, `list`, `info`, `delete`, `write`,
//! `read`) and [`status`] (status, top).
//!
//! Commands call the blocking client once per step and print through
//! [`Output`]; they decide no formats ([`crate::output`]) and no exit codes
//! ([`crate::exit`]).

mod calls;
mod mailboxes;
mod messages;
mod names;
mod peek;
mod regions;
mod status;

use std::os::unix::ffi::OsStringExt;

use mailbox_client::blocking::Client;
use mailbox_client::{Bytes, ConnectOptions, Error, MailboxSettings};

use crate::args::{Addressing, Cli, Command, RegionCommand};
use crate::documents;
use crate::failure::Failure;
use crate::output::Output;

/// One run of mailboxctl once connected: the client, where the output
/// goes, and the command (which failure messages are about).
pub(crate) struct Invocation<'a> {
    client: Client,
    out: Output,
    command: &'a Command,
}

impl<'a> Invocation<'a> {
    /// Turns a client error into the failure to report for this command.
    fn fail(&self) -> impl Fn(Error) -> Failure + 'a {
        let command = self.command;
        move |error| Failure::client(error, command)
    }
}

/// Runs `cli`'s command to the end.
pub(crate) fn run(cli: &Cli) -> Result<(), Failure> {
    let command = &cli.command;
    // Printed from the command line's definition: no broker needed.
    match command {
        Command::Completions { shell } => return documents::completions(*shell),
        Command::Manual { dir } => return documents::manual(dir.as_deref()),
        _ => {}
    }
    // Read stdin before connecting, so a slow producer holds no connection.
    let stdin_payload = match command {
        Command::Send { to, file: None, .. } | Command::Call { to, .. } if to.message.is_none() => {
            Some(messages::read_stdin()?)
        }
        _ => None,
    };
    let payload = |to: &Addressing| match (&to.message, &stdin_payload) {
        (Some(message), _) => Bytes::from(message.clone().into_vec()),
        (None, Some(payload)) => payload.clone(),
        (None, None) => Bytes::new(),
    };
    let mut invocation = connect(cli)?;
    let invocation = &mut invocation;
    match command {
        Command::Create {
            name,
            capacity,
            policy,
            max_size,
            fixed_size,
            max_deliveries,
            dead_letter,
            ttl,
            ack_timeout,
            cut_slow_subscribers_after,
            mode,
            group,
            ..
        } => {
            let settings = MailboxSettings {
                capacity: *capacity,
                policy: *policy,
                max_message_size: *max_size,
                fixed_size: *fixed_size,
                max_deliveries: *max_deliveries,
                dead_letter: dead_letter.clone(),
                ttl_millis: *ttl,
                ack_timeout_millis: *ack_timeout,
                cut_slow_subscribers_after_millis: *cut_slow_subscribers_after,
            };
            mailboxes::create(invocation, name, settings, *mode, *group)
        }
        Command::Chmod { name, mode, .. } => mailboxes::chmod(invocation, name, *mode),
        Command::Chown { name, owner, .. } => mailboxes::chown(invocation, name, *owner),
        Command::Purge { name, .. } => mailboxes::purge(invocation, name),
        Command::Delete { name, .. } => mailboxes::delete(invocation, name),
        Command::List => mailboxes::list(invocation),
        Command::Info { name } => mailboxes::info(invocation, name),
        Command::Region { command } => match command {
            RegionCommand::Create {
                name,
                size,
                mode,
                group,
                ..
            } => regions::create(invocation, name, *size, *mode, *group),
            RegionCommand::List => regions::list(invocation),
            RegionCommand::Info { name } => regions::info(invocation, name),
            RegionCommand::Delete { name, .. } => regions::delete(invocation, name),
            RegionCommand::Write { name, offset, .. } => regions::write(invocation, name, *offset),
            RegionCommand::Read { name, offset, len } => {
                regions::read(invocation, name, *offset, *len)
            }
        },
        Command::Names => names::names(invocation),
        Command::Status { interval } => status::status(invocation, *interval),
        Command::Top {
            interval,
            iterations,
        } => status::top(invocation, *interval, *iterations),
        Command::Send {
            to,
            stage,
            key,
            ttl,
            wait,
            file,
            ..
        } => match file {
            Some(path) => messages::send_file(
                invocation,
                to,
                path,
                stage.is_some()
                    || key.is_some()
                    || ttl.is_some()
                    || wait.wait() != mailbox_client::Wait::Forever,
            ),
            None => messages::send(
                invocation,
                to,
                payload(to),
                *stage,
                key.as_deref(),
                *ttl,
                wait,
            ),
        },
        Command::Call {
            to, timeout, key, ..
        } => calls::call(invocation, to, payload(to), *timeout, key.as_deref()),
        Command::Recv { .. } => messages::receive(invocation),
        Command::Peek { name, count, after } => peek::peek(invocation, name, *count, *after),
        // Answered above, before connecting.
        Command::Completions { .. } | Command::Manual { .. } => Ok(()),
    }
}

/// Connects as the command line says; then opens the inbox to `--inbox-mode`
/// and claims the `--as` name.
fn connect(cli: &Cli) -> Result<Invocation<'_>, Failure> {
    let command = &cli.command;
    let fail = |error| Failure::client(error, command);
    let mut options = ConnectOptions::new();
    if let Some(user) = &cli.broker_uid {
        options = options.broker_user(user.clone());
    }
    // A command with a time limit also bounds connecting by it.
    if let Some(limit) = command.time_limit() {
        options = options.timeout(limit.saturating_add(mailbox_client::ANSWER_GRACE));
    }
    let mut client = match &cli.socket {
        Some(path) => Client::connect_with(path, &options),
        None => Client::connect_default_with(&options),
    }
    .map_err(fail)?;
    // Open the inbox before taking a name, so that nobody reaches the name
    // while the inbox still refuses them.
    if command.time_limit().is_some() {
        client.set_untimed_limit(Some(mailbox_client::ANSWER_GRACE));
    }
    if cli.inbox_mode.is_some() {
        client
            .set_inbox_permissions(cli.inbox_mode, None)
            .map_err(fail)?;
    }
    if let Some(name) = &cli.as_name {
        client
            .claim_name(name)
            .map_err(|error| Failure::claim(error, name, command))?;
    }
    Ok(Invocation {
        client,
        out: Output::new(cli.json, command),
        command,
    })
}
