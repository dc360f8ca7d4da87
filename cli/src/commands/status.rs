//! `status` and `top`: the broker's figures, and the mailboxes' rates from
//! two listings a moment apart ([`crate::top`]).

use std::io;
use std::time::{Duration, Instant};

use super::Invocation;
use crate::failure::Failure;
use crate::output;
use crate::top;

/// `status`: the broker's figures and limits, then every mailbox's rates
/// over `interval` (left out when it is zero).
pub(super) fn status(invocation: &mut Invocation, interval: Duration) -> Result<(), Failure> {
    let fail = invocation.fail();
    let client = &mut invocation.client;
    let status = client.status().map_err(&fail)?;
    let rates = if interval.is_zero() {
        None
    } else {
        let before = client.list().map_err(&fail)?;
        let started = Instant::now();
        std::thread::sleep(interval);
        let after = client.list().map_err(&fail)?;
        Some(top::rates(&before, &after, started.elapsed()))
    };
    invocation.out.emit(
        || {
            let mut value = output::status::json(&status);
            if let (Some(rates), Some(object)) = (&rates, value.as_object_mut()) {
                object.insert("mailbox_rates".into(), top::json(rates));
            }
            value
        },
        || {
            let mut text = output::status::text(&status);
            if let Some(rates) = &rates {
                text.push_str(&format!(
                    "rates over {}:\n",
                    output::text::human_duration(interval)
                ));
                text.push_str(&top::table(rates));
            }
            text
        },
    )
}

/// `top`: the rates every `interval`, `iterations` times or until killed;
/// on a terminal each refresh replaces the last.
pub(super) fn top(
    invocation: &mut Invocation,
    interval: Duration,
    iterations: Option<u64>,
) -> Result<(), Failure> {
    let fail = invocation.fail();
    let Invocation { client, out, .. } = invocation;
    let clear = std::io::IsTerminal::is_terminal(&io::stdout()) && !out.json();
    let mut before = client.list().map_err(&fail)?;
    let mut last = Instant::now();
    let mut shown = 0;
    while iterations.is_none_or(|n| shown < n) {
        std::thread::sleep(interval);
        let status = client.status().map_err(&fail)?;
        let after = client.list().map_err(&fail)?;
        let rates = top::rates(&before, &after, last.elapsed());
        last = Instant::now();
        before = after;
        shown += 1;
        if out.json() {
            out.emit(|| top::json(&rates), String::new)?;
            continue;
        }
        let mut screen = String::new();
        if clear {
            // Home and clear, so each refresh replaces the last.
            screen.push_str("\x1b[H\x1b[2J");
        }
        screen.push_str(&output::status::summary_line(&status));
        screen.push('\n');
        screen.push_str(&top::table(&rates));
        if !clear {
            screen.push('\n');
        }
        out.text(&screen)?;
    }
    Ok(())
}
