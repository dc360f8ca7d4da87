//! `send` and `recv`: one message to a mailbox or a process's inbox, and
//! messages taken one by one, printed or handed to `--exec`'s command
//! ([`crate::exec`]) and settled with `--ack`. Also the message read from
//! stdin, for `send` and `call`.

use std::io::{self, Read};

use mailbox_client::blocking::Client;
use mailbox_client::{
    Bytes, Error, ErrorKind, Held, MailboxSettings, Message, ReceiveOptions, SendOptions, Source,
    Stage, Wait, MAX_MESSAGE_SIZE_LIMIT,
};
use serde_json::json;

use super::Invocation;
use crate::args::{Addressing, Command, StageArg, WaitArgs};
use crate::exec;
use crate::exit;
use crate::failure::Failure;
use crate::output;

/// `send`: `payload` to `to`, waiting for `stage` (or only until queued).
pub(super) fn send(
    invocation: &mut Invocation,
    to: &Addressing,
    payload: Bytes,
    stage: Option<StageArg>,
    key: Option<&str>,
    ttl: Option<u64>,
    wait: &WaitArgs,
) -> Result<(), Failure> {
    let client = &mut invocation.client;
    let plain = to.to.is_none() && stage.is_none() && key.is_none() && ttl.is_none();
    let receipt = match to.mailbox() {
        // The protocol's first send, for what it can say.
        Some(mailbox) if plain => client.send_with(mailbox, payload, wait.wait()),
        _ => {
            let options = SendOptions {
                stage: stage.map_or(Stage::Queued, Stage::from),
                key: key.map(str::to_owned),
                ttl_millis: ttl,
            };
            client.post(to.target(), payload, options, wait.wait())
        }
    }
    .map_err(invocation.fail())?;
    say_sent(invocation, to, &receipt)
}

/// `send --file PATH`: the file's contents as a sealed memory file. Only
/// to a mailbox and without options (`with_options`): the library's file
/// send has none yet.
pub(super) fn send_file(
    invocation: &mut Invocation,
    to: &Addressing,
    path: &std::path::Path,
    with_options: bool,
) -> Result<(), Failure> {
    let mailbox =
        match to.mailbox() {
            Some(mailbox) if to.message.is_none() && !with_options => mailbox,
            _ => return Err(Failure::new(
                exit::USAGE,
                "--file sends to a MAILBOX, with no MESSAGE and no --to, --wait, --key, --ttl, \
                 --nonblock or --timeout",
                "give only the mailbox and --file PATH",
            )),
        };
    let unreadable = |error: io::Error| {
        Failure::new(
            exit::FAILURE,
            format!("cannot read {}: {error}", path.display()),
            "give a readable regular file",
        )
    };
    let mut source = std::fs::File::open(path).map_err(unreadable)?;
    let len = source.metadata().map_err(unreadable)?.len();
    let len = usize::try_from(len).map_err(|_| {
        Failure::new(
            exit::REFUSED,
            format!(
                "{} is too large for this machine's address space",
                path.display()
            ),
            "send a smaller file",
        )
    })?;
    let no_memory_file = |error: io::Error| {
        Failure::new(
            exit::FAILURE,
            format!("cannot make a sealed memory file of {len} bytes: {error}"),
            "send the bytes inline instead: mailboxctl send MAILBOX < PATH",
        )
    };
    let mut writer = mailbox_client::FileWriter::new(len).map_err(no_memory_file)?;
    source
        .read_exact(writer.as_mut_slice())
        .map_err(unreadable)?;
    let sealed = writer.seal().map_err(no_memory_file)?;
    let receipt = invocation
        .client
        .send_file(mailbox, &sealed)
        .map_err(invocation.fail())?;
    say_sent(invocation, to, &receipt)
}

/// The receipt of a send, as `-v` and `--json` print it.
fn say_sent(
    invocation: &mut Invocation,
    to: &Addressing,
    receipt: &mailbox_client::SendReceipt,
) -> Result<(), Failure> {
    if receipt.recipients == 0 && to.to.is_none() {
        eprintln!("note: no subscribers; nobody will receive it");
    }
    invocation.out.receipt(
        || json!({ "sequence": receipt.sequence, "recipients": receipt.recipients }),
        || {
            let recipients = match receipt.recipients {
                1 => "1 recipient".to_owned(),
                n => format!("{n} recipients"),
            };
            format!(
                "sent #{} to {} ({recipients})\n",
                receipt.sequence,
                invocation.command.subject()
            )
        },
    )
}

/// `recv`: takes messages one by one, prints each or hands it to `--exec`,
/// and settles it when `--ack` asks for that.
pub(super) fn receive(invocation: &mut Invocation) -> Result<(), Failure> {
    let command = invocation.command;
    let Command::Recv {
        name,
        from,
        ack,
        priority,
        exec,
        wait,
        count,
        follow,
        ..
    } = command
    else {
        return Ok(());
    };
    let fail = invocation.fail();
    let Invocation { client, out, .. } = invocation;
    let source = match name {
        Some(name) => {
            // Broadcast mailboxes need a subscription; on others the broker
            // says NotBroadcast and there is nothing to do.
            match client.subscribe(name) {
                Ok(_) => {}
                Err(error) if error.kind() == Some(ErrorKind::NotBroadcast) => {}
                Err(error) => return Err(fail(error)),
            }
            Source::Mailbox(name.clone())
        }
        None => Source::Inbox { from: from.clone() },
    };
    let options = ReceiveOptions {
        max: None,
        manual_ack: *ack,
        priority: *priority,
    };
    let mut handled = 0u64;
    let mut failed: Option<(u64, exec::Ran, String)> = None;
    // The mailbox's settings, looked up at the first message given back:
    // whether that was its last delivery.
    let mut settings: Option<Option<MailboxSettings>> = None;
    let mut give_back = |client: &mut Client, received: &Held, to_tail: bool| {
        client.nack(received, to_tail)?;
        let settings = settings.get_or_insert_with(|| {
            name.as_ref()
                .and_then(|name| client.info(name).ok())
                .map(|info| info.settings)
        });
        Ok::<_, Error>(given_back(
            name.is_some(),
            settings.as_ref(),
            &received.message,
            to_tail,
        ))
    };
    while *follow || handled < *count {
        let message = match (name, *ack, *priority) {
            // The protocol's first receive, for what it can say.
            (Some(name), false, 0) => client.receive_with(name, wait.wait()),
            _ => fetch_one(client, &source, options, wait.wait()),
        }
        .map_err(&fail)?;
        handled += 1;
        let received = Held::from_source(&source, message);
        let Some(cmd) = exec else {
            if out.json() {
                out.emit(
                    || output::message::json(name.as_deref(), &received.message),
                    String::new,
                )?;
            } else {
                out.payload(&received.message.payload)?;
            }
            // Only once the message is out (written and flushed).
            if *ack {
                client.ack(&received).map_err(&fail)?;
            }
            continue;
        };
        let cannot = |error: io::Error| {
            Failure::new(
                exit::FAILURE,
                format!("the command's output or exit was lost: {error}"),
                "check the command; an unacknowledged message goes back at the head",
            )
        };
        let ran = match exec::execute(cmd, name.as_deref(), &received.message).map_err(cannot)? {
            exec::Handed::Ran(ran) => ran,
            exec::Handed::NotStarted(error) => {
                // Nothing ran. Put the message back once, behind the others
                // (counted as a delivery, so --max-deliveries retires it in
                // the end), and take no other: this worker cannot run its
                // command, and retrying would only loop.
                let fate = match *ack {
                    true => give_back(client, &received, true).map_err(&fail)?,
                    false => "it was consumed (use --ack to have it put back)".to_owned(),
                };
                return Err(Failure::new(
                    exit::FAILURE,
                    format!(
                        "cannot start the command with sh for message #{} ({error}); {fate}",
                        received.sequence()
                    ),
                    "check that sh is on PATH and processes can be started",
                ));
            }
        };
        let call = received.message.metadata.call();
        if ran.status.success() {
            if let Some(call) = call {
                match client.reply(&received.message, ran.stdout.clone()) {
                    Ok(()) => {}
                    Err(error) if error.kind() == Some(ErrorKind::CallEnded) => {
                        eprintln!("note: the caller of call {call} stopped waiting; reply dropped");
                    }
                    Err(error) => return Err(fail(error)),
                }
            }
            if *ack {
                client.ack(&received).map_err(&fail)?;
            }
        } else {
            let fate = match (*ack, call) {
                (true, _) => give_back(client, &received, false).map_err(&fail)?,
                (false, Some(_)) => {
                    "it was consumed and the call was not answered (use --ack to have it put \
                     back)"
                        .to_owned()
                }
                (false, None) => "it was consumed (use --ack to have it put back)".to_owned(),
            };
            if *follow {
                eprintln!(
                    "note: the command failed ({}) for message #{}; {fate}",
                    ran.status,
                    received.sequence(),
                );
            }
            failed = Some((received.sequence(), ran, fate));
        }
    }
    match failed {
        None => Ok(()),
        Some((sequence, ran, fate)) => Err(Failure::new(
            exit::FAILURE,
            format!(
                "the command failed ({}) for message #{sequence}",
                ran.status
            ),
            format!("see its output above; {fate}"),
        )),
    }
}

/// What became of `message` once given back (nack), in words: put back,
/// or, when that was its last delivery (the mailbox's `--max-deliveries`,
/// told by its redelivery count), moved to its dead-letter mailbox or
/// dropped. `settings` is `None` when the mailbox's could not be read.
fn given_back(
    mailbox: bool,
    settings: Option<&MailboxSettings>,
    message: &Message,
    to_tail: bool,
) -> String {
    let end = if to_tail { "tail" } else { "head" };
    let deliveries = message.metadata.redeliveries.saturating_add(1);
    let Some(settings) = settings else {
        return match mailbox {
            // An inbox has no maximum of deliveries.
            false => format!("it was put back at the {end}"),
            true => format!(
                "it was put back at the {end}, unless that was its last delivery (see \
                 `mailboxctl info`)"
            ),
        };
    };
    match (settings.max_deliveries, &settings.dead_letter) {
        (Some(max), Some(dead_letter)) if deliveries >= max => format!(
            "that was its delivery {deliveries} of at most {max} (--max-deliveries), so it was \
             dead-lettered to {dead_letter}"
        ),
        (Some(max), None) if deliveries >= max => format!(
            "that was its delivery {deliveries} of at most {max} (--max-deliveries), so it was \
             dropped (the mailbox has no --dead-letter)"
        ),
        _ => format!("it was put back at the {end}"),
    }
}

/// One message with [`ReceiveOptions`] (`max` of `None`).
fn fetch_one(
    client: &mut Client,
    source: &Source,
    options: ReceiveOptions,
    wait: Wait,
) -> Result<Message, Error> {
    client
        .fetch(source.clone(), options, wait)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Protocol("the broker answered a receive with no message".into()))
}

/// Reads the message from standard input, but never more than the largest
/// message any mailbox accepts ([`MAX_MESSAGE_SIZE_LIMIT`]): past that it
/// stops reading and fails at once (exit 65), so that a runaway producer
/// costs neither memory nor time. (A smaller maximum of the mailbox is the
/// broker's to enforce: it answers `MessageTooLarge`, exit 65 as well.)
pub(super) fn read_stdin() -> Result<Bytes, Failure> {
    let limit = u64::from(MAX_MESSAGE_SIZE_LIMIT);
    let mut payload = Vec::new();
    io::stdin()
        .lock()
        .take(limit + 1)
        .read_to_end(&mut payload)
        .map_err(|error| {
            Failure::new(
                exit::FAILURE,
                format!("cannot read the message from standard input: {error}"),
                "pass the message as an argument instead",
            )
        })?;
    if payload.len() as u64 > limit {
        return Err(Failure::new(
            exit::REFUSED,
            format!(
                "the message on standard input is larger than {}, the most any mailbox \
                 accepts (stopped reading there)",
                output::text::human_size(limit)
            ),
            "send a smaller message, or split it into several",
        ));
    }
    Ok(Bytes::from(payload))
}

#[cfg(test)]
mod tests {
    use mailbox_proto::fixtures;

    use super::*;

    #[test]
    fn a_message_given_back_on_its_last_delivery_is_said_to_be_retired() {
        let mut message = fixtures::message(3, Bytes::from_static(b"task"));
        let settings = |dead_letter: Option<&str>| MailboxSettings {
            max_deliveries: Some(2),
            dead_letter: dead_letter.map(str::to_owned),
            ..MailboxSettings::default()
        };
        let with_dead_letters = settings(Some("jobs.dead"));
        // The first delivery of two: back it goes.
        assert_eq!(
            given_back(true, Some(&with_dead_letters), &message, false),
            "it was put back at the head"
        );
        message.metadata.redeliveries = 1;
        assert_eq!(
            given_back(true, Some(&with_dead_letters), &message, false),
            "that was its delivery 2 of at most 2 (--max-deliveries), so it was dead-lettered \
             to jobs.dead"
        );
        assert!(given_back(true, Some(&settings(None)), &message, true)
            .ends_with("so it was dropped (the mailbox has no --dead-letter)"));
        // Settings unknown: no claim it was put back for sure.
        assert!(given_back(true, None, &message, true).contains("unless that was its last"));
        assert_eq!(
            given_back(false, None, &message, true),
            "it was put back at the tail"
        );
    }
}
