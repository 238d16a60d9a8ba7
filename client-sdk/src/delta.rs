//! Delta updates on the device: [`RunningBuild`] (the file of the build that runs, hashed
//! once, whose digest the check-in sends), [`OfferedPatch`] (a patch the server offered beside
//! the full file), [`Patched::apply`] (every check of a patch, then the patch applied into the
//! build's part file), [`PatchFailure`] (why the full file was used instead) and
//! [`Delivery`] (how a [`VerifiedFile`](crate::VerifiedFile) came).
//!
//! The order of checks: the patch file has its signed size and SHA-256; its signature, rebuilt
//! from the SDK's own app id and the offered version, platform, result, base and patch file,
//! verifies under the trusted release keys (a patch message, never an artifact message, so an
//! artifact signature is no patch signature); the base file on disk has the base's size and
//! SHA-256, hashed now rather than trusted from start-up; the patch's zstd frame asks for no
//! larger window than the base and result need ([`zstd_window_log`]), which bounds the memory
//! a patch can make the device use; at most the signed result size is written. The result then
//! goes through the same verification as a full download (size, SHA-256, the artifact's own
//! signature, the watermark), so a patch can at worst fail, never install another build.

use std::fs::{self, File};
use std::io::{self, BufReader, Read as _};
use std::path::{Path, PathBuf};

use halftone_channels::{
    AppId, Blob, KeyDocument, PatchFields, PatchFormat, Sha256, Signatures, SignedFields, patch_message,
    zstd_window_log,
};
use reqwest::Url;

use crate::Update;
use crate::verify::copy_hashing;

/// The file of the build that runs now, and its digest as it was at start-up.
#[derive(Debug, Clone)]
pub(crate) struct RunningBuild {
    path: PathBuf,
    blob: Blob,
}

impl RunningBuild {
    /// Hashes `path`; `None` (and a warning) when it cannot be read: then no patch is asked
    /// for, and downloads are whole. Blocking.
    pub(crate) fn hash(path: PathBuf) -> Option<Self> {
        let read = || -> io::Result<Blob> {
            let file = File::open(&path)?;
            let size = file.metadata()?.len();
            Ok(Blob { sha256: copy_hashing(file, &mut io::sink())?, size })
        };
        match read() {
            Ok(blob) => Some(RunningBuild { path, blob }),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the running build: no delta updates");
                None
            }
        }
    }

    /// Its digest and size at start-up.
    pub(crate) fn blob(&self) -> &Blob {
        &self.blob
    }
}

/// A patch the server offered from the build the device runs, as the SDK accepted it (its
/// URL allowed; nothing verified yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OfferedPatch {
    pub(crate) url: Url,
    pub(crate) format: PatchFormat,
    pub(crate) base: Blob,
    pub(crate) file: Blob,
    pub(crate) signatures: Signatures,
}

/// How a verified build came to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// The whole file was downloaded (no patch was offered, or none applies here).
    Full,
    /// A patch from the running build was downloaded and applied.
    Patch {
        /// The patch's size in bytes (what was downloaded).
        patch_size: u64,
    },
    /// A patch was offered but failed; the whole file was downloaded instead.
    FullAfterPatch {
        /// Why the patch was not used.
        reason: PatchFailure,
    },
}

/// Why an offered patch was not used (the full file was downloaded instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchFailure {
    /// The patch could not be downloaded.
    #[error("the patch download failed: {0}")]
    Download(String),
    /// The patch file does not have its signed size or digest.
    #[error("the patch file is not the signed one: {0}")]
    File(String),
    /// The patch's signatures do not verify for this app, version, platform, base and result.
    #[error("the patch signature does not verify: {0}")]
    Signature(String),
    /// The running build's file is not the patch's base (another build, or changed since).
    #[error("the running build is not the patch's base: {0}")]
    Base(String),
    /// The patch could not be applied (corrupt, or asking for more memory than it may).
    #[error("the patch could not be applied: {0}")]
    Apply(String),
    /// The patched file failed the checks of a full download.
    #[error("the patched file failed verification: {0}")]
    Result(String),
}

/// The inputs of one patch application. Borrowed for one call.
pub(crate) struct Patched<'a> {
    pub(crate) app: &'a AppId,
    pub(crate) keys: &'a KeyDocument,
    pub(crate) update: &'a Update,
    pub(crate) patch: &'a OfferedPatch,
    pub(crate) base: &'a RunningBuild,
}

impl Patched<'_> {
    /// Checks the downloaded patch file `patch_file` and the base, then applies the patch
    /// into `out` (created or truncated): at most the update's signed size. The caller verifies
    /// `out` as a full download. Blocking.
    pub(crate) fn apply(&self, patch_file: &Path, out: &Path) -> Result<(), PatchFailure> {
        let (update, patch) = (self.update, self.patch);
        // The patch file.
        let file = File::open(patch_file).map_err(|e| PatchFailure::File(e.to_string()))?;
        let size = file.metadata().map_err(|e| PatchFailure::File(e.to_string()))?.len();
        let sha256 = copy_hashing(file, &mut io::sink()).map_err(|e| PatchFailure::File(e.to_string()))?;
        if (size, sha256) != (patch.file.size, patch.file.sha256) {
            return Err(PatchFailure::File(format!("{size} bytes, sha256 {sha256}")));
        }
        // Its signature, over the message rebuilt from this app's own values.
        let result = SignedFields {
            app: self.app,
            version: update.version(),
            target: update.target(),
            sha256: &update.sha256,
            size: update.size,
        };
        let message = patch_message(PatchFields {
            artifact: result,
            format: patch.format,
            base: &patch.base,
            patch: &Blob { sha256, size },
        });
        self.keys.verify(message.as_bytes(), &patch.signatures).map_err(|e| PatchFailure::Signature(e.to_string()))?;
        // The base, as it is on disk now.
        let prefix = fs::read(&self.base.path).map_err(|e| PatchFailure::Base(e.to_string()))?;
        let base = Blob { sha256: Sha256::digest(&prefix), size: prefix.len() as u64 };
        if base != patch.base {
            return Err(PatchFailure::Base(format!(
                "{} bytes with sha256 {}, the patch is from {} bytes with sha256 {}",
                base.size, base.sha256, patch.base.size, patch.base.sha256
            )));
        }
        match patch.format {
            PatchFormat::ZstdPatchFrom => apply_zstd(&prefix, patch_file, out, update.size),
            #[allow(unreachable_patterns)]
            other => Err(PatchFailure::Apply(format!("unknown format {other}"))),
        }
    }
}

/// Applies the `zstd-patch-from` patch in the file `patch` to the file `base`, writing the
/// result to `out`, with the window and output bounds [`Client::download`](crate::Client::download)
/// uses, and **no other check**: no signature, no digest. For tools and benchmarks
/// (`bench/delta.sh`); apps get patches verified through `Client::download`. Blocking.
pub fn apply_patch(base: &Path, patch: &Path, out: &Path, result_size: u64) -> Result<(), PatchFailure> {
    let prefix = fs::read(base).map_err(|e| PatchFailure::Base(e.to_string()))?;
    apply_zstd(&prefix, patch, out, result_size)
}

/// Decompresses the zstd frame in `patch_file` with `prefix` as its reference prefix into
/// `out`, refusing a window above what a patch from `prefix` to `result_size` bytes needs, and
/// more than `result_size` bytes of output.
fn apply_zstd(prefix: &[u8], patch_file: &Path, out: &Path, result_size: u64) -> Result<(), PatchFailure> {
    let apply = |e: io::Error| PatchFailure::Apply(e.to_string());
    let input = BufReader::new(File::open(patch_file).map_err(apply)?);
    let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(input, prefix).map_err(apply)?;
    decoder.window_log_max(zstd_window_log(prefix.len() as u64, result_size)).map_err(apply)?;
    let mut file = File::create(out).map_err(apply)?;
    let written = io::copy(&mut decoder.take(result_size + 1), &mut file).map_err(apply)?;
    if written > result_size {
        let _ = fs::remove_file(out);
        return Err(PatchFailure::Apply(format!("it makes more than the signed {result_size} bytes")));
    }
    file.sync_all().map_err(apply)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use halftone_channels::wire::PatchOffer;
    use halftone_channels::{KeyId, Signature, Target, Version};

    use super::*;
    use crate::test_support::{APP, Scenario, build_bytes, builder_for, signing_key};
    use crate::{CheckOutcome, Client, EventKind};

    /// The running build (1.0.0) and the offered one (1.1.0): the same bytes but a few.
    fn builds() -> (Vec<u8>, Vec<u8>) {
        let base = build_bytes("1.0.0");
        let mut result = base.clone();
        result[5_000..5_016].copy_from_slice(b"a changed string");
        result.extend_from_slice(b"and a new tail");
        (base, result)
    }

    /// A zstd-patch-from patch from `base` to `result`, built as `halftone publish` builds it.
    fn make_patch(dir: &Path, base: &[u8], result: &[u8]) -> Vec<u8> {
        let (b, r, p) = (dir.join("b"), dir.join("r"), dir.join("p"));
        fs::write(&b, base).unwrap();
        fs::write(&r, result).unwrap();
        halftone_admin::build_patch(&b, &r, &p).unwrap();
        fs::read(p).unwrap()
    }

    /// What the attacker (or a bug) changes about the offered patch.
    #[derive(Clone, Copy, PartialEq)]
    enum Attack {
        None,
        /// A genuine patch from another build.
        OtherBase,
        /// The patch bytes served with one byte changed.
        Tampered,
        /// The tampered bytes, offered with their own digest (so only the signature can tell).
        TamperedAndRedigested,
        /// Signed by a key the app does not trust, under the trusted key's id.
        OtherKey,
        /// The artifact's own (genuine) signature offered as the patch's.
        ArtifactSignature,
        /// A genuinely signed patch whose bytes make another file than the signed result.
        WrongResult,
    }

    struct Outcome {
        file: crate::VerifiedFile,
        bytes: Vec<u8>,
        scenario: Scenario,
        client: Client,
    }

    async fn run(attack: Attack, with_running_build: bool) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let (base, result) = builds();
        let version: Version = "1.1.0".parse().unwrap();
        let target = Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() };
        let scenario = Scenario::empty().await;
        let mut offer = crate::test_support::offer("1.1.0", &result, &crate::test_support::Signed::genuine("1.1.0"));
        scenario.store(&result);
        let patch_base = if attack == Attack::OtherBase { build_bytes("0.9.0") } else { base.clone() };
        let patch_makes = if attack == Attack::WrongResult { build_bytes("6.6.6") } else { result.clone() };
        let patch = make_patch(dir.path(), &patch_base, &patch_makes);
        let mut served = patch.clone();
        if matches!(attack, Attack::Tampered | Attack::TamperedAndRedigested) {
            let last = served.len() - 1;
            served[last] ^= 1;
        }
        if attack == Attack::Tampered {
            // Served under the genuine patch's URL, as a compromised mirror would.
            scenario.store(&patch);
            scenario.serve_next(crate::test_support::Serve::Replace(served.clone()));
        } else {
            scenario.store(&served);
        }
        let offered_bytes = if attack == Attack::TamperedAndRedigested { &served } else { &patch };
        let (base_blob, file_blob) = (
            Blob { sha256: Sha256::digest(&patch_base), size: patch_base.len() as u64 },
            Blob { sha256: Sha256::digest(offered_bytes), size: offered_bytes.len() as u64 },
        );
        let app = AppId::parse(APP).unwrap();
        let fields = SignedFields {
            app: &app,
            version: &version,
            target: &target,
            sha256: &offer.artifact.sha256,
            size: offer.artifact.size,
        };
        let signer = signing_key(if attack == Attack::OtherKey { 2 } else { 1 });
        let signature = match attack {
            Attack::ArtifactSignature => offer.artifact.signature,
            // Signed over the genuine patch's digest: the tampered bytes are not what was signed.
            Attack::TamperedAndRedigested => {
                let genuine = Blob { sha256: Sha256::digest(&patch), size: patch.len() as u64 };
                signer.sign_patch(fields, PatchFormat::ZstdPatchFrom, &base_blob, &genuine).signature
            }
            _ => signer.sign_patch(fields, PatchFormat::ZstdPatchFrom, &base_blob, &file_blob).signature,
        };
        offer.artifact.patch = Some(PatchOffer {
            url: format!("/v1/artifacts/{}", file_blob.sha256),
            format: PatchFormat::ZstdPatchFrom,
            base_sha256: base_blob.sha256,
            base_size: base_blob.size,
            sha256: file_blob.sha256,
            size: file_blob.size,
            signature: Signature::from_bytes(signature.to_bytes()),
            key_id: KeyId::parse("k1").unwrap(),
            signatures: vec![],
        });
        scenario.world().offer = Some(offer);

        let running = dir.path().join("app");
        fs::write(&running, &base).unwrap();
        let mut builder = builder_for(&scenario.server.url, &dir.path().join("state"), "1.0.0");
        if with_running_build {
            builder = builder.running_build(&running);
        }
        let client = builder.build().await.unwrap();
        let CheckOutcome::Available(update) = client.check().await.unwrap() else { panic!("expected an offer") };
        let dest = dir.path().join("next");
        let file = client.download(&update, &dest, |_, _| {}).await.unwrap();
        let bytes = fs::read(file.path()).unwrap();
        assert_eq!(bytes, result, "whatever happened, the signed build is what lands");
        // The part files are gone.
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(!left.iter().any(|n| n.to_string_lossy().ends_with(".part")), "{left:?}");
        client.flush().await.unwrap();
        drop(dir);
        Outcome { file, bytes, scenario, client }
    }

    fn full_requests(o: &Outcome) -> usize {
        o.scenario.server.requests_to(&format!("/v1/artifacts/{}", Sha256::digest(&o.bytes))).len()
    }

    fn fallback_details(o: &Outcome) -> Vec<String> {
        o.scenario
            .world()
            .batches
            .iter()
            .flat_map(|b| b.events.iter())
            .filter(|e| e.kind == EventKind::DownloadStarted)
            .filter_map(|e| e.detail.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_patch_from_the_running_build_is_applied_and_the_full_file_never_fetched() {
        let o = run(Attack::None, true).await;
        let Delivery::Patch { patch_size } = o.file.delivery() else { panic!("{:?}", o.file.delivery()) };
        assert!(*patch_size * 10 < o.bytes.len() as u64, "a {patch_size}-byte patch for {} bytes", o.bytes.len());
        assert_eq!(full_requests(&o), 0);
        assert!(fallback_details(&o).is_empty());
        // The check-in named the running build.
        let check = &o.scenario.server.requests_to(&format!("/v1/apps/{APP}/check"))[0];
        let sent: serde_json::Value = serde_json::from_slice(&check.body).unwrap();
        assert_eq!(sent["current_sha256"], Sha256::digest(&builds().0).to_string());
        let _ = &o.client;
    }

    #[tokio::test]
    async fn without_a_running_build_the_check_in_names_none_and_the_file_comes_whole() {
        let o = run(Attack::None, false).await;
        assert_eq!(o.file.delivery(), &Delivery::Full);
        assert_eq!(full_requests(&o), 1);
        let check = &o.scenario.server.requests_to(&format!("/v1/apps/{APP}/check"))[0];
        let sent: serde_json::Value = serde_json::from_slice(&check.body).unwrap();
        assert!(sent.get("current_sha256").is_none(), "{sent}");
    }

    /// Every attack on a patch ends in the full, verified file, with the reason reported.
    #[tokio::test]
    async fn a_bad_patch_is_never_applied_and_the_full_file_is_used() {
        for (attack, expect) in [
            (Attack::OtherBase, "running build is not the patch's base"),
            (Attack::Tampered, "patch file is not the signed one"),
            (Attack::TamperedAndRedigested, "patch signature does not verify"),
            (Attack::OtherKey, "patch signature does not verify"),
            (Attack::ArtifactSignature, "patch signature does not verify"),
            (Attack::WrongResult, "patched file failed verification"),
        ] {
            let o = run(attack, true).await;
            let Delivery::FullAfterPatch { reason } = o.file.delivery() else {
                panic!("{expect}: {:?}", o.file.delivery())
            };
            assert!(reason.to_string().contains(expect), "{expect}: {reason}");
            assert_eq!(full_requests(&o), 1, "{expect}");
            let details = fallback_details(&o);
            assert!(details.iter().any(|d| d.starts_with("delta_fallback: ") && d.contains(expect)), "{details:?}");
        }
    }

    #[tokio::test]
    async fn a_patch_that_cannot_be_downloaded_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let (base, result) = builds();
        let scenario = Scenario::empty().await;
        let mut offer = crate::test_support::offer("1.1.0", &result, &crate::test_support::Signed::genuine("1.1.0"));
        scenario.store(&result);
        offer.artifact.patch = Some(PatchOffer {
            url: format!("/v1/artifacts/{}", Sha256::digest(b"missing")),
            format: PatchFormat::ZstdPatchFrom,
            base_sha256: Sha256::digest(&base),
            base_size: base.len() as u64,
            sha256: Sha256::digest(b"missing"),
            size: 7,
            signature: Signature::from_bytes([0; 64]),
            key_id: KeyId::parse("k1").unwrap(),
            signatures: vec![],
        });
        scenario.world().offer = Some(offer);
        let running = dir.path().join("app");
        fs::write(&running, &base).unwrap();
        let client = builder_for(&scenario.server.url, &dir.path().join("state"), "1.0.0")
            .running_build(&running)
            .build()
            .await
            .unwrap();
        let CheckOutcome::Available(update) = client.check().await.unwrap() else { panic!() };
        assert_eq!(update.patch_size(), Some(7));
        let file = client.download(&update, dir.path().join("next"), |_, _| {}).await.unwrap();
        let Delivery::FullAfterPatch { reason: PatchFailure::Download(_) } = file.delivery() else {
            panic!("{:?}", file.delivery())
        };
        assert_eq!(fs::read(file.path()).unwrap(), result);
    }

    #[test]
    fn a_patch_asking_for_a_larger_window_than_its_files_need_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = vec![7u8; 4096];
        let result: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        // Built with a window far above what 4 kB files need (27: 128 MiB).
        let mut patch = Vec::new();
        let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(&mut patch, 3, &base).unwrap();
        encoder.window_log(27).unwrap();
        encoder.set_pledged_src_size(None).unwrap();
        io::copy(&mut &result[..], &mut encoder).unwrap();
        encoder.finish().unwrap();
        let (p, out) = (dir.path().join("p"), dir.path().join("out"));
        fs::write(&p, &patch).unwrap();
        let refused = apply_zstd(&base, &p, &out, result.len() as u64).unwrap_err();
        assert!(matches!(refused, PatchFailure::Apply(_)), "{refused}");
        // And a proper one applies, never writing past the signed size.
        let good = make_patch(dir.path(), &base, &result);
        fs::write(&p, &good).unwrap();
        apply_zstd(&base, &p, &out, result.len() as u64).unwrap();
        assert_eq!(fs::read(&out).unwrap(), result);
        let short = apply_zstd(&base, &p, &out, result.len() as u64 - 1).unwrap_err();
        assert!(short.to_string().contains("more than the signed"), "{short}");
    }
}
