//! Artifacts on their way to a release: `--artifact os/arch=path` ([`ArtifactArg`]), then
//! hash and sign locally ([`sign`]), then upload with a progress bar ([`upload`]); both at once:
//! [`sign_and_upload`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context as _, bail};
use halftone_admin::{AdminClient, LocalArtifact, ReleaseKey};
use halftone_channels::wire::{ArtifactSpec, PatchSpec};
use halftone_channels::{AppId, Arch, Os, SignedFields, Target, Version};
use indicatif::{ProgressBar, ProgressStyle};

use super::output::{Output, bytes};

/// `--artifact os/arch=path`: one build file and the platform it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactArg {
    /// The os and arch.
    pub target: Target,
    /// The file.
    pub path: PathBuf,
}

impl FromStr for ArtifactArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = || format!("expected os/arch=path, like windows/x86_64=dist/notes-setup.exe, not {s:?}");
        let (target, path) = s.split_once('=').ok_or_else(expected)?;
        let (os, arch) = target.split_once('/').ok_or_else(expected)?;
        if path.is_empty() {
            return Err(expected());
        }
        let os = Os::parse(os.trim()).map_err(|e| e.to_string())?;
        let arch = Arch::parse(arch.trim()).map_err(|e| e.to_string())?;
        Ok(ArtifactArg { target: Target { os, arch }, path: PathBuf::from(path) })
    }
}

/// Refuses two files for one platform before anything is uploaded.
pub fn check_distinct(artifacts: &[ArtifactArg]) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for a in artifacts {
        if !seen.insert(&a.target) {
            bail!("two --artifact files for {}: a release has one build per os/arch", a.target);
        }
    }
    Ok(())
}

/// Hashes each file, signs its signed message with each of `keys`, uploads it, and returns the
/// artifact specs of the release. Nothing is uploaded before every file was read and signed,
/// so a missing file fails fast.
pub async fn sign_and_upload(
    client: &AdminClient,
    app: &AppId,
    version: &Version,
    keys: &[ReleaseKey],
    artifacts: &[ArtifactArg],
    out: &Output,
) -> anyhow::Result<Vec<ArtifactSpec>> {
    let signed = sign(app, version, keys, artifacts).await?;
    upload(client, &signed, out).await?;
    Ok(specs(&signed))
}

/// A file hashed and signed, not yet uploaded.
pub struct Signed {
    arg: ArtifactArg,
    local: LocalArtifact,
    spec: ArtifactSpec,
}

impl Signed {
    /// The platform it is for.
    pub fn target(&self) -> &Target {
        &self.arg.target
    }

    /// The file, hashed.
    pub fn local(&self) -> &LocalArtifact {
        &self.local
    }

    /// Lists a signed patch from an earlier build to this one.
    pub fn add_patch(&mut self, patch: PatchSpec) {
        self.spec.patches.push(patch);
    }
}

/// Hashes each file and signs its signed message with each of `keys`; reads every file before
/// anything is sent, so a missing file fails fast.
pub async fn sign(
    app: &AppId,
    version: &Version,
    keys: &[ReleaseKey],
    artifacts: &[ArtifactArg],
) -> anyhow::Result<Vec<Signed>> {
    check_distinct(artifacts)?;
    let signers: Vec<&ReleaseKey> = keys.iter().collect();
    let mut signed = Vec::with_capacity(artifacts.len());
    for a in artifacts {
        let local = LocalArtifact::hash(&a.path).await?;
        let fields = SignedFields { app, version, target: &a.target, sha256: local.sha256(), size: local.size() };
        let mut spec = ReleaseKey::sign_artifact_by(&signers, fields).context("no signing key")?;
        // Other updaters pin one key: the first one signs for them.
        let path = a.path.clone();
        let first = signers.first().context("no signing key")?;
        spec.clients = Some(
            // Blocking reads on the CLI's one thread: nothing else runs meanwhile.
            first
                .sign_for_clients(fields, || std::fs::File::open(&path))
                .with_context(|| format!("signing {} for other updaters", a.path.display()))?,
        );
        signed.push(Signed { arg: a.clone(), local, spec });
    }
    Ok(signed)
}

/// The artifact specs of signed files, for the release.
pub fn specs(signed: &[Signed]) -> Vec<ArtifactSpec> {
    signed.iter().map(|s| s.spec.clone()).collect()
}

/// Uploads signed files, one progress bar each.
pub async fn upload(client: &AdminClient, signed: &[Signed], out: &Output) -> anyhow::Result<()> {
    for Signed { arg: a, local, .. } in signed {
        let bar = progress_bar(out, &a.target, local.size());
        let on_progress = bar.clone();
        let stored = client
            .upload_artifact(local, move |sent| on_progress.set_position(sent))
            .await
            .with_context(|| format!("uploading {} for {}", a.path.display(), a.target))?;
        bar.finish_and_clear();
        out.note(&format!(
            "{} {} {} ({})",
            if stored.created { "uploaded" } else { "already stored" },
            a.target,
            local.sha256(),
            bytes(local.size())
        ));
    }
    Ok(())
}

fn progress_bar(out: &Output, target: &Target, len: u64) -> ProgressBar {
    if !out.shows_progress() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_message(target.to_string());
    if let Ok(style) = ProgressStyle::with_template("{msg:16} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} {eta}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_arguments_parse() {
        let a: ArtifactArg = "windows/x86_64=dist/setup=1.exe".parse().unwrap();
        assert_eq!(a.target.to_string(), "windows/x86_64");
        assert_eq!(a.path, PathBuf::from("dist/setup=1.exe"));
        for bad in ["windows/x86_64", "windows=a", "windows/x86_64=", "Windows/x86_64=a", "/x86_64=a", "linux/=a"] {
            assert!(bad.parse::<ArtifactArg>().is_err(), "{bad:?}");
        }
        let e = "windows=a".parse::<ArtifactArg>().unwrap_err();
        assert!(e.starts_with("expected os/arch=path"), "{e}");
        // Other tools' names are refused before anything is uploaded, with the right one.
        let e = "darwin/arm64=dist/notes.dmg".parse::<ArtifactArg>().unwrap_err();
        assert!(e.contains("use macos"), "{e}");
        let e = "macos/arm64=dist/notes.dmg".parse::<ArtifactArg>().unwrap_err();
        assert!(e.contains("use aarch64"), "{e}");
    }

    #[test]
    fn one_build_per_platform() {
        let a: ArtifactArg = "linux/x86_64=a".parse().unwrap();
        let b: ArtifactArg = "linux/aarch64=b".parse().unwrap();
        assert!(check_distinct(&[a.clone(), b]).is_ok());
        let e = check_distinct(&[a.clone(), a]).unwrap_err();
        assert!(e.to_string().contains("two --artifact files for linux/x86_64"), "{e}");
    }
}
