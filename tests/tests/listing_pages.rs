//! Listings that outgrow one frame: with enough long-named mailboxes, the
//! whole list takes more than a client accepts in a frame (16 MiB + 64
//! KiB), so the one-frame `ListMailboxes` is refused by name of the paged
//! request, and `mailboxctl list`, `status` and `top` fetch every page.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use bytes::BytesMut;
use mailbox_proto::{
    codec, decode_server_frame, encode_frame, ClientFrame, ErrorKind, Hello, MailboxSettings,
    Request, Response, ServerFrame, MAX_LIST_BYTES,
};
use mailbox_tests::{json_lines, Broker, PATIENCE};

/// A 255-byte mailbox name ending in `n`.
fn long_name(n: usize) -> String {
    let tail = format!("{n:07}");
    format!("{}{tail}", "l".repeat(255 - tail.len()))
}

/// A raw connection, welcomed.
fn raw(broker: &Broker) -> (UnixStream, BytesMut) {
    let mut stream = UnixStream::connect(broker.socket()).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut out = BytesMut::new();
    encode_frame(&Hello::new("listing-pages"), &mut out, u32::MAX).expect("hello");
    stream.write_all(&out).expect("write hello");
    let mut incoming = BytesMut::new();
    match next(&mut stream, &mut incoming) {
        ServerFrame::Welcome(_) => {}
        other => panic!("expected a welcome, got {other:?}"),
    }
    (stream, incoming)
}

fn next(stream: &mut UnixStream, incoming: &mut BytesMut) -> ServerFrame {
    loop {
        // No limit here: the test reads whatever the broker sends.
        if let Some(frame) = decode_server_frame(incoming, u32::MAX).expect("decodes") {
            return frame;
        }
        let mut chunk = vec![0u8; 256 * 1024];
        let read = stream.read(&mut chunk).expect("read");
        assert!(read > 0, "the broker closed the connection");
        incoming.extend_from_slice(&chunk[..read]);
    }
}

#[test]
fn mailboxctl_lists_more_mailboxes_than_fit_one_frame() {
    let broker = Broker::start();
    let settings = MailboxSettings {
        dead_letter: Some("d".repeat(255)),
        ..MailboxSettings::default()
    };
    // Rows of about 580 bytes: enough of them to pass the client's frame
    // limit (what made `list` fail before pages).
    let row = codec::encoded_len(&mailbox_proto::MailboxInfo {
        name: long_name(0),
        settings: settings.clone(),
        mode: 0o760,
        ..mailbox_proto::MailboxInfo::default()
    });
    let count = (codec::DEFAULT_MAX_FRAME_LEN as usize) / row + 500;
    let started = Instant::now();

    // Creates, pipelined on one raw connection (a writer thread, so that
    // neither side waits on a full socket).
    let (mut stream, mut incoming) = raw(&broker);
    let mut writer = stream.try_clone().expect("clone");
    let frames = {
        let settings = settings.clone();
        std::thread::spawn(move || {
            let mut out = BytesMut::new();
            for n in 0..count {
                let request = Request::CreateMailbox {
                    name: long_name(n),
                    settings: Box::new(settings.clone()),
                };
                encode_frame(
                    &ClientFrame {
                        id: n as u64,
                        request,
                    },
                    &mut out,
                    u32::MAX,
                )
                .expect("encode");
                if out.len() > 1 << 20 {
                    writer.write_all(&out).expect("write creates");
                    out.clear();
                }
            }
            writer.write_all(&out).expect("write creates");
        })
    };
    for _ in 0..count {
        match next(&mut stream, &mut incoming) {
            ServerFrame::Response {
                result: Ok(Response::Created { created: true }),
                ..
            } => {}
            other => panic!("create failed: {other:?}"),
        }
    }
    frames.join().expect("writer");
    eprintln!("{count} mailboxes created in {:?}", started.elapsed());

    // The one-frame request is refused by name of the paged one, instead
    // of a frame no client accepts.
    let mut out = BytesMut::new();
    let request = Request::ListMailboxes;
    encode_frame(&ClientFrame { id: 1, request }, &mut out, u32::MAX).expect("encode");
    stream.write_all(&out).expect("write");
    match next(&mut stream, &mut incoming) {
        ServerFrame::Response {
            result: Err(error), ..
        } => {
            assert_eq!(error.kind, ErrorKind::InvalidRequest, "{error}");
            assert!(error.message.contains("ListMailboxPage"), "{error}");
        }
        other => panic!(
            "expected a refusal, got {:?}",
            std::mem::discriminant(&other)
        ),
    }
    assert!(count * row > MAX_LIST_BYTES);

    // mailboxctl fetches every page: every mailbox, once, in order.
    let started = Instant::now();
    let table = broker.ok(&["list"]);
    eprintln!("mailboxctl list of {count} in {:?}", started.elapsed());
    let names: Vec<&str> = table
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with("lll"))
        .collect();
    let expected: Vec<String> = (0..count).map(long_name).collect();
    assert_eq!(names.len(), expected.len());
    assert!(names == expected, "every mailbox once, in order");
    let started = Instant::now();
    let listed = broker.ok(&["--json", "list"]);
    eprintln!(
        "mailboxctl --json list of {count} in {:?}",
        started.elapsed()
    );
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), count);
    let last = json_lines(lines[count - 1].as_bytes());
    assert_eq!(last[0]["name"].as_str(), Some(expected[count - 1].as_str()));

    let started = Instant::now();
    let status = broker.ok(&["status", "--interval", "10ms"]);
    eprintln!("mailboxctl status of {count} in {:?}", started.elapsed());
    assert!(
        status.contains(&long_name(count - 1)),
        "status shows every mailbox's rates"
    );
    let started = Instant::now();
    broker.ok(&["top", "--iterations", "1", "--interval", "10ms"]);
    eprintln!("mailboxctl top of {count} in {:?}", started.elapsed());
}
