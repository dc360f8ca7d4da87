//! The producer-consumer problem over shared memory: a buffer of 4 slots in
//! a named region that both processes map, and two mailboxes that only
//! synchronise them, as the textbook's semaphores do: `example.filled`
//! carries a "slot filled" message per item (the slot's number), and
//! `example.free` a "slot free" message per slot the consumer is done with.
//! The items themselves never pass through the broker: the producer writes
//! each into its mapping, the consumer reads it from its own.
//!
//! Start a broker (`mailboxd`, see the README), then, in two terminals and
//! in either order:
//!
//! ```text
//! cargo run -p mailbox-client --example shared_memory -- produce 10
//! cargo run -p mailbox-client --example shared_memory -- consume
//! ```
//!
//! The producer creates the region (read-write for it, read-only for the
//! consumer) and the mailboxes, then prints `produced item N in slot S`;
//! it waits for a free slot when all 4 are full. The consumer prints
//! `consumed item N from slot S` until the producer's `done`.
//! `mailboxctl region delete example.slots`, `mailboxctl delete
//! example.filled` and `mailboxctl delete example.free` clean up.

use std::time::Duration;

use mailbox_client::{blocking::Client, Capacity, MailboxSettings, RegionAccess};

/// The region holding the slots.
const SLOTS: &str = "example.slots";
/// "Slot filled" messages: the slot's number.
const FILLED: &str = "example.filled";
/// "Slot free" messages: the slot's number.
const FREE: &str = "example.free";
/// How many slots, and how large each is.
const SLOT_COUNT: usize = 4;
const SLOT_SIZE: usize = 64;
/// The message that ends the stream.
const DONE: &[u8] = b"done";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn slot_of(payload: &[u8]) -> Result<usize> {
    let slot: usize = std::str::from_utf8(payload)?.parse()?;
    if slot >= SLOT_COUNT {
        return Err(format!("no slot {slot}").into());
    }
    Ok(slot)
}

fn produce(count: u32) -> Result<()> {
    let mut client = Client::connect_default()?;
    client.create_region(SLOTS, (SLOT_COUNT * SLOT_SIZE) as u64)?;
    let bounded = MailboxSettings {
        capacity: Capacity::Bounded(SLOT_COUNT as u32),
        ..MailboxSettings::default()
    };
    client.create(FREE, bounded.clone())?;
    client.create(FILLED, bounded)?;
    // Every slot starts free.
    for slot in 0..SLOT_COUNT {
        client.send(FREE, slot.to_string())?;
    }
    let region = client.open_region(SLOTS, RegionAccess::ReadWrite)?;
    let memory = region.map()?;
    for item in 1..=count {
        // Wait for a free slot, fill it, say so.
        let slot = slot_of(&client.receive(FREE)?.payload)?;
        let text = format!("item {item}");
        let mut bytes = [0u8; SLOT_SIZE];
        bytes[0] = text.len() as u8;
        bytes[1..=text.len()].copy_from_slice(text.as_bytes());
        memory.write_at(slot * SLOT_SIZE, &bytes)?;
        client.send(FILLED, slot.to_string())?;
        println!("produced {text} in slot {slot}");
    }
    client.send(FILLED, DONE)?;
    println!("producer: done");
    Ok(())
}

fn consume() -> Result<()> {
    let mut client = Client::connect_default()?;
    // Waits for the producer to have made everything.
    client.open_timeout(FILLED, Duration::from_secs(30))?;
    let region = client.open_region(SLOTS, RegionAccess::Read)?;
    let memory = region.map()?;
    let mut consumed = 0;
    loop {
        let message = client.receive(FILLED)?;
        if message.payload == DONE {
            break;
        }
        let slot = slot_of(&message.payload)?;
        let mut bytes = [0u8; SLOT_SIZE];
        memory.read_at(slot * SLOT_SIZE, &mut bytes)?;
        let len = usize::from(bytes[0]).min(SLOT_SIZE - 1);
        let text = String::from_utf8_lossy(&bytes[1..=len]).into_owned();
        // Done with the slot: the producer may fill it again.
        client.send(FREE, slot.to_string())?;
        consumed += 1;
        println!("consumed {text} from slot {slot}");
    }
    println!("consumer: {consumed} items");
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["produce", count] => produce(count.parse()?),
        ["consume"] => consume(),
        _ => Err("usage: shared_memory produce COUNT | consume".into()),
    }
}
