//! Confirming one-way changes: `halt`, `rollback`, `rollout halt`, `token revoke`,
//! `answer-key retire` and removals in `app update` say what they are about to do and go ahead
//! only when a person answers `y` on a terminal, or the command line says `--yes`.
//!
//! Without a terminal to ask (a script, CI) and without `--yes`, the command changes nothing
//! and exits with the usage status: a script must say what it means. The question goes to
//! stderr, so `--json` output stays clean.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

/// `--yes`: the flag of every command that asks first.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct YesArg {
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// A one-way change that was not confirmed; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum Unconfirmed {
    /// Nobody could be asked, and `--yes` was not given.
    #[error(
        "{what} needs confirmation: pass --yes (stdin is not a terminal, so nobody could be asked); nothing changed"
    )]
    NoTerminal {
        /// The change, in a few words.
        what: String,
    },
    /// The person at the terminal said no.
    #[error("not confirmed; nothing changed")]
    Declined,
}

/// Goes ahead when `yes`, else asks `question` on the terminal. `what` names the change in the
/// error when nobody can be asked.
pub fn confirm(yes: YesArg, what: &str, question: &str) -> Result<(), Unconfirmed> {
    if yes.yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Unconfirmed::NoTerminal { what: what.to_owned() });
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    // A read error or end of input is a "no".
    let _ = stdin.lock().read_line(&mut answer);
    if is_yes(&answer) { Ok(()) } else { Err(Unconfirmed::Declined) }
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_y_or_yes_confirms() {
        for yes in ["y\n", "Y\n", " yes \n", "YES"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n\n", "no", "yep", "y y", "ja"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }

    #[test]
    fn yes_goes_ahead_without_asking() {
        assert!(confirm(YesArg { yes: true }, "halt", "Halt?").is_ok());
    }

    #[test]
    fn without_yes_a_test_process_is_not_asked_and_changes_nothing() {
        // `cargo test` runs with stdin not a terminal (it is /dev/null or a pipe under CI).
        if std::io::stdin().is_terminal() {
            return;
        }
        let e = confirm(YesArg::default(), "halting notes 1.1.0", "Halt?").unwrap_err();
        assert!(matches!(e, Unconfirmed::NoTerminal { .. }));
        assert!(e.to_string().starts_with("halting notes 1.1.0 needs confirmation: pass --yes"), "{e}");
    }
}
