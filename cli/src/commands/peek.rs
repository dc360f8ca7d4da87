//! `peek`: the queued messages of a mailbox, shown page by page without
//! taking any, each as a header line and its bytes (or as recv's JSON
//! line), with notes on stderr for what is not shown.

use mailbox_client::{Source, PAGE_ROWS};

use super::Invocation;
use crate::failure::Failure;
use crate::output;

/// `peek`: at most `count` messages of `name` after `after`, read in pages.
pub(super) fn peek(
    invocation: &mut Invocation,
    name: &str,
    count: u64,
    after: Option<u64>,
) -> Result<(), Failure> {
    let fail = invocation.fail();
    let Invocation { client, out, .. } = invocation;
    let mut after = after;
    let mut shown = 0u64;
    let (in_flight, more) = loop {
        let max = (count - shown).min(u64::from(PAGE_ROWS)) as u32;
        let page = client
            .peek_page(Source::Mailbox(name.to_owned()), after, max)
            .map_err(&fail)?;
        for message in &page.messages {
            if out.json() {
                out.emit(|| output::message::json(Some(name), message), String::new)?;
            } else {
                out.text(&output::message::header(message))?;
                out.raw(&message.payload)?;
                out.text("\n")?;
            }
        }
        shown += page.messages.len() as u64;
        match page.next {
            // A page always holds a message when more follow, and its
            // cursor moves on; anything else would loop.
            Some(next) if !page.messages.is_empty() && after != Some(next) => {
                if shown >= count {
                    break (page.in_flight, Some(next));
                }
                after = Some(next);
            }
            _ => break (page.in_flight, None),
        }
    };
    if in_flight > 0 {
        eprintln!(
            "note: {in_flight} more held by receivers that have not acknowledged them \
             (not queued, so not shown)"
        );
    }
    if let Some(next) = more {
        eprintln!("note: more messages are queued; show them with --after {next}");
    }
    Ok(())
}
