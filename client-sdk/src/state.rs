//! The state directory: the files the SDK keeps between runs, one small text file per value.
//!
//! - `device-id`: the device's random 128-bit id, 32 lowercase hex digits; created once, if
//!   absent, and never derived from hardware or personal data;
//! - `channel`: the channel the user chose;
//! - `watermark`: the highest version this device has verified (see [`Watermark`]);
//! - `keys`: the newest release key document this device verified (one line of JSON, the
//!   wire's `KeyDocumentSpec`), so a rollback of the server's documents is refused after a
//!   restart too;
//! - `install`: the install journal (see [`Journal`]), present while an install is in
//!   progress and after a build was reverted.
//!
//! Every write goes to a fresh temporary file in the same directory, is synced, then renamed
//! over the old file, so a crash leaves the old value or the new one, never half of either. A
//! file that holds anything else is a [`StateError::Corrupt`], never silently replaced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use halftone_channels::wire::KeyDocumentSpec;
use halftone_channels::{ChannelName, DeviceId, SignedKeyDocument};

use crate::StateError;
use crate::journal::Journal;
use crate::watermark::Watermark;

const DEVICE_ID: &str = "device-id";
const CHANNEL: &str = "channel";
const WATERMARK: &str = "watermark";
const KEYS: &str = "keys";
const INSTALL: &str = "install";

/// An open state directory.
#[derive(Debug)]
pub(crate) struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Opens `dir`, creating it (and its parents) if missing.
    pub(crate) fn open(dir: &Path) -> Result<Self, StateError> {
        fs::create_dir_all(dir).map_err(|source| StateError::Io { path: dir.to_owned(), source })?;
        Ok(StateDir { dir: dir.to_owned() })
    }

    /// The device id, created on first use.
    pub(crate) fn device_id(&self) -> Result<DeviceId, StateError> {
        if let Some(id) = self.read(DEVICE_ID, parse_device_id)? {
            return Ok(id);
        }
        let fresh = format!("{}\n", hex::encode(rand::random::<[u8; 16]>()));
        self.create_if_absent(DEVICE_ID, fresh.as_bytes())?;
        // Read back rather than trust `fresh`: another process may have won the race.
        self.read(DEVICE_ID, parse_device_id)?.ok_or_else(|| StateError::Io {
            path: self.path(DEVICE_ID),
            source: io::Error::new(io::ErrorKind::NotFound, "device id vanished after it was written"),
        })
    }

    /// The channel the user chose, if any.
    pub(crate) fn channel(&self) -> Result<Option<ChannelName>, StateError> {
        self.read(CHANNEL, |text| {
            let name = text.strip_suffix('\n').ok_or("expected one line")?;
            ChannelName::parse(name).map_err(|e| e.to_string())
        })
    }

    /// Records the user's channel choice.
    pub(crate) fn set_channel(&self, channel: &ChannelName) -> Result<(), StateError> {
        self.write(CHANNEL, format!("{channel}\n").as_bytes())
    }

    /// The watermark, if this device ever verified a download.
    pub(crate) fn watermark(&self) -> Result<Option<Watermark>, StateError> {
        self.read(WATERMARK, Watermark::decode)
    }

    /// Writes `watermark`; callers check [`Watermark::raises`] first, under a lock.
    pub(crate) fn set_watermark(&self, watermark: &Watermark) -> Result<(), StateError> {
        self.write(WATERMARK, watermark.encode().as_bytes())
    }

    /// The newest key document this device verified, if it ever advanced past the one
    /// compiled in.
    pub(crate) fn key_document(&self) -> Result<Option<SignedKeyDocument>, StateError> {
        self.read(KEYS, |text| {
            let line = text.strip_suffix('\n').ok_or("expected one line")?;
            let spec: KeyDocumentSpec = serde_json::from_str(line).map_err(|e| e.to_string())?;
            SignedKeyDocument::try_from(spec).map_err(|e| e.to_string())
        })
    }

    /// Records `document` as the newest verified; callers have walked the chain to it.
    pub(crate) fn set_key_document(&self, document: &SignedKeyDocument) -> Result<(), StateError> {
        let line = serde_json::to_string(&KeyDocumentSpec::from(document)).expect("a key document serialises");
        self.write(KEYS, format!("{line}\n").as_bytes())
    }

    /// The install journal, if an install is in progress or a build was reverted.
    pub(crate) fn journal(&self) -> Result<Option<Journal>, StateError> {
        self.read(INSTALL, Journal::decode)
    }

    /// Replaces the install journal.
    pub(crate) fn set_journal(&self, journal: &Journal) -> Result<(), StateError> {
        self.write(INSTALL, journal.encode().as_bytes())
    }

    /// Deletes the install journal (a confirmed install needs none).
    pub(crate) fn clear_journal(&self) -> Result<(), StateError> {
        let path = self.path(INSTALL);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir).map_err(|source| StateError::Io { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Reads and parses file `name`; `None` if it does not exist.
    fn read<T>(&self, name: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<Option<T>, StateError> {
        let path = self.path(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let parsed = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned()).and_then(|text| parse(&text));
        parsed.map(Some).map_err(|reason| StateError::Corrupt { path, reason })
    }

    /// Replaces file `name` atomically.
    fn write(&self, name: &str, contents: &[u8]) -> Result<(), StateError> {
        let path = self.path(name);
        let tmp = self.write_temp(name, contents)?;
        let renamed = fs::rename(&tmp, &path).and_then(|()| sync_dir(&self.dir));
        if renamed.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        renamed.map_err(|source| StateError::Io { path, source })
    }

    /// Creates file `name` atomically unless it exists. A hard link fails if the target exists,
    /// so two processes creating the device id at once agree on one; where the file system
    /// has no hard links, a rename is the fallback.
    fn create_if_absent(&self, name: &str, contents: &[u8]) -> Result<(), StateError> {
        let path = self.path(name);
        let tmp = self.write_temp(name, contents)?;
        let linked = match fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(_) if !path.exists() => fs::rename(&tmp, &path),
            Err(e) => Err(e),
        };
        let _ = fs::remove_file(&tmp);
        linked.and_then(|()| sync_dir(&self.dir)).map_err(|source| StateError::Io { path, source })
    }

    /// Writes and syncs a fresh temporary file next to `name`.
    fn write_temp(&self, name: &str, contents: &[u8]) -> Result<PathBuf, StateError> {
        let tmp = self.dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        let written = OpenOptions::new().write(true).create_new(true).open(&tmp).and_then(|mut f| {
            f.write_all(contents)?;
            f.sync_all()
        });
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(StateError::Io { path: tmp, source });
        }
        Ok(tmp)
    }
}

fn parse_device_id(text: &str) -> Result<DeviceId, String> {
    let id = text.strip_suffix('\n').ok_or("expected one line")?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err("expected 32 lowercase hex digits".into());
    }
    DeviceId::parse(id).map_err(|e| e.to_string())
}

/// Makes a rename durable: on Unix the directory entry is synced too.
fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) { File::open(dir)?.sync_all() } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halftone_channels::{Sha256, Version};

    #[test]
    fn device_id_is_created_once_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested/state");
        let first = StateDir::open(&dir).unwrap().device_id().unwrap();
        let again = StateDir::open(&dir).unwrap().device_id().unwrap();
        assert_eq!(first, again);
        assert_eq!(first.as_str().len(), 32);
        let other = StateDir::open(&tmp.path().join("other")).unwrap().device_id().unwrap();
        assert_ne!(first, other);
        // Only the value files remain: no temporary files left behind.
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["device-id"]);
    }

    #[test]
    fn corrupt_files_are_errors_not_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        for (file, contents) in [(DEVICE_ID, "not-hex\n"), (CHANNEL, "Beta!\n"), (WATERMARK, "2.0.0\n")] {
            fs::write(tmp.path().join(file), contents).unwrap();
        }
        assert!(matches!(state.device_id(), Err(StateError::Corrupt { .. })));
        assert!(matches!(state.channel(), Err(StateError::Corrupt { .. })));
        let e = state.watermark().unwrap_err();
        assert!(e.to_string().contains("watermark is corrupt"), "{e}");
        // The corrupt device id was not replaced.
        assert_eq!(fs::read_to_string(tmp.path().join(DEVICE_ID)).unwrap(), "not-hex\n");
    }

    #[test]
    fn the_key_document_round_trips_and_a_corrupt_one_is_an_error() {
        use halftone_channels::{AppId, KeyDocument, Signatures, Threshold, TrustedKeys};
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        assert_eq!(state.key_document().unwrap(), None);
        let key = crate::test_support::signing_key(1).public_key();
        let keys = TrustedKeys::new([(key.fingerprint(), key)]).unwrap();
        let document = KeyDocument::new(AppId::parse("notes").unwrap(), 2, Threshold::ONE, keys).unwrap();
        let signed = SignedKeyDocument {
            document,
            signatures: Signatures::one(key.fingerprint(), halftone_channels::Signature::from_bytes([3; 64])),
        };
        state.set_key_document(&signed).unwrap();
        assert_eq!(StateDir::open(tmp.path()).unwrap().key_document().unwrap(), Some(signed));
        fs::write(tmp.path().join(KEYS), "{\"app\":\"notes\",\"version\":0}\n").unwrap();
        assert!(matches!(state.key_document(), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn channel_and_watermark_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        assert_eq!(state.channel().unwrap(), None);
        assert_eq!(state.watermark().unwrap(), None);
        state.set_channel(&ChannelName::beta()).unwrap();
        state.set_channel(&ChannelName::unstable()).unwrap();
        assert_eq!(state.channel().unwrap(), Some(ChannelName::unstable()));
        let w = Watermark { version: Version::new(2, 0, 0), sha256: Some(Sha256::digest(b"x")) };
        state.set_watermark(&w).unwrap();
        assert_eq!(StateDir::open(tmp.path()).unwrap().watermark().unwrap(), Some(w));
    }
}
