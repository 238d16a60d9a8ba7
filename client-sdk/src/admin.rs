//! The admin client: typed calls to the server's admin API, used by the `halftone` CLI.
