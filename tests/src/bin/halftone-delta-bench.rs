//! `halftone-delta-bench OLD NEW`: what a delta update saves between two builds, and what it
//! costs. Builds the patch as `halftone publish` does (`halftone_admin::build_patch`), timed
//! once; applies it as the SDK does (`halftone_client::apply_patch`, the same window and
//! output bounds as `Client::download`), timed over several runs (median); checks the result
//! is NEW byte for byte; prints one markdown table row. `bench/delta.sh` builds the two
//! `halftone` binaries it is run on.

use std::time::Instant;

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [old, new] = args.as_slice() else { bail!("usage: halftone-delta-bench OLD NEW") };
    let dir = tempfile::tempdir()?;
    let (patch, out) = (dir.path().join("patch"), dir.path().join("out"));
    let full = std::fs::metadata(new).with_context(|| format!("reading {new}"))?.len();
    let base = std::fs::metadata(old).with_context(|| format!("reading {old}"))?.len();

    let started = Instant::now();
    let blob = halftone_admin::build_patch(old.as_ref(), new.as_ref(), &patch)?;
    let build_s = started.elapsed().as_secs_f64();

    let mut apply = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        halftone_client::apply_patch(old.as_ref(), &patch, &out, full)?;
        apply.push(started.elapsed().as_secs_f64());
    }
    apply.sort_by(f64::total_cmp);
    if std::fs::read(&out)? != std::fs::read(new)? {
        bail!("the patched file is not NEW");
    }
    let window = halftone_channels::zstd_window_log(base, full);
    println!(
        "| base | new (full download) | patch | patch / full | kept (< 50%) | build (level 19) | apply (median of 5) | window |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {:.1} MB | {:.1} MB | {:.2} MB | {:.1}% | {} | {:.1} s | {:.2} s | 2^{window} ({} MiB) |",
        base as f64 / 1e6,
        full as f64 / 1e6,
        blob.size as f64 / 1e6,
        100.0 * blob.size as f64 / full as f64,
        if halftone_admin::worth_keeping(blob.size, full) { "yes" } else { "no" },
        build_s,
        apply[apply.len() / 2],
        (1u64 << window) >> 20,
    );
    Ok(())
}
