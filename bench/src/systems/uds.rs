//! `uds-direct`: the floor of any socket-based design. Producer and
//! consumer talk over a plain Unix stream socket, no broker; each message
//! is framed as a 4-byte little-endian length and the payload.
//!
//! | workload | how |
//! |---|---|
//! | stream, large | the consumer listens, the producer connects; the producer packs frames into a 64 KiB buffer and writes it in one `write` (a message larger than the buffer goes out with one `writev` of header and payload) |
//! | fanout | the producer connects to each of the 8 subscribers and writes every batch to each socket in turn (a copy per subscriber) |
//! | workq | each producer connects to every consumer and deals its messages round-robin over them, a batch buffer per consumer; consumers `poll` their producers' sockets and stop at end-of-file on all |
//! | rendezvous | one frame, then the producer waits for a 1-byte acknowledgement the consumer writes after taking it |
//! | rtt | one frame each way, one in flight |
//! | conns | not run: there is no broker to measure |
//!
//! The same roles serve `uds-relay` ([`super::relay`]): the connecting side
//! connects to the relay instead, which forwards the bytes.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use mailbox_client::Bytes;

use super::{relay, Deliveries, Echo, Requester, Running, Sink, Source};
use crate::payload::Payloads;
use crate::process::Deadline;
use crate::roles::RoleArgs;
use crate::spec::{Shape, System, Workload};

/// Bytes a producer gathers before one `write`.
pub const BATCH: usize = 64 * 1024;

/// Bytes of the length prefix.
const PREFIX: usize = 4;

/// Largest frame a consumer accepts; a larger prefix means a corrupted
/// stream (the largest workload message is 1 MiB).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Nothing to start: the roles find each other through sockets in the
/// run's directory.
pub struct Direct {
    workload: Workload,
}

impl Direct {
    /// The baseline for `workload`.
    pub fn new(workload: Workload) -> Direct {
        Direct { workload }
    }
}

impl Running for Direct {
    fn socket(&self) -> Option<&Path> {
        None
    }

    fn end_shared_queue(&mut self, _: &Shape, _: usize, _: Deadline) -> Result<()> {
        // Producers closing their sockets is the end.
        Ok(())
    }

    fn wait_for_waiting(&mut self, _: u64, _: Deadline) -> Result<()> {
        bail!("uds-direct has no waiting connections to count")
    }

    fn server_pid(&self) -> Option<u32> {
        None
    }

    fn notes(&self) -> Vec<String> {
        match self.workload {
            Workload::Rendezvous => vec!["each message acknowledged by a 1-byte reply".into()],
            Workload::Fanout | Workload::FanoutLarge => {
                vec!["one socket per subscriber, every batch written to each".into()]
            }
            Workload::Workq => {
                vec!["each producer deals round-robin over one socket per consumer".into()]
            }
            Workload::Rtt => Vec::new(),
            _ => vec![format!("writes batched up to {} KiB", BATCH / 1024)],
        }
    }

    fn stop(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// Where consumer `consumer` of a run in `dir` listens.
pub fn consumer_socket(dir: &Path, consumer: u32) -> PathBuf {
    dir.join(format!("uds-{consumer}.sock"))
}

/// Where the `rtt` echo of a run in `dir` listens.
pub fn echo_socket(dir: &Path) -> PathBuf {
    dir.join("uds-echo.sock")
}

/// Connects the role's side that connects to the listening side at `path`:
/// directly for `uds-direct`, through the relay's socket for `uds-relay`.
fn connect(args: &RoleArgs, path: &Path) -> Result<UnixStream> {
    let path = match args.system {
        System::UdsRelay => relay::relay_socket(path),
        _ => path.to_owned(),
    };
    UnixStream::connect(&path).with_context(|| format!("connecting to {}", path.display()))
}

fn prefix_of(payload: &[u8]) -> Result<[u8; PREFIX]> {
    Ok(u32::try_from(payload.len())
        .context("message too large to frame")?
        .to_le_bytes())
}

/// Writes a prefix and a payload with as few `writev` calls as possible.
fn write_frame_vectored(stream: &mut UnixStream, payload: &[u8]) -> Result<()> {
    let prefix = prefix_of(payload)?;
    let mut slices = [IoSlice::new(&prefix), IoSlice::new(payload)];
    let mut slices: &mut [IoSlice] = &mut slices;
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => bail!("the consumer closed its socket"),
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

fn append_frame(buffer: &mut Vec<u8>, payload: &[u8]) -> Result<()> {
    buffer.extend_from_slice(&prefix_of(payload)?);
    buffer.extend_from_slice(payload);
    Ok(())
}

/// How a producer spreads its messages over its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spread {
    /// Every message to every socket (one socket: plain stream).
    Copy,
    /// Message `n` to socket `n mod k`.
    RoundRobin,
}

struct BatchedSink {
    streams: Vec<UnixStream>,
    spread: Spread,
}

impl BatchedSink {
    fn flush(&mut self, buffers: &mut [Vec<u8>]) -> Result<()> {
        match self.spread {
            Spread::Copy => {
                let buffer = &mut buffers[0];
                if !buffer.is_empty() {
                    for stream in &mut self.streams {
                        stream.write_all(buffer)?;
                    }
                    buffer.clear();
                }
            }
            Spread::RoundRobin => {
                for (stream, buffer) in self.streams.iter_mut().zip(buffers.iter_mut()) {
                    if !buffer.is_empty() {
                        stream.write_all(buffer)?;
                        buffer.clear();
                    }
                }
            }
        }
        Ok(())
    }
}

impl Sink for BatchedSink {
    fn send_all(&mut self, payloads: &Payloads) -> Result<()> {
        let lanes = match self.spread {
            Spread::Copy => 1,
            Spread::RoundRobin => self.streams.len(),
        };
        let mut buffers: Vec<Vec<u8>> = (0..lanes).map(|_| Vec::with_capacity(BATCH)).collect();
        let mut scratch = Vec::new();
        for sequence in 0..payloads.count() {
            let payload = payloads.get(sequence, &mut scratch);
            if payload.len() + PREFIX > BATCH {
                self.flush(&mut buffers)?;
                match self.spread {
                    Spread::Copy => {
                        for stream in &mut self.streams {
                            write_frame_vectored(stream, payload)?;
                        }
                    }
                    Spread::RoundRobin => {
                        let lane = (sequence % lanes as u64) as usize;
                        write_frame_vectored(&mut self.streams[lane], payload)?;
                    }
                }
                continue;
            }
            let lane = (sequence % lanes as u64) as usize;
            let buffer = &mut buffers[lane];
            if buffer.len() + PREFIX + payload.len() > BATCH {
                match self.spread {
                    Spread::Copy => {
                        for stream in &mut self.streams {
                            stream.write_all(buffer)?;
                        }
                    }
                    Spread::RoundRobin => self.streams[lane].write_all(buffer)?,
                }
                buffer.clear();
            }
            append_frame(buffer, payload)?;
        }
        self.flush(&mut buffers)
    }
}

/// Rendezvous: one frame, then wait for the consumer's acknowledgement.
struct AcknowledgedSink {
    stream: UnixStream,
}

impl Sink for AcknowledgedSink {
    fn send_all(&mut self, payloads: &Payloads) -> Result<()> {
        let mut scratch = Vec::new();
        let mut frame = Vec::new();
        let mut ack = [0u8; 1];
        for sequence in 0..payloads.count() {
            frame.clear();
            append_frame(&mut frame, payloads.get(sequence, &mut scratch))?;
            self.stream.write_all(&frame)?;
            self.stream.read_exact(&mut ack)?;
        }
        Ok(())
    }
}

/// The producer's way out: connects to its consumers (already listening).
pub fn sink(args: &RoleArgs) -> Result<Box<dyn Sink>> {
    let targets: Vec<u32> = match args.workload {
        Workload::Fanout | Workload::FanoutLarge | Workload::Workq => (0..args.consumers).collect(),
        _ => vec![0],
    };
    let streams = targets
        .iter()
        .map(|&consumer| connect(args, &consumer_socket(&args.dir, consumer)))
        .collect::<Result<Vec<_>>>()?;
    Ok(match args.workload {
        Workload::Rendezvous => Box::new(AcknowledgedSink {
            stream: streams
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("no consumer"))?,
        }),
        Workload::Workq => Box::new(BatchedSink {
            streams,
            spread: Spread::RoundRobin,
        }),
        _ => Box::new(BatchedSink {
            streams,
            spread: Spread::Copy,
        }),
    })
}

/// Frames read from one socket: a buffer and the bounds of its unparsed bytes.
struct FrameReader {
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    /// The peer closed its end.
    closed: bool,
}

impl FrameReader {
    fn new(size: usize) -> FrameReader {
        let capacity = (4 * BATCH).max(2 * (size + PREFIX));
        FrameReader {
            buffer: vec![0; capacity],
            start: 0,
            end: 0,
            closed: false,
        }
    }

    /// Reads once; `Ok(false)` when the socket would block.
    fn fill(&mut self, stream: &mut UnixStream) -> Result<bool> {
        if self.start > 0 && self.buffer.len() - self.end < BATCH {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buffer.len() {
            let grown = self.buffer.len() * 2;
            self.buffer.resize(grown, 0);
        }
        loop {
            match stream.read(&mut self.buffer[self.end..]) {
                Ok(0) => {
                    self.closed = true;
                    if self.start != self.end {
                        bail!("the producer closed its socket in the middle of a message");
                    }
                    return Ok(true);
                }
                Ok(read) => {
                    self.end += read;
                    return Ok(true);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The next complete frame's payload, as a range of the buffer.
    fn next_frame(&mut self) -> Result<Option<std::ops::Range<usize>>> {
        let available = self.end - self.start;
        if available < PREFIX {
            return Ok(None);
        }
        let mut prefix = [0u8; PREFIX];
        prefix.copy_from_slice(&self.buffer[self.start..self.start + PREFIX]);
        let len = u32::from_le_bytes(prefix) as usize;
        if len > MAX_FRAME {
            bail!("a frame claims {len} bytes: the stream is corrupted");
        }
        if available < PREFIX + len {
            if PREFIX + len > self.buffer.len() {
                self.buffer.resize(2 * (PREFIX + len), 0);
            }
            return Ok(None);
        }
        let payload = self.start + PREFIX..self.start + PREFIX + len;
        self.start = payload.end;
        Ok(Some(payload))
    }

    /// Hands every complete frame to `into`, up to `limit` of them.
    fn deliver(&mut self, into: &mut dyn Deliveries, limit: u64) -> Result<u64> {
        let mut delivered = 0;
        while delivered < limit {
            let Some(frame) = self.next_frame()? else {
                break;
            };
            into.message(&self.buffer[frame]);
            delivered += 1;
        }
        if delivered > 0 {
            into.batch_end();
        }
        Ok(delivered)
    }
}

struct ListeningSource {
    listener: UnixListener,
    producers: u32,
    size: usize,
    acknowledge: bool,
}

impl ListeningSource {
    fn accept_all(&self) -> Result<Vec<UnixStream>> {
        (0..self.producers)
            .map(|_| Ok(self.listener.accept()?.0))
            .collect()
    }
}

impl Source for ListeningSource {
    fn receive_all(&mut self, expected: Option<u64>, into: &mut dyn Deliveries) -> Result<()> {
        let mut streams = self.accept_all()?;
        let limit = expected.unwrap_or(u64::MAX);
        if self.acknowledge {
            let stream = streams.first_mut().ok_or_else(|| anyhow!("no producer"))?;
            return receive_acknowledging(stream, self.size, limit, into);
        }
        if let [stream] = streams.as_mut_slice() {
            return receive_one(stream, self.size, limit, into);
        }
        receive_many(&mut streams, self.size, limit, into)
    }
}

/// One producer: blocking reads until `limit` messages or end-of-file.
fn receive_one(
    stream: &mut UnixStream,
    size: usize,
    limit: u64,
    into: &mut dyn Deliveries,
) -> Result<()> {
    let mut reader = FrameReader::new(size);
    let mut received = 0;
    while received < limit && !reader.closed {
        reader.fill(stream)?;
        received += reader.deliver(into, limit - received)?;
    }
    Ok(())
}

/// Several producers: `poll` over their sockets until `limit` messages or
/// end-of-file on all.
fn receive_many(
    streams: &mut [UnixStream],
    size: usize,
    limit: u64,
    into: &mut dyn Deliveries,
) -> Result<()> {
    for stream in streams.iter() {
        stream.set_nonblocking(true)?;
    }
    let mut readers: Vec<FrameReader> = streams.iter().map(|_| FrameReader::new(size)).collect();
    let mut received = 0;
    let mut polls: Vec<libc::pollfd> = Vec::with_capacity(streams.len());
    while received < limit && readers.iter().any(|reader| !reader.closed) {
        polls.clear();
        polls.extend(
            streams
                .iter()
                .zip(&readers)
                .filter(|(_, reader)| !reader.closed)
                .map(|(stream, _)| libc::pollfd {
                    fd: stream.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }),
        );
        // SAFETY: `polls` is a valid array of `polls.len()` pollfds whose
        // descriptors stay open for the call.
        let ready = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, -1) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error.into());
        }
        for (stream, reader) in streams.iter_mut().zip(readers.iter_mut()) {
            if reader.closed {
                continue;
            }
            while received < limit && reader.fill(stream)? && !reader.closed {
                received += reader.deliver(into, limit - received)?;
            }
        }
    }
    Ok(())
}

/// Rendezvous: acknowledge every message after taking it.
fn receive_acknowledging(
    stream: &mut UnixStream,
    size: usize,
    limit: u64,
    into: &mut dyn Deliveries,
) -> Result<()> {
    let mut reader = FrameReader::new(size);
    let mut received = 0;
    while received < limit {
        reader.fill(stream)?;
        if reader.closed {
            break;
        }
        while let Some(frame) = reader.next_frame()? {
            into.message(&reader.buffer[frame]);
            into.batch_end();
            stream.write_all(&[1])?;
            received += 1;
        }
    }
    Ok(())
}

/// The consumer's way in: listens on its socket (producers connect later).
pub fn source(args: &RoleArgs) -> Result<Box<dyn Source>> {
    let path = consumer_socket(&args.dir, args.index);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    let producers = match args.workload {
        Workload::Workq => args.producers,
        _ => 1,
    };
    Ok(Box::new(ListeningSource {
        listener,
        producers,
        size: args.size,
        acknowledge: args.workload == Workload::Rendezvous,
    }))
}

/// Reads exactly one frame into `out`.
fn read_frame(stream: &mut UnixStream, out: &mut Vec<u8>) -> Result<()> {
    let mut prefix = [0u8; PREFIX];
    stream.read_exact(&mut prefix)?;
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_FRAME {
        bail!("a frame claims {len} bytes: the stream is corrupted");
    }
    out.resize(len, 0);
    stream.read_exact(out)?;
    Ok(())
}

struct RttClient {
    stream: UnixStream,
    frame: Vec<u8>,
}

impl Requester for RttClient {
    fn round_trip(&mut self, request: &Bytes, reply: &mut Vec<u8>) -> Result<()> {
        self.frame.clear();
        append_frame(&mut self.frame, request)?;
        self.stream.write_all(&self.frame)?;
        read_frame(&mut self.stream, reply)
    }
}

/// The `rtt` requester: connects to the echo (already listening).
pub fn requester(args: &RoleArgs) -> Result<Box<dyn Requester>> {
    Ok(Box::new(RttClient {
        stream: connect(args, &echo_socket(&args.dir))?,
        frame: Vec::new(),
    }))
}

struct RttEcho {
    listener: UnixListener,
}

impl Echo for RttEcho {
    fn serve(&mut self, count: u64) -> Result<()> {
        let (mut stream, _) = self.listener.accept()?;
        let mut request = Vec::new();
        let mut frame = Vec::new();
        for _ in 0..count {
            read_frame(&mut stream, &mut request)?;
            frame.clear();
            append_frame(&mut frame, &request)?;
            stream.write_all(&frame)?;
        }
        Ok(())
    }
}

/// The `rtt` echo: listens on its socket.
pub fn echo(args: &RoleArgs) -> Result<Box<dyn Echo>> {
    let path = echo_socket(&args.dir);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    Ok(Box::new(RttEcho { listener }))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<Vec<u8>>, u32);

    impl Deliveries for Collect {
        fn message(&mut self, payload: &[u8]) {
            self.0.push(payload.to_vec());
        }
        fn batch_end(&mut self) {
            self.1 += 1;
        }
    }

    #[test]
    fn frames_survive_any_split_and_growth() {
        let (mut writer, mut reader_stream) = UnixStream::pair().unwrap();
        let big = vec![7u8; 3 * 4 * BATCH];
        let mut wire = Vec::new();
        append_frame(&mut wire, b"one").unwrap();
        append_frame(&mut wire, &big).unwrap();
        append_frame(&mut wire, b"").unwrap();
        let writer_thread = std::thread::spawn(move || {
            for chunk in wire.chunks(1000) {
                writer.write_all(chunk).unwrap();
            }
        });
        let mut collect = Collect(Vec::new(), 0);
        receive_one(&mut reader_stream, 16, 3, &mut collect).unwrap();
        writer_thread.join().unwrap();
        assert_eq!(collect.0.len(), 3);
        assert_eq!(collect.0[0], b"one");
        assert_eq!(collect.0[1], big);
        assert!(collect.0[2].is_empty());
    }

    #[test]
    fn many_producers_until_end_of_file() {
        let (mut a, a_end) = UnixStream::pair().unwrap();
        let (mut b, b_end) = UnixStream::pair().unwrap();
        let mut wire = Vec::new();
        append_frame(&mut wire, b"x").unwrap();
        a.write_all(&wire).unwrap();
        b.write_all(&wire).unwrap();
        b.write_all(&wire).unwrap();
        drop((a, b));
        let mut collect = Collect(Vec::new(), 0);
        receive_many(&mut [a_end, b_end], 16, u64::MAX, &mut collect).unwrap();
        assert_eq!(collect.0.len(), 3);
    }
}
