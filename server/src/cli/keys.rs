//! Release signing key files: `halftone keygen` and the private key file.
//! The key itself, and signing with it, is [`halftone_admin::ReleaseKey`]; the file is
//! the CLI's own format and policy ([`load`], [`write_new`]), so it lives here.
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
use halftone_admin::ReleaseKey;
use halftone_channels::KeyId;

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
    write_new(&key, &args.out)?;
    out.emit(&key.spec(), |s| {
        format!(
            "wrote private key {} (keep it secret; the server never needs it)\n\
             key id:     {}\n\
             public key: {}\n\
             register it with: halftone app create <app> --key {}={}\n\
             for other updaters: halftone client-keys --public-key {}",
            args.out.display(),
            s.id,
            s.public_key,
            s.id,
            s.public_key,
            s.public_key
        )
    })
}

/// `halftone client-keys`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientKeysArgs {
    /// The release key's public key (64 hex digits, as `keygen` prints it).
    #[arg(long, value_name = "HEX", required_unless_present = "key_file")]
    pub public_key: Option<halftone_channels::PublicKey>,
    /// Or the private key file, whose public key is printed.
    #[arg(long, value_name = "FILE", conflicts_with = "public_key")]
    pub key_file: Option<PathBuf>,
}

/// A release key's public key in the forms other updaters are configured with.
#[derive(Debug, serde::Serialize)]
pub struct ClientKeys {
    /// The minisign public key file (text).
    pub minisign_public_key: String,
    /// Tauri's and cargo-packager's `pubkey`: the minisign public key file in base64.
    pub tauri_pubkey: String,
    /// Sparkle's `SUPublicEDKey` (Info.plist).
    pub sparkle_public_ed_key: String,
}

impl ClientKeys {
    /// The forms of `key`.
    pub fn of(key: &halftone_channels::PublicKey) -> Self {
        use base64::Engine as _;
        let minisign = halftone_channels::minisign_public_key(key);
        ClientKeys {
            tauri_pubkey: base64::engine::general_purpose::STANDARD.encode(&minisign),
            minisign_public_key: minisign,
            sparkle_public_ed_key: halftone_channels::sparkle_public_key(key),
        }
    }
}

/// Prints the public key in the forms Tauri, cargo-packager and Sparkle are configured with.
pub fn client_keys(args: &ClientKeysArgs, out: &Output) -> anyhow::Result<()> {
    let key = match (&args.public_key, &args.key_file) {
        (Some(k), _) => *k,
        (None, Some(path)) => load(path, None)?.public_key(),
        (None, None) => bail!("give --public-key or --key-file"),
    };
    out.emit(&ClientKeys::of(&key), |k| {
        format!(
            "Tauri / cargo-packager (updater pubkey):\n{}\n\nSparkle (Info.plist SUPublicEDKey):\n{}\n\n\
             electron-updater and CodePush need no key: electron-updater checks the sha512 the server sends.",
            k.tauri_pubkey, k.sparkle_public_ed_key
        )
    })
}

/// Reads a key file; `id` overrides the default id (the fingerprint) for apps that registered
/// the key under another name.
pub fn load(path: &Path, id: Option<KeyId>) -> anyhow::Result<ReleaseKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("could not read key file {}", path.display()))?;
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
    let key = ReleaseKey::from_seed(seed);
    Ok(match id {
        Some(id) => key.with_id(id),
        None => key,
    })
}

/// Writes `key` to a new file readable only by its owner. An existing file is never replaced:
/// losing a release key is worse than a failed command.
pub fn write_new(key: &ReleaseKey, path: &Path) -> anyhow::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} already exists; refusing to overwrite a key file", path.display())
        } else {
            anyhow::Error::new(e).context(format!("could not create key file {}", path.display()))
        }
    })?;
    file.write_all(file_text(key).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("could not write key file {}", path.display()))
}

fn file_text(key: &ReleaseKey) -> String {
    format!(
        "# halftone release signing key (ed25519). Keep it secret.\n# key id: {}\n# public key: {}\n{}\n",
        key.id(),
        key.public_key(),
        hex::encode(key.secret_seed())
    )
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

    #[test]
    fn client_keys_are_what_minisign_and_sparkle_read() {
        use base64::Engine as _;
        let key = ReleaseKey::from_seed([3; 32]);
        let forms = ClientKeys::of(&key.public_key());
        let text = base64::engine::general_purpose::STANDARD.decode(&forms.tauri_pubkey).unwrap();
        assert_eq!(String::from_utf8(text).unwrap(), forms.minisign_public_key);
        // minisign-verify, which Tauri and cargo-packager run, reads it.
        assert!(minisign_verify::PublicKey::decode(&forms.minisign_public_key).is_ok());
        let sparkle = base64::engine::general_purpose::STANDARD.decode(&forms.sparkle_public_ed_key).unwrap();
        assert_eq!(sparkle, key.public_key().to_bytes());
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.key");
        let key = ReleaseKey::generate();
        write_new(&key, &path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let before = std::fs::read(&path).unwrap();
        let e = write_new(&ReleaseKey::generate(), &path).unwrap_err();
        assert!(e.to_string().contains("already exists; refusing to overwrite"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before);

        let loaded = load(&path, None).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        assert_eq!(loaded.id(), key.id());
        let renamed = load(&path, Some(KeyId::parse("release-2026").unwrap())).unwrap();
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
}
