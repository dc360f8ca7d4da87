//! `mailboxd-files`: the large workloads with every payload a sealed
//! memory file.
//!
//! | workload | producer | consumer |
//! |---|---|---|
//! | large, fanout-large | per message: `FileWriter::new(size)`, the payload written straight into its mapping (one copy, as `uds-direct`'s `writev` copies once into the socket), sealed, `send_file` (blocking: one send in flight, the client has no pipelined file send) | `receive_pipelined` with [`receive_window`] single receives posted (a `ReceiveMany` answer carries its messages inline; a `Receive` answer carries the file), the payload a read-only mapping of the file; checked as every system checks (header, sampled body), and every byte read once more |
//!
//! Reading every byte is the consumer's share of the honest cost: a socket
//! consumer's `read` copies every byte out of the kernel, so a consumer of
//! a memory file that only sampled it would skip work the others do. The
//! mapping's page faults are paid there too.

use anyhow::{anyhow, ensure, Context as _, Result};
use mailbox_client::blocking::Client;

use mailbox_client::{FileWriter, Message, SealedFile, Wait};

use super::{connect, ended, mailbox_of, wanted};
use crate::payload::Payloads;
use crate::roles::RoleArgs;
use crate::spec::{Shape, Workload};
use crate::systems::{Deliveries, Sink, Source};

/// Receives each consumer keeps posted: the capacity for `large` (each
/// answer is a small frame and a descriptor; the 1 MiB stays in the file);
/// 4 per subscriber for `fanout-large`, whose eight subscribers share the
/// broker's room for unread replies.
pub(super) fn receive_window(workload: Workload, capacity: u32) -> usize {
    let cap = capacity.max(1) as usize;
    match workload {
        Workload::FanoutLarge => cap.min(4),
        _ => cap.min(16),
    }
}

/// The run's `note`.
pub(super) fn describe(workload: Workload, shape: &Shape) -> String {
    let fill = match Fill::from_env() {
        Ok(Fill::Slices) | Err(_) => "SealedFile::from_slices (pwritev)",
        Ok(Fill::Writer) => "FileWriter (mapped with MAP_POPULATE, written in place)",
    };
    format!(
        "form file: producer makes each file by {fill}, send_file, one in flight; consumer \
         receive_pipelined, {} receives posted each, reads every byte of the mapping",
        receive_window(workload, shape.capacity)
    )
}

/// How the producer makes each memory file: `MAILBOX_BENCH_FILE_FILL`
/// (inherited by the role processes), `slices` (the default) or `writer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// `SealedFile::from_slices`: the payload already exists (generated
    /// before the clock, as for every system), so the client's way for
    /// existing bytes is the one an expert would use: `pwritev` copies
    /// them into the file's pages, no mapping and no faults.
    Slices,
    /// `FileWriter`: map, write in place, unmap, seal (the client's way
    /// for bytes produced in place).
    Writer,
}

impl Fill {
    fn from_env() -> Result<Fill> {
        match std::env::var("MAILBOX_BENCH_FILE_FILL").as_deref() {
            Err(_) | Ok("slices") => Ok(Fill::Slices),
            Ok("writer") => Ok(Fill::Writer),
            Ok(other) => Err(anyhow!(
                "MAILBOX_BENCH_FILE_FILL={other}: expected slices or writer"
            )),
        }
    }
}

/// Writes each payload into a fresh memory file, seals it and sends it.
struct FileSink {
    fill: Fill,
    client: Client,
    mailbox: &'static str,
    /// Broadcast: every receipt must name this many recipients.
    recipients: Option<u32>,
}

impl Sink for FileSink {
    fn send_all(&mut self, payloads: &Payloads) -> Result<()> {
        for sequence in 0..payloads.count() {
            let file = match self.fill {
                Fill::Writer => {
                    let mut writer = FileWriter::new(payloads.size())
                        .with_context(|| format!("a memory file for message #{sequence}"))?;
                    payloads.write_into(sequence, writer.as_mut_slice());
                    writer
                        .seal()
                        .with_context(|| format!("sealing message #{sequence}"))?
                }
                Fill::Slices => {
                    let (header, body) = payloads.parts(sequence);
                    SealedFile::from_slices(&[&header[..], body])
                        .with_context(|| format!("a memory file for message #{sequence}"))?
                }
            };
            let receipt = self
                .client
                .send_file(self.mailbox, &file)
                .map_err(|error| anyhow!("sending message #{sequence} as a file: {error}"))?;
            if let Some(expected) = self.recipients {
                ensure!(
                    receipt.recipients == expected,
                    "message #{sequence} reached {} subscribers, not {expected}",
                    receipt.recipients
                );
            }
        }
        Ok(())
    }
}

/// The producer's way out.
pub(super) fn sink(args: &RoleArgs) -> Result<Box<dyn Sink>> {
    ensure!(
        args.workload.is_large(),
        "mailboxd-files runs the large workloads only"
    );
    Ok(Box::new(FileSink {
        fill: Fill::from_env()?,
        client: connect(args)?,
        mailbox: mailbox_of(args.workload),
        recipients: args.workload.is_fanout().then_some(args.consumers),
    }))
}

/// Reads every byte of `payload` once (8 at a time), so that the work
/// cannot be optimised away.
fn read_every_byte(payload: &[u8]) -> u64 {
    let mut words = payload.chunks_exact(8);
    let mut sum = 0u64;
    for word in &mut words {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        sum = sum.wrapping_add(u64::from_ne_bytes(bytes));
    }
    for &byte in words.remainder() {
        sum = sum.wrapping_add(u64::from(byte));
    }
    std::hint::black_box(sum)
}

/// Single receives posted; each message a read-only mapping of its file.
struct FileSource {
    client: Client,
    mailbox: &'static str,
    window: usize,
}

impl Source for FileSource {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        // SAFETY: sysconf reads a constant of the system.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .unwrap_or(4096)
            .max(1);
        let mut inline = 0u64;
        let received = self.client.receive_pipelined(
            self.mailbox,
            wanted(expected)?,
            self.window,
            Wait::Forever,
            |message: Message| {
                // A mapping starts on a page; bytes inline in a read
                // buffer follow a frame header and almost never do.
                if message.payload.as_ptr() as usize % page != 0 {
                    inline += 1;
                }
                read_every_byte(&message.payload);
                into.message(&message.payload);
                into.batch_end();
            },
        );
        ended(received, expected)?;
        ensure!(
            inline == 0,
            "{inline} payloads arrived inline (not page-aligned), not as memory files"
        );
        Ok(())
    }
}

/// The consumer's way in (subscribed, for `fanout-large`).
pub(super) fn source(args: &RoleArgs) -> Result<Box<dyn Source>> {
    ensure!(
        args.workload.is_large(),
        "mailboxd-files runs the large workloads only"
    );
    let mut client = connect(args)?;
    let mailbox = mailbox_of(args.workload);
    if args.workload.is_fanout() {
        client.subscribe(mailbox)?;
    }
    Ok(Box::new(FileSource {
        client,
        mailbox,
        window: receive_window(args.workload, args.capacity),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_counts() {
        let mut bytes = vec![0u8; 4099];
        assert_eq!(read_every_byte(&bytes), 0);
        bytes[4098] = 3;
        bytes[0] = 1;
        assert_eq!(read_every_byte(&bytes), 4);
    }

    #[test]
    fn windows_stay_within_the_capacity() {
        assert_eq!(receive_window(Workload::Large, 16), 16);
        assert_eq!(receive_window(Workload::FanoutLarge, 16), 4);
        assert_eq!(receive_window(Workload::Large, 2), 2);
        assert_eq!(receive_window(Workload::Large, 0), 1);
    }
}
