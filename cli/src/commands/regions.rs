//! `region create`, `list`, `info`, `delete`, `write` and `read`: the
//! shared-memory regions of the broker. `write` and `read` open the region
//! (read-write or read-only) and copy between it and stdin or stdout
//! through a mapping, as any program of the library would.

use std::io::{self, Read as _};

use mailbox_client::RegionAccess;
use serde_json::json;

use super::Invocation;
use crate::exit;
use crate::failure::Failure;
use crate::output;

/// `region create`.
pub(super) fn create(
    invocation: &mut Invocation,
    name: &str,
    size: u64,
    mode: Option<u32>,
    group: Option<u32>,
) -> Result<(), Failure> {
    let created = invocation
        .client
        .create_region_with(name, size, mode, group)
        .map_err(invocation.fail())?;
    invocation.out.receipt(
        || json!({ "name": name, "size": size, "created": created }),
        || {
            if created {
                format!("created region {name} ({size} bytes)\n")
            } else {
                format!("region {name} already exists with {size} bytes\n")
            }
        },
    )
}

/// `region list`.
pub(super) fn list(invocation: &mut Invocation) -> Result<(), Failure> {
    let regions = invocation.client.regions().map_err(invocation.fail())?;
    if invocation.out.json() {
        invocation.out.text(&output::region::json_lines(&regions))
    } else {
        invocation.out.text(&output::region::table(&regions))
    }
}

/// `region info`.
pub(super) fn info(invocation: &mut Invocation, name: &str) -> Result<(), Failure> {
    let info = invocation
        .client
        .region_info(name)
        .map_err(invocation.fail())?;
    invocation.out.emit(
        || output::region::json(&info),
        || output::region::text(&info),
    )
}

/// `region delete`.
pub(super) fn delete(invocation: &mut Invocation, name: &str) -> Result<(), Failure> {
    invocation
        .client
        .delete_region(name)
        .map_err(invocation.fail())?;
    invocation.out.receipt(
        || json!({ "name": name, "deleted": true }),
        || format!("deleted region {name}\n"),
    )
}

/// `region write`: stdin into the region at `offset`. The region's size
/// bounds what is read: more than fits is refused before anything is
/// written.
pub(super) fn write(invocation: &mut Invocation, name: &str, offset: u64) -> Result<(), Failure> {
    let region = invocation
        .client
        .open_region(name, RegionAccess::ReadWrite)
        .map_err(invocation.fail())?;
    let room = region.size().saturating_sub(offset);
    let mut bytes = Vec::new();
    io::stdin()
        .lock()
        .take(room.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|error| {
            Failure::new(
                exit::FAILURE,
                format!("cannot read standard input: {error}"),
                "check what is piped into mailboxctl",
            )
        })?;
    if bytes.len() as u64 > room {
        return Err(past_the_end(name, offset, region.size()));
    }
    let mapping = region.map().map_err(|error| cannot_map(name, &error))?;
    let start = usize::try_from(offset).map_err(|_| past_the_end(name, offset, region.size()))?;
    mapping
        .write_at(start, &bytes)
        .map_err(|_| past_the_end(name, offset, region.size()))?;
    let written = bytes.len();
    invocation.out.receipt(
        || json!({ "name": name, "offset": offset, "written": written }),
        || format!("wrote {written} bytes into region {name} at offset {offset}\n"),
    )
}

/// `region read`: `len` bytes (or to the end) from `offset` to stdout.
pub(super) fn read(
    invocation: &mut Invocation,
    name: &str,
    offset: u64,
    len: Option<u64>,
) -> Result<(), Failure> {
    let region = invocation
        .client
        .open_region(name, RegionAccess::Read)
        .map_err(invocation.fail())?;
    let size = region.size();
    let len = len.unwrap_or_else(|| size.saturating_sub(offset));
    let end = offset.checked_add(len).filter(|end| *end <= size);
    let (Some(_), Ok(start), Ok(count)) = (end, usize::try_from(offset), usize::try_from(len))
    else {
        return Err(past_the_end(name, offset.saturating_add(len), size));
    };
    let mapping = region.map().map_err(|error| cannot_map(name, &error))?;
    let mut bytes = vec![0; count];
    mapping
        .read_at(start, &mut bytes)
        .map_err(|_| past_the_end(name, offset, size))?;
    invocation.out.raw(&bytes)
}

fn past_the_end(name: &str, offset: u64, size: u64) -> Failure {
    Failure::new(
        exit::REFUSED,
        format!("that goes past the end of region {name} ({size} bytes) at offset {offset}"),
        "write or read less, or from an earlier --offset",
    )
}

fn cannot_map(name: &str, error: &io::Error) -> Failure {
    Failure::new(
        exit::FAILURE,
        format!("cannot map region {name}: {error}"),
        "check this process's memory limits (ulimit -v)",
    )
}
