//! Building delta patches on the release engineer's machine: [`build_patch`] makes a
//! `zstd-patch-from` patch from an earlier build (the base) to a new one, and [`worth_keeping`]
//! is the rule for keeping it.
//!
//! Patches are built here, by `halftone publish`, and not by the server: a patch must be signed
//! with the release key (its signed message names base, result and patch file), and release
//! keys never reach the server. A server that built patches could not sign them.
//!
//! The format is zstd's `--patch-from`: the new build compressed with the whole base as the
//! reference prefix, long-distance matching on, and a window that covers the larger of the two
//! files (the zstd CLI's rule: the highest bit of the larger size, plus one), so every byte of
//! the base can be referenced. Applying it needs the base in memory and a window of that size.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write as _};
use std::path::Path;

use halftone_channels::{Blob, Sha256, zstd_window_log};
use sha2::Digest as _;

use crate::AdminError;

/// The compression level patches are built with: zstd's highest regular level. Building is
/// slow (seconds per tens of megabytes) but happens once per release, on the engineer's
/// machine, and every device downloads the result.
pub const PATCH_LEVEL: i32 = 19;

/// The window log for a patch from a base of `base` bytes to a result of `result` bytes
/// (the domain's rule, [`zstd_window_log`], which devices hold patches to).
pub fn window_log(base: u64, result: u64) -> u32 {
    zstd_window_log(base, result)
}

/// A patch is kept only when it is smaller than half of the full file: below that, the
/// download it saves is worth the device's work of applying it (and the fallback's cost
/// when it fails).
pub fn worth_keeping(patch: u64, full: u64) -> bool {
    patch.saturating_mul(2) < full
}

/// Writes to `out` a `zstd-patch-from` patch that turns the file `base` into the file
/// `result`, and answers the patch file's digest and size. Holds the base in memory (zstd
/// references it as a prefix); streams the result and the patch.
pub fn build_patch(base: &Path, result: &Path, out: &Path) -> Result<Blob, AdminError> {
    let file_error = |path: &Path| {
        let path = path.to_owned();
        move |error| AdminError::File { path, error }
    };
    let prefix = std::fs::read(base).map_err(file_error(base))?;
    let input = File::open(result).map_err(file_error(result))?;
    let result_size = input.metadata().map_err(file_error(result))?.len();
    let hashing = Hashing::new(BufWriter::new(File::create(out).map_err(file_error(out))?));
    let written = (|| -> io::Result<Hashing<BufWriter<File>>> {
        let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(hashing, PATCH_LEVEL, &prefix)?;
        encoder.window_log(window_log(prefix.len() as u64, result_size))?;
        encoder.long_distance_matching(true)?;
        encoder.set_pledged_src_size(Some(result_size))?;
        encoder.include_checksum(false)?;
        io::copy(&mut BufReader::new(input), &mut encoder)?;
        let mut hashing = encoder.finish()?;
        hashing.inner.flush()?;
        hashing.inner.get_ref().sync_all()?;
        Ok(hashing)
    })()
    .map_err(file_error(out))?;
    Ok(Blob { sha256: Sha256::from_bytes(written.hasher.finalize().into()), size: written.size })
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
    size: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing { inner, hasher: sha2::Sha256::new(), size: 0 }
    }
}

impl<W: io::Write> io::Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_covers_the_larger_file() {
        assert_eq!(window_log(0, 0), 10);
        assert_eq!(window_log(1000, 10), 11);
        assert_eq!(window_log(1 << 20, 1), 22);
        assert!(1u64 << window_log(30_000_000, 31_000_000) >= 31_000_000);
        assert_eq!(window_log(u64::MAX, 1), 31);
        assert!(worth_keeping(49, 100) && !worth_keeping(50, 100));
    }

    #[test]
    fn a_patch_rebuilds_the_result_from_the_base_and_is_small() {
        let dir = tempfile::tempdir().unwrap();
        let base: Vec<u8> = (0..200_000u32).flat_map(|i| (i.wrapping_mul(2654435761)).to_le_bytes()).collect();
        let mut result = base.clone();
        result[1000..1010].copy_from_slice(b"0123456789");
        result.extend_from_slice(b"a new tail");
        let (b, r, p) = (dir.path().join("base"), dir.path().join("result"), dir.path().join("patch"));
        std::fs::write(&b, &base).unwrap();
        std::fs::write(&r, &result).unwrap();
        let blob = build_patch(&b, &r, &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(blob, Blob { sha256: Sha256::digest(&bytes), size: bytes.len() as u64 });
        assert!(worth_keeping(blob.size, result.len() as u64), "{} of {}", blob.size, result.len());
        let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(&bytes[..], &base).unwrap();
        decoder.window_log_max(window_log(base.len() as u64, result.len() as u64)).unwrap();
        let mut out = Vec::new();
        io::copy(&mut decoder, &mut out).unwrap();
        assert_eq!(out, result);
    }
}
