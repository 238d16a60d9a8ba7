//! Delta patches for `halftone publish` ([`PatchArgs`], [`attach`]): for each new build, a
//! `zstd-patch-from` patch from the same platform's build of each of the last few releases,
//! kept only when it is less than half of the full file, signed with the release keys and
//! uploaded like an artifact.
//!
//! Patches are built here, on the release engineer's machine, because each must be signed
//! with the release key (its signed message names base, result and patch), which never
//! reaches the server (docs/api.md §8, "Patches").

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use halftone_admin::{AdminClient, LocalArtifact, ReleaseKey, build_patch, worth_keeping};
use halftone_channels::wire::SignatureSpec;
use halftone_channels::{AppId, Blob, PatchFormat, Sha256, SignedFields, Target, Version};

use super::artifact::{ArtifactArg, Signed};
use super::output::bytes;

/// The patch flags of `halftone publish`.
#[derive(Debug, Clone, clap::Args)]
pub struct PatchArgs {
    /// Build patches from the builds of this many of the newest earlier releases (same
    /// platform), downloaded from the server unless given with --patch-base.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub patch_from: usize,
    /// Build no patches.
    #[arg(long, conflicts_with_all = ["patch_from", "patch_base"])]
    pub no_patches: bool,
    /// A local copy of an earlier build, os/arch=path (repeat): a base for a patch, read
    /// instead of downloading a release's build with the same digest.
    #[arg(long, value_name = "OS/ARCH=PATH")]
    pub patch_base: Vec<ArtifactArg>,
}

/// The patch files built for a release, to upload with its artifacts. Holds the directory
/// they are in.
pub struct Built {
    /// The patch files.
    pub files: Vec<LocalArtifact>,
    /// What was built or skipped and why, to print once the release is going ahead (a refused
    /// publish prints only its error).
    pub notes: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

/// Builds, signs and attaches to each of `signed` the patches `args` ask for; answers the
/// patch files to upload. A base that cannot be had (its release's build lives at an external
/// URL, or the download fails) is skipped with a note: a release without a patch is still a
/// release.
pub async fn attach(
    client: &AdminClient,
    app: &AppId,
    version: &Version,
    keys: &[ReleaseKey],
    signed: &mut [Signed],
    args: &PatchArgs,
) -> anyhow::Result<Built> {
    if args.no_patches || (args.patch_from == 0 && args.patch_base.is_empty()) {
        return Ok(Built { files: Vec::new(), notes: Vec::new(), _dir: None });
    }
    let dir = tempfile::tempdir().context("making a directory for patches")?;
    let mut notes = Vec::new();
    let bases = bases(client, app, version, args, dir.path(), &mut notes).await?;
    let mut files = Vec::new();
    for s in signed.iter_mut() {
        let target = s.target().clone();
        let result = Blob { sha256: *s.local().sha256(), size: s.local().size() };
        for (n, base) in bases.get(&target).into_iter().flatten().enumerate() {
            if base.blob.sha256 == result.sha256 {
                continue;
            }
            let path = dir.path().join(format!("{}-{}-{n}.patch", target.os, target.arch));
            let (from, to, at) = (base.path.clone(), s.local().path().to_owned(), path.clone());
            let patch = tokio::task::spawn_blocking(move || build_patch(&from, &to, &at))
                .await
                .context("building a patch")??;
            if !worth_keeping(patch.size, result.size) {
                notes.push(format!(
                    "no patch for {target} from {} {}: {} is not less than half of {}",
                    base.version,
                    base.blob.sha256,
                    bytes(patch.size),
                    bytes(result.size)
                ));
                continue;
            }
            let fields = SignedFields { app, version, target: &target, sha256: &result.sha256, size: result.size };
            let mut spec = keys.first().context("no signing key")?.sign_patch(
                fields,
                PatchFormat::ZstdPatchFrom,
                &base.blob,
                &patch,
            );
            if keys.len() > 1 {
                spec.signatures = keys
                    .iter()
                    .map(|k| {
                        let one = k.sign_patch(fields, PatchFormat::ZstdPatchFrom, &base.blob, &patch);
                        SignatureSpec { key_id: one.key_id, signature: one.signature }
                    })
                    .collect();
            }
            notes.push(format!(
                "patch for {target} from {}: {} instead of {}",
                base.version,
                bytes(patch.size),
                bytes(result.size)
            ));
            s.add_patch(spec);
            files.push(LocalArtifact::hash(&path).await?);
        }
    }
    Ok(Built { files, notes, _dir: Some(dir) })
}

/// One earlier build to patch from.
struct Base {
    version: String,
    blob: Blob,
    path: PathBuf,
}

/// The bases by platform: the local files given, then the builds of the newest `patch_from`
/// releases below `version` (downloaded unless a local file has their digest).
async fn bases(
    client: &AdminClient,
    app: &AppId,
    version: &Version,
    args: &PatchArgs,
    dir: &std::path::Path,
    notes: &mut Vec<String>,
) -> anyhow::Result<BTreeMap<Target, Vec<Base>>> {
    let mut by_target: BTreeMap<Target, Vec<Base>> = BTreeMap::new();
    let mut local: BTreeMap<Sha256, PathBuf> = BTreeMap::new();
    for a in &args.patch_base {
        let file = LocalArtifact::hash(&a.path).await?;
        local.insert(*file.sha256(), a.path.clone());
        let blob = Blob { sha256: *file.sha256(), size: file.size() };
        by_target.entry(a.target.clone()).or_default().push(Base {
            version: a.path.display().to_string(),
            blob,
            path: a.path.clone(),
        });
    }
    if args.patch_from == 0 {
        return Ok(by_target);
    }
    let mut releases = match client.list_releases(app).await {
        Ok(list) => list.releases,
        Err(e) if e.status() == Some(404) => return Ok(by_target),
        Err(e) => return Err(e.into()),
    };
    releases.retain(|r| r.release.version < *version);
    releases.sort_by(|a, b| b.release.version.cmp(&a.release.version));
    for r in releases.iter().take(args.patch_from) {
        for a in &r.release.artifacts {
            let target = Target { os: a.os.clone(), arch: a.arch.clone() };
            let blob = Blob { sha256: a.sha256, size: a.size };
            let known = by_target.entry(target.clone()).or_default();
            if known.iter().any(|b| b.blob.sha256 == blob.sha256) {
                continue;
            }
            let path = match local.get(&a.sha256) {
                Some(path) => path.clone(),
                None if a.url.is_some() => {
                    notes.push(format!(
                        "no patch from {} for {target}: its build is not on this server",
                        r.release.version
                    ));
                    continue;
                }
                None => {
                    let path = dir.join(format!("{}.base", a.sha256));
                    if let Err(e) = client.download_artifact(&a.sha256, &path).await {
                        notes.push(format!("no patch from {} for {target}: {e}", r.release.version));
                        continue;
                    }
                    path
                }
            };
            known.push(Base { version: r.release.version.to_string(), blob, path });
        }
    }
    Ok(by_target)
}
