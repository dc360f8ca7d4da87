//! What `recv` and `call` write after each message's bytes: the rule that
//! keeps exact bytes for scripts and readable lines for people.
//!
//! - Into a pipe or a file: nothing. The bytes on stdout are the messages'
//!   bytes exactly, back to back, so `recv > file` copies a message byte for
//!   byte.
//! - On a terminal: a newline after each message that does not end with one
//!   already, so that two messages (`to everyone` twice) and the shell's
//!   prompt stay apart. A message that ends with a newline is shown as it
//!   is, without an empty line after it.
//! - `--raw`: nothing, even on a terminal. `--delimiter STR`: STR after
//!   every message, on a terminal or not. `-0`: a NUL byte after every
//!   message.

use crate::args::Framing;

/// What follows each message's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Separator {
    /// Nothing: the exact bytes.
    Nothing,
    /// These bytes after every message.
    Always(Vec<u8>),
    /// A newline after a message that does not end with one.
    NewlineIfMissing,
}

impl Separator {
    /// The separator for `framing` when stdout is a terminal or not.
    pub(crate) fn choose(framing: Option<&Framing>, terminal: bool) -> Self {
        match framing {
            Some(framing) if framing.raw => Separator::Nothing,
            Some(framing) if framing.null => Separator::Always(vec![0]),
            Some(Framing {
                delimiter: Some(delimiter),
                ..
            }) => Separator::Always(delimiter.0.clone()),
            _ if terminal => Separator::NewlineIfMissing,
            _ => Separator::Nothing,
        }
    }

    /// The bytes to write after `payload`.
    pub(crate) fn after(&self, payload: &[u8]) -> &[u8] {
        match self {
            Separator::Nothing => b"",
            Separator::Always(bytes) => bytes,
            Separator::NewlineIfMissing if payload.ends_with(b"\n") => b"",
            Separator::NewlineIfMissing => b"\n",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Command;
    use crate::testing::command;

    fn separator(args: &[&str], terminal: bool) -> Separator {
        Separator::choose(command(args).framing(), terminal)
    }

    #[test]
    fn a_terminal_gets_a_newline_after_each_message_a_pipe_the_exact_bytes() {
        let terminal = separator(&["recv", "jobs"], true);
        assert_eq!(terminal, Separator::NewlineIfMissing);
        assert_eq!(terminal.after(b"to everyone"), b"\n");
        assert_eq!(terminal.after(b"a line\n"), b"", "no empty line after it");
        assert_eq!(terminal.after(b""), b"\n");
        let pipe = separator(&["recv", "jobs"], false);
        assert_eq!(pipe, Separator::Nothing);
        assert_eq!(pipe.after(b"to everyone"), b"");
        let call = separator(&["call", "svc", "ping"], true);
        assert_eq!(call, Separator::NewlineIfMissing);
    }

    #[test]
    fn raw_delimiter_and_null_win_over_the_terminal_rule() {
        for terminal in [true, false] {
            assert_eq!(
                separator(&["recv", "jobs", "--raw"], terminal),
                Separator::Nothing
            );
            assert_eq!(
                separator(&["recv", "jobs", "-0"], terminal).after(b"x\n"),
                b"\0"
            );
            assert_eq!(
                separator(&["recv", "jobs", "--delimiter", "\\n--\\n"], terminal).after(b"x\n"),
                b"\n--\n"
            );
        }
        assert!(matches!(
            command(&["call", "svc", "ping", "--null"]),
            Command::Call { .. }
        ));
    }
}
