//! Direct communication between named processes: each connection is a
//! process with an inbox; a process claims a well-known name, and others
//! send straight to it by that name. Here a worker adds numbers for a
//! client, the textbook's symmetric pair (`send(P, message)`,
//! `receive(Q, message)`), as two threads with a connection each, as two
//! processes would be.
//!
//! Start a broker (`mailboxd`, see the README), then:
//!
//! ```text
//! cargo run -p mailbox-client --example direct
//! ```
//!
//! It finds the broker by the socket rule (`$MAILBOX_SOCKET`, else
//! `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`, else the system socket) and
//! prints what each side receives (`worker: received "2 + 3" from process
//! N`, `client: 2 + 3 = 5`), then `client: done`. A name is held while its
//! connection lives; sending to a name no one holds fails with kind
//! `NoSuchProcess`.

use std::sync::mpsc;
use std::thread;

use mailbox_client::blocking::Client;

const WORKER: &str = "example.worker";
const CLIENT: &str = "example.client";
/// What the client sends when it has no more questions.
const BYE: &str = "bye";

/// Answers the client's sums until it says bye. The worker holds its name
/// (its connection lives) until then: `receive_from(WORKER)` needs a live
/// holder of the name.
fn worker(named: mpsc::Sender<()>) -> Result<(), mailbox_client::Error> {
    let mut me = Client::connect_default()?;
    me.claim_name(WORKER)?; // NameTaken if another process holds it
    named.send(()).ok();
    loop {
        let question = me.receive_from(CLIENT)?; // only what the client sends
        let text = String::from_utf8_lossy(&question.payload).into_owned();
        if text == BYE {
            println!("worker: bye");
            return Ok(());
        }
        println!(
            "worker: received {text:?} from process {}",
            question.metadata.sender_connection
        );
        let sum: i64 = text
            .split('+')
            .map(|term| term.trim().parse::<i64>().unwrap_or(0))
            .sum();
        me.send_to(CLIENT, sum.to_string())?;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut me = Client::connect_default()?;
    me.claim_name(CLIENT)?;
    let (named, worker_named) = mpsc::channel();
    let worker = thread::spawn(move || worker(named));
    if worker_named.recv().is_err() {
        // The worker ended without holding its name: its error says why.
        worker.join().map_err(|_| "the worker panicked")??;
        return Err("the worker stopped".into());
    }
    // Both names are held from here on.
    for question in ["2 + 3", "40 + 2"] {
        me.send_to(WORKER, question)?;
        let answer = me.receive_from(WORKER)?;
        println!(
            "client: {question} = {}",
            String::from_utf8_lossy(&answer.payload)
        );
    }
    me.send_to(WORKER, BYE)?;
    worker.join().map_err(|_| "the worker panicked")??;
    println!("client: done");
    Ok(())
}
