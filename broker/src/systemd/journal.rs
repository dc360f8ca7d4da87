//! Logging to the journal through stderr.
//!
//! systemd connects a service's stderr to journald and sets
//! `$JOURNAL_STREAM` to that stream's `device:inode`; if stderr still is
//! that stream (not redirected since), journald reads each line as one
//! entry and takes a leading `<N>` as its syslog priority. [`JournalFormat`]
//! writes exactly that: one line per event, the priority prefix, no colour
//! and no timestamp (journald stamps entries itself).

use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Whether stderr is the journal stream `$JOURNAL_STREAM` names.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((device, inode)) = parse_stream(&value) else {
        return false;
    };
    // MetadataExt gives dev and ino as u64 on every Unix; the dup is closed
    // at once.
    let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(metadata) = std::fs::File::from(stderr).metadata() else {
        return false;
    };
    metadata.dev() == device && metadata.ino() == inode
}

/// `device:inode` from `$JOURNAL_STREAM`, both decimal.
pub fn parse_stream(value: &OsStr) -> Option<(u64, u64)> {
    let (device, inode) = value.to_str()?.split_once(':')?;
    Some((device.parse().ok()?, inode.parse().ok()?))
}

/// The syslog priority journald reads from a `<N>` prefix.
pub fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        // DEBUG and TRACE
        _ => 7,
    }
}

/// One line per event for journald: `<N>target: span{fields}: message
/// fields`, with newlines inside the event escaped so it stays one entry.
/// Use it with ANSI colours off (`with_ansi(false)`), which also keeps span
/// fields plain.
#[derive(Debug, Clone, Copy, Default)]
pub struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = String::new();
        write!(line, "{}: ", metadata.target())?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                line.push_str(span.name());
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(line, "{{{fields}}}")?;
                    }
                }
                line.push_str(": ");
            }
        }
        ctx.field_format()
            .format_fields(Writer::new(&mut line), event)?;
        writeln!(
            writer,
            "<{}>{}",
            priority(*metadata.level()),
            line.trim_end().replace('\n', "\\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_stream(OsStr::new("8:12345")), Some((8, 12345)));
        assert_eq!(parse_stream(OsStr::new("8")), None);
        assert_eq!(parse_stream(OsStr::new("a:b")), None);
        assert_eq!(parse_stream(OsStr::new("")), None);
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn events_are_single_lines_with_a_syslog_priority() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .event_format(JournalFormat)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("broken");
            tracing::warn!(socket = "/run/x", "careful");
            let span = tracing::info_span!("connection", id = 7);
            let _entered = span.enter();
            tracing::info!("two\nlines");
            tracing::debug!("detail");
            tracing::trace!("noise");
        });
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        let target = module_path!();
        let expected = [
            format!("<3>{target}: broken"),
            format!("<4>{target}: careful socket=\"/run/x\""),
            format!("<6>{target}: connection{{id=7}}: two\\nlines"),
            format!("<7>{target}: connection{{id=7}}: detail"),
            format!("<7>{target}: connection{{id=7}}: noise"),
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected);
        assert!(!text.contains('\x1b'), "no colour: {text:?}");
    }
}
