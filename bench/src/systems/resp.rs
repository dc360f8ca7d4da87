//! RESP2, the Redis protocol, by hand: encoding commands and parsing the
//! replies the benchmark uses. Pure functions over byte buffers; the
//! connection that reads and writes lives in `redis.rs`.

use std::ops::Range;

use anyhow::{anyhow, bail, Result};

/// Largest bulk string accepted (Redis's own `proto-max-bulk-len`); a
/// larger length means a corrupted stream.
const MAX_BULK: usize = 512 * 1024 * 1024;

/// Appends one command (an array of bulk strings) to `out`.
pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    array(out, args.len());
    for arg in args {
        bulk(out, arg);
    }
}

/// Appends the header of a command of `len` arguments, to be followed by
/// `len` [`bulk`] strings (a variadic command built without a list of its
/// arguments).
pub fn array(out: &mut Vec<u8>, len: usize) {
    out.push(b'*');
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends one argument of a command.
pub fn bulk(out: &mut Vec<u8>, arg: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(arg.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// One reply; strings are ranges of the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(Range<usize>),
    /// `-ERR ...`.
    Error(Range<usize>),
    /// `:42`.
    Integer(i64),
    /// `$3 foo`, or the null bulk string.
    Bulk(Option<Range<usize>>),
    /// `*2 ...`, or the null array (a timed-out `BRPOP`).
    Array(Option<Vec<Reply>>),
}

/// Parses the reply starting at `start` of `buffer`: the reply and where the
/// next one starts, or `None` while it is incomplete.
pub fn parse(buffer: &[u8], start: usize) -> Result<Option<(Reply, usize)>> {
    let Some((line, next)) = line(buffer, start) else {
        return Ok(None);
    };
    let Some((&kind, rest)) = buffer[line.clone()].split_first() else {
        bail!("empty reply line from redis");
    };
    let text_range = line.start + 1..line.end;
    match kind {
        b'+' => Ok(Some((Reply::Simple(text_range), next))),
        b'-' => Ok(Some((Reply::Error(text_range), next))),
        b':' => Ok(Some((Reply::Integer(number(rest)?), next))),
        b'$' => {
            let len = number(rest)?;
            if len < 0 {
                return Ok(Some((Reply::Bulk(None), next)));
            }
            let len = usize::try_from(len)?;
            if len > MAX_BULK {
                bail!("redis announced a {len}-byte string");
            }
            let end = next + len;
            if buffer.len() < end + 2 {
                return Ok(None);
            }
            if &buffer[end..end + 2] != b"\r\n" {
                bail!("a bulk string from redis is not terminated");
            }
            Ok(Some((Reply::Bulk(Some(next..end)), end + 2)))
        }
        b'*' => {
            let count = number(rest)?;
            if count < 0 {
                return Ok(Some((Reply::Array(None), next)));
            }
            let mut items = Vec::with_capacity(usize::try_from(count)?.min(16));
            let mut at = next;
            for _ in 0..count {
                let Some((item, after)) = parse(buffer, at)? else {
                    return Ok(None);
                };
                items.push(item);
                at = after;
            }
            Ok(Some((Reply::Array(Some(items)), at)))
        }
        other => bail!("unexpected reply type {:?} from redis", other as char),
    }
}

/// The line at `start` (without its CRLF) and where the next one starts.
fn line(buffer: &[u8], start: usize) -> Option<(Range<usize>, usize)> {
    let rest = buffer.get(start..)?;
    let at = rest.windows(2).position(|pair| pair == b"\r\n")?;
    Some((start..start + at, start + at + 2))
}

fn number(digits: &[u8]) -> Result<i64> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            anyhow!(
                "redis sent {:?} where a number belongs",
                String::from_utf8_lossy(digits)
            )
        })
}

/// The integer of an `LPUSH` reply.
pub fn integer(reply: &Reply, buffer: &[u8]) -> Result<i64> {
    match reply {
        Reply::Integer(value) => Ok(*value),
        other => Err(unexpected(other, buffer)),
    }
}

/// The value of a `BRPOP` reply (`[key, value]`).
pub fn popped(reply: &Reply, buffer: &[u8]) -> Result<Range<usize>> {
    if let Reply::Array(Some(items)) = reply {
        if let [Reply::Bulk(Some(_)), Reply::Bulk(Some(value))] = items.as_slice() {
            return Ok(value.clone());
        }
    }
    Err(unexpected(reply, buffer))
}

/// The values of a `BLMPOP`/`LMPOP` reply (`[key, [value, ...]]`), in the
/// order popped.
pub fn popped_many<'a>(
    reply: &'a Reply,
    buffer: &[u8],
) -> Result<impl Iterator<Item = Range<usize>> + 'a> {
    if let Reply::Array(Some(items)) = reply {
        if let [Reply::Bulk(Some(_)), Reply::Array(Some(values))] = items.as_slice() {
            if values
                .iter()
                .all(|value| matches!(value, Reply::Bulk(Some(_))))
            {
                return Ok(values.iter().filter_map(|value| match value {
                    Reply::Bulk(Some(range)) => Some(range.clone()),
                    _ => None,
                }));
            }
        }
    }
    Err(unexpected(reply, buffer))
}

/// The value of a `BLMOVE` reply (a bulk string).
pub fn moved(reply: &Reply, buffer: &[u8]) -> Result<Range<usize>> {
    match reply {
        Reply::Bulk(Some(range)) => Ok(range.clone()),
        other => Err(unexpected(other, buffer)),
    }
}

/// The text of a bulk or simple string reply.
pub fn text<'a>(reply: &Reply, buffer: &'a [u8]) -> Result<&'a [u8]> {
    match reply {
        Reply::Bulk(Some(range)) | Reply::Simple(range) => Ok(&buffer[range.clone()]),
        other => Err(unexpected(other, buffer)),
    }
}

fn unexpected(reply: &Reply, buffer: &[u8]) -> anyhow::Error {
    match reply {
        Reply::Error(range) => anyhow!(
            "redis answered: {}",
            String::from_utf8_lossy(&buffer[range.clone()])
        ),
        other => anyhow!("unexpected reply from redis: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        command(&mut out, &[b"LPUSH", b"q", b""]);
        assert_eq!(out, b"*3\r\n$5\r\nLPUSH\r\n$1\r\nq\r\n$0\r\n\r\n");
    }

    #[test]
    fn replies_parse_whole_and_wait_when_split() {
        let wire = b"*2\r\n$1\r\nq\r\n$5\r\nhe\r\no\r\n:7\r\n+OK\r\n-ERR no\r\n*-1\r\n$-1\r\n";
        // Every proper prefix of the first reply is incomplete.
        let first_end = 22;
        for cut in 0..first_end {
            assert_eq!(parse(&wire[..cut], 0).unwrap(), None, "cut at {cut}");
        }
        let (reply, next) = parse(wire, 0).unwrap().unwrap();
        assert_eq!(next, first_end);
        assert_eq!(&wire[popped(&reply, wire).unwrap()], b"he\r\no");
        let (reply, next) = parse(wire, next).unwrap().unwrap();
        assert_eq!(integer(&reply, wire).unwrap(), 7);
        let (reply, next) = parse(wire, next).unwrap().unwrap();
        assert_eq!(text(&reply, wire).unwrap(), b"OK");
        let (reply, next) = parse(wire, next).unwrap().unwrap();
        let error = integer(&reply, wire).unwrap_err();
        assert!(error.to_string().contains("ERR no"), "{error}");
        let (reply, next) = parse(wire, next).unwrap().unwrap();
        assert_eq!(reply, Reply::Array(None));
        let (reply, next) = parse(wire, next).unwrap().unwrap();
        assert_eq!(reply, Reply::Bulk(None));
        assert_eq!(next, wire.len());
    }

    #[test]
    fn variadic_commands_and_batched_pops() {
        let mut out = Vec::new();
        array(&mut out, 4);
        for arg in [&b"LPUSH"[..], b"q", b"a", b"bc"] {
            bulk(&mut out, arg);
        }
        let mut expected = Vec::new();
        command(&mut expected, &[b"LPUSH", b"q", b"a", b"bc"]);
        assert_eq!(out, expected);

        let wire = b"*2\r\n$1\r\nq\r\n*2\r\n$1\r\na\r\n$2\r\nbc\r\n$2\r\nxy\r\n";
        let (reply, next) = parse(wire, 0).unwrap().unwrap();
        let values: Vec<&[u8]> = popped_many(&reply, wire)
            .unwrap()
            .map(|range| &wire[range])
            .collect();
        assert_eq!(values, [&b"a"[..], b"bc"]);
        let (reply, _) = parse(wire, next).unwrap().unwrap();
        assert_eq!(&wire[moved(&reply, wire).unwrap()], b"xy");
        assert!(popped_many(&reply, wire).is_err());
        assert!(moved(&Reply::Integer(1), wire).is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"?what\r\n", 0).is_err());
        assert!(parse(b":x\r\n", 0).is_err());
        assert!(parse(b"$2\r\nabXY", 0).is_err());
        assert!(parse(b"$999999999999\r\n", 0).is_err());
    }
}
