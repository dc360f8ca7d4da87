//! Named shared-memory regions, end to end: a real `mailboxd`, regions
//! made and used by `mailboxctl region ...` processes and by the client
//! library, their bytes shared between processes through their own
//! mappings (never through the broker); read-only enforced by the kernel;
//! rights between uids; limits; and no descriptor left behind in the
//! broker, whoever opened what, or whatever a client sent it.

use std::collections::VecDeque;
use std::io::{IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use bytes::BytesMut;
use mailbox_client::{ErrorKind, RegionAccess};
use mailbox_proto::{ClientFrame, Hello, Request, ServerFrame};
use mailbox_tests::configured_broker::{ConfiguredBroker, OPEN_SOCKET};
use mailbox_tests::other_users::root;
use mailbox_tests::{assert_exit, client_at, stderr, Broker};
use serde_json::Value;

/// `mailboxctl --json region info NAME`, parsed.
fn region_info(broker: &Broker, name: &str) -> Value {
    let text = broker.ok(&["--json", "region", "info", name]);
    serde_json::from_str(text.trim()).expect("one JSON object")
}

/// The broker's open memory files of regions (as `/proc/PID/fd` names
/// them).
fn region_files(broker: &Broker) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", broker.pid()))
        .expect("the broker's /proc/PID/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("mailbox-region:"))
        .count()
}

#[test]
fn create_list_info_and_delete_follow_the_exit_codes() {
    let broker = Broker::start();
    let created = broker.ok(&[
        "region", "create", "frames", "--size", "64K", "--mode", "0640", "-v",
    ]);
    assert!(created.contains("created region frames"), "{created}");
    // Again with the same size: nothing changes, success.
    broker.ok(&["region", "create", "frames", "--size", "65536"]);
    let info = region_info(&broker, "frames");
    assert_eq!(info["size"], 65536);
    assert_eq!(info["mode"], "0640");
    assert_eq!(info["owner_uid"], unsafe_geteuid());
    assert_eq!(info["opens"], 0);

    // Another size: exists (73); nothing of it: 66; bad name or size: 65.
    let other_size = broker.run(&["region", "create", "frames", "--size", "1K"]);
    assert_exit(&other_size, 73, "create with another size");
    assert!(stderr(&other_size).contains("region frames exists with 65536 bytes"));
    assert_exit(
        &broker.run(&["region", "info", "nothing"]),
        66,
        "info of nothing",
    );
    assert_exit(
        &broker.run(&["region", "delete", "nothing"]),
        66,
        "delete of nothing",
    );
    assert_exit(
        &broker.run(&["region", "create", "bad name", "--size", "1K"]),
        65,
        "a bad name",
    );
    let empty = broker.run(&["region", "create", "empty", "--size", "0"]);
    assert_exit(&empty, 65, "size 0");
    assert!(
        stderr(&empty).contains("at least 1 byte"),
        "{}",
        stderr(&empty)
    );

    broker.ok(&["region", "create", "audio", "--size", "4K"]);
    let listed = broker.ok(&["region", "list"]);
    let names: Vec<&str> = listed
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(names, ["audio", "frames"], "{listed}");
    let json = broker.ok(&["--json", "region", "list"]);
    assert_eq!(json.lines().count(), 2, "{json}");

    let deleted = broker.ok(&["region", "delete", "frames", "-v"]);
    assert!(deleted.contains("deleted region frames"), "{deleted}");
    assert_exit(
        &broker.run(&["region", "info", "frames"]),
        66,
        "info after delete",
    );
    assert_exit(
        &broker.run(&["region", "delete", "frames"]),
        66,
        "delete twice",
    );
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

#[test]
fn two_processes_share_a_region_through_their_own_mappings() {
    let broker = Broker::start();
    broker.ok(&["region", "create", "shared", "--size", "1M"]);
    // One process writes through its read-write mapping...
    let written = broker.run_with_input(
        &["region", "write", "shared", "--offset", "4096", "-v"],
        b"written by one process",
    );
    assert_exit(&written, 0, "region write");
    // ... another reads the same bytes through its read-only one.
    let read = broker.ok(&[
        "region", "read", "shared", "--offset", "4096", "--len", "22",
    ]);
    assert_eq!(read, "written by one process");

    // The library's mapping in this process sees them too, and what it
    // writes, the next process reads.
    let mut client = client_at(broker.socket());
    let region = client
        .open_region("shared", RegionAccess::ReadWrite)
        .expect("open");
    assert_eq!(
        (region.size(), region.access()),
        (1 << 20, RegionAccess::ReadWrite)
    );
    let mapping = region.map().expect("map");
    let mut seen = [0u8; 22];
    mapping.read_at(4096, &mut seen).expect("in bounds");
    assert_eq!(&seen, b"written by one process");
    mapping
        .write_at((1 << 20) - 5, b"tail!")
        .expect("in bounds");
    assert_eq!(
        broker.ok(&["region", "read", "shared", "--offset", "1048571"]),
        "tail!"
    );
    // A new region is all zeros, and the read stops at its end.
    let zeros = broker.ok(&["region", "read", "shared", "--offset", "0", "--len", "8"]);
    assert_eq!(zeros.as_bytes(), [0u8; 8]);
    assert_exit(
        &broker.run(&[
            "region", "read", "shared", "--offset", "1048570", "--len", "8",
        ]),
        65,
        "a read past the end",
    );
    assert_exit(
        &broker.run_with_input(
            &["region", "write", "shared", "--offset", "1048570"],
            b"too long",
        ),
        65,
        "a write past the end",
    );
    // Every open counted, the refused reads and writes too (they open
    // before they look at the size).
    assert_eq!(region_info(&broker, "shared")["opens"], 7);

    // Deleting it leaves the mapping valid: the memory stays until unmapped.
    broker.ok(&["region", "delete", "shared"]);
    mapping.write_at(0, b"still here").expect("mapped");
    let mut back = [0u8; 10];
    mapping.read_at(0, &mut back).expect("mapped");
    assert_eq!(&back, b"still here");
}

#[test]
fn a_read_only_descriptor_refuses_a_writable_mapping_in_the_kernel() {
    let broker = Broker::start();
    broker.ok(&["region", "create", "ro", "--size", "8K"]);
    let mut client = client_at(broker.socket());
    let region = client.open_region("ro", RegionAccess::Read).expect("open");
    let file = region.into_fd();
    let map = |protection| {
        // SAFETY: a fresh mapping the kernel places; unmapped below.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                protection,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            Err(std::io::Error::last_os_error())
        } else {
            // SAFETY: the mapping just made.
            unsafe { libc::munmap(address, 8192) };
            Ok(())
        }
    };
    let refused =
        map(libc::PROT_READ | libc::PROT_WRITE).expect_err("PROT_WRITE on a read-only fd");
    assert_eq!(refused.raw_os_error(), Some(libc::EACCES));
    map(libc::PROT_READ).expect("reading is allowed");
    // Nor can the descriptor be written or resized.
    let mut file = std::fs::File::from(file);
    assert!(file.write_all(b"x").is_err());
    assert!(file.set_len(1).is_err());

    // The read-write descriptor writes, and still cannot resize: sealed.
    let writable = client
        .open_region("ro", RegionAccess::ReadWrite)
        .expect("open")
        .into_fd();
    let writable = std::fs::File::from(writable);
    assert!(writable.set_len(4096).is_err(), "shrunk a sealed region");
    assert!(writable.set_len(1 << 20).is_err(), "grew a sealed region");
}

#[test]
fn a_stranger_with_the_read_right_cannot_write_through_its_descriptor() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    setup.broker.ok(&[
        "region", "create", "public", "--size", "4K", "--mode", "0644",
    ]);
    // As uid 65534 (read right only): neither a writable mapping of the
    // read-only descriptor nor a read-write reopen of it through /proc.
    let output = mailbox_tests::other_users::as_uid(
        mailbox_tests::other_users::OTHER,
        &mailbox_tests::binary("mailbox-peer"),
    )
    .args(["region-escape"])
    .arg(setup.broker.socket())
    .args(["public", "0"])
    .output()
    .expect("run mailbox-peer");
    assert_exit(&output, 0, "mailbox-peer region-escape");
    let said = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = said.lines().collect();
    assert!(lines[0].starts_with("mapping: refused"), "{said}");
    assert!(lines[1].starts_with("reopen: refused"), "{said}");
    assert!(lines[1].contains("Permission denied"), "{said}");
    // The same process as root is another story (root may do anything):
    // the rule protects other uids, not the broker's own or root.
}

#[test]
fn limits_are_reported_and_refuse_with_clear_errors() {
    let broker = Broker::start_with(&["--max-region-size", "1M", "--memory-budget", "3M"]);
    let status: Value =
        serde_json::from_str(broker.ok(&["--json", "status"]).trim()).expect("JSON");
    assert_eq!(status["limits"]["max_region_size"], 1 << 20, "{status}");
    assert_eq!(status["limits"]["max_regions_per_uid"], 64, "{status}");

    let too_large = broker.run(&["region", "create", "big", "--size", "2M"]);
    assert_exit(&too_large, 65, "past max_region_size");
    assert!(
        stderr(&too_large).contains("limits.max_region_size"),
        "{}",
        stderr(&too_large)
    );

    // A region's bytes count against the budget (this test's uid is the
    // broker's own: the whole budget is its, no share).
    broker.ok(&["region", "create", "a", "--size", "1M"]);
    broker.ok(&["region", "create", "b", "--size", "1M"]);
    broker.ok(&["region", "create", "c", "--size", "1M"]);
    let full = broker.run(&["region", "create", "d", "--size", "1K"]);
    assert_exit(&full, 1, "past the memory budget");
    assert!(stderr(&full).contains("does not fit"), "{}", stderr(&full));
    // So do messages: the budget is spent.
    broker.ok(&["create", "q"]);
    assert_exit(
        &broker.run(&["send", "q", "hello"]),
        1,
        "a send with the budget spent",
    );
    broker.ok(&["region", "delete", "a"]);
    broker.ok(&["send", "q", "hello"]);
    broker.ok(&["region", "create", "d", "--size", "1K"]);
}

#[test]
fn a_stranger_gets_permission_denied_and_no_descriptor() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(
        &format!("{OPEN_SOCKET}[limits]\nmax_regions_per_uid = 2\n"),
        &[],
    );
    let broker = &setup.broker;
    broker.ok(&[
        "region", "create", "private", "--size", "4K", "--mode", "0700",
    ]);
    broker.ok(&[
        "region", "create", "readable", "--size", "4K", "--mode", "0704",
    ]);
    broker.ok(&[
        "region", "create", "writable", "--size", "4K", "--mode", "0706",
    ]);
    let files = region_files(broker);

    for args in [
        &["region", "info", "private"][..],
        &["region", "read", "private"],
        &["region", "delete", "private"],
        &["region", "write", "readable"],
        &["region", "delete", "readable"],
        &["region", "delete", "writable"],
    ] {
        let output = setup.as_other(args);
        assert_exit(&output, 77, &format!("{args:?} as uid 65534"));
        let said = stderr(&output);
        assert!(said.contains("permission denied"), "{said}");
        assert!(said.contains("uid 65534"), "{said}");
    }
    // What the mode gives, it gets.
    assert_exit(&setup.as_other(&["region", "info", "readable"]), 0, "info");
    assert_exit(
        &setup.as_other(&["region", "read", "readable", "--len", "4"]),
        0,
        "read",
    );
    let wrote = setup.as_user(
        &["--reuid", "65534", "--regid", "65534", "--clear-groups"],
        &["region", "write", "writable"],
    );
    assert_exit(&wrote, 0, "write with the write right");
    // A stranger lists only what it may see.
    let listed = String::from_utf8(setup.as_other(&["region", "list"]).stdout).expect("utf-8");
    assert!(!listed.contains("private"), "{listed}");
    assert!(listed.contains("readable"), "{listed}");
    // Nothing was deleted, no file is missing or extra.
    assert_eq!(region_files(broker), files);
    for name in ["private", "readable", "writable"] {
        broker.ok(&["region", "info", name]);
    }

    // A stranger's own regions are its own, counted against its limit.
    assert_exit(
        &setup.as_other(&["region", "create", "mine", "--size", "1K"]),
        0,
        "own 1",
    );
    assert_exit(
        &setup.as_other(&["region", "create", "mine2", "--size", "1K"]),
        0,
        "own 2",
    );
    let third = setup.as_other(&["region", "create", "mine3", "--size", "1K"]);
    assert_exit(&third, 1, "past max_regions_per_uid");
    assert!(
        stderr(&third).contains("max_regions_per_uid"),
        "{}",
        stderr(&third)
    );
    assert_eq!(region_info(broker, "mine")["owner_uid"], 65534);
    // Root manages it anyway.
    broker.ok(&["region", "delete", "mine"]);
}

#[test]
fn no_descriptor_is_left_behind_when_clients_open_regions_and_leave() {
    let broker = Broker::start();
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    broker.ok(&["region", "create", "r", "--size", "64K"]);
    // The region's file, read-write and read-only.
    assert_eq!(broker.settled_descriptors(&mut watcher), idle + 2);
    assert_eq!(region_files(&broker), 2);
    for round in 0..20 {
        let offset = (round * 10).to_string();
        broker.ok(&["region", "read", "r", "--offset", &offset, "--len", "10"]);
        let wrote = broker.run_with_input(
            &["region", "write", "r", "--offset", &offset],
            b"0123456789",
        );
        assert_exit(&wrote, 0, "write");
    }
    // A client that opens and is killed holding its descriptor.
    let mut holder = client_at(broker.socket());
    let kept: Vec<_> = (0..10)
        .map(|_| holder.open_region("r", RegionAccess::Read).expect("open"))
        .collect();
    drop(holder);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle + 2);
    drop(kept);
    broker.ok(&["region", "delete", "r"]);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
    assert_eq!(region_files(&broker), 0);
}

/// A `ClientFrame` asking for a page of regions, encoded.
fn list_request(id: u64) -> Vec<u8> {
    let mut out = BytesMut::new();
    mailbox_proto::encode_frame(
        &ClientFrame {
            id,
            request: Request::ListRegionPage {
                after: None,
                max: 10,
            },
        },
        &mut out,
        u32::MAX,
    )
    .expect("encodes");
    out.to_vec()
}

#[test]
fn descriptors_sent_to_the_broker_are_discarded_and_it_goes_on() {
    let broker = Broker::start();
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    for round in 0..20 {
        let mut stream = UnixStream::connect(broker.socket()).expect("connect");
        let mut hello = BytesMut::new();
        mailbox_proto::encode_frame(&Hello::new("hostile"), &mut hello, u32::MAX).expect("hello");
        stream.write_all(&hello).expect("hello");
        // Requests with descriptors of this process attached: files, a
        // socket, the connection itself.
        let (a, b) = UnixStream::pair().expect("pair");
        let memfd: OwnedFd =
            rustix::fs::memfd_create("hostile", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd");
        let sent = [memfd.as_fd(), a.as_fd(), b.as_fd(), stream.as_fd()];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&sent)));
        let request = list_request(round + 1);
        rustix::net::sendmsg(
            &stream,
            &[IoSlice::new(&request)],
            &mut control,
            rustix::net::SendFlags::empty(),
        )
        .expect("sendmsg");
        // The broker answers the welcome and then the request, as if no
        // descriptor had come with it.
        let mut incoming = BytesMut::new();
        let mut frames = VecDeque::new();
        while frames.len() < 2 {
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).expect("read");
            assert!(read > 0, "the broker closed the connection");
            incoming.extend_from_slice(&chunk[..read]);
            while let Some(frame) =
                mailbox_proto::decode_server_frame(&mut incoming, u32::MAX).expect("frame")
            {
                frames.push_back(frame);
            }
        }
        assert!(matches!(frames[0], ServerFrame::Welcome(_)), "{frames:?}");
        assert!(
            matches!(&frames[1], ServerFrame::Response { result: Ok(_), .. }),
            "{frames:?}"
        );
    }
    // Nothing of the descriptors stayed in the broker.
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
    // And it serves others as before.
    broker.ok(&["region", "create", "after", "--size", "1K"]);
    let error = watcher
        .open_region("nothing", RegionAccess::Read)
        .expect_err("no such region");
    assert_eq!(error.kind(), Some(ErrorKind::NoSuchRegion));
}
