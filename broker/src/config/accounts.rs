//! Users and groups: an id (integer or digits), or a name looked up with
//! `getpwnam_r` / `getgrnam_r`.

use std::io;
use std::ops::Range;

use mailbox_proto::accounts;
use toml::{Spanned, Value};

use super::file::{Document, Result};

impl Document<'_> {
    pub(super) fn user(&self, key: &str, value: &Spanned<Value>) -> Result<u32> {
        self.user_value(key, value.span(), value.get_ref())
    }

    pub(super) fn user_value(&self, key: &str, span: Range<usize>, value: &Value) -> Result<u32> {
        self.principal(key, span, value, "user", "uid", accounts::user_id)
    }

    pub(super) fn group(&self, key: &str, value: &Spanned<Value>) -> Result<u32> {
        self.principal(
            key,
            value.span(),
            value.get_ref(),
            "group",
            "gid",
            accounts::group_id,
        )
    }

    /// A user or group: an id (integer or digits), or a name looked up.
    pub(super) fn principal(
        &self,
        key: &str,
        span: Range<usize>,
        value: &Value,
        what: &str,
        id: &str,
        lookup: fn(&str) -> io::Result<Option<u32>>,
    ) -> Result<u32> {
        let expected = format!("expected a {what} name in quotes or a {id}");
        match value {
            Value::Integer(n) => u32::try_from(*n)
                .ok()
                .filter(|&n| n != u32::MAX)
                .ok_or_else(|| self.error(span, key, format!("{n} is not a valid {id}"))),
            Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse::<u32>()
                    .ok()
                    .filter(|&n| n != u32::MAX)
                    .ok_or_else(|| self.error(span, key, format!("{text} is not a valid {id}")))
            }
            Value::String(text) => match lookup(text) {
                Ok(Some(id)) => Ok(id),
                Ok(None) => Err(self.error(span, key, format!("no {what} named {text:?}"))),
                Err(error) => Err(self.error(
                    span,
                    key,
                    format!("cannot look up the {what} {text:?}: {error}"),
                )),
            },
            _ => Err(self.error(span, key, expected)),
        }
    }
}
