//! The client library's examples (`client/examples/`), each run as a real
//! program against a real broker, found as a newcomer's would be (by
//! `$MAILBOX_SOCKET`), and their output checked: what the header comment of
//! each promises is what it does. They are built by
//! `cargo build --workspace --examples` (the README's test command).

use std::process::{Output, Stdio};

use mailbox_client::blocking::Client;
use mailbox_tests::{exit_code, wait_until, Broker, Running};

/// The stdout of example `name`, which must have succeeded.
fn succeeded(name: &str, output: Output) -> String {
    assert_eq!(
        exit_code(&output),
        0,
        "example {name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Runs example `name` with `args` to completion; its stdout.
fn run(broker: &Broker, name: &str, args: &[&str]) -> String {
    let output = broker
        .example(name)
        .args(args)
        .output()
        .expect("run example");
    succeeded(name, output)
}

/// The names of the broker's mailboxes.
fn mailboxes(broker: &Broker) -> Vec<String> {
    let mut client = Client::connect(broker.socket()).expect("connect");
    let list = client.list().expect("list");
    list.into_iter().map(|info| info.name).collect()
}

#[test]
fn producer_and_consumer_pass_every_job_through_a_buffer_of_four() {
    let broker = Broker::start();
    let producer = broker
        .example("producer_consumer")
        .args(["produce", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn producer");
    let mut producer = Running::from_child(producer);

    // With no consumer, the producer fills the buffer and waits for room.
    let mut client = Client::connect(broker.socket()).expect("connect");
    wait_until("the producer waits on a full buffer of 4", || {
        client
            .info("example.jobs")
            .is_ok_and(|info| info.queued_messages == 4 && info.waiting_senders == 1)
    });
    assert!(producer.is_running());

    let consumed = run(&broker, "producer_consumer", &["consume"]);
    let mut expected = vec![format!(
        "opened example.jobs: capacity 4, owner uid {}",
        own_uid()
    )];
    expected.extend((1..=10).map(|job| format!("consumed job {job}")));
    expected.push("consumer: 10 jobs".to_owned());
    assert_eq!(consumed.lines().collect::<Vec<_>>(), expected);

    let produced = succeeded("producer_consumer", producer.finish());
    let mut expected = vec!["created example.jobs with room for 4".to_owned()];
    expected.extend((1..=10).map(|job| format!("produced job {job}")));
    expected.push("producer: done".to_owned());
    assert_eq!(produced.lines().collect::<Vec<_>>(), expected);
}

/// This process's uid, the owner of what the examples create.
fn own_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

#[test]
fn the_consumer_started_first_waits_for_the_producers_mailbox() {
    let broker = Broker::start();
    let consumer = broker
        .example("producer_consumer")
        .arg("consume")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn consumer");
    let mut consumer = Running::from_child(consumer);
    let mut watcher = Client::connect(broker.socket()).expect("connect");
    wait_until("the consumer is connected", || {
        watcher.status().expect("status").connections == 2
    });
    assert!(consumer.is_running(), "no mailbox yet: the consumer waits");
    assert!(mailboxes(&broker).is_empty(), "waiting created nothing");

    run(&broker, "producer_consumer", &["produce", "3"]);
    let consumed = succeeded("producer_consumer", consumer.finish());
    assert_eq!(
        consumed.lines().collect::<Vec<_>>(),
        [
            format!("opened example.jobs: capacity 4, owner uid {}", own_uid()),
            "consumed job 1".to_owned(),
            "consumed job 2".to_owned(),
            "consumed job 3".to_owned(),
            "consumer: 3 jobs".to_owned(),
        ]
    );
}

#[test]
fn request_reply_answers_every_call_and_leaves_nothing_behind() {
    let broker = Broker::start();
    let output = run(&broker, "request_reply", &[]);
    assert_eq!(
        output.lines().collect::<Vec<_>>(),
        ["hello -> HELLO", "mailbox -> MAILBOX", "world -> WORLD"]
    );
    assert!(mailboxes(&broker).is_empty(), "its mailbox is deleted");
}

#[test]
fn broadcast_delivers_every_message_to_every_subscriber() {
    let broker = Broker::start();
    let output = run(&broker, "broadcast", &[]);
    let lines: Vec<&str> = output.lines().collect();
    for news in 1..=3 {
        let sent = format!("sent news {news} to 3 subscribers");
        assert!(lines.contains(&sent.as_str()), "{output}");
        for subscriber in 1..=3 {
            let got = format!("subscriber {subscriber} got: news {news}");
            assert!(lines.contains(&got.as_str()), "{output}");
        }
    }
    assert_eq!(lines.len(), 3 + 9 + 1, "{output}");
    assert_eq!(lines.last(), Some(&"3 subscribers got 3 messages each"));
}

#[test]
fn direct_messages_reach_named_processes_both_ways() {
    let broker = Broker::start();
    let output = run(&broker, "direct", &[]);
    let lines: Vec<&str> = output.lines().collect();
    for (question, sum) in [("2 + 3", 5), ("40 + 2", 42)] {
        let received = format!("worker: received \"{question}\" from process ");
        assert!(
            lines.iter().any(|line| line.starts_with(&received)),
            "{output}"
        );
        let answered = format!("client: {question} = {sum}");
        assert!(lines.contains(&answered.as_str()), "{output}");
    }
    assert_eq!(lines[lines.len() - 2..], ["worker: bye", "client: done"]);
}

#[test]
fn shared_memory_passes_every_item_through_four_slots_of_a_region() {
    let broker = Broker::start();
    // The consumer first: it waits for the producer's region and mailboxes.
    let consumer = broker
        .example("shared_memory")
        .arg("consume")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn consumer");
    let consumer = Running::from_child(consumer);
    let produced = run(&broker, "shared_memory", &["produce", "10"]);
    let consumed = succeeded("shared_memory", consumer.finish());

    // Every item, in order, each from the slot it was put in: slots go
    // round as the consumer frees them.
    let slot_of = |line: &str, word: &str| -> (u32, u32) {
        let rest = line.strip_prefix(word).expect("a line per item");
        let (item, slot) = rest.split_once(" slot ").expect("item and slot");
        let item = item.trim_end_matches(" in").trim_end_matches(" from");
        (item.parse().expect("item"), slot.parse().expect("slot"))
    };
    let produced: Vec<&str> = produced.lines().collect();
    assert_eq!(produced.last(), Some(&"producer: done"));
    let put: Vec<(u32, u32)> = produced[..produced.len() - 1]
        .iter()
        .map(|line| slot_of(line, "produced item "))
        .collect();
    let consumed: Vec<&str> = consumed.lines().collect();
    assert_eq!(consumed.last(), Some(&"consumer: 10 items"));
    let taken: Vec<(u32, u32)> = consumed[..consumed.len() - 1]
        .iter()
        .map(|line| slot_of(line, "consumed item "))
        .collect();
    assert_eq!(
        put.iter().map(|(item, _)| *item).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(taken, put, "each item read from the slot it was written to");
    assert!(put.iter().all(|(_, slot)| *slot < 4));

    // The region and both mailboxes stay for the next run.
    let mut client = Client::connect(broker.socket()).expect("connect");
    assert_eq!(
        client.region_info("example.slots").expect("region").size,
        256
    );
    assert_eq!(mailboxes(&broker), ["example.filled", "example.free"]);
}
