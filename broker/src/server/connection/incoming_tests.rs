//! Property tests of the descriptor bookkeeping of [`super::incoming`]:
//! arbitrary interleavings of frames that claim a descriptor (`SendFile`)
//! or none (`Status`), sent with any number of descriptors (the right one,
//! none, strays, unsealed files), split across writes at any byte, read
//! at arbitrary moments through a real socket pair with the reader's own
//! `recvmsg` and `attach`, as `reader.rs` drives them.
//!
//! The invariants: never more than [`MAX_QUEUED`] descriptors queued;
//! every file a frame keeps is one the client sent, kept by one frame
//! only; a client that sends each file with its own frame gets every one
//! attached to that frame; never a panic; and once everything is read and
//! the payloads dropped, none of the files is open or mapped in this
//! process (`/proc/self/fd`, `/proc/self/maps`, by the files' own name, so
//! that other tests running meanwhile do not count).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{IoSlice, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use mailbox_proto::{decode_client_frame, ClientFrame, ErrorKind, Request, Target, Wait};
use proptest::prelude::*;

use super::incoming::{attach, receive, MAX_QUEUED};
use crate::server::held_files::HeldFiles;

/// The name of every memory file made here (what the leak check looks for).
const NAME: &str = "incoming-prop";

/// A memory file holding `id` (8 bytes), sealed or not.
fn memfd(id: u64, sealed: bool) -> OwnedFd {
    use rustix::fs::{MemfdFlags, SealFlags};
    let file = rustix::fs::memfd_create(NAME, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .expect("memfd");
    rustix::io::write(&file, &id.to_le_bytes()).expect("write");
    let seals = if sealed {
        mailbox_proto::memfile::required_seals()
    } else {
        SealFlags::GROW
    };
    rustix::fs::fcntl_add_seals(&file, seals).expect("seal");
    file
}

/// How many of this test's memory files are open or mapped here.
fn ours_alive() -> usize {
    let open = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter(|target| target.to_string_lossy().contains(NAME))
        .count();
    let mapped = std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .filter(|line| line.contains(NAME))
        .count();
    open + mapped
}

/// One frame as the client sends it.
#[derive(Debug, Clone)]
struct Op {
    /// A `SendFile` (claims one descriptor), else a `Status` (none).
    send_file: bool,
    /// Descriptors sent with the frame's first bytes, each sealed or not
    /// (every file holds its own number).
    files: Vec<bool>,
    /// Where the frame is split (a fraction of its length): the first
    /// part goes with the descriptors, the rest in a second write.
    split: f64,
    /// Whether the reader reads (and applies) after this frame.
    read_after: bool,
}

fn op(well_behaved: bool) -> impl Strategy<Value = Op> {
    let files = if well_behaved {
        Just(Vec::new()).boxed()
    } else {
        prop::collection::vec(any::<bool>(), 0..24).boxed()
    };
    (any::<bool>(), files, 0.0..1.0f64, any::<bool>()).prop_map(
        move |(send_file, files, split, read_after)| {
            let files = if well_behaved && send_file {
                vec![true]
            } else {
                files
            };
            Op {
                send_file,
                files,
                split,
                read_after,
            }
        },
    )
}

fn request(send_file: bool) -> Request {
    if send_file {
        Request::SendFile {
            to: Target::Mailbox("q".into()),
            len: 8,
            options: Box::default(),
            wait: Wait::Never,
            payload: Bytes::new(),
        }
    } else {
        Request::Status
    }
}

/// What the reader side saw.
#[derive(Default)]
struct Reader {
    buffer: BytesMut,
    queue: VecDeque<OwnedFd>,
    /// Payloads kept, by the id of the frame that kept them.
    kept: Vec<(u64, Bytes)>,
    /// `SendFile` frames answered with an error.
    refused: usize,
    decoded: usize,
}

impl Reader {
    /// Reads until the socket is empty, applying after every read as the
    /// broker's reader does.
    fn read_all(&mut self, socket: &UnixStream, files: &Arc<HeldFiles>) {
        loop {
            self.buffer.reserve(64 * 1024);
            match receive(socket, &mut self.buffer, &mut self.queue) {
                Ok(read) if read.bytes == 0 => return,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(error) => panic!("recvmsg: {error}"),
            }
            assert!(
                self.queue.len() <= MAX_QUEUED,
                "{} queued",
                self.queue.len()
            );
            self.apply(files);
        }
    }

    fn apply(&mut self, files: &Arc<HeldFiles>) {
        while let Some(mut frame) = decode_client_frame(&mut self.buffer, u32::MAX).expect("frame")
        {
            self.decoded += 1;
            let claims = frame.descriptor_count();
            match attach(
                &mut frame,
                &mut self.queue,
                self.buffer.is_empty(),
                (files, 1000),
            ) {
                Ok(()) => {
                    if let Request::SendFile { payload, .. } = frame.request {
                        self.kept.push((frame.id, payload));
                    }
                }
                Err(error) => {
                    assert_eq!(claims, 1, "only a frame that claims one fails");
                    assert!(
                        matches!(
                            error.kind,
                            ErrorKind::InvalidRequest | ErrorKind::BrokerFull
                        ),
                        "{error:?}"
                    );
                    self.refused += 1;
                }
            }
            assert!(self.queue.len() <= MAX_QUEUED);
        }
        // As the reader: every received byte decoded, what is queued came
        // with no frame that claims it.
        if self.buffer.is_empty() {
            self.queue.clear();
        }
    }
}

/// Sends `ops` through a socket pair and reads them as the broker does;
/// also says which frame each file (by its number) was sent with.
fn run(ops: &[Op]) -> (Reader, HashMap<u64, u64>) {
    let (client, broker) = UnixStream::pair().expect("pair");
    broker.set_nonblocking(true).expect("nonblocking");
    let files = Arc::new(HeldFiles::new(usize::MAX, usize::MAX));
    let mut reader = Reader::default();
    let mut sent_with = HashMap::new();
    let mut next_file = 0u64;
    for (index, op) in ops.iter().enumerate() {
        let id = index as u64 + 1;
        let mut bytes = BytesMut::new();
        mailbox_proto::encode_frame(
            &ClientFrame {
                id,
                request: request(op.send_file),
            },
            &mut bytes,
            u32::MAX,
        )
        .expect("encodes");
        let split = ((bytes.len() as f64 * op.split) as usize).clamp(1, bytes.len());
        let sent: Vec<OwnedFd> = op
            .files
            .iter()
            .map(|&sealed| {
                next_file += 1;
                sent_with.insert(next_file, id);
                memfd(next_file, sealed)
            })
            .collect();
        let borrowed: Vec<BorrowedFd<'_>> = sent.iter().map(AsFd::as_fd).collect();
        let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(253))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        if !borrowed.is_empty() {
            assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&borrowed)));
        }
        let written = rustix::net::sendmsg(
            &client,
            &[IoSlice::new(&bytes[..split])],
            &mut control,
            rustix::net::SendFlags::empty(),
        )
        .expect("sendmsg");
        (&client).write_all(&bytes[written..]).expect("write");
        // The kernel holds them in flight now; the client's copies go.
        drop(sent);
        if op.read_after {
            reader.read_all(&broker, &files);
        }
    }
    drop(client);
    reader.read_all(&broker, &files);
    assert!(reader.buffer.is_empty(), "every frame was whole");
    assert!(reader.queue.is_empty());
    assert_eq!(reader.decoded, ops.len());
    assert_eq!(
        files.total(),
        reader.kept.iter().filter(|(_, p)| !p.is_empty()).count()
    );
    (reader, sent_with)
}

/// The number a kept file holds.
fn number(payload: &Bytes) -> u64 {
    u64::from_le_bytes(payload[..].try_into().expect("8 bytes"))
}

/// The tests here count this process's files of [`NAME`]: one at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any descriptors with any frames: bounded, each kept file kept once
    /// and one the client sent, nothing left open.
    #[test]
    fn any_descriptors_with_any_frames_are_attached_once_or_closed(
        ops in prop::collection::vec(op(false), 1..24),
    ) {
        let _alone = one_at_a_time();
        let (reader, sent_with) = run(&ops);
        let mut seen = HashSet::new();
        for (_, payload) in &reader.kept {
            prop_assert_eq!(payload.len(), 8);
            let file = number(payload);
            prop_assert!(sent_with.contains_key(&file), "file {} never sent", file);
            prop_assert!(seen.insert(file), "file {} kept twice", file);
        }
        let claims = ops.iter().filter(|op| op.send_file).count();
        prop_assert_eq!(reader.kept.len() + reader.refused, claims);
        drop(reader);
        prop_assert_eq!(ours_alive(), 0);
    }

    /// A client that sends each file with its own frame, however the
    /// bytes are split and read, gets each attached to that frame.
    #[test]
    fn each_file_sent_with_its_frame_is_attached_to_that_frame(
        ops in prop::collection::vec(op(true), 1..24),
    ) {
        let _alone = one_at_a_time();
        let (reader, sent_with) = run(&ops);
        prop_assert_eq!(reader.refused, 0);
        let claims: Vec<u64> = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.send_file)
            .map(|(index, _)| index as u64 + 1)
            .collect();
        let kept: Vec<u64> = reader.kept.iter().map(|(id, _)| *id).collect();
        prop_assert_eq!(&kept, &claims);
        for (id, payload) in &reader.kept {
            prop_assert_eq!(sent_with.get(&number(payload)), Some(id));
        }
        drop(reader);
        prop_assert_eq!(ours_alive(), 0);
    }
}

#[test]
fn two_hundred_descriptors_in_one_sendmsg_are_closed_past_the_queue_bound() {
    let ops = [Op {
        send_file: false,
        files: vec![true; 200],
        split: 0.5,
        read_after: true,
    }];
    let _alone = one_at_a_time();
    let (reader, _) = run(&ops);
    drop(reader);
    assert_eq!(ours_alive(), 0);
}
