//! Hostile clients for the end-to-end tests: resource attacks on a broker,
//! run as another uid under `setpriv` (connections are counted per uid).
//!
//! ```text
//! mailbox-hostile ATTACK SOCKET SECONDS COUNT [ARG]
//!
//! idle        COUNT connections that never say hello
//! slow-hello  COUNT connections sending their hello a byte every 200 ms
//! no-read     COUNT connections sending themselves 64 messages of 256 KiB
//!             and receiving them, reading nothing
//! dribble     COUNT connections sending a frame header of ARG bytes, 1 MiB
//!             of it at once, then a byte every 200 ms
//! receives    one connection posting COUNT blocking receives on mailbox ARG
//!             (created first)
//! mailboxes   one connection creating COUNT mailboxes named ARG-N-xxx…
//! deny        one connection sending COUNT receives to mailbox ARG (one it
//!             may not read), reading every answer
//! ```
//!
//! Each attack runs for SECONDS (or until done), then prints one line of
//! `key=value` words and exits 0: `opened` (connections made), `refused`
//! (closed before a welcome, or a goodbye instead of one), `welcomed`,
//! `cut` (closed after a welcome), `goodbyes=KIND:...` (the kinds of the
//! goodbyes seen, with the first message), and per attack `denied`,
//! `posted`, `created`.

use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mailbox_proto::{
    decode_server_frame, encode_frame, ClientFrame, ErrorKind, Hello, Request, ServerFrame, Wait,
    HELLO_MAGIC, PROTOCOL_VERSION,
};

fn hello() -> Vec<u8> {
    let hello = Hello {
        magic: HELLO_MAGIC,
        protocol_version: PROTOCOL_VERSION,
        client_name: "mailbox-hostile".into(),
    };
    let mut buf = BytesMut::new();
    encode_frame(&hello, &mut buf, u32::MAX).expect("encode hello");
    buf.to_vec()
}

fn request(id: u64, request: Request) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(&ClientFrame { id, request }, &mut buf, u32::MAX).expect("encode request");
    buf.to_vec()
}

/// What happened to one connection.
#[derive(Default)]
struct Conn {
    stream: Option<UnixStream>,
    incoming: BytesMut,
    welcomed: bool,
    closed: bool,
    goodbye: Option<(ErrorKind, String)>,
    answers: u64,
    denied: u64,
}

impl Conn {
    fn open(socket: &str) -> Option<Self> {
        let stream = UnixStream::connect(socket).ok()?;
        Some(Self {
            stream: Some(stream),
            ..Self::default()
        })
    }

    /// Writes `bytes` (as far as the write timeout lets it, when one is
    /// set: a broker that stops reading is not a closed connection).
    fn write(&mut self, bytes: &[u8]) -> bool {
        match self.stream.as_mut().map(|s| s.write_all(bytes)) {
            Some(Ok(())) => true,
            Some(Err(error))
                if matches!(
                    error.kind(),
                    IoErrorKind::WouldBlock | IoErrorKind::TimedOut
                ) =>
            {
                false
            }
            _ => {
                self.poll();
                self.closed = true;
                false
            }
        }
    }

    /// Reads what has arrived without waiting; notes welcome, goodbye, close.
    fn poll(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let _ = stream.set_nonblocking(true);
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => self.incoming.extend_from_slice(&chunk[..n]),
                Err(error) if error.kind() == IoErrorKind::WouldBlock => break,
                Err(_) => {
                    self.closed = true;
                    break;
                }
            }
        }
        let _ = stream.set_nonblocking(false);
        self.decode();
    }

    /// Reads until `answers` answers came or the connection closed.
    fn read_answers(&mut self, answers: u64, deadline: Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut chunk = [0u8; 64 * 1024];
        while self.answers < answers && !self.closed && Instant::now() < deadline {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            match stream.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.incoming.extend_from_slice(&chunk[..n]),
                Err(error)
                    if matches!(
                        error.kind(),
                        IoErrorKind::WouldBlock | IoErrorKind::TimedOut
                    ) => {}
                Err(_) => self.closed = true,
            }
            self.decode();
        }
    }

    fn decode(&mut self) {
        while let Ok(Some(frame)) = decode_server_frame(&mut self.incoming, u32::MAX) {
            match frame {
                ServerFrame::Welcome(_) => self.welcomed = true,
                ServerFrame::Goodbye(error) => self.goodbye = Some((error.kind, error.message)),
                ServerFrame::Response { result, .. } => {
                    self.answers += 1;
                    if matches!(&result, Err(error) if error.kind == ErrorKind::PermissionDenied) {
                        self.denied += 1;
                    }
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [attack, socket, seconds, count, rest @ ..] = &args[..] else {
        eprintln!("usage: mailbox-hostile ATTACK SOCKET SECONDS COUNT [ARG]");
        return ExitCode::from(2);
    };
    let (Ok(seconds), Ok(count)) = (seconds.parse::<f64>(), count.parse::<usize>()) else {
        eprintln!("SECONDS and COUNT are numbers");
        return ExitCode::from(2);
    };
    let arg = rest.first().cloned().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut conns: Vec<Conn> = Vec::new();
    let mut extra = String::new();
    let hello = hello();
    match attack.as_str() {
        "idle" => {
            conns.extend((0..count).filter_map(|_| Conn::open(socket)));
            sleep_until(deadline);
        }
        "slow-hello" => {
            conns.extend((0..count).filter_map(|_| Conn::open(socket)));
            let mut sent = 0;
            while Instant::now() < deadline {
                if sent < hello.len() {
                    for conn in conns.iter_mut().filter(|c| !c.closed) {
                        conn.write(&hello[sent..=sent]);
                    }
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        "no-read" => {
            // Each connection sends itself messages of 256 KiB and receives
            // them, never reading: 16 MiB of replies each if nothing cut it
            // off. Written without blocking, round after round, so that one
            // stalled connection does not hold up the others.
            let payload = bytes::Bytes::from(vec![0x6e; 256 * 1024]);
            let mut floods: Vec<(Vec<u8>, usize)> = Vec::new();
            for n in 0..count {
                let Some(conn) = Conn::open(socket) else {
                    continue;
                };
                let mailbox = format!("no-read-{n}");
                let mut flood = hello.clone();
                flood.extend_from_slice(&request(
                    0,
                    Request::CreateMailbox {
                        name: mailbox.clone(),
                        settings: Box::default(),
                    },
                ));
                for id in 0..64u64 {
                    flood.extend_from_slice(&request(
                        2 * id + 1,
                        Request::Send {
                            mailbox: mailbox.clone(),
                            payload: payload.clone(),
                            wait: Wait::Never,
                        },
                    ));
                    flood.extend_from_slice(&request(
                        2 * id + 2,
                        Request::Receive {
                            mailbox: mailbox.clone(),
                            wait: Wait::Never,
                        },
                    ));
                }
                if let Some(stream) = conn.stream.as_ref() {
                    let _ = stream.set_nonblocking(true);
                }
                conns.push(conn);
                floods.push((flood, 0));
            }
            while Instant::now() < deadline {
                for (conn, (flood, written)) in conns.iter_mut().zip(floods.iter_mut()) {
                    let Some(stream) = conn.stream.as_mut() else {
                        continue;
                    };
                    if conn.closed || *written == flood.len() {
                        continue;
                    }
                    match stream.write(&flood[*written..]) {
                        Ok(n) => *written += n,
                        Err(error) if error.kind() == IoErrorKind::WouldBlock => {}
                        Err(_) => conn.closed = true,
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            for conn in &mut conns {
                if let Some(stream) = conn.stream.as_ref() {
                    let _ = stream.set_nonblocking(false);
                }
            }
        }
        "dribble" => {
            // Written without blocking: what the socket does not take at
            // once is simply not sent.
            let len: u32 = arg.parse().unwrap_or(16 << 20);
            let start = [&len.to_le_bytes()[..], &vec![0u8; 1 << 20]].concat();
            for _ in 0..count {
                let Some(mut conn) = Conn::open(socket) else {
                    continue;
                };
                conn.write(&hello);
                if let Some(stream) = conn.stream.as_mut() {
                    let _ = stream.set_nonblocking(true);
                    let _ = stream.write(&start);
                }
                conns.push(conn);
            }
            while Instant::now() < deadline {
                for conn in conns.iter_mut().filter(|c| !c.closed) {
                    if let Some(stream) = conn.stream.as_mut() {
                        match stream.write(&[0]) {
                            Ok(_) => {}
                            Err(error) if error.kind() == IoErrorKind::WouldBlock => {}
                            Err(_) => conn.closed = true,
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            for conn in &mut conns {
                if let Some(stream) = conn.stream.as_ref() {
                    let _ = stream.set_nonblocking(false);
                }
            }
        }
        "receives" => {
            if let Some(mut conn) = Conn::open(socket) {
                conn.write(&hello);
                conn.write(&request(
                    0,
                    Request::CreateMailbox {
                        name: arg.clone(),
                        settings: Box::default(),
                    },
                ));
                let mut posted = Vec::new();
                for id in 1..=count as u64 {
                    posted.extend_from_slice(&request(
                        id,
                        Request::Receive {
                            mailbox: arg.clone(),
                            wait: Wait::Forever,
                        },
                    ));
                }
                conn.write(&posted);
                extra = format!(" posted={count}");
                conns.push(conn);
            }
            sleep_until(deadline);
        }
        "mailboxes" => {
            if let Some(mut conn) = Conn::open(socket) {
                conn.write(&hello);
                let long = "x".repeat(200);
                let mut created = Vec::new();
                for id in 0..count as u64 {
                    created.extend_from_slice(&request(
                        id,
                        Request::CreateMailbox {
                            name: format!("{arg}-{id}-{long}"),
                            settings: Box::default(),
                        },
                    ));
                }
                conn.write(&created);
                conn.read_answers(count as u64, deadline);
                extra = format!(" created={}", conn.answers);
                conns.push(conn);
            }
        }
        "deny" => {
            if let Some(mut conn) = Conn::open(socket) {
                conn.write(&hello);
                let mut denied = Vec::new();
                for id in 0..count as u64 {
                    denied.extend_from_slice(&request(
                        id,
                        Request::Receive {
                            mailbox: arg.clone(),
                            wait: Wait::Never,
                        },
                    ));
                }
                conn.write(&denied);
                conn.read_answers(count as u64, deadline);
                extra = format!(" denied={}", conn.denied);
                conns.push(conn);
            }
        }
        other => {
            eprintln!("unknown attack {other}");
            return ExitCode::from(2);
        }
    }
    for conn in &mut conns {
        conn.poll();
    }
    let opened = conns.len();
    let welcomed = conns.iter().filter(|c| c.welcomed).count();
    let refused = conns
        .iter()
        .filter(|c| !c.welcomed && (c.closed || c.goodbye.is_some()))
        .count();
    let cut = conns.iter().filter(|c| c.welcomed && c.closed).count();
    let mut goodbyes: Vec<String> = Vec::new();
    for conn in &conns {
        if let Some((kind, message)) = &conn.goodbye {
            let kind = format!("{kind:?}");
            if !goodbyes
                .iter()
                .any(|seen| seen.starts_with(&format!("{kind}:")))
            {
                goodbyes.push(format!("{kind}:{}", message.replace(' ', "_")));
            }
        }
    }
    println!(
        "opened={opened} welcomed={welcomed} refused={refused} cut={cut}{extra} goodbyes={}",
        goodbyes.join(",")
    );
    ExitCode::SUCCESS
}

fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}
