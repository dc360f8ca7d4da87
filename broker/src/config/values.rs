//! One value each: strings, counts, sizes, durations, modes, capacities
//! and policies, every error located at the value. Sizes, durations and
//! modes are written as [`mailbox_proto::units`] reads them.

use std::time::Duration;

use mailbox_proto::units::{parse_duration, parse_mode, parse_size};
use mailbox_proto::{Capacity, DeliveryPolicy};
use toml::{Spanned, Value};

use super::file::{Document, Field, Result};

impl Document<'_> {
    pub(super) fn optional<T>(
        &self,
        key: &str,
        field: &Field,
        convert: impl Fn(&Self, &str, &Spanned<Value>) -> Result<T>,
    ) -> Result<Option<T>> {
        field
            .as_ref()
            .map(|value| convert(self, key, value))
            .transpose()
    }

    /// A limit between 1 and `ceiling`, or `default` when absent.
    pub(super) fn bounded(
        &self,
        name: &str,
        field: &Field,
        convert: fn(&Self, &str, &Spanned<Value>) -> Result<u64>,
        default: u64,
        ceiling: u64,
    ) -> Result<u64> {
        let key = format!("limits.{name}");
        let Some(value) = field else {
            return Ok(default);
        };
        let n = convert(self, &key, value)?;
        if n == 0 {
            return Err(self.error(value.span(), &key, "must be at least 1"));
        }
        if n > ceiling {
            return Err(self.error(
                value.span(),
                &key,
                format!("{n} is above the most this limit can be ({ceiling})"),
            ));
        }
        Ok(n)
    }

    pub(super) fn at_most_u32(&self, key: &str, field: &Field, n: u64) -> Result<u32> {
        u32::try_from(n).map_err(|_| {
            let span = field.as_ref().map_or(0..0, Spanned::span);
            self.error(
                span,
                key,
                format!("{n} is too large (at most {})", u32::MAX),
            )
        })
    }

    pub(super) fn string(&self, key: &str, value: &Spanned<Value>) -> Result<String> {
        match value.get_ref() {
            Value::String(text) => Ok(text.clone()),
            _ => Err(self.error(value.span(), key, "expected a string in quotes")),
        }
    }

    pub(super) fn count(&self, key: &str, value: &Spanned<Value>) -> Result<u64> {
        match value.get_ref() {
            Value::Integer(n) => u64::try_from(*n).map_err(|_| {
                self.error(value.span(), key, "expected a number, not a negative one")
            }),
            _ => Err(self.error(value.span(), key, "expected a number")),
        }
    }

    pub(super) fn size(&self, key: &str, value: &Spanned<Value>) -> Result<u64> {
        let expected =
            "expected a size: a number of bytes, or a string like \"64K\", \"1M\" or \"1G\"";
        match value.get_ref() {
            Value::Integer(n) => {
                u64::try_from(*n).map_err(|_| self.error(value.span(), key, expected))
            }
            _ => self.quoted(key, value, parse_size, expected),
        }
    }

    pub(super) fn duration(&self, key: &str, value: &Spanned<Value>) -> Result<Duration> {
        let expected = "expected a duration in quotes, like \"5s\" or \"200ms\"";
        self.quoted(key, value, parse_duration, expected)
    }

    pub(super) fn mode(&self, key: &str, value: &Spanned<Value>) -> Result<u32> {
        let expected = "expected an octal mode in quotes, like \"0660\"";
        self.quoted(key, value, parse_mode, expected)
    }

    /// A string read by `parse` (its error says what is wrong with the
    /// text); `expected` says what to write when the value is no string.
    fn quoted<T, E: std::fmt::Display>(
        &self,
        key: &str,
        value: &Spanned<Value>,
        parse: impl FnOnce(&str) -> std::result::Result<T, E>,
        expected: &str,
    ) -> Result<T> {
        match value.get_ref() {
            Value::String(text) => {
                parse(text).map_err(|why| self.error(value.span(), key, why.to_string()))
            }
            _ => Err(self.error(value.span(), key, expected)),
        }
    }

    pub(super) fn capacity(&self, key: &str, value: &Spanned<Value>) -> Result<Capacity> {
        let expected = "expected \"zero\", a number of messages, or \"unbounded\"";
        let text = match value.get_ref() {
            Value::String(text) => text.clone(),
            Value::Integer(n) if *n >= 0 => n.to_string(),
            _ => return Err(self.error(value.span(), key, expected)),
        };
        text.parse()
            .map_err(|_| self.error(value.span(), key, format!("{text:?}: {expected}")))
    }

    pub(super) fn policy(&self, key: &str, value: &Spanned<Value>) -> Result<DeliveryPolicy> {
        let expected = "expected \"round-robin\", \"broadcast\", \"hash\" or \"priority\"";
        match value.get_ref() {
            Value::String(text) => text
                .parse()
                .map_err(|_| self.error(value.span(), key, format!("{text:?}: {expected}"))),
            _ => Err(self.error(value.span(), key, expected)),
        }
    }
}
