//! Watching a broker under attack: its resident memory sampled, and a
//! well-behaved client's round trips timed, in the background.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{rss_bytes, witness_round_trip, Broker};

/// Samples the broker's RSS and times a well-behaved client's round trips
/// in the background until stopped.
pub struct Watch {
    stop: Arc<AtomicBool>,
    rss: JoinHandle<u64>,
    trips: JoinHandle<(u64, Duration)>,
}

impl Watch {
    /// Starts watching `broker`; the client connects anew every
    /// `reconnect_every`-th round trip (`None`: it keeps its connection).
    pub fn start(broker: &Broker, reconnect_every: Option<u64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let pid = broker.pid();
        let rss = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut max = 0;
                while !stop.load(Ordering::Relaxed) {
                    max = max.max(rss_bytes(pid));
                    std::thread::sleep(Duration::from_millis(10));
                }
                max.max(rss_bytes(pid))
            })
        };
        let trips = {
            let stop = stop.clone();
            let socket = broker.socket().to_owned();
            std::thread::spawn(move || {
                let (mut count, mut slowest) = (0u64, Duration::ZERO);
                let mut client = crate::client_at(&socket);
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    if reconnect_every.is_some_and(|every| count % every == every - 1) {
                        client = crate::client_at(&socket);
                    }
                    witness_round_trip(&mut client);
                    slowest = slowest.max(start.elapsed());
                    count += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                (count, slowest)
            })
        };
        Self { stop, rss, trips }
    }

    /// Stops; asserts the client got a round trip done and returns the RSS
    /// peak and the slowest round trip.
    pub fn finish(self) -> (u64, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let rss = self.rss.join().expect("rss sampler");
        let (count, slowest) = self.trips.join().expect("round trips");
        eprintln!(
            "broker RSS peaked at {} MiB; {count} round trips, the slowest {slowest:?}",
            rss >> 20
        );
        assert!(count > 0, "the well-behaved client got no round trip done");
        (rss, slowest)
    }
}
