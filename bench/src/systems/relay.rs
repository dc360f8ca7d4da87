//! `uds-relay`: the floor of any broker that sits between two processes.
//!
//! The roles and framing are `uds-direct`'s ([`super::uds`]); the side that
//! connects connects to a relay process instead, which opens a connection
//! to the listening side for each one it accepts and copies bytes both
//! ways. It parses, queues, routes and acknowledges nothing: one thread
//! (tokio's, like `mailboxd`'s default), a 1 MiB buffer each way, one
//! read and one write per batch per hop. What it costs against
//! `uds-direct` is what the second hop alone costs (two more copies of
//! every byte, and a third process to wake), so where the broker's path
//! has `uds-direct`'s shape plus a hop (stream, rtt, large), `mailboxd /
//! uds-relay` is how much the broker adds beyond the hop that any broker
//! pays. It is no floor for `rendezvous` (its acknowledgement comes back
//! from the consumer through the relay; the broker answers the sender
//! itself) nor `fanout` (eight copies through it; the broker takes one).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use tokio::net::{UnixListener, UnixStream};

use super::uds::{self, Direct};
use super::{Running, Setup};
use crate::process::{Daemon, Deadline};
use crate::spec::{Shape, Workload};

/// Bytes each direction of a relayed connection reads and writes at once:
/// a whole `large` message, so the relay never cuts a read short (what
/// one read returns is bounded by the socket's buffer anyway).
const BUFFER: usize = 1024 * 1024;

/// The relay's socket in front of the listening socket `upstream`.
pub fn relay_socket(upstream: &Path) -> PathBuf {
    let name = upstream
        .file_name()
        .map_or_else(|| "socket".into(), |name| name.to_string_lossy());
    upstream.with_file_name(format!("relay-{name}"))
}

/// The hidden `relay` subcommand: what the relay process serves.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// A listening socket to relay to; the relay listens in front of each
    /// (see `relay_socket`).
    #[arg(long = "upstream", required = true)]
    pub upstreams: Vec<PathBuf>,
    /// Bound once every relay socket is: connections to it are closed at
    /// once, so the orchestrator can wait for the relay without one of its
    /// probes being relayed to a consumer as if it were a producer.
    #[arg(long)]
    pub ready: PathBuf,
}

/// The relay process, in the orchestrator.
pub struct Relay {
    direct: Direct,
    daemon: Daemon,
}

impl Relay {
    /// Starts a relay in front of every socket the run's listening roles
    /// will bind, and waits until it accepts.
    pub fn start(workload: Workload, shape: &Shape, setup: &Setup) -> Result<Relay> {
        let upstreams: Vec<PathBuf> = match workload {
            Workload::Rtt => vec![uds::echo_socket(&setup.dir)],
            _ => (0..shape.consumers.max(1))
                .map(|consumer| uds::consumer_socket(&setup.dir, consumer))
                .collect(),
        };
        let ready = setup.dir.join("relay-ready.sock");
        let mut command = Command::new(std::env::current_exe().context("finding this binary")?);
        command.arg("relay").arg("--ready").arg(&ready);
        for upstream in &upstreams {
            command.arg("--upstream").arg(upstream);
        }
        let daemon = Daemon::start("uds relay", command, &ready)?;
        Ok(Relay {
            direct: Direct::new(workload),
            daemon,
        })
    }
}

impl Running for Relay {
    fn socket(&self) -> Option<&Path> {
        None
    }

    fn end_shared_queue(&mut self, shape: &Shape, window: usize, deadline: Deadline) -> Result<()> {
        self.direct.end_shared_queue(shape, window, deadline)
    }

    fn wait_for_waiting(&mut self, _: u64, _: Deadline) -> Result<()> {
        bail!("uds-relay has no waiting connections to count")
    }

    fn server_pid(&self) -> Option<u32> {
        None
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = self.direct.notes();
        notes.push(format!(
            "through a relay process copying bytes both ways ({} KiB buffers, one thread)",
            BUFFER / 1024
        ));
        notes
    }

    fn stop(self: Box<Self>) -> Result<()> {
        self.daemon.stop()
    }
}

/// The relay process: serves until SIGTERM, then exits 0.
pub fn serve(args: &RelayArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        for upstream in &args.upstreams {
            let path = relay_socket(upstream);
            let listener =
                UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
            tokio::spawn(accept(listener, upstream.clone()));
        }
        let ready = UnixListener::bind(&args.ready)
            .with_context(|| format!("binding {}", args.ready.display()))?;
        tokio::spawn(async move { while ready.accept().await.is_ok() {} });
        terminate.recv().await;
        Ok(())
    })
}

async fn accept(listener: UnixListener, upstream: PathBuf) {
    while let Ok((mut client, _)) = listener.accept().await {
        let upstream = upstream.clone();
        tokio::spawn(async move {
            // Nobody listens upstream (yet): the client sees its end close.
            let Ok(mut server) = UnixStream::connect(&upstream).await else {
                return;
            };
            if let Err(error) =
                tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, BUFFER, BUFFER)
                    .await
            {
                eprintln!("mailbox-bench relay: {error}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_relay_listens_beside_the_socket_it_relays_to() {
        let upstream = Path::new("/run/x/uds-3.sock");
        assert_eq!(relay_socket(upstream), Path::new("/run/x/relay-uds-3.sock"));
    }

    #[tokio::test]
    async fn bytes_go_through_both_ways_and_an_end_closes_the_other() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let upstream = uds::consumer_socket(dir.path(), 0);
        let server = UnixListener::bind(&upstream).expect("upstream listens");
        let relay = UnixListener::bind(relay_socket(&upstream)).expect("relay listens");
        tokio::spawn(accept(relay, upstream.clone()));

        let mut client = UnixStream::connect(relay_socket(&upstream))
            .await
            .expect("client connects to the relay");
        let (mut behind, _) = server.accept().await.expect("the relay connects upstream");
        let request = vec![7u8; 200_000];
        let write = async {
            client.write_all(&request).await.expect("client writes");
            client
        };
        let mut got = vec![0u8; request.len()];
        let (mut client, _) = tokio::join!(write, behind.read_exact(&mut got));
        assert_eq!(got, request);

        behind.write_all(b"reply").await.expect("server writes");
        drop(behind);
        let mut reply = Vec::new();
        client
            .read_to_end(&mut reply)
            .await
            .expect("client reads to the end");
        assert_eq!(reply, b"reply");
    }
}
