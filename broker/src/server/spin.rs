//! Optional busy-polling after activity (`Config::spin`).
//!
//! On a conversation (request, reply, next request) most of the latency is
//! the kernel waking a sleeping thread. While this task spins, the runtime
//! keeps polling its sockets without sleeping, so a request that arrives
//! within the window is read at once. It only makes sense on the
//! single-threaded runtime, where yielding polls the I/O driver.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::Shared;

pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let window = shared.config.spin;
    loop {
        tokio::select! {
            () = shared.activity.notified() => {}
            _ = stop.changed() => return,
        }
        let mut until = Instant::now() + window;
        while Instant::now() < until {
            // Yielding defers this task until the runtime has polled the
            // I/O driver (without blocking), which runs any reader that
            // became ready; its activity extends the window.
            tokio::task::yield_now().await;
            if shared.take_activity() {
                until = Instant::now() + window;
            }
        }
    }
}
