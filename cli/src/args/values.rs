//! How mailboxctl reads the values of its flags and arguments: sizes,
//! durations, modes, owners and processes, each turned into what the
//! client library takes, with a message that says how to write it.
//!
//! Every value parser of the command line is here; sizes, durations and
//! modes are read by `mailbox_proto::units`, as in the configuration file
//! and `mailboxd`'s flags.

use std::io;

use mailbox_client::Address;
/// A duration like 500ms, 2s, 1.5s, 10min or 0 (the shared units reader).
pub(crate) use mailbox_proto::units::{self, parse_duration};

/// A process: digits are its address, anything else a well-known name.
/// (Explicit, because clap would prefer `Address`'s `From<&str>`, a name.)
pub(crate) fn parse_address(text: &str) -> Result<Address, std::convert::Infallible> {
    text.parse()
}

/// Rights in octal: `0760`, `760` or `0o760`, at most `0777`.
pub(crate) fn parse_mode(text: &str) -> Result<u32, String> {
    units::parse_mode(text).map_err(|error| error.to_string())
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

/// A size in bytes, as everywhere else (`4096`, `64K`, `64KiB`, `1M`), at
/// most 4 GiB - 1 (the protocol's sizes are 32-bit).
pub(crate) fn parse_size(text: &str) -> Result<u32, String> {
    units::parse_size_at_most(text, u32::MAX.into())
        .map(|bytes| u32::try_from(bytes).unwrap_or(u32::MAX))
        .map_err(|error| error.to_string())
}

/// A size or offset of a shared-memory region, in bytes (`64M`, `1G`).
pub(crate) fn parse_region_size(text: &str) -> Result<u64, String> {
    units::parse_size(text).map_err(|error| error.to_string())
}

/// `--delimiter`'s bytes, escapes read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delimiter(pub(crate) Vec<u8>);

/// `--delimiter STR`: its bytes, with `\n`, `\t`, `\r`, `\0` and `\\` read
/// as a newline, tab, carriage return, NUL and a backslash (so that
/// `--delimiter '\n'` works without the shell's `$'\n'`); any other
/// backslash is refused rather than guessed at.
pub(crate) fn parse_delimiter(text: &str) -> Result<Delimiter, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let c = match c {
            '\\' => match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some('0') => '\0',
                Some('\\') => '\\',
                other => {
                    return Err(format!(
                        "unknown escape \\{} in {text:?}; use \\n, \\t, \\r, \\0 or \\\\",
                        other.map(String::from).unwrap_or_default()
                    ))
                }
            },
            c => c,
        };
        let mut utf8 = [0; 4];
        bytes.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
    Ok(Delimiter(bytes))
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
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert!(parse_size("4096MiB").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn delimiters_read_backslash_escapes() {
        assert_eq!(parse_delimiter("---"), Ok(Delimiter(b"---".to_vec())));
        assert_eq!(parse_delimiter("\\n"), Ok(Delimiter(b"\n".to_vec())));
        assert_eq!(
            parse_delimiter("\\n\\0\\t\\r\\\\"),
            Ok(Delimiter(b"\n\0\t\r\\".to_vec()))
        );
        assert_eq!(parse_delimiter(""), Ok(Delimiter(Vec::new())));
        assert!(parse_delimiter("\\x").is_err());
        assert!(parse_delimiter("a\\").is_err());
    }
}
