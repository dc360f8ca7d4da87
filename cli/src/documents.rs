//! What `mailboxctl completions` and `mailboxctl manual` print: shell
//! completion scripts and roff manual pages, generated from the clap
//! definitions of [`crate::args`] (so they always match the command line).
//! Neither connects to the broker.

use std::io::{self, Write};
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::args::Cli;
use crate::exit;
use crate::failure::Failure;

/// The name the scripts complete and the pages are about.
const NAME: &str = "mailboxctl";

/// Writes the completion script for `shell` to standard output.
pub(crate) fn completions(shell: Shell) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), NAME, &mut script);
    io::stdout().write_all(&script).map_err(Failure::stdout)
}

/// Writes mailboxctl's manual page to standard output; with `dir`, writes
/// it as `mailboxctl.1`, and one page per command as
/// `mailboxctl-COMMAND.1`, into `dir` instead.
pub(crate) fn manual(dir: Option<&Path>) -> Result<(), Failure> {
    let pages = pages().map_err(Failure::stdout)?;
    let Some(dir) = dir else {
        let (_, main) = &pages[0];
        return io::stdout().write_all(main).map_err(Failure::stdout);
    };
    for (name, page) in &pages {
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, page).map_err(|error| {
            Failure::new(
                exit::FAILURE,
                format!("cannot write {}: {error}", path.display()),
                "give --dir an existing directory you may write to, like ~/.local/share/man/man1",
            )
        })?;
    }
    Ok(())
}

/// The pages, by file name without `.1`: mailboxctl's first, then one per
/// command (`mailboxctl-send`, ...), each rendered in roff.
fn pages() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut command = Cli::command();
    // Propagates the global flags and the version into the commands.
    command.build();
    let mut pages = vec![(NAME.to_owned(), render(command.clone())?)];
    let documented = |sub: &&clap::Command| !sub.is_hide_set() && sub.get_name() != "help";
    for sub in command.get_subcommands().filter(documented) {
        let name = format!("{NAME}-{}", sub.get_name());
        let page = sub.clone().display_name(name.clone());
        pages.push((name, render(page)?));
    }
    Ok(pages)
}

fn render(command: clap::Command) -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .section("1")
        .manual("mailbox")
        .render(&mut page)?;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: Shell) -> String {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), NAME, &mut script);
        String::from_utf8(script).expect("a script is text")
    }

    #[test]
    fn each_shell_completes_the_commands_and_the_global_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = script(shell);
            for word in ["create", "send", "recv", "status", "completions", "socket"] {
                assert!(script.contains(word), "{shell}: no {word}");
            }
        }
    }

    #[test]
    fn there_is_a_page_for_mailboxctl_and_each_command() {
        let pages = pages().expect("rendered");
        let names: Vec<&str> = pages.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names[0], "mailboxctl");
        assert!(names.contains(&"mailboxctl-send"), "{names:?}");
        assert!(names.contains(&"mailboxctl-recv"), "{names:?}");
        assert!(!names.contains(&"mailboxctl-help"), "{names:?}");
        let send = String::from_utf8(
            pages[names
                .iter()
                .position(|n| *n == "mailboxctl-send")
                .expect("send")]
            .1
            .clone(),
        )
        .expect("roff is text");
        assert!(send.starts_with(".ie \\n(.g .ds Aq"), "{send}");
        assert!(send.contains(".TH mailboxctl-send 1"), "{send}");
        assert!(send.contains("\\-\\-timeout"), "{send}");
    }
}
