//! The embedded store's feedback log: the entries the aggregator group-commits (reports
//! acknowledged since the figures were last written whole), appended to a file of their own,
//! `feedback.log` in the store's directory, and synced (`fdatasync`) before the commit returns.
//!
//! Each entry is one frame: its length (u32), a CRC-32 of the rest (u32), its sequence number
//! (u64), all little-endian, then its bytes. Only the last append can be torn by a crash, and it
//! was never acknowledged: reading stops at the first incomplete or damaged frame, and
//! [`FeedbackLog::open`] cuts the file there, so that later appends follow whole frames.
//!
//! Which entries still count is the sled side's business (`store::sled`): a checkpoint writes
//! the figures and, in the same transaction, the first sequence number not yet covered by them;
//! only then is the file emptied ([`FeedbackLog::clear`]), which may be lost in a crash without
//! harm. It replaces sled's `feedback_log` tree, where each group commit cost a transaction, a
//! flush and a wake-up of sled's seven I/O threads: about a fifth of the server's CPU per event
//! at 50,000 events/s (bench/feedback.sh).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;

/// Length, CRC-32 and sequence number in front of each entry's bytes.
const HEADER: usize = 4 + 4 + 8;

/// A frame longer than this is damage, not an entry (a group commit logs a few hundred KiB).
const MAX_ENTRY: usize = 1 << 30;

/// Log entries with their sequence numbers, in the order written.
pub type Entries = Vec<(u64, Vec<u8>)>;

/// The feedback log file of an embedded store.
pub struct FeedbackLog {
    path: PathBuf,
    /// Held while writing, so that frames never interleave.
    tail: Mutex<Tail>,
}

/// The open file and where its whole frames end.
struct Tail {
    /// Opened for appending.
    file: File,
    /// The length of the whole frames written: a failed append is cut back to it.
    len: u64,
    /// A failed append could not be cut back: nothing more is appended (an entry after torn
    /// bytes would be lost at the next start, although acknowledged) until the server restarts
    /// and [`FeedbackLog::open`] cuts them off.
    broken: bool,
}

impl FeedbackLog {
    /// The log's file in the store directory `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join("feedback.log")
    }

    /// Opens (or creates) the log in `dir`, cutting a torn last frame off.
    pub fn open(dir: &Path) -> anyhow::Result<FeedbackLog> {
        let path = FeedbackLog::path_in(dir);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening the feedback log {}", path.display()))?;
        let (_, whole) = read_frames(&file, &path)?;
        let len = file.metadata()?.len();
        if whole < len {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = len - whole,
                "the feedback log ends in an incomplete entry (a crash during its write, which was never \
                 acknowledged): cut off"
            );
            file.set_len(whole)?;
            file.sync_all()?;
        }
        Ok(FeedbackLog { path, tail: Mutex::new(Tail { file, len: whole, broken: false }) })
    }

    /// Every whole entry with its sequence number, in the order written.
    pub fn entries(&self) -> anyhow::Result<Entries> {
        let tail = self.lock();
        Ok(read_frames(&tail.file, &self.path)?.0)
    }

    /// Appends `entries` and syncs them to disk; only after this returns may they be
    /// acknowledged.
    pub fn append(&self, entries: &[(u64, &[u8])]) -> anyhow::Result<()> {
        let mut bytes = Vec::with_capacity(entries.iter().map(|(_, e)| HEADER + e.len()).sum());
        for (seq, entry) in entries {
            anyhow::ensure!(entry.len() <= MAX_ENTRY, "a feedback log entry of {} bytes", entry.len());
            let seq = seq.to_le_bytes();
            let mut crc = crc32fast::Hasher::new();
            crc.update(&seq);
            crc.update(entry);
            bytes.extend_from_slice(&(entry.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc.finalize().to_le_bytes());
            bytes.extend_from_slice(&seq);
            bytes.extend_from_slice(entry);
        }
        let mut tail = self.lock();
        anyhow::ensure!(
            !tail.broken,
            "the feedback log could not be cut back after a failed write: no report is stored until the server \
             restarts"
        );
        let Tail { file, len, .. } = &mut *tail;
        if let Err(e) = file.write_all(&bytes).and_then(|()| file.sync_data()) {
            // Part of it may be in the file: cut it off, so that the next append follows whole
            // frames (the reports of this one are not acknowledged).
            if file.set_len(*len).is_err() {
                tail.broken = true;
            }
            return Err(e).context("appending to the feedback log");
        }
        *len += bytes.len() as u64;
        Ok(())
    }

    /// Empties the log: every entry in it is covered by a checkpoint already stored.
    pub fn clear(&self) -> anyhow::Result<()> {
        let mut tail = self.lock();
        tail.file.set_len(0).context("emptying the feedback log")?;
        tail.len = 0;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The whole frames of `file` from its start, and where they end.
fn read_frames(file: &File, path: &Path) -> anyhow::Result<(Entries, u64)> {
    let mut bytes = Vec::new();
    // The file is opened for appending: writes go to its end wherever reads left the position.
    let mut reader = file;
    reader.rewind()?;
    reader.read_to_end(&mut bytes).with_context(|| format!("reading the feedback log {}", path.display()))?;
    let (mut out, mut at) = (Vec::new(), 0usize);
    while let Some(header) = bytes.get(at..at + HEADER) {
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let seq = &header[8..16];
        let Some(entry) = bytes.get(at + HEADER..at + HEADER + len).filter(|_| len <= MAX_ENTRY) else { break };
        let mut check = crc32fast::Hasher::new();
        check.update(seq);
        check.update(entry);
        if check.finalize() != crc {
            break;
        }
        out.push((u64::from_le_bytes(seq.try_into().expect("8 bytes")), entry.to_vec()));
        at += HEADER + len;
    }
    Ok((out, at as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_entries_are_read_back_after_reopening_and_clear_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = FeedbackLog::open(dir.path()).unwrap();
        log.append(&[(7, b"seven"), (8, b"")]).unwrap();
        log.append(&[(9, b"nine")]).unwrap();
        drop(log);
        let log = FeedbackLog::open(dir.path()).unwrap();
        assert_eq!(log.entries().unwrap(), vec![(7, b"seven".to_vec()), (8, vec![]), (9, b"nine".to_vec())]);
        log.clear().unwrap();
        assert!(log.entries().unwrap().is_empty());
        log.append(&[(10, b"ten")]).unwrap();
        drop(log);
        assert_eq!(FeedbackLog::open(dir.path()).unwrap().entries().unwrap(), vec![(10, b"ten".to_vec())]);
    }

    /// A crash can leave the last append half written (or its length written and its bytes
    /// not): the whole entries before it count, it does not, and what is appended after the
    /// restart is read back too (it does not follow the torn bytes).
    #[test]
    fn a_torn_last_entry_is_cut_off_and_later_appends_are_kept() {
        for torn in [3, HEADER - 1, HEADER + 2] {
            let dir = tempfile::tempdir().unwrap();
            let log = FeedbackLog::open(dir.path()).unwrap();
            log.append(&[(1, b"one")]).unwrap();
            log.append(&[(2, b"second entry")]).unwrap();
            drop(log);
            let path = FeedbackLog::path_in(dir.path());
            let whole = std::fs::metadata(&path).unwrap().len();
            let first = (HEADER + 3) as u64;
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(first + torn as u64).unwrap();
            assert!(first + (torn as u64) < whole);
            let log = FeedbackLog::open(dir.path()).unwrap();
            assert_eq!(log.entries().unwrap(), vec![(1, b"one".to_vec())], "torn after {torn} bytes");
            assert_eq!(std::fs::metadata(&path).unwrap().len(), first, "the torn bytes are cut off");
            log.append(&[(3, b"three")]).unwrap();
            drop(log);
            let entries = FeedbackLog::open(dir.path()).unwrap().entries().unwrap();
            assert_eq!(entries, vec![(1, b"one".to_vec()), (3, b"three".to_vec())]);
        }
    }

    /// An append that fails and cannot be cut back stops all later ones: an entry written
    /// after torn bytes would be acknowledged and then lost at the next start.
    #[test]
    fn after_a_failed_write_that_cannot_be_cut_back_nothing_more_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        drop(FeedbackLog::open(dir.path()).unwrap());
        // Read-only: the write fails, and so does cutting the file back.
        let file = std::fs::File::open(FeedbackLog::path_in(dir.path())).unwrap();
        let log = FeedbackLog {
            path: FeedbackLog::path_in(dir.path()),
            tail: Mutex::new(Tail { file, len: 0, broken: false }),
        };
        assert!(log.append(&[(1, b"one")]).is_err());
        let e = log.append(&[(2, b"two")]).unwrap_err().to_string();
        assert!(e.contains("could not be cut back"), "{e}");
        // A new process (the server restarted) appends again.
        let log = FeedbackLog::open(dir.path()).unwrap();
        log.append(&[(3, b"three")]).unwrap();
        assert_eq!(log.entries().unwrap(), vec![(3, b"three".to_vec())]);
    }

    #[test]
    fn a_damaged_entry_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = FeedbackLog::open(dir.path()).unwrap();
        log.append(&[(1, b"one"), (2, b"two")]).unwrap();
        drop(log);
        let path = FeedbackLog::path_in(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(FeedbackLog::open(dir.path()).unwrap().entries().unwrap(), vec![(1, b"one".to_vec())]);
        // A length far past the end (garbage where a header should be) is not read as one.
        std::fs::write(&path, [0xffu8; HEADER + 4]).unwrap();
        assert!(FeedbackLog::open(dir.path()).unwrap().entries().unwrap().is_empty());
    }
}
