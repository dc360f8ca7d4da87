//! Broadcast: every subscriber of a broadcast mailbox gets every message
//! sent after it subscribed. Three subscribers (threads with a connection
//! each, as three processes would be) and one publisher in this program.
//!
//! Start a broker (`mailboxd`, see the README), then:
//!
//! ```text
//! cargo run -p mailbox-client --example broadcast
//! ```
//!
//! It finds the broker by the socket rule (`$MAILBOX_SOCKET`, else
//! `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`, else the system socket) and
//! prints a line per delivery, `subscriber 2 got: news 1`, nine in all, in
//! an order that varies between the threads. With a bounded capacity (here
//! 16 unread messages per subscriber) the publisher waits for the slowest
//! subscriber.

use std::sync::mpsc;
use std::thread;

use mailbox_client::{blocking::Client, Capacity, DeliveryPolicy, MailboxSettings};

/// The broadcast mailbox.
const NEWS: &str = "example.news";
/// Subscribers.
const SUBSCRIBERS: u32 = 3;
/// Messages the publisher sends.
const MESSAGES: u32 = 3;

fn subscriber(number: u32, subscribed: mpsc::Sender<()>) -> Result<(), mailbox_client::Error> {
    let mut client = Client::connect_default()?;
    client.subscribe(NEWS)?; // from now on this connection gets every message
    subscribed.send(()).ok();
    drop(subscribed);
    for _ in 0..MESSAGES {
        let message = client.receive(NEWS)?;
        println!(
            "subscriber {number} got: {}",
            String::from_utf8_lossy(&message.payload)
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut publisher = Client::connect_default()?;
    let settings = MailboxSettings {
        policy: DeliveryPolicy::Broadcast,
        capacity: Capacity::Bounded(16),
        ..MailboxSettings::default()
    };
    publisher.create(NEWS, settings)?;

    let (subscribed, all_subscribed) = mpsc::channel();
    let subscribers: Vec<_> = (1..=SUBSCRIBERS)
        .map(|number| {
            let subscribed = subscribed.clone();
            thread::spawn(move || subscriber(number, subscribed))
        })
        .collect();
    drop(subscribed);
    // A message reaches those subscribed when it is sent: wait until each
    // subscriber has subscribed (or failed to, and dropped its sender).
    let ready = all_subscribed.iter().count();
    if ready < SUBSCRIBERS as usize {
        let failed = subscribers.into_iter().find(|thread| thread.is_finished());
        if let Some(failed) = failed {
            failed.join().map_err(|_| "a subscriber panicked")??;
        }
        return Err("a subscriber could not subscribe".into());
    }

    for number in 1..=MESSAGES {
        let receipt = publisher.send(NEWS, format!("news {number}"))?;
        println!("sent news {number} to {} subscribers", receipt.recipients);
    }
    for subscriber in subscribers {
        subscriber.join().map_err(|_| "a subscriber panicked")??;
    }
    println!("{SUBSCRIBERS} subscribers got {MESSAGES} messages each");
    publisher.delete(NEWS)?;
    Ok(())
}
