//! `names`: the claimed well-known names and who holds them.

use super::Invocation;
use crate::failure::Failure;
use crate::output;

/// `names`: a table, or one JSON line per name.
pub(super) fn names(invocation: &mut Invocation) -> Result<(), Failure> {
    let names = invocation.client.names().map_err(invocation.fail())?;
    if invocation.out.json() {
        for info in &names {
            invocation
                .out
                .emit(|| output::names::json(info), String::new)?;
        }
        Ok(())
    } else {
        invocation.out.text(&output::names::table(&names))
    }
}
