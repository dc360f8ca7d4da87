//! The service-manager task: keeps `systemctl status` current with a
//! `STATUS=` line and pings the watchdog, when [`Config::notifier`] is
//! enabled (readiness and stopping are sent by [`super::run`]).
//!
//! A watchdog ping is sent only after taking the shared lock, so a broker
//! whose core is stuck, or whose runtime no longer runs tasks, stops pinging
//! and is restarted by systemd (`WatchdogSec=`).
//!
//! [`Config::notifier`]: super::Config::notifier

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

use super::{Shared, State};

/// How often the status line is recomputed; it is sent only when it changed.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// "3 connections, 1 mailbox".
pub(crate) fn status_line(state: &State) -> String {
    let connections = state.core.connection_count();
    let mailboxes = state.core.mailbox_count();
    format!(
        "{connections} {}, {mailboxes} {}",
        if connections == 1 {
            "connection"
        } else {
            "connections"
        },
        if mailboxes == 1 {
            "mailbox"
        } else {
            "mailboxes"
        },
    )
}

/// Ticks every `period`, the first time after one period (readiness was
/// just reported), and does not catch up on missed ticks.
fn every(period: Duration) -> Interval {
    let mut tick = interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let notifier = shared.config.notifier.clone();
    if !notifier.is_enabled() {
        return;
    }
    let mut last_status = status_line(&shared.lock());
    let mut status_tick = every(STATUS_INTERVAL);
    let mut watchdog_tick = notifier.watchdog_interval().map(every);
    loop {
        let watchdog_due = async {
            match &mut watchdog_tick {
                Some(tick) => {
                    tick.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = status_tick.tick() => {
                let status = status_line(&shared.lock());
                if status != last_status {
                    notifier.status(&status);
                    last_status = status;
                }
            }
            () = watchdog_due => {
                drop(shared.lock());
                notifier.watchdog();
            }
            _ = stop.changed() => return,
        }
    }
}
