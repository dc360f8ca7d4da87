//! The deadline task: sleeps until the core's earliest deadline and fires it.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant as TokioInstant;

use super::{clock, Shared};
use crate::core::Outcome;

pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut out = Outcome::new();
    loop {
        let next = {
            let mut state = shared.lock();
            state.core.expire(&clock(), &mut out);
            state.route(&mut out);
            let next = state.core.next_deadline();
            state.timer_armed_for = next;
            next
        };
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(TokioInstant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = shared.timer_wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
