//! How mailboxctl reads the values of its flags and arguments: sizes,
//! durations, modes, owners and processes, each turned into what the
//! client library takes, with a message that says how to write it.
//!
//! Every value parser of the command line is here, so that a shared units
//! module can replace the size and duration readers in one edit.

use std::io;

/// A duration like 500ms, 2s, 1.5s or 1m (the client library's reader).
pub(crate) use mailbox_client::parse_duration;
use mailbox_client::Address;

/// A process: digits are its address, anything else a well-known name.
/// (Explicit, because clap would prefer `Address`'s `From<&str>`, a name.)
pub(crate) fn parse_address(text: &str) -> Result<Address, std::convert::Infallible> {
    text.parse()
}

/// Rights in octal: `0760`, `760` or `0o760`, at most `0777`.
pub(crate) fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        if let Ok(mode) = u32::from_str_radix(digits, 8) {
            if mode <= 0o777 {
                return Ok(mode);
            }
        }
    }
    Err(format!(
        "{text:?} is not a mode; write it in octal like 0760 (owner, group, others; \
         receive 4, send 2, manage 1)"
    ))
}

/// `chown`'s `[USER][:GROUP]`, resolved to ids.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    pub(crate) user: Option<u32>,
    pub(crate) group: Option<u32>,
}

/// `chown`'s `[USER][:GROUP]`: at least one of the two.
pub(crate) fn parse_owner(text: &str) -> Result<Owner, String> {
    let (user, group) = match text.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (text, None),
    };
    let owner = Owner {
        user: Some(user)
            .filter(|user| !user.is_empty())
            .map(parse_user)
            .transpose()?,
        group: group
            .filter(|group| !group.is_empty())
            .map(parse_group)
            .transpose()?,
    };
    if owner.user.is_none() && owner.group.is_none() {
        return Err("give USER, USER:GROUP or :GROUP (names or numeric ids)".to_owned());
    }
    Ok(owner)
}

/// A user: a uid, or a user name looked up.
fn parse_user(text: &str) -> Result<u32, String> {
    principal(text, "user", "uid", mailbox_proto::accounts::user_id)
}

/// A group: a gid, or a group name looked up.
pub(crate) fn parse_group(text: &str) -> Result<u32, String> {
    principal(text, "group", "gid", mailbox_proto::accounts::group_id)
}

/// A numeric id, or a name looked up.
fn principal(
    text: &str,
    what: &str,
    id: &str,
    lookup: fn(&str) -> io::Result<Option<u32>>,
) -> Result<u32, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u32>()
            .ok()
            .filter(|&n| n != u32::MAX)
            .ok_or_else(|| format!("{text} is not a valid {id}"));
    }
    match lookup(text) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(format!(
            "no {what} named {text:?}; give a {what} name or a {id}"
        )),
        Err(error) => Err(format!("cannot look up the {what} {text:?}: {error}")),
    }
}

/// A time-to-live: a duration in whole milliseconds (rounded up), at least 1.
pub(crate) fn parse_ttl(text: &str) -> Result<u64, String> {
    positive_millis(text, "time-to-live")
}

/// `--ack-timeout`: a duration in whole milliseconds (rounded up), at least 1.
pub(crate) fn parse_ack_timeout(text: &str) -> Result<u64, String> {
    positive_millis(text, "acknowledgement timeout")
}

/// `--cut-slow-subscribers-after`: a duration in whole milliseconds
/// (rounded up), at least 1.
pub(crate) fn parse_cut_after(text: &str) -> Result<u64, String> {
    positive_millis(text, "time to cut slow subscribers after")
}

/// A duration of at least 1 ms, in whole milliseconds (rounded up).
fn positive_millis(text: &str, what: &str) -> Result<u64, String> {
    let duration = parse_duration(text).map_err(|error| error.to_string())?;
    u64::try_from(duration.as_nanos().div_ceil(1_000_000))
        .ok()
        .filter(|&millis| millis > 0)
        .ok_or_else(|| format!("{text:?} is no {what}; give at least 1ms, like 30s or 5m"))
}

/// A size in bytes: a number, optionally followed by `KiB` or `MiB`.
pub(crate) fn parse_size(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let (number, multiplier) = if let Some(number) = text.strip_suffix("MiB") {
        (number, 1024 * 1024)
    } else if let Some(number) = text.strip_suffix("KiB") {
        (number, 1024)
    } else {
        (text.strip_suffix('B').unwrap_or(text), 1)
    };
    number
        .trim()
        .parse::<u32>()
        .ok()
        .and_then(|number| number.checked_mul(multiplier))
        .ok_or_else(|| {
            format!("{text:?} is not a size; write a number of bytes, like 4096, 64KiB or 1MiB")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10B"), Ok(10));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("4096MiB").is_err());
        assert!(parse_size("lots").is_err());
    }
}
