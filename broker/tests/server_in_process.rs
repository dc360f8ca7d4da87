//! The server's handling of connections (waiting and withdrawn requests,
//! shutdown, the memory budget, per-connection limits, a connection pool,
//! clients that stop reading), tested on `server::run` in-process, on a
//! temporary socket, driven through the async client library. Every test is
//! bounded by a timeout.

use std::future::Future;
use std::time::Duration;

use mailbox_broker::core::Limits;
use mailbox_broker::server::{self, Config};
use mailbox_client::{Capacity, Client, DeliveryPolicy, ErrorKind, MailboxSettings};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct TestBroker {
    socket: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    fn start(config: Config) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("mailboxd.sock");
        let listener = server::bind(&socket).expect("bind");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            socket,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    async fn client(&self) -> Client {
        Client::connect(&self.socket).await.expect("connect")
    }

    async fn shut_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .expect("run task")
            .expect("run ends cleanly");
    }
}

fn settings(capacity: Capacity) -> MailboxSettings {
    MailboxSettings {
        capacity,
        ..MailboxSettings::default()
    }
}

async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), test)
        .await
        .expect("test finished in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_waits_in_a_receive_and_sends_at_the_same_time() {
    bounded(async {
        let broker = TestBroker::start(Config::default());
        let client = broker.client().await;
        client
            .create("loop", settings(Capacity::Zero))
            .await
            .expect("create");
        let receiver = client.clone();
        let waiting = tokio::spawn(async move { receiver.receive("loop").await });
        // The send on the same connection completes the rendezvous.
        let receipt = client.send("loop", &b"to myself"[..]).await.expect("send");
        let message = waiting.await.expect("join").expect("receive");
        assert_eq!(&message.payload[..], b"to myself");
        assert_eq!(message.metadata.sequence, receipt.sequence);
        assert_eq!(message.metadata.sender_connection, client.connection_id());
        broker.shut_down().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_receive_is_withdrawn_and_the_message_goes_elsewhere() {
    bounded(async {
        let broker = TestBroker::start(Config::default());
        let impatient = broker.client().await;
        impatient
            .create("jobs", settings(Capacity::Unbounded))
            .await
            .expect("create");
        let gave_up =
            tokio::time::timeout(Duration::from_millis(50), impatient.receive("jobs")).await;
        assert!(gave_up.is_err(), "nothing to receive yet");
        let other = broker.client().await;
        // The cancel is on its way; wait until the broker has processed it.
        loop {
            let info = other.info("jobs").await.expect("info");
            if info.waiting_receivers == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        other.send("jobs", &b"work"[..]).await.expect("send");
        let message = other.receive("jobs").await.expect("receive");
        assert_eq!(&message.payload[..], b"work");
        broker.shut_down().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_waiting_receivers_with_broker_shutting_down() {
    bounded(async {
        let broker = TestBroker::start(Config::default());
        let client = broker.client().await;
        client
            .create("idle", settings(Capacity::Bounded(1)))
            .await
            .expect("create");
        let waiter = client.clone();
        let waiting = tokio::spawn(async move { waiter.receive("idle").await });
        loop {
            if client.info("idle").await.expect("info").waiting_receivers == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        broker.shut_down().await;
        let error = waiting
            .await
            .expect("join")
            .expect_err("answered with an error");
        assert_eq!(error.kind(), Some(ErrorKind::BrokerShuttingDown), "{error}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_turns_into_broker_full_and_is_released_on_receive() {
    bounded(async {
        let config = Config {
            limits: Limits {
                memory_budget: 100,
                // The whole budget, whoever runs the test (a uid's share and
                // the reserve have tests of their own).
                max_queued_bytes_per_uid: Some(100),
                admin_reserve_bytes: Some(0),
                ..Limits::default()
            },
            ..Config::default()
        };
        let broker = TestBroker::start(config);
        let client = broker.client().await;
        client
            .create("spool", settings(Capacity::Unbounded))
            .await
            .expect("create");
        client.send("spool", vec![0u8; 60]).await.expect("fits");
        let error = client
            .send("spool", vec![0u8; 60])
            .await
            .expect_err("over budget");
        assert_eq!(error.kind(), Some(ErrorKind::BrokerFull));
        client.receive("spool").await.expect("receive");
        client
            .send("spool", vec![0u8; 60])
            .await
            .expect("fits again");
        broker.shut_down().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_waiting_requests_on_one_connection_are_refused() {
    bounded(async {
        let config = Config {
            limits: Limits {
                max_requests_in_flight: 2,
                ..Limits::default()
            },
            ..Config::default()
        };
        let broker = TestBroker::start(config);
        let client = broker.client().await;
        client
            .create("q", settings(Capacity::Unbounded))
            .await
            .expect("create");
        let first = tokio::spawn({
            let c = client.clone();
            async move { c.receive("q").await }
        });
        let second = tokio::spawn({
            let c = client.clone();
            async move { c.receive("q").await }
        });
        loop {
            if client.info("q").await.expect("info").waiting_receivers == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let error = client.receive("q").await.expect_err("third wait refused");
        assert_eq!(error.kind(), Some(ErrorKind::TooManyRequests));
        client.send("q", &b"a"[..]).await.expect("send");
        client.send("q", &b"b"[..]).await.expect("send");
        first.await.expect("join").expect("first gets one");
        second.await.expect("join").expect("second gets one");
        broker.shut_down().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_payload_reaches_every_subscriber_of_one_connection_pool() {
    bounded(async {
        let broker = TestBroker::start(Config::default());
        let publisher = broker.client().await;
        publisher
            .create(
                "news",
                MailboxSettings {
                    capacity: Capacity::Bounded(2),
                    policy: DeliveryPolicy::Broadcast,
                    ..MailboxSettings::default()
                },
            )
            .await
            .expect("create");
        let mut subscribers = Vec::new();
        for _ in 0..4 {
            let client = broker.client().await;
            assert!(client.subscribe("news").await.expect("subscribe"));
            subscribers.push(client);
        }
        let readers: Vec<_> = subscribers
            .into_iter()
            .map(|client| {
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    for _ in 0..10 {
                        got.push(client.receive("news").await.expect("receive").payload);
                    }
                    got
                })
            })
            .collect();
        for i in 0..10u8 {
            let receipt = publisher.send("news", vec![i]).await.expect("send");
            assert_eq!(receipt.recipients, 4);
        }
        for reader in readers {
            let got = reader.await.expect("join");
            let expected: Vec<_> = (0..10u8).map(|i| vec![i]).collect();
            assert_eq!(got.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), expected);
        }
        broker.shut_down().await;
    })
    .await;
}

/// Writes a hello and the given requests on a raw socket, reads the welcome,
/// and never reads again.
fn raw_client_that_stops_reading(
    socket: &std::path::Path,
    requests: Vec<mailbox_proto::Request>,
) -> std::os::unix::net::UnixStream {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    let mut out = bytes::BytesMut::new();
    mailbox_proto::encode_frame(&mailbox_proto::Hello::new("stalled"), &mut out, 4096)
        .expect("hello");
    stream.write_all(&out).expect("write hello");
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).expect("welcome header");
    let mut welcome = vec![0u8; u32::from_le_bytes(header) as usize];
    stream.read_exact(&mut welcome).expect("welcome body");
    out.clear();
    for (id, request) in requests.into_iter().enumerate() {
        let frame = mailbox_proto::ClientFrame {
            id: id as u64 + 1,
            request,
        };
        mailbox_proto::encode_frame(&frame, &mut out, u32::MAX).expect("frame");
    }
    stream.write_all(&out).expect("write requests");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_dies_while_backed_up_is_disconnected_and_gets_nothing_more() {
    bounded(async {
        let config = Config {
            outbox_high_water: 64 * 1024,
            ..Config::default()
        };
        let broker = TestBroker::start(config);
        let client = broker.client().await;
        client
            .create("big", settings(Capacity::Unbounded))
            .await
            .expect("create");
        client
            .create("later", settings(Capacity::Unbounded))
            .await
            .expect("create");
        for _ in 0..8 {
            client
                .send("big", vec![0u8; 200 * 1024])
                .await
                .expect("fill");
        }
        // One receive waits on `later`; sixteen on `big` would take 3.2 MiB
        // the client never reads. The writer blocks on the first answers,
        // the next ones stay queued above the high-water mark, and the
        // reader stops applying the rest of the receives until they drain.
        let mut requests = vec![mailbox_proto::Request::Receive {
            mailbox: "later".into(),
            wait: mailbox_proto::Wait::Forever,
        }];
        for _ in 0..16 {
            requests.push(mailbox_proto::Request::Receive {
                mailbox: "big".into(),
                wait: mailbox_proto::Wait::Forever,
            });
        }
        let mut stalled = raw_client_that_stops_reading(&broker.socket, requests);
        loop {
            let info = client.info("big").await.expect("info");
            let later = client.info("later").await.expect("info");
            if later.waiting_receivers == 1 && info.messages_delivered >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for _ in 0..8 {
            client
                .send("big", vec![0u8; 200 * 1024])
                .await
                .expect("fill");
        }
        // One more request makes its reader check the outbox and pause.
        {
            use std::io::Write;
            let mut out = bytes::BytesMut::new();
            let frame = mailbox_proto::ClientFrame {
                id: 100,
                request: mailbox_proto::Request::Status,
            };
            mailbox_proto::encode_frame(&frame, &mut out, u32::MAX).expect("frame");
            stalled.write_all(&out).expect("write");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(stalled);
        // The broker notices through the failed write and forgets the
        // connection, so its waiting receive cannot swallow a message.
        loop {
            if client.info("later").await.expect("info").waiting_receivers == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(client.status().await.expect("status").connections, 1);
        client
            .send("later", &b"for someone alive"[..])
            .await
            .expect("send");
        assert_eq!(client.info("later").await.expect("info").queued_messages, 1);
        broker.shut_down().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_receive_makes_one_request_reply_step_and_cancels_after_a_failed_send() {
    bounded(async {
        let broker = TestBroker::start(Config::default());
        let client = broker.client().await;
        client
            .create("req", settings(Capacity::Bounded(1)))
            .await
            .expect("create");
        client
            .create("rep", settings(Capacity::Bounded(1)))
            .await
            .expect("create");
        let socket = broker.socket.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut server = mailbox_client::blocking::Client::connect(&socket).expect("server");
            let echo = std::thread::spawn(move || {
                let request = server.receive("req").expect("request");
                let mut reply = b"re: ".to_vec();
                reply.extend_from_slice(&request.payload);
                server.send("rep", reply).expect("reply");
            });
            let mut caller = mailbox_client::blocking::Client::connect(&socket).expect("caller");
            let (sent, reply) = caller.send_and_receive("req", &b"ping"[..], "rep");
            sent.expect("sent");
            let reply = reply.expect("reply");
            echo.join().expect("echo");
            let (failed, cancelled) = caller.send_and_receive("nowhere", &b"x"[..], "rep");
            (
                reply.payload,
                failed.map(|_| ()),
                cancelled.map(|m| m.payload),
            )
        })
        .await
        .expect("join");
        let (reply, failed, cancelled) = result;
        assert_eq!(&reply[..], b"re: ping");
        assert_eq!(
            failed.expect_err("no such mailbox").kind(),
            Some(ErrorKind::NoSuchMailbox)
        );
        assert_eq!(
            cancelled.expect_err("receive withdrawn").kind(),
            Some(ErrorKind::Cancelled)
        );
        assert_eq!(client.info("rep").await.expect("info").waiting_receivers, 0);
        broker.shut_down().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_opens_in_flight_each_get_their_own_regions_descriptor() {
    use mailbox_client::RegionAccess;
    bounded(async {
        let broker = TestBroker::start(Config::default());
        let owner = broker.client().await;
        owner.create_region("small", 4096).await.expect("create");
        owner.create_region("large", 1 << 20).await.expect("create");
        let writer = owner
            .open_region("small", RegionAccess::ReadWrite)
            .await
            .expect("open");
        let small = writer.map().expect("map");
        small.write_at(0, b"from the writer").expect("fits");

        // One connection, many opens in flight at once, of two regions and
        // both accesses: each answer carries the descriptor of its own
        // region, with its own access, however the frames and their
        // descriptors were cut into reads.
        let client = broker.client().await;
        let mut opens = tokio::task::JoinSet::new();
        for n in 0..64u32 {
            let client = client.clone();
            let name = if n % 3 == 0 { "large" } else { "small" };
            let access = if n % 2 == 0 {
                RegionAccess::Read
            } else {
                RegionAccess::ReadWrite
            };
            opens.spawn(async move {
                let region = client.open_region(name, access).await.expect("open");
                (name, access, region)
            });
        }
        while let Some(opened) = opens.join_next().await {
            let (name, access, region) = opened.expect("task");
            assert_eq!(region.access(), access);
            assert_eq!(region.info().name, name);
            let size = rustix::fs::fstat(&region).expect("fstat").st_size;
            assert_eq!(size as u64, region.size(), "{name}: its own file");
            let mapping = region.map().expect("map");
            assert_eq!(mapping.is_writable(), access == RegionAccess::ReadWrite);
            if name == "small" {
                let mut seen = [0u8; 15];
                mapping.read_at(0, &mut seen).expect("fits");
                assert_eq!(&seen, b"from the writer");
            }
        }
        let info = owner.region_info("small").await.expect("info");
        assert_eq!(info.opens, 1 + 42);
        broker.shut_down().await;
    })
    .await;
}
