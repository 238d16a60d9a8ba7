//! The `halftone` command line: `serve` and the release engineer's subcommands.

/// Parses the command line and runs the chosen subcommand.
pub fn main() -> anyhow::Result<()> {
    Ok(())
}
