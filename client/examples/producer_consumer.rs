//! The producer-consumer problem across two processes: a bounded buffer of
//! 4 messages between a producer, which waits while the buffer is full, and
//! a consumer, which waits while it is empty. The producer owns the
//! mailbox's settings and creates it; the consumer opens it by name,
//! waiting up to 30 s for it to be created.
//!
//! Start a broker (`mailboxd`, see the README), then, in two terminals and
//! in either order:
//!
//! ```text
//! cargo run -p mailbox-client --example producer_consumer -- produce 10
//! cargo run -p mailbox-client --example producer_consumer -- consume
//! ```
//!
//! Both find the broker by the socket rule (`$MAILBOX_SOCKET`, else
//! `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`, else the system socket). The
//! producer prints `produced job N` as each send is accepted: it runs 4
//! ahead of the consumer and then waits for room. The consumer prints
//! `consumed job N` until the producer's `done`.
//! `mailboxctl delete example.jobs` removes the mailbox.

use std::time::Duration;

use mailbox_client::{blocking::Client, Capacity, MailboxSettings};

/// The mailbox both sides use.
const JOBS: &str = "example.jobs";
/// The message that ends the stream.
const DONE: &[u8] = b"done";

fn produce(count: u32) -> Result<(), mailbox_client::Error> {
    let mut client = Client::connect_default()?;
    // The owner of the settings creates the mailbox (again, harmlessly, if
    // it exists with these settings and this owner).
    let settings = MailboxSettings {
        capacity: Capacity::Bounded(4),
        ..MailboxSettings::default()
    };
    client.create(JOBS, settings)?;
    println!("created {JOBS} with room for 4");
    for job in 1..=count {
        client.send(JOBS, format!("job {job}"))?; // waits while the buffer is full
        println!("produced job {job}");
    }
    client.send(JOBS, DONE)?;
    println!("producer: done");
    Ok(())
}

fn consume() -> Result<(), mailbox_client::Error> {
    let mut client = Client::connect_default()?;
    // The other side opens the mailbox by name, without restating its
    // settings, waiting for the producer to create it if it has not yet.
    let jobs = client.open_timeout(JOBS, Duration::from_secs(30))?;
    println!(
        "opened {JOBS}: capacity {}, owner uid {}",
        jobs.settings.capacity, jobs.owner_uid
    );
    let mut consumed = 0;
    loop {
        let message = client.receive(JOBS)?; // waits while the buffer is empty
        if message.payload == DONE {
            break;
        }
        consumed += 1;
        println!("consumed {}", String::from_utf8_lossy(&message.payload));
    }
    println!("consumer: {consumed} jobs");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["produce", count] => produce(count.parse()?)?,
        ["consume"] => consume()?,
        _ => return Err("usage: producer_consumer produce COUNT | consume".into()),
    }
    Ok(())
}
