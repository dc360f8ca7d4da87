//! `[limits]`: the core's limits, the frame and handshake limits, and the
//! limits on connection buffers, with the checks that tie them together.

use std::time::Duration;

use mailbox_proto::MAX_MESSAGE_SIZE_LIMIT;

use super::file::{Document, Field, RawLimits, Result};
use super::{ConfigError, FileConfig, FRAME_OVERHEAD};
use crate::core::Limits;
use crate::server::BufferLimits;
use mailbox_proto::memfile::MAX_FILE_PAYLOAD;

impl Document<'_> {
    pub(super) fn limits(
        &self,
        raw: &RawLimits,
        defaults: &FileConfig,
    ) -> Result<(Limits, u32, Duration)> {
        let d = defaults.limits;
        let max = u64::MAX;
        let max_usize = usize::MAX as u64;
        let count = |name: &str, field: &Field, default: u64, ceiling: u64| {
            self.bounded(name, field, Self::count, default, ceiling)
        };
        let size = |name: &str, field: &Field, default: u64, ceiling: u64| {
            self.bounded(name, field, Self::size, default, ceiling)
        };
        let limits = Limits {
            memory_budget: size("memory_budget", &raw.memory_budget, d.memory_budget, max)?,
            max_queued_messages: count(
                "max_queued_messages",
                &raw.max_queued_messages,
                d.max_queued_messages,
                max,
            )?,
            max_requests_in_flight: count(
                "max_requests_in_flight",
                &raw.max_requests_in_flight,
                d.max_requests_in_flight as u64,
                max_usize,
            )? as usize,
            max_connections: count(
                "max_connections",
                &raw.max_connections,
                d.max_connections as u64,
                max_usize,
            )? as usize,
            max_connections_per_uid: count(
                "max_connections_per_uid",
                &raw.max_connections_per_uid,
                d.max_connections_per_uid as u64,
                max_usize,
            )? as usize,
            reserved_connections: match &raw.reserved_connections {
                // Zero is a choice here: no reserve.
                Some(field) => usize::try_from(self.count("limits.reserved_connections", field)?)
                    .unwrap_or(usize::MAX),
                None => d.reserved_connections,
            },
            max_mailboxes_per_uid: count(
                "max_mailboxes_per_uid",
                &raw.max_mailboxes_per_uid,
                d.max_mailboxes_per_uid as u64,
                max_usize,
            )? as usize,
            max_queued_bytes_per_mailbox: size(
                "max_queued_bytes_per_mailbox",
                &raw.max_queued_bytes_per_mailbox,
                d.max_queued_bytes_per_mailbox,
                max,
            )?,
            // Absent: derived from the totals (see `Limits::budget`).
            max_queued_bytes_per_uid: match &raw.max_queued_bytes_per_uid {
                None => d.max_queued_bytes_per_uid,
                field => Some(size("max_queued_bytes_per_uid", field, 0, max)?),
            },
            max_queued_messages_per_uid: match &raw.max_queued_messages_per_uid {
                None => d.max_queued_messages_per_uid,
                field => Some(count("max_queued_messages_per_uid", field, 0, max)?),
            },
            admin_reserve_bytes: match &raw.admin_reserve_bytes {
                None => d.admin_reserve_bytes,
                Some(value) => Some(self.size("limits.admin_reserve_bytes", value)?),
            },
            admin_reserve_messages: match &raw.admin_reserve_messages {
                None => d.admin_reserve_messages,
                Some(value) => Some(self.count("limits.admin_reserve_messages", value)?),
            },
            max_message_size: size(
                "max_message_size",
                &raw.max_message_size,
                u64::from(d.max_message_size),
                u64::from(MAX_MESSAGE_SIZE_LIMIT),
            )? as u32,
            max_region_size: size(
                "max_region_size",
                &raw.max_region_size,
                d.max_region_size,
                max,
            )?,
            max_regions_per_uid: count(
                "max_regions_per_uid",
                &raw.max_regions_per_uid,
                d.max_regions_per_uid as u64,
                max_usize,
            )? as usize,
            max_file_size: size(
                "max_file_size",
                &raw.max_file_size,
                d.max_file_size,
                MAX_FILE_PAYLOAD,
            )?,
            // The server's, from its frame limit (see `reload::apply`).
            max_inline_payload: d.max_inline_payload,
        };
        let budget = limits.budget();
        for (key, field, reserved, total, total_key) in [
            (
                "limits.admin_reserve_bytes",
                &raw.admin_reserve_bytes,
                budget.reserved_bytes,
                budget.bytes,
                "memory_budget",
            ),
            (
                "limits.admin_reserve_messages",
                &raw.admin_reserve_messages,
                budget.reserved_messages,
                budget.messages,
                "max_queued_messages",
            ),
        ] {
            if let Some(value) = field {
                if reserved >= total {
                    return Err(self.error(
                        value.span(),
                        key,
                        format!(
                            "{reserved} leaves nothing of {total_key} ({total}) to anyone but root and the admin group"
                        ),
                    ));
                }
            }
        }
        let max_frame_size = size(
            "max_frame_size",
            &raw.max_frame_size,
            u64::from(defaults.max_frame_size),
            u64::from(u32::MAX),
        )? as u32;
        let floor = limits.max_message_size.saturating_add(FRAME_OVERHEAD);
        if max_frame_size < floor {
            let message = format!(
                "max_frame_size ({max_frame_size}) must be at least max_message_size ({}) \
                 + 64K ({floor}), so that the largest message fits in a frame",
                limits.max_message_size
            );
            // The defaults fit, so one of the two is in the file.
            return Err(match (&raw.max_frame_size, &raw.max_message_size) {
                (Some(field), _) => self.error(field.span(), "limits.max_frame_size", message),
                (None, Some(field)) => self.error(field.span(), "limits.max_message_size", message),
                (None, None) => ConfigError::file(self.path, message),
            });
        }
        let handshake_timeout = match &raw.handshake_timeout {
            None => defaults.handshake_timeout,
            Some(field) => {
                let timeout = self.duration("limits.handshake_timeout", field)?;
                if timeout.is_zero() {
                    return Err(self.error(
                        field.span(),
                        "limits.handshake_timeout",
                        "must be longer than 0",
                    ));
                }
                timeout
            }
        };
        Ok((limits, max_frame_size, handshake_timeout))
    }

    /// The limits on connection buffers and on the memory files of
    /// messages the broker holds.
    pub(super) fn buffers(&self, raw: &RawLimits, d: &BufferLimits) -> Result<BufferLimits> {
        let max_usize = usize::MAX as u64;
        let size = |name: &str, field: &Field, default: usize| {
            self.bounded(name, field, Self::size, default as u64, max_usize)
                .map(|n| n as usize)
        };
        let count = |name: &str, field: &Field, default: usize| {
            self.bounded(name, field, Self::count, default as u64, max_usize)
                .map(|n| n as usize)
        };
        let timeout = |name: &str, field: &Field, default: Duration| {
            let key = format!("limits.{name}");
            let Some(value) = field else {
                return Ok(default);
            };
            let timeout = self.duration(&key, value)?;
            if timeout.is_zero() {
                return Err(self.error(value.span(), &key, "must be longer than 0"));
            }
            Ok(timeout)
        };
        Ok(BufferLimits {
            max_buffered_bytes: size(
                "max_buffered_bytes",
                &raw.max_buffered_bytes,
                d.max_buffered_bytes,
            )?,
            max_buffered_bytes_per_uid: size(
                "max_buffered_bytes_per_uid",
                &raw.max_buffered_bytes_per_uid,
                d.max_buffered_bytes_per_uid,
            )?,
            frame_timeout: timeout("frame_timeout", &raw.frame_timeout, d.frame_timeout)?,
            write_timeout: timeout("write_timeout", &raw.write_timeout, d.write_timeout)?,
            max_held_files: count("max_held_files", &raw.max_held_files, d.max_held_files)?,
            max_held_files_per_uid: count(
                "max_held_files_per_uid",
                &raw.max_held_files_per_uid,
                d.max_held_files_per_uid,
            )?,
        })
    }
}
