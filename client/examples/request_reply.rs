//! Request/reply with the async client: a server task answers calls that
//! arrive in a mailbox, a client task calls it and waits for each reply.
//! Both run in this one program, on two connections of their own, as two
//! processes would.
//!
//! Start a broker (`mailboxd`, see the README), then:
//!
//! ```text
//! cargo run -p mailbox-client --example request_reply
//! ```
//!
//! It finds the broker by the socket rule (`$MAILBOX_SOCKET`, else
//! `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`, else the system socket) and
//! prints one line per call, `hello -> HELLO`. The server takes each
//! request with `receive` and answers it with `reply`; a call whose server
//! took the request and left without replying fails with kind `NoReply`,
//! one not answered in time with `Timeout`.

use std::time::Duration;

use mailbox_client::{Client, MailboxSettings, Target};

/// The mailbox the requests go to.
const REQUESTS: &str = "example.upper";

/// Answers every call that arrives in the mailbox, for as long as it runs.
async fn serve(server: Client) -> Result<(), mailbox_client::Error> {
    loop {
        let request = server.receive(REQUESTS).await?;
        let answer = request.payload.to_ascii_uppercase();
        server.reply(&request, answer).await?;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), mailbox_client::Error> {
    let server = Client::connect_default().await?;
    server.create(REQUESTS, MailboxSettings::default()).await?;
    let serving = tokio::spawn(serve(server.clone()));

    let client = Client::connect_default().await?;
    for word in ["hello", "mailbox", "world"] {
        let reply = client
            .call(Target::mailbox(REQUESTS), word, Duration::from_secs(5))
            .await?;
        println!("{word} -> {}", String::from_utf8_lossy(&reply.payload));
    }

    serving.abort();
    server.delete(REQUESTS).await?;
    Ok(())
}
