//! Release signing keys: `halftone keygen`, the private key file, and signing an artifact's
//! signed message ([`ReleaseKey::sign`]).
//!
//! The private key never leaves the machine that runs the CLI; the server only ever sees the
//! public key (registered with the app) and signatures. The key file is text: `#` comment
//! lines (the key id and public key, for people) and one line of 64 hex digits, the ed25519
//! seed. It is created with mode 0600 and never overwritten.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use ed25519_dalek::{Signer as _, SigningKey};
use halftone_channels::wire::KeySpec;
use halftone_channels::{KeyId, PublicKey, Signature, SignedFields, signed_message};

use super::output::Output;

/// `halftone keygen`.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key (refuses to overwrite an existing file).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Generates a key, writes it, and prints its id and public key (with `--json`, a `KeySpec`
/// ready for `PUT /v1/apps/{app}`).
pub fn keygen(args: &KeygenArgs, out: &Output) -> anyhow::Result<()> {
    let key = ReleaseKey::generate();
    key.write_new(&args.out)?;
    out.emit(&key.spec(), |s| {
        format!(
            "wrote private key {} (keep it secret; the server never needs it)\n\
             key id:     {}\n\
             public key: {}\n\
             register it with: halftone app create <app> --key {}={}",
            args.out.display(),
            s.id,
            s.public_key,
            s.id,
            s.public_key
        )
    })
}

/// An ed25519 private key with the id signatures name it by.
pub struct ReleaseKey {
    signing: SigningKey,
    id: KeyId,
}

impl std::fmt::Debug for ReleaseKey {
    // The private key is a secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseKey").field("id", &self.id).field("public_key", &self.public_key()).finish()
    }
}

impl ReleaseKey {
    /// A new random key, named by its fingerprint.
    pub fn generate() -> Self {
        Self::from_signing(SigningKey::generate(&mut rand::rng()), None)
    }

    fn from_signing(signing: SigningKey, id: Option<KeyId>) -> Self {
        let id = id.unwrap_or_else(|| public_key_of(&signing).fingerprint());
        ReleaseKey { signing, id }
    }

    /// Reads a key file; `id` overrides the default id (the fingerprint) for apps that
    /// registered the key under another name.
    pub fn load(path: &Path, id: Option<KeyId>) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("could not read key file {}", path.display()))?;
        let seed = parse_key_file(&text).with_context(|| format!("{} is not a halftone key file", path.display()))?;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                eprintln!(
                    "warning: key file {} can be read by other users (mode {mode:o}); run chmod 600 on it",
                    path.display()
                );
            }
        }
        Ok(Self::from_signing(SigningKey::from_bytes(&seed), id))
    }

    /// Writes the key to a new file readable only by its owner. An existing file is never
    /// replaced: losing a release key is worse than a failed command.
    pub fn write_new(&self, path: &Path) -> anyhow::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!("{} already exists; refusing to overwrite a key file", path.display())
            } else {
                anyhow::Error::new(e).context(format!("could not create key file {}", path.display()))
            }
        })?;
        file.write_all(self.file_text().as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("could not write key file {}", path.display()))
    }

    fn file_text(&self) -> String {
        format!(
            "# halftone release signing key (ed25519). Keep it secret.\n# key id: {}\n# public key: {}\n{}\n",
            self.id,
            self.public_key(),
            hex::encode(self.signing.to_bytes())
        )
    }

    /// The id signatures name this key by.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The public key to register with an app.
    pub fn public_key(&self) -> PublicKey {
        public_key_of(&self.signing)
    }

    /// The key as an app registers it.
    pub fn spec(&self) -> KeySpec {
        KeySpec { id: self.id.clone(), public_key: self.public_key() }
    }

    /// Signs an artifact's signed message (exactly `signed_message(fields)`).
    pub fn sign(&self, fields: SignedFields<'_>) -> Signature {
        Signature::from_bytes(self.signing.sign(signed_message(fields).as_bytes()).to_bytes())
    }
}

fn public_key_of(signing: &SigningKey) -> PublicKey {
    // An ed25519 public key derived from a private key is never weak.
    PublicKey::from_bytes(signing.verifying_key().to_bytes()).expect("a derived ed25519 public key is valid")
}

/// The seed in a key file: the one line that is not blank or a `#` comment, 64 hex digits.
fn parse_key_file(text: &str) -> anyhow::Result<[u8; 32]> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (Some(line), None) = (lines.next(), lines.next()) else {
        bail!("expected exactly one line of 64 hex digits besides # comments");
    };
    let mut seed = [0u8; 32];
    hex::decode_to_slice(line, &mut seed)
        .map_err(|_| anyhow::anyhow!("expected 64 hex digits (a 32-byte ed25519 seed)"))?;
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use halftone_channels::{AppId, Sha256, Target, TrustedKeys, Version};

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.key");
        let key = ReleaseKey::generate();
        key.write_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let before = std::fs::read(&path).unwrap();
        let e = ReleaseKey::generate().write_new(&path).unwrap_err();
        assert!(e.to_string().contains("already exists; refusing to overwrite"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before);

        let loaded = ReleaseKey::load(&path, None).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        assert_eq!(loaded.id(), key.id());
        let renamed = ReleaseKey::load(&path, Some(KeyId::parse("release-2026").unwrap())).unwrap();
        assert_eq!(renamed.id().as_str(), "release-2026");
    }

    #[test]
    fn key_files_parse_strictly() {
        let seed = "ab".repeat(32);
        assert_eq!(parse_key_file(&format!("# c\n\n{seed}\n")).unwrap(), [0xab; 32]);
        for bad in [String::new(), "# only comments\n".into(), "abcd".into(), format!("{seed}\n{seed}")] {
            assert!(parse_key_file(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signatures_verify_with_trusted_keys() {
        let key = ReleaseKey::from_signing(SigningKey::from_bytes(&[9; 32]), None);
        let (app, version) = (AppId::parse("notes").unwrap(), Version::parse("1.2.0").unwrap());
        let target = Target { os: "windows".parse().unwrap(), arch: "x86_64".parse().unwrap() };
        let sha256 = Sha256::digest(b"build");
        let fields = SignedFields { app: &app, version: &version, target: &target, sha256: &sha256, size: 5 };
        let signature = key.sign(fields);
        let trusted = TrustedKeys::new([(key.id().clone(), key.public_key())]).unwrap();
        let message = signed_message(fields);
        assert_eq!(trusted.verify(key.id(), message.as_bytes(), &signature), Ok(()));
        // The signature covers the fields: another size does not verify.
        let other = signed_message(SignedFields { size: 6, ..fields });
        assert!(trusted.verify(key.id(), other.as_bytes(), &signature).is_err());
        assert!(key.id().as_str().starts_with("ed25519-"));
        assert!(!format!("{key:?}").contains(&hex::encode([9u8; 32])));
    }
}
