//! A producer or consumer process built on the client library, for the
//! end-to-end tests (the textbook's producer-consumer problem across real
//! processes).
//!
//! ```text
//! mailbox-peer produce SOCKET MAILBOX COUNT          blocking sends of 0..COUNT
//! mailbox-peer consume SOCKET MAILBOX COUNT          blocking receives, checked
//! mailbox-peer consume-async SOCKET MAILBOX COUNT    the same with the async client
//! mailbox-peer hold SOCKET MAILBOX COUNT             takes COUNT with manual ack, then hangs
//! mailbox-peer ack SOCKET MAILBOX COUNT              takes COUNT with manual ack, acks each
//! mailbox-peer serve-reversed SOCKET MAILBOX COUNT   takes COUNT calls, replies last first
//! mailbox-peer open SOCKET MAILBOX COUNT             opens MAILBOX by name (COUNT unused)
//! mailbox-peer open-wait SOCKET MAILBOX COUNT        the same, waiting COUNT ms for its creation
//! mailbox-peer ask SOCKET MAILBOX COUNT              COUNT requests to MAILBOX, replies from MAILBOX.rep
//! mailbox-peer echo SOCKET MAILBOX COUNT             answers COUNT requests of MAILBOX on MAILBOX.rep
//! mailbox-peer region-escape SOCKET REGION COUNT     opens REGION read-only, tries to write it anyway
//! mailbox-peer send-file SOCKET MAILBOX COUNT         sends a sealed memory file of COUNT bytes, tries to write it after
//! mailbox-peer send-files SOCKET MAILBOX COUNT        sends COUNT memory files of 4 KiB, stops at the first refusal
//! ```
//!
//! For `produce` and `consume`, payloads are the message's index as 8
//! little-endian bytes. A consumer checks that it gets 0..COUNT in order
//! with increasing sequence numbers, prints `ok COUNT` and exits 0;
//! anything else exits 1 with the reason.
//!
//! The other roles take any payload and print one line per message as it
//! goes (flushed at once, so a test can watch): `hold` prints
//! `held SEQUENCE REDELIVERIES PAYLOAD` for each message it holds and then
//! waits forever without settling them (a worker that hangs, for a test to
//! kill); `ack` prints `SEQUENCE REDELIVERIES PAYLOAD` and acknowledges it;
//! `serve-reversed` waits until it holds COUNT call requests (proof that
//! they were outstanding together), printing `request CALL SENDER PAYLOAD`
//! for each, then answers them in reverse order with the payload in upper
//! case. Payloads are printed as lossy UTF-8. `open` and `open-wait` print
//! `opened NAME owner UID mode MODE capacity CAPACITY` or, when the broker
//! refuses, `refused KIND`. `region-escape` opens a region read-only and
//! tries the two ways around that: a writable shared mapping of the
//! descriptor, and reopening it read-write through `/proc/self/fd`; it
//! prints `mapping: refused ERROR` or `mapping: allowed`, then `reopen:
//! refused ERROR` or `reopen: allowed`. `send-file` fills a memory file
//! of COUNT bytes in place with [`file_pattern`] (byte `i` is `i % 251`),
//! seals it, sends it (waiting for room), prints `sent SEQUENCE` or
//! `refused KIND`, then tries to change the file it sent: prints `write:
//! refused ERROR` or `write: allowed`, and the same for `mapping:` (a
//! writable shared mapping).
//!
//! `ask` and `echo` hold a request/reply conversation with
//! `blocking::Client::exchange` (each step one write and one answer): `ask`
//! sends the indices 0..COUNT as requests and checks that each reply is its
//! request; `echo` sends back every request it takes. When `ask`'s first
//! send is refused it prints `refused KIND, receive KIND` (the receive's
//! outcome, `Cancelled` when it was withdrawn) and exits 0.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use mailbox_client::{blocking, Client, Message, Wait};

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

/// Prints one line and flushes it, so that a watching test sees it at once.
fn say(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))
}

fn describe(message: &Message) -> String {
    format!(
        "{} {} {}",
        message.metadata.sequence,
        message.metadata.redeliveries,
        String::from_utf8_lossy(&message.payload)
    )
}

fn hold(socket: &str, mailbox: &str, count: u64) -> Result<(), String> {
    let mut client = blocking::Client::connect(socket).map_err(|e| e.to_string())?;
    let mut held = Vec::new();
    for _ in 0..count {
        let message = client
            .receive_held(mailbox, Wait::Forever)
            .map_err(|e| e.to_string())?;
        say(&format!("held {}", describe(&message.message)))?;
        held.push(message);
    }
    // Hang with everything held and the connection open, until killed.
    loop {
        std::thread::park();
    }
}

fn ack(socket: &str, mailbox: &str, count: u64) -> Result<(), String> {
    let mut client = blocking::Client::connect(socket).map_err(|e| e.to_string())?;
    for _ in 0..count {
        let held = client
            .receive_held(mailbox, Wait::Forever)
            .map_err(|e| e.to_string())?;
        say(&describe(&held.message))?;
        client
            .ack(&held)
            .map_err(|e| format!("ack {}: {e}", held.sequence()))?;
    }
    Ok(())
}

fn serve_reversed(socket: &str, mailbox: &str, count: u64) -> Result<(), String> {
    let mut client = blocking::Client::connect(socket).map_err(|e| e.to_string())?;
    let mut requests = Vec::new();
    for _ in 0..count {
        let request = client.receive(mailbox).map_err(|e| e.to_string())?;
        let call = request
            .metadata
            .call()
            .ok_or_else(|| format!("message {} is no call", request.metadata.sequence))?;
        say(&format!(
            "request {call} {} {}",
            request.metadata.sender_connection,
            String::from_utf8_lossy(&request.payload)
        ))?;
        requests.push(request);
    }
    for request in requests.iter().rev() {
        client
            .reply(request, request.payload.to_ascii_uppercase())
            .map_err(|e| format!("reply: {e}"))?;
    }
    Ok(())
}

fn open(socket: &str, mailbox: &str, wait: Option<Duration>) -> Result<(), String> {
    let mut client = blocking::Client::connect(socket).map_err(|e| e.to_string())?;
    let opened = match wait {
        None => client.open(mailbox),
        Some(timeout) => client.open_timeout(mailbox, timeout),
    };
    match opened {
        Ok(info) => say(&format!(
            "opened {} owner {} mode {:03o} capacity {}",
            info.name, info.owner_uid, info.mode, info.settings.capacity
        )),
        Err(error) => match error.kind() {
            Some(kind) => say(&format!("refused {kind:?}")),
            None => Err(error.to_string()),
        },
    }
}

fn ask(socket: &str, mailbox: &str, count: u64) -> Result<(), String> {
    let mut client = blocking::Client::connect(socket).map_err(|e| e.to_string())?;
    let replies = format!("{mailbox}.rep");
    for index in 0..count {
        let request = index.to_le_bytes().to_vec();
        let (sent, received) = client.exchange(mailbox, request.clone(), &replies);
        if let Err(error) = sent {
            let kind = error
                .kind()
                .ok_or_else(|| format!("send {index}: {error}"))?;
            let receive = match received {
                Ok(message) => format!("took {}", describe(&message)),
                Err(error) => format!("{:?}", error.kind()),
            };
            return say(&format!("refused {kind:?}, receive {receive}"));
        }
        let reply = received.map_err(|e| format!("reply {index}: {e}"))?;
        if reply.payload[..] != request[..] {
            return Err(format!("reply {} to request {index}", describe(&reply)));
        }
    }
    Ok(())
}

fn echo(socket: &str, mailbox: &str, count: u64) -> Result<(), String> {
    let mut client = blocking::Client::connect(socket).map_err(|e| e.to_string())?;
    let replies = format!("{mailbox}.rep");
    if count == 0 {
        return Ok(());
    }
    let mut request = client.receive(mailbox).map_err(|e| e.to_string())?;
    for index in 1..count {
        let (sent, received) = client.exchange(&replies, request.payload, mailbox);
        sent.map_err(|e| format!("reply {index}: {e}"))?;
        request = received.map_err(|e| format!("request {index}: {e}"))?;
    }
    client
        .send(&replies, request.payload)
        .map_err(|e| format!("last reply: {e}"))?;
    Ok(())
}

fn region_escape(socket: &str, region: &str) -> Result<(), String> {
    use std::os::fd::{AsFd, AsRawFd};
    let mut client = blocking::Client::connect(socket).map_err(|e| e.to_string())?;
    let opened = client
        .open_region(region, mailbox_client::RegionAccess::Read)
        .map_err(|e| e.to_string())?;
    let len = opened.size() as usize;
    // SAFETY: a fresh mapping the kernel places, unmapped at once if made.
    let mapped = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            &opened,
            0,
        )
    };
    match mapped {
        Ok(address) => {
            // SAFETY: the mapping just made, of `len` bytes.
            let _ = unsafe { rustix::mm::munmap(address, len) };
            say("mapping: allowed")?;
        }
        Err(error) => say(&format!("mapping: refused {error}"))?,
    }
    let path = format!("/proc/self/fd/{}", opened.as_fd().as_raw_fd());
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    {
        Ok(_) => say("reopen: allowed"),
        Err(error) => say(&format!("reopen: refused {error}")),
    }
}

/// Byte `index` of the files `send-file` sends.
fn file_pattern(index: usize) -> u8 {
    (index % 251) as u8
}

fn send_file(socket: &str, mailbox: &str, len: u64) -> Result<(), String> {
    let mut client = blocking::Client::connect(socket).map_err(|e| e.to_string())?;
    let len = usize::try_from(len).map_err(|e| e.to_string())?;
    let mut writer = mailbox_client::FileWriter::new(len).map_err(|e| e.to_string())?;
    // One period block written byte by byte, then copied (a debug build
    // writes 100 MiB in a blink this way): the pattern repeats every 251.
    let block: Vec<u8> = (0..251 * 4096).map(file_pattern).collect();
    for chunk in writer.as_mut_slice().chunks_mut(block.len()) {
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
    let file = writer.seal().map_err(|e| e.to_string())?;
    match client.send_file(mailbox, &file) {
        Ok(receipt) => say(&format!("sent {}", receipt.sequence))?,
        Err(error) => match error.kind() {
            Some(kind) => say(&format!("refused {kind:?}"))?,
            None => return Err(error.to_string()),
        },
    }
    match rustix::io::pwrite(file.as_fd(), b"changed", 0) {
        Ok(_) => say("write: allowed")?,
        Err(error) => say(&format!("write: refused {error}"))?,
    }
    // SAFETY: a fresh mapping the kernel places, unmapped at once if made.
    let mapped = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len.max(1),
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            file.as_fd(),
            0,
        )
    };
    match mapped {
        Ok(address) => {
            // SAFETY: the mapping just made.
            let _ = unsafe { rustix::mm::munmap(address, len.max(1)) };
            say("mapping: allowed")
        }
        Err(error) => say(&format!("mapping: refused {error}")),
    }
}

/// Sends `count` memory files of 4 KiB (each its index in every byte),
/// one after the other without waiting; stops at the first refusal and
/// says it (`refused KIND after N: MESSAGE`), else `sent N`.
fn send_files(socket: &str, mailbox: &str, count: u64) -> Result<(), String> {
    let mut client = blocking::Client::connect(socket).map_err(|e| e.to_string())?;
    for index in 0..count {
        let file = mailbox_client::SealedFile::from_bytes(&[index as u8; 4096])
            .map_err(|e| e.to_string())?;
        if let Err(error) = client.send_file(mailbox, &file) {
            let Some(kind) = error.kind() else {
                return Err(error.to_string());
            };
            return say(&format!("refused {kind:?} after {index}: {error}"));
        }
    }
    say(&format!("sent {count}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [role, socket, mailbox, count] = args.as_slice() else {
        eprintln!(
            "usage: mailbox-peer produce|consume|consume-async|hold|ack|serve-reversed|open|open-wait|ask|echo|region-escape|send-file|send-files \
             SOCKET MAILBOX COUNT"
        );
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
        "hold" => hold(socket, mailbox, count),
        "ack" => ack(socket, mailbox, count),
        "serve-reversed" => serve_reversed(socket, mailbox, count),
        "open" => open(socket, mailbox, None),
        "open-wait" => open(socket, mailbox, Some(Duration::from_millis(count))),
        "ask" => ask(socket, mailbox, count),
        "echo" => echo(socket, mailbox, count),
        "region-escape" => region_escape(socket, mailbox),
        "send-file" => send_file(socket, mailbox, count),
        "send-files" => send_files(socket, mailbox, count),
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
