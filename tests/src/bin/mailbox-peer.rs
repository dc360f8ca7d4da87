//! A producer or consumer process built on the client library, for the
//! end-to-end tests (the textbook's producer-consumer problem across real
//! processes).
//!
//! ```text
//! mailbox-peer produce SOCKET MAILBOX COUNT          blocking sends of 0..COUNT
//! mailbox-peer consume SOCKET MAILBOX COUNT          blocking receives, checked
//! mailbox-peer consume-async SOCKET MAILBOX COUNT    the same with the async client
//! ```
//!
//! Payloads are the message's index as 8 little-endian bytes. A consumer
//! checks that it gets 0..COUNT in order with increasing sequence numbers,
//! prints `ok COUNT` and exits 0; anything else exits 1 with the reason.

use std::process::ExitCode;

use mailbox_client::{blocking, Client, Message};

fn index_of(message: &Message) -> Result<u64, String> {
    let bytes: [u8; 8] = message.payload[..]
        .try_into()
        .map_err(|_| format!("payload of {} bytes, expected 8", message.payload.len()))?;
    Ok(u64::from_le_bytes(bytes))
}

struct Checker {
    next: u64,
    last_sequence: u64,
}

impl Checker {
    fn check(&mut self, message: &Message) -> Result<(), String> {
        let index = index_of(message)?;
        if index != self.next {
            return Err(format!("got message {index}, expected {}", self.next));
        }
        if message.metadata.sequence <= self.last_sequence {
            return Err(format!(
                "sequence {} after {}",
                message.metadata.sequence, self.last_sequence
            ));
        }
        self.next += 1;
        self.last_sequence = message.metadata.sequence;
        Ok(())
    }
}

fn produce(socket: &str, mailbox: &str, count: u64) -> Result<(), String> {
    let mut client = blocking::Client::connect(socket).map_err(|e| e.to_string())?;
    for index in 0..count {
        client
            .send(mailbox, index.to_le_bytes().to_vec())
            .map_err(|e| format!("send {index}: {e}"))?;
    }
    Ok(())
}

fn consume(socket: &str, mailbox: &str, count: u64) -> Result<(), String> {
    let mut client = blocking::Client::connect(socket).map_err(|e| e.to_string())?;
    let mut checker = Checker {
        next: 0,
        last_sequence: 0,
    };
    for _ in 0..count {
        let message = client.receive(mailbox).map_err(|e| e.to_string())?;
        checker.check(&message)?;
    }
    Ok(())
}

fn consume_async(socket: &str, mailbox: &str, count: u64) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = Client::connect(socket).await.map_err(|e| e.to_string())?;
        let mut checker = Checker {
            next: 0,
            last_sequence: 0,
        };
        for _ in 0..count {
            let message = client.receive(mailbox).await.map_err(|e| e.to_string())?;
            checker.check(&message)?;
        }
        Ok(())
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [role, socket, mailbox, count] = args.as_slice() else {
        eprintln!("usage: mailbox-peer produce|consume|consume-async SOCKET MAILBOX COUNT");
        return ExitCode::from(2);
    };
    let Ok(count) = count.parse::<u64>() else {
        eprintln!("mailbox-peer: COUNT must be a number, not {count:?}");
        return ExitCode::from(2);
    };
    let result = match role.as_str() {
        "produce" => produce(socket, mailbox, count),
        "consume" => consume(socket, mailbox, count),
        "consume-async" => consume_async(socket, mailbox, count),
        other => Err(format!("unknown role {other:?}")),
    };
    match result {
        Ok(()) => {
            println!("ok {count}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("mailbox-peer {role}: {why}");
            ExitCode::FAILURE
        }
    }
}
