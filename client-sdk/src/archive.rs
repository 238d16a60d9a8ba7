//! Unpacking a build's archive (tar.gz or zip) into a fresh directory, refusing every entry
//! that could land outside it.
//!
//! The archive formats are read by maintained crates (`tar` with `flate2`'s pure-Rust
//! inflater, `zip` with deflate only); the rules about what may be written are ours, applied
//! to each entry's raw name before anything is created:
//! - a name is relative, made of plain components (`./` is skipped); `..`, a root, a drive
//!   prefix, a backslash or a NUL refuse the whole archive ([`UnsafeEntry`]);
//! - regular files and directories are written; a symbolic link only when its target is
//!   relative and, resolved from the link's directory without passing through another link,
//!   stays inside; hard links, devices and fifos are refused;
//! - links are created after every file and directory, and no entry may lie below a link, so
//!   nothing is ever written through one; a name given twice is refused;
//! - files are created new (never opened through an existing path), with mode 0644, or 0755
//!   when the archive marks them executable (never setuid), and synced;
//! - the unpacked total is bounded ([`UnpackLimits`]), so a small archive cannot fill the disk.
//!
//! A refused archive leaves a partial directory that the caller deletes; the caller unpacks
//! into a fresh directory only, never into a live one.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek};
use std::path::{Component, Path, PathBuf};

/// Why an archive entry was refused. The whole archive is refused with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsafeEntry {
    /// The name climbs out with `..`.
    #[error("its name contains `..`")]
    ParentDir,
    /// The name is absolute (a root or a drive prefix).
    #[error("its name is absolute")]
    Absolute,
    /// The name has a backslash, a NUL, or is not UTF-8: it means different paths on
    /// different systems.
    #[error("its name is ambiguous (backslash, NUL or not UTF-8)")]
    AmbiguousName,
    /// The name is empty.
    #[error("its name is empty")]
    Empty,
    /// A symbolic link whose target is absolute, leaves the directory, or passes through
    /// another link.
    #[error("it is a link that points outside the build")]
    LinkOutside,
    /// A hard link.
    #[error("it is a hard link")]
    HardLink,
    /// A device, fifo or other special file.
    #[error("it is a special file")]
    Special,
    /// The same name twice, or a name where a file or link already is.
    #[error("its name is given twice")]
    Duplicate,
    /// An entry below a symbolic link of the archive: it would be written through the link.
    #[error("it lies below a link")]
    BelowLink,
}

/// Bounds on what one archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnpackLimits {
    /// Total bytes of all files.
    pub(crate) max_bytes: u64,
    /// Entries of every kind.
    pub(crate) max_entries: u64,
}

/// An archive format the SDK unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    TarGz,
    Zip,
}

impl Format {
    /// The format by its first bytes: gzip (`1f 8b`) or zip (`PK\x03\x04`, or an empty
    /// archive's `PK\x05\x06`).
    pub(crate) fn sniff(head: &[u8]) -> Option<Format> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Format::TarGz)
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Some(Format::Zip)
        } else {
            None
        }
    }
}

/// Why unpacking failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnpackError {
    #[error("archive entry {entry:?} refused: {reason}")]
    Unsafe { entry: String, reason: UnsafeEntry },
    #[error("the archive unpacks to more than {limit} {what}")]
    TooLarge { limit: u64, what: &'static str },
    #[error("the archive is not a valid {format}: {detail}")]
    Corrupt { format: &'static str, detail: String },
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Unpacks `file` (positioned at its start) into `root`, an empty directory.
pub(crate) fn unpack(file: File, format: Format, root: &Path, limits: UnpackLimits) -> Result<(), UnpackError> {
    let mut out = Writer::new(root, limits);
    match format {
        Format::TarGz => unpack_tar(file, &mut out)?,
        Format::Zip => unpack_zip(file, &mut out)?,
    }
    out.finish()
}

fn unpack_tar(file: File, out: &mut Writer<'_>) -> Result<(), UnpackError> {
    let corrupt = |e: io::Error| UnpackError::Corrupt { format: "tar.gz", detail: e.to_string() };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw = entry.path_bytes().into_owned();
        let name = std::str::from_utf8(&raw)
            .map_err(|_| unsafe_entry(&String::from_utf8_lossy(&raw), UnsafeEntry::AmbiguousName))?
            .to_owned();
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644);
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        } else if kind.is_file() || kind.is_contiguous() {
            out.file(&name, mode, &mut entry)?;
        } else if kind.is_dir() {
            out.dir(&name)?;
        } else if kind.is_symlink() {
            let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
            let target = String::from_utf8(target).map_err(|_| unsafe_entry(&name, UnsafeEntry::LinkOutside))?;
            out.link(&name, &target)?;
        } else if kind.is_hard_link() {
            return Err(unsafe_entry(&name, UnsafeEntry::HardLink));
        } else {
            return Err(unsafe_entry(&name, UnsafeEntry::Special));
        }
    }
    Ok(())
}

fn unpack_zip(file: File, out: &mut Writer<'_>) -> Result<(), UnpackError> {
    let corrupt = |e: zip::result::ZipError| UnpackError::Corrupt { format: "zip", detail: e.to_string() };
    let mut archive = zip::ZipArchive::new(io::BufReader::new(file)).map_err(corrupt)?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(corrupt)?;
        let name = entry.name().map_err(corrupt)?.into_owned();
        let mode = entry.unix_mode().unwrap_or(0o644);
        if entry.is_symlink() {
            let mut target = String::new();
            // A link's target is its contents; a long one is not a link anyone needs.
            entry
                .by_ref()
                .take(4096)
                .read_to_string(&mut target)
                .map_err(|_| unsafe_entry(&name, UnsafeEntry::LinkOutside))?;
            out.link(&name, &target)?;
        } else if entry.is_dir() {
            out.dir(&name)?;
        } else if mode & 0o170000 != 0 && mode & 0o170000 != 0o100000 {
            return Err(unsafe_entry(&name, UnsafeEntry::Special));
        } else {
            out.file(&name, mode, &mut entry)?;
        }
    }
    Ok(())
}

fn unsafe_entry(name: &str, reason: UnsafeEntry) -> UnpackError {
    UnpackError::Unsafe { entry: name.chars().take(200).collect(), reason }
}

/// A relative name, checked: plain components only.
fn relative(name: &str) -> Result<PathBuf, UnsafeEntry> {
    if name.contains('\\') || name.contains('\0') {
        return Err(UnsafeEntry::AmbiguousName);
    }
    let path = Path::new(name);
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(UnsafeEntry::ParentDir),
            Component::RootDir | Component::Prefix(_) => return Err(UnsafeEntry::Absolute),
        }
    }
    Ok(out)
}

/// Creates what the entries describe under `root`, links last.
struct Writer<'a> {
    root: &'a Path,
    limits: UnpackLimits,
    written: u64,
    entries: u64,
    /// Every name created, for duplicates and the below-a-link rule.
    names: HashSet<PathBuf>,
    dirs: Vec<PathBuf>,
    links: Vec<(PathBuf, String)>,
}

impl<'a> Writer<'a> {
    fn new(root: &'a Path, limits: UnpackLimits) -> Self {
        Writer { root, limits, written: 0, entries: 0, names: HashSet::new(), dirs: Vec::new(), links: Vec::new() }
    }

    fn io(path: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
        move |source| UnpackError::Io { path: path.to_owned(), source }
    }

    /// Checks the name and counts the entry; `None` for the archive's root (`./`).
    fn admit(&mut self, name: &str) -> Result<Option<PathBuf>, UnpackError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(UnpackError::TooLarge { limit: self.limits.max_entries, what: "entries" });
        }
        let rel = relative(name).map_err(|reason| unsafe_entry(name, reason))?;
        if rel.as_os_str().is_empty() {
            return if name.trim_matches('/').trim_matches('.').is_empty() && !name.is_empty() {
                Ok(None)
            } else {
                Err(unsafe_entry(name, UnsafeEntry::Empty))
            };
        }
        Ok(Some(rel))
    }

    /// Creates the parent directories of `rel` (real directories: no link exists yet).
    fn parents(&mut self, rel: &Path) -> Result<(), UnpackError> {
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            let path = self.root.join(parent);
            fs::create_dir_all(&path).map_err(Self::io(&path))?;
        }
        Ok(())
    }

    fn dir(&mut self, name: &str) -> Result<(), UnpackError> {
        let Some(rel) = self.admit(name)? else { return Ok(()) };
        self.parents(&rel)?;
        let path = self.root.join(&rel);
        match fs::create_dir(&path) {
            Ok(()) => {}
            // A directory named twice, or first implied by a file below it, is harmless.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() && !path.is_symlink() => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(unsafe_entry(name, UnsafeEntry::Duplicate));
            }
            Err(source) => return Err(UnpackError::Io { path, source }),
        }
        self.names.insert(rel.clone());
        self.dirs.push(rel);
        Ok(())
    }

    fn file(&mut self, name: &str, mode: u32, contents: &mut dyn Read) -> Result<(), UnpackError> {
        let Some(rel) = self.admit(name)? else { return Err(unsafe_entry(name, UnsafeEntry::Empty)) };
        if !self.names.insert(rel.clone()) {
            return Err(unsafe_entry(name, UnsafeEntry::Duplicate));
        }
        self.parents(&rel)?;
        let path = self.root.join(&rel);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(if mode & 0o111 != 0 { 0o755 } else { 0o644 });
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = match options.open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(unsafe_entry(name, UnsafeEntry::Duplicate));
            }
            Err(source) => return Err(UnpackError::Io { path, source }),
        };
        let budget = self.limits.max_bytes - self.written;
        let copied = io::copy(&mut contents.take(budget + 1), &mut file).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput => {
                UnpackError::Corrupt { format: "archive", detail: e.to_string() }
            }
            _ => UnpackError::Io { path: path.clone(), source: e },
        })?;
        if copied > budget {
            return Err(UnpackError::TooLarge { limit: self.limits.max_bytes, what: "bytes" });
        }
        self.written += copied;
        file.sync_all().map_err(Self::io(&path))
    }

    fn link(&mut self, name: &str, target: &str) -> Result<(), UnpackError> {
        let Some(rel) = self.admit(name)? else { return Err(unsafe_entry(name, UnsafeEntry::Empty)) };
        if !self.names.insert(rel.clone()) {
            return Err(unsafe_entry(name, UnsafeEntry::Duplicate));
        }
        self.links.push((rel, target.to_owned()));
        Ok(())
    }

    /// Checks every link against every other, creates them, and syncs the directories.
    fn finish(self) -> Result<(), UnpackError> {
        let links: HashSet<&Path> = self.links.iter().map(|(p, _)| p.as_path()).collect();
        let shown = |p: &Path| p.to_string_lossy().into_owned();
        // Nothing may lie below a link: it would have been (or be) written through it.
        for name in &self.names {
            if name.ancestors().skip(1).any(|a| links.contains(a)) {
                return Err(unsafe_entry(&shown(name), UnsafeEntry::BelowLink));
            }
        }
        for (rel, target) in &self.links {
            if !link_stays_inside(rel, target, &links) {
                return Err(unsafe_entry(&shown(rel), UnsafeEntry::LinkOutside));
            }
        }
        for (rel, target) in &self.links {
            self.parents_of_link(rel)?;
            let path = self.root.join(rel);
            make_link(target, &path).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => unsafe_entry(&shown(rel), UnsafeEntry::Duplicate),
                io::ErrorKind::Unsupported => unsafe_entry(&shown(rel), UnsafeEntry::Special),
                _ => UnpackError::Io { path: path.clone(), source: e },
            })?;
        }
        for dir in self.dirs.iter().map(|d| self.root.join(d)).chain([self.root.to_owned()]) {
            sync_dir(&dir).map_err(Self::io(&dir))?;
        }
        Ok(())
    }

    fn parents_of_link(&self, rel: &Path) -> Result<(), UnpackError> {
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            let path = self.root.join(parent);
            fs::create_dir_all(&path).map_err(Self::io(&path))?;
        }
        Ok(())
    }
}

/// Whether link `rel` -> `target` resolves inside the root, by its names alone: relative,
/// never above the root, and never through a link of the archive (whose own target would
/// change what `..` means).
fn link_stays_inside(rel: &Path, target: &str, links: &HashSet<&Path>) -> bool {
    if target.is_empty() || target.contains('\\') || target.contains('\0') {
        return false;
    }
    let mut at: Vec<&std::ffi::OsStr> = rel.parent().map(|p| p.iter().collect()).unwrap_or_default();
    for component in Path::new(target).components() {
        match component {
            Component::Normal(part) => {
                at.push(part);
                let so_far: PathBuf = at.iter().collect();
                if links.contains(so_far.as_path()) {
                    return false;
                }
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if at.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(unix)]
fn make_link(target: &str, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

#[cfg(not(unix))]
fn make_link(_target: &str, _path: &Path) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "links in archives are unpacked on Unix only"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) { File::open(dir)?.sync_all() } else { Ok(()) }
}

/// Reads the first bytes of `file` and rewinds it.
pub(crate) fn head(file: &mut File) -> io::Result<[u8; 4]> {
    let mut head = [0u8; 4];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    file.rewind()?;
    Ok(head)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One entry of a test archive.
    pub(crate) enum E<'a> {
        File(&'a str, &'a [u8], u32),
        Dir(&'a str),
        Link(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        Fifo(&'a str),
    }

    /// A tar.gz with these entries, names written raw (the `tar` crate's own checks would
    /// refuse the hostile ones).
    pub(crate) fn tar_gz(entries: &[E<'_>]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        for entry in entries {
            let mut header = tar::Header::new_gnu();
            let (name, data, kind, mode, link): (&str, &[u8], tar::EntryType, u32, Option<&str>) = match entry {
                E::File(n, d, m) => (n, d, tar::EntryType::Regular, *m, None),
                E::Dir(n) => (n, b"", tar::EntryType::Directory, 0o755, None),
                E::Link(n, t) => (n, b"", tar::EntryType::Symlink, 0o777, Some(t)),
                E::HardLink(n, t) => (n, b"", tar::EntryType::Link, 0o644, Some(t)),
                E::Fifo(n) => (n, b"", tar::EntryType::Fifo, 0o644, None),
            };
            let raw = &mut header.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(target) = link {
                header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
            }
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    /// A zip with these entries (files, directories and links only).
    pub(crate) fn zip(entries: &[E<'_>]) -> Vec<u8> {
        use std::io::Write;
        let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let options = || zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for entry in entries {
            match entry {
                E::File(n, d, m) => {
                    writer.start_file(*n, options().unix_permissions(*m)).unwrap();
                    writer.write_all(d).unwrap();
                }
                E::Dir(n) => writer.add_directory(*n, options()).unwrap(),
                E::Link(n, t) => writer.add_symlink(*n, *t, options()).unwrap(),
                E::HardLink(..) | E::Fifo(_) => panic!("zip has no such entries"),
            }
        }
        writer.finish().unwrap().into_inner()
    }

    const LIMITS: UnpackLimits = UnpackLimits { max_bytes: 1 << 20, max_entries: 1000 };

    /// Unpacks `bytes` into `<tmp>/app/v` (nothing else exists under `<tmp>`).
    fn unpacked(bytes: &[u8], limits: UnpackLimits) -> (tempfile::TempDir, Result<(), UnpackError>) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("app/v");
        fs::create_dir_all(&root).unwrap();
        let path = tmp.path().join("build");
        fs::write(&path, bytes).unwrap();
        let mut file = File::open(&path).unwrap();
        let format = Format::sniff(&head(&mut file).unwrap()).unwrap();
        fs::remove_file(&path).unwrap();
        let result = unpack(file, format, &root, limits);
        (tmp, result)
    }

    /// Every path under `dir`, relative, sorted.
    fn tree(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                out.push(path.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
                if path.is_dir() && !path.is_symlink() {
                    stack.push(path);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_good_archive_unpacks_with_its_modes_and_inside_links() {
        let entries = [
            E::Dir("./"),
            E::File("./bin/notes", b"#!/bin/sh\necho 2.0.0\n", 0o4755),
            E::File("lib/notes.so", b"library", 0o600),
            E::Link("bin/lib", "../lib"),
            E::Link("current-lib", "lib/notes.so"),
        ];
        for bytes in [tar_gz(&entries), zip(&entries[1..])] {
            let (tmp, result) = unpacked(&bytes, LIMITS);
            result.unwrap();
            let root = tmp.path().join("app/v");
            assert_eq!(tree(&root), ["bin", "bin/lib", "bin/notes", "current-lib", "lib", "lib/notes.so"]);
            assert_eq!(fs::read(root.join("bin/lib/notes.so")).unwrap(), b"library");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
                assert_eq!(mode("bin/notes"), 0o755, "executable, never setuid");
                assert_eq!(mode("lib/notes.so"), 0o644);
            }
        }
    }

    #[test]
    fn hostile_tar_entries_are_refused_and_nothing_lands_outside() {
        let cases: Vec<(Vec<E<'_>>, UnsafeEntry)> = vec![
            (vec![E::File("../evil", b"x", 0o644)], UnsafeEntry::ParentDir),
            (vec![E::File("ok/../../evil", b"x", 0o644)], UnsafeEntry::ParentDir),
            (vec![E::File("/tmp/evil", b"x", 0o644)], UnsafeEntry::Absolute),
            (vec![E::File("a\\..\\..\\evil", b"x", 0o644)], UnsafeEntry::AmbiguousName),
            (vec![E::Link("out", "../../evil")], UnsafeEntry::LinkOutside),
            (vec![E::Link("out", "/etc/passwd")], UnsafeEntry::LinkOutside),
            (vec![E::Dir("a"), E::Link("a/up", ".."), E::Link("a/out", "up/..")], UnsafeEntry::LinkOutside),
            (vec![E::Link("l", "sub"), E::File("l/x", b"x", 0o644)], UnsafeEntry::BelowLink),
            (vec![E::Link("l", "."), E::Link("l/x", "..")], UnsafeEntry::BelowLink),
            (vec![E::File("a", b"x", 0o644), E::HardLink("b", "/etc/passwd")], UnsafeEntry::HardLink),
            (vec![E::Fifo("pipe")], UnsafeEntry::Special),
            (vec![E::File("a", b"x", 0o644), E::File("a", b"y", 0o644)], UnsafeEntry::Duplicate),
            (vec![E::File("a", b"x", 0o644), E::Link("a", "b")], UnsafeEntry::Duplicate),
        ];
        for (entries, expected) in cases {
            let (tmp, result) = unpacked(&tar_gz(&entries), LIMITS);
            match result {
                Err(UnpackError::Unsafe { reason, .. }) => assert_eq!(reason, expected),
                other => panic!("expected {expected:?}, got {other:?}"),
            }
            let outside: Vec<_> = tree(tmp.path()).into_iter().filter(|p| !p.starts_with("app")).collect();
            assert!(outside.is_empty(), "written outside: {outside:?}");
            assert!(!Path::new("/tmp/evil").exists());
            // No link was created: links come last, after every check.
            assert!(tree(&tmp.path().join("app")).iter().all(|p| !tmp.path().join("app").join(p).is_symlink()));
        }
    }

    #[test]
    fn hostile_zip_entries_are_refused() {
        let cases: Vec<(Vec<E<'_>>, UnsafeEntry)> = vec![
            (vec![E::File("../evil", b"x", 0o644)], UnsafeEntry::ParentDir),
            (vec![E::File("/abs/evil", b"x", 0o644)], UnsafeEntry::Absolute),
            (vec![E::Link("out", "../../../evil")], UnsafeEntry::LinkOutside),
            (vec![E::Link("l", "sub"), E::File("l/x", b"x", 0o644)], UnsafeEntry::BelowLink),
        ];
        for (entries, expected) in cases {
            let (tmp, result) = unpacked(&zip(&entries), LIMITS);
            match result {
                Err(UnpackError::Unsafe { reason, .. }) => assert_eq!(reason, expected),
                other => panic!("expected {expected:?}, got {other:?}"),
            }
            assert_eq!(tree(tmp.path()).into_iter().filter(|p| !p.starts_with("app")).count(), 0);
        }
    }

    #[test]
    fn archives_are_bounded_in_bytes_and_entries() {
        let big = vec![0u8; 4096];
        let (_tmp, result) =
            unpacked(&tar_gz(&[E::File("big", &big, 0o644)]), UnpackLimits { max_bytes: 4095, max_entries: 10 });
        assert!(matches!(result, Err(UnpackError::TooLarge { what: "bytes", .. })), "{result:?}");
        let many: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
        let entries: Vec<E<'_>> = many.iter().map(|n| E::File(n, b"", 0o644)).collect();
        let (_tmp, result) = unpacked(&zip(&entries), UnpackLimits { max_bytes: 4096, max_entries: 10 });
        assert!(matches!(result, Err(UnpackError::TooLarge { what: "entries", .. })), "{result:?}");
    }

    #[test]
    fn formats_are_sniffed() {
        assert_eq!(Format::sniff(&tar_gz(&[])[..4]), Some(Format::TarGz));
        assert_eq!(Format::sniff(&zip(&[E::Dir("a/")])[..4]), Some(Format::Zip));
        assert_eq!(Format::sniff(b"\x7fELF"), None);
    }
}
