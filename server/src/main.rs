//! The `halftone` binary: everything is in the library.

/// mimalloc instead of the system allocator: the request paths allocate many small, short-lived
/// strings and body buffers, which glibc's malloc serves at a far higher CPU cost
/// (bench/feedback.sh measures both, side by side).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    halftone_server::cli::main()
}
