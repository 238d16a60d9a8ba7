//! The `halftone` binary: everything is in the library.

fn main() -> anyhow::Result<()> {
    halftone_server::cli::main()
}
