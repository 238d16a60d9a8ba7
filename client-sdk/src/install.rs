//! Installing a verified build, starting it on trial, and reverting it when it does not
//! confirm: [`Installation`] (the app's directory and its [`Layout`]), [`Launch`] (what to
//! start), [`Installed`], [`Confirmation`], [`PlatformInstaller`] (hand-off to the OS).
//!
//! Two layouts are installed and reverted by the SDK; everything it writes is inside the
//! app's directory (`<dir>` below), and its record of the install is the journal in the
//! state directory (see `journal.rs`):
//!
//! - [`Layout::Executable`]: one file, `<dir>/<name>`. The new build is copied to
//!   `<dir>/.halftone/staged-<sha>` (hashed on the way: it must still be the verified bytes),
//!   the live file is hard-linked to `<dir>/.halftone/previous-<name>`, and the new one is
//!   renamed over `<name>`: at every instant `<name>` is one whole build.
//! - [`Layout::Directory`]: versioned directories `<dir>/versions/<version>-<sha12>/` and a
//!   symbolic link `<dir>/current` to the live one. The archive (tar.gz or zip) is unpacked
//!   into `<dir>/versions/.partial-*` with the rules of `archive.rs`, renamed to its version
//!   directory, and `current` is replaced by a new link renamed over it. A program started
//!   through [`Launch::program`] (or `current/<program>`) sees one version directory, whole.
//!
//! An installer the platform runs (`.msi`, `.pkg`, `.deb`...) is handed over with
//! [`PlatformInstaller`]; its install and rollback are the platform's.
//!
//! The cycle, with each step's record written before the step:
//! 1. [`Client::install`](crate::Client::install) stages the build, records `switching`,
//!    switches, records `trial`. The app restarts.
//! 2. At every start, before anything of the build is loaded, the launcher (or the app's
//!    first lines) calls [`Installation::launch`]. It finishes or undoes an interrupted
//!    install (a switch that did not happen is abandoned), starts a new build's trial, or,
//!    when a trial was already started and never confirmed (the build crashed, hung or exited
//!    before confirming), switches back to the previous build and records the revert.
//! 3. The new build calls [`Client::confirm`](crate::Client::confirm) once it started well
//!    (like CodePush's `notifyAppReady`), within [`Installation::confirm_within`] of its first
//!    start: `install_succeeded` is reported and the previous build deleted. A revert is
//!    reported as `install_failed` by the next client built on the state directory, and the
//!    reverted version is refused from then on ([`Refusal::Reverted`](crate::Refusal)).
//!
//! One launcher at a time per app directory: two processes installing into one directory at
//! once are not supported.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use halftone_channels::{Sha256, Version};
use sha2::Digest;

use crate::archive::{self, Format, UnpackError, UnpackLimits};
use crate::journal::{Build, Journal, Phase};
use crate::state::StateDir;
use crate::{StateError, UnsafeEntry, VerifiedFile};

/// The SDK's own directory inside the app's directory (staged and previous executables).
const OWN_DIR: &str = ".halftone";
/// The version directories of [`Layout::Directory`].
const VERSIONS: &str = "versions";
/// The link to the live version directory.
const CURRENT: &str = "current";

/// The default [`Installation::confirm_within`]: ten minutes.
const DEFAULT_CONFIRM_WITHIN: Duration = Duration::from_secs(600);

/// How the app is laid out in its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// One executable, `<dir>/<name>`, replaced whole by a rename. The artifact is the
    /// executable itself.
    Executable {
        /// The executable's file name.
        name: String,
    },
    /// Versioned directories and a `current` link; the artifact is a tar.gz or zip archive of
    /// one version directory.
    Directory {
        /// The program to start, relative to a version directory (`bin/notes`).
        program: PathBuf,
    },
}

/// A step of an install, a launch or a confirmation, announced to
/// [`Installation::on_step`] just after it happened (for logs, and for tests that stop the
/// process at each step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstallStep {
    /// The new build is complete beside the live one; nothing is switched.
    Staged,
    /// The journal says `switching`; the switch comes next.
    Switching,
    /// The switch happened; the journal still says `switching`.
    Switched,
    /// The journal says `trial`: the install is done, the app may restart.
    Installed,
    /// A launch recorded the new build's first start.
    TrialStarted,
    /// A launch is about to switch back to the previous build.
    Reverting,
    /// A launch switched back and recorded the revert.
    Reverted,
    /// The new build confirmed; the journal is gone, the previous build not yet deleted.
    Confirmed,
}

type StepHook = Arc<dyn Fn(InstallStep) + Send + Sync>;

/// The app's directory, how it is laid out, and the install settings. Cheap to clone.
///
/// ```no_run
/// use halftone_client::{Installation, LaunchOutcome};
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let installation = Installation::directory("/opt/notes", "bin/notes", "/var/lib/notes/updates")?;
/// // At every start, before loading anything of the build:
/// let launch = installation.launch()?;
/// if let LaunchOutcome::Reverted { failed, .. } = launch.outcome() {
///     eprintln!("{failed} did not start well; back to the previous build");
/// }
/// let status = std::process::Command::new(launch.program()).status()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Installation {
    dir: PathBuf,
    layout: Layout,
    state_dir: PathBuf,
    confirm_within: Duration,
    limits: UnpackLimits,
    on_step: Option<StepHook>,
}

/// What [`Installation::launch`] decided: the program to start, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    program: PathBuf,
    outcome: LaunchOutcome,
}

impl Launch {
    /// The program to start: `<dir>/<name>`, or the program inside the live version
    /// directory (the resolved directory, not `current`, so a later switch does not change
    /// what this start sees).
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Why this program.
    pub fn outcome(&self) -> &LaunchOutcome {
        &self.outcome
    }
}

/// What a launch found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LaunchOutcome {
    /// No install pending: the live build starts as before.
    Settled,
    /// A new build starts for the first time, on trial: it must call
    /// [`Client::confirm`](crate::Client::confirm) within `confirm_within`, or the next launch
    /// reverts it.
    Trial {
        /// The new build's version.
        version: Version,
        /// Its limit, from now.
        confirm_within: Duration,
    },
    /// The new build did not confirm; the previous one is live again and starts. In the
    /// [`Layout::Executable`] form, a process that is itself the reverted build must now
    /// start [`Launch::program`] (the previous build) in its place.
    Reverted {
        /// The reverted version, refused on this device from now on.
        failed: Version,
        /// Why.
        reason: String,
    },
    /// An install interrupted before its switch was discarded; the old build starts, and the
    /// new one may be installed again.
    Abandoned {
        /// The version whose install was discarded.
        version: Version,
    },
}

/// An install that switched: restart into [`Installed::program`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    version: Version,
    program: PathBuf,
}

impl Installed {
    /// The installed version.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// The new build's program (what [`Installation::launch`] will start next).
    pub fn program(&self) -> &Path {
        &self.program
    }
}

/// What [`Client::confirm`](crate::Client::confirm) did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Confirmation {
    /// The running build was on trial and is now confirmed; the previous build is deleted.
    Confirmed(Version),
    /// No trial of the running version was pending (already confirmed, or installed another
    /// way): nothing changed.
    NothingPending,
}

/// Why an install, launch or confirmation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The app's directory has no live build (`<dir>/<name>` or `<dir>/current` is missing):
    /// the first install is the platform installer's job.
    #[error("no installed build at {path}", path = path.display())]
    NotInstalled {
        /// What is missing.
        path: PathBuf,
    },
    /// An install is already in progress or on trial (confirm or launch first).
    #[error("another install of {version} is in progress or on trial")]
    Busy {
        /// The version of that install.
        version: Version,
    },
    /// The archive is neither tar.gz nor zip.
    #[error("the build is not a tar.gz or zip archive")]
    UnknownFormat,
    /// An archive entry would land outside the version directory, or is not a plain file,
    /// directory or inside link: the whole archive is refused and nothing is switched.
    #[error("archive entry {entry:?} refused: {reason}")]
    UnsafeEntry {
        /// The entry's name, as in the archive (cut to 200 characters).
        entry: String,
        /// Why.
        reason: UnsafeEntry,
    },
    /// The archive unpacks to more than allowed ([`Installation::max_unpacked_size`]).
    #[error("the archive unpacks to more than {limit} {what}")]
    TooLarge {
        /// The limit.
        limit: u64,
        /// Of what: bytes or entries.
        what: &'static str,
    },
    /// The archive is damaged.
    #[error("the archive is damaged: {detail}")]
    Corrupt {
        /// What the reader said.
        detail: String,
    },
    /// The file at the verified path no longer has the verified digest: something wrote
    /// there after verification. Nothing is switched.
    #[error("the verified file changed on disk (now {actual})")]
    Changed {
        /// Its digest now.
        actual: Sha256,
    },
    /// The confirmation came after the build's limit: the next launch reverts it.
    #[error("confirmed after the limit of {limit:?}: the next start reverts this build")]
    TooLate {
        /// The limit.
        limit: Duration,
    },
    /// The installation's state directory is not the client's: the journal must be the one
    /// the client reads.
    #[error("the installation's state directory is not the client's")]
    OtherStateDir,
    /// A setting was refused.
    #[error("invalid {setting}: {reason}")]
    Invalid {
        /// The constructor or method.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The state directory failed (the journal).
    #[error(transparent)]
    State(#[from] StateError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> InstallError + '_ {
    move |source| InstallError::Io { path: path.to_owned(), source }
}

impl From<UnpackError> for InstallError {
    fn from(e: UnpackError) -> Self {
        match e {
            UnpackError::Unsafe { entry, reason } => InstallError::UnsafeEntry { entry, reason },
            UnpackError::TooLarge { limit, what } => InstallError::TooLarge { limit, what },
            UnpackError::Corrupt { detail, .. } => InstallError::Corrupt { detail },
            UnpackError::Io { path, source } => InstallError::Io { path, source },
        }
    }
}

impl fmt::Debug for Installation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Installation")
            .field("dir", &self.dir)
            .field("layout", &self.layout)
            .field("state_dir", &self.state_dir)
            .field("confirm_within", &self.confirm_within)
            .finish_non_exhaustive()
    }
}

impl Installation {
    /// An app that is one executable, `<dir>/<name>`. `state_dir` is the client's
    /// [`state_dir`](crate::ClientBuilder::state_dir), where the install journal lives.
    pub fn executable(
        dir: impl Into<PathBuf>,
        name: &str,
        state_dir: impl Into<PathBuf>,
    ) -> Result<Self, InstallError> {
        let plain = Path::new(name).components().collect::<Vec<_>>();
        if !matches!(plain[..], [Component::Normal(_)]) || name.starts_with('.') {
            return Err(InstallError::Invalid {
                setting: "Installation::executable",
                reason: format!("{name:?} is not a plain file name"),
            });
        }
        Ok(Self::new(dir.into(), Layout::Executable { name: name.to_owned() }, state_dir.into()))
    }

    /// An app laid out as versioned directories under `<dir>/versions/` with `<dir>/current`
    /// linking to the live one; `program` is the program inside a version directory. Unix
    /// only (the switch is a link renamed over `current`).
    pub fn directory(
        dir: impl Into<PathBuf>,
        program: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
    ) -> Result<Self, InstallError> {
        let program = program.into();
        let plain = program.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain || program.as_os_str().is_empty() {
            return Err(InstallError::Invalid {
                setting: "Installation::directory",
                reason: format!("{} is not a relative path of plain names", program.display()),
            });
        }
        if !cfg!(unix) {
            return Err(InstallError::Invalid {
                setting: "Installation::directory",
                reason: "the directory layout switches a symbolic link: Unix only".into(),
            });
        }
        Ok(Self::new(dir.into(), Layout::Directory { program }, state_dir.into()))
    }

    fn new(dir: PathBuf, layout: Layout, state_dir: PathBuf) -> Self {
        Installation {
            dir,
            layout,
            state_dir,
            confirm_within: DEFAULT_CONFIRM_WITHIN,
            limits: UnpackLimits { max_bytes: 16 << 30, max_entries: 1_000_000 },
            on_step: None,
        }
    }

    /// How long a new build has, from its first start, to confirm (default ten minutes).
    #[must_use]
    pub fn confirm_within(mut self, limit: Duration) -> Self {
        self.confirm_within = limit;
        self
    }

    /// The most an archive may unpack to, in bytes (default 16 GiB).
    #[must_use]
    pub fn max_unpacked_size(mut self, bytes: u64) -> Self {
        self.limits.max_bytes = bytes;
        self
    }

    /// Calls `hook` after each step (on the thread doing the work; keep it quick).
    #[must_use]
    pub fn on_step(mut self, hook: impl Fn(InstallStep) + Send + Sync + 'static) -> Self {
        self.on_step = Some(Arc::new(hook));
        self
    }

    /// The app's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    fn step(&self, step: InstallStep) {
        if let Some(hook) = &self.on_step {
            hook(step);
        }
    }

    fn state(&self) -> Result<StateDir, InstallError> {
        Ok(StateDir::open(&self.state_dir)?)
    }

    // ---------- launching ----------

    /// Decides what starts, finishing or undoing what an interrupted install left: call it
    /// at every start, before anything of the build is loaded. Blocking (file operations);
    /// needs no network and no client.
    pub fn launch(&self) -> Result<Launch, InstallError> {
        let state = self.state()?;
        let journal = state.journal()?;
        self.clean(journal.as_ref())?;
        let Some(mut journal) = journal else { return self.settled() };
        match journal.phase {
            Phase::Reverted { .. } => self.settled(),
            Phase::Switching if !self.switched(&journal)? => {
                self.remove_staged(&journal)?;
                state.clear_journal()?;
                Ok(Launch {
                    program: self.live_program()?,
                    outcome: LaunchOutcome::Abandoned { version: journal.build.version },
                })
            }
            Phase::Switching | Phase::Trial { started_at: None, expired: false } => {
                journal.phase = Phase::Trial { started_at: Some(unix_now()), expired: false };
                state.set_journal(&journal)?;
                self.step(InstallStep::TrialStarted);
                let confirm_within = Duration::from_secs(journal.confirm_within_s);
                Ok(Launch {
                    program: self.live_program()?,
                    outcome: LaunchOutcome::Trial { version: journal.build.version, confirm_within },
                })
            }
            Phase::Trial { expired, .. } => {
                let reason = if expired {
                    format!("confirmed after its limit of {} s", journal.confirm_within_s)
                } else {
                    "did not confirm before the next start (crashed, hung or exited)".to_owned()
                };
                self.revert(&state, journal, reason)
            }
        }
    }

    fn settled(&self) -> Result<Launch, InstallError> {
        Ok(Launch { program: self.live_program()?, outcome: LaunchOutcome::Settled })
    }

    /// Switches back to the previous build and records it; repeatable after a crash.
    fn revert(&self, state: &StateDir, mut journal: Journal, reason: String) -> Result<Launch, InstallError> {
        self.step(InstallStep::Reverting);
        match &self.layout {
            Layout::Executable { name } => {
                let previous = self.dir.join(&journal.previous);
                let live = self.dir.join(name);
                match fs::rename(&previous, &live) {
                    Ok(()) => sync_dir(&self.dir)?,
                    // Renamed back by a launch that crashed before recording it.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(InstallError::Io { path: live, source }),
                }
            }
            Layout::Directory { .. } => self.point_current(&journal.previous)?,
        }
        journal.phase = Phase::Reverted { reason: reason.clone(), reported: false };
        state.set_journal(&journal)?;
        self.step(InstallStep::Reverted);
        if let Layout::Directory { .. } = self.layout {
            remove_dir_all(&self.dir.join(&journal.staged))?;
        }
        Ok(Launch {
            program: self.live_program()?,
            outcome: LaunchOutcome::Reverted { failed: journal.build.version, reason },
        })
    }

    /// Whether the switch of `journal` happened: the staged executable was renamed away, or
    /// `current` links to the staged directory.
    fn switched(&self, journal: &Journal) -> Result<bool, InstallError> {
        match &self.layout {
            Layout::Executable { .. } => {
                let staged = self.dir.join(&journal.staged);
                match fs::symlink_metadata(&staged) {
                    Ok(_) => Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
                    Err(source) => Err(InstallError::Io { path: staged, source }),
                }
            }
            Layout::Directory { .. } => Ok(self.current_target()? == journal.staged),
        }
    }

    /// Deletes what no record refers to: staged files and partial directories of installs
    /// that never reached their journal, previous builds already confirmed away.
    fn clean(&self, journal: Option<&Journal>) -> Result<(), InstallError> {
        let pending = journal.filter(|j| !matches!(j.phase, Phase::Reverted { .. }));
        let keep: Vec<PathBuf> =
            pending.iter().flat_map(|j| [self.dir.join(&j.staged), self.dir.join(&j.previous)]).collect();
        let own = self.dir.join(OWN_DIR);
        remove_unless(&own, &keep, |_| true)?;
        if let Layout::Directory { .. } = self.layout {
            let live = self.dir.join(self.current_target()?);
            let versions = self.dir.join(VERSIONS);
            remove_unless(&versions, &keep, |p| *p != live)?;
        }
        Ok(())
    }

    fn remove_staged(&self, journal: &Journal) -> Result<(), InstallError> {
        let staged = self.dir.join(&journal.staged);
        match &self.layout {
            Layout::Executable { .. } => remove_file(&staged),
            Layout::Directory { .. } => remove_dir_all(&staged),
        }
    }

    /// The program of the live build.
    fn live_program(&self) -> Result<PathBuf, InstallError> {
        let path = match &self.layout {
            Layout::Executable { name } => self.dir.join(name),
            Layout::Directory { program } => self.dir.join(self.current_target()?).join(program),
        };
        if fs::symlink_metadata(&path).is_err() {
            return Err(InstallError::NotInstalled { path });
        }
        Ok(path)
    }

    /// Where `current` links to, as written (relative to the app's directory).
    fn current_target(&self) -> Result<String, InstallError> {
        let current = self.dir.join(CURRENT);
        match fs::read_link(&current) {
            Ok(target) => target.into_os_string().into_string().map_err(|_| InstallError::Invalid {
                setting: "current",
                reason: "the link's target is not UTF-8".into(),
            }),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::InvalidInput) => {
                Err(InstallError::NotInstalled { path: current })
            }
            Err(source) => Err(InstallError::Io { path: current, source }),
        }
    }

    /// Replaces `current` by a link to `target`, atomically.
    fn point_current(&self, target: &str) -> Result<(), InstallError> {
        let tmp = self.dir.join(format!(".{CURRENT}.{:016x}.tmp", rand::random::<u64>()));
        make_link(target, &tmp).map_err(io_err(&tmp))?;
        let current = self.dir.join(CURRENT);
        if let Err(source) = fs::rename(&tmp, &current) {
            let _ = fs::remove_file(&tmp);
            return Err(InstallError::Io { path: current, source });
        }
        sync_dir(&self.dir)
    }

    // ---------- installing ----------

    /// Stages `file`, switches to it and records the trial. The client checks the version
    /// and raises the watermark first.
    pub(crate) fn install(&self, file: &VerifiedFile) -> Result<Installed, InstallError> {
        let state = self.state()?;
        let journal = state.journal()?;
        if let Some(j) = &journal
            && !matches!(j.phase, Phase::Reverted { .. })
        {
            return Err(InstallError::Busy { version: j.build.version.clone() });
        }
        self.clean(journal.as_ref())?;
        // The live build must exist: it is what a revert returns to.
        self.live_program()?;
        let build = Build { version: file.version().clone(), sha256: *file.sha256() };
        let short = &file.sha256().to_string()[..12];
        let (staged, previous) = match &self.layout {
            Layout::Executable { name } => {
                let staged = format!("{OWN_DIR}/staged-{short}");
                self.stage_executable(file, &staged)?;
                self.step(InstallStep::Staged);
                let previous = format!("{OWN_DIR}/previous-{name}");
                self.keep_previous(name, &previous)?;
                (staged, previous)
            }
            Layout::Directory { .. } => {
                let staged = format!("{VERSIONS}/{}-{short}", file.version());
                self.stage_directory(file, &staged)?;
                self.step(InstallStep::Staged);
                (staged, self.current_target()?)
            }
        };
        let mut journal = Journal {
            build,
            staged: staged.clone(),
            previous,
            confirm_within_s: self.confirm_within.as_secs(),
            phase: Phase::Switching,
        };
        state.set_journal(&journal)?;
        self.step(InstallStep::Switching);
        match &self.layout {
            Layout::Executable { name } => {
                let live = self.dir.join(name);
                fs::rename(self.dir.join(&staged), &live).map_err(io_err(&live))?;
                sync_dir(&self.dir)?;
            }
            Layout::Directory { .. } => self.point_current(&staged)?,
        }
        self.step(InstallStep::Switched);
        journal.phase = Phase::Trial { started_at: None, expired: false };
        state.set_journal(&journal)?;
        self.step(InstallStep::Installed);
        Ok(Installed { version: file.version().clone(), program: self.live_program()? })
    }

    /// Copies the verified file to `staged`, hashing it on the way.
    fn stage_executable(&self, file: &VerifiedFile, staged: &str) -> Result<(), InstallError> {
        let own = self.dir.join(OWN_DIR);
        fs::create_dir_all(&own).map_err(io_err(&own))?;
        let path = self.dir.join(staged);
        remove_file(&path)?;
        let mut source = File::open(file.path()).map_err(io_err(file.path()))?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o755);
        }
        let copied = options.open(&path).and_then(|mut out| {
            let digest = crate::verify::copy_hashing(&mut source, &mut out)?;
            out.sync_all()?;
            Ok(digest)
        });
        let result = match copied {
            Ok(actual) if actual == *file.sha256() => return sync_dir(&own),
            Ok(actual) => Err(InstallError::Changed { actual }),
            Err(source) => Err(InstallError::Io { path: path.clone(), source }),
        };
        let _ = fs::remove_file(&path);
        result
    }

    /// Keeps the live executable as `previous` (a hard link, or a copy where there are none).
    fn keep_previous(&self, name: &str, previous: &str) -> Result<(), InstallError> {
        let live = self.dir.join(name);
        let previous = self.dir.join(previous);
        remove_file(&previous)?;
        if fs::hard_link(&live, &previous).is_err() {
            let tmp = previous.with_extension("tmp");
            fs::copy(&live, &tmp).and_then(|_| File::open(&tmp)?.sync_all()).map_err(io_err(&tmp))?;
            fs::rename(&tmp, &previous).map_err(io_err(&previous))?;
        }
        sync_dir(&self.dir.join(OWN_DIR))
    }

    /// Unpacks the verified archive into a partial directory (after checking its digest
    /// through the same open file), then renames it to `staged`.
    fn stage_directory(&self, file: &VerifiedFile, staged: &str) -> Result<(), InstallError> {
        let versions = self.dir.join(VERSIONS);
        fs::create_dir_all(&versions).map_err(io_err(&versions))?;
        let mut source = File::open(file.path()).map_err(io_err(file.path()))?;
        let actual = digest(&mut source).map_err(io_err(file.path()))?;
        if actual != *file.sha256() {
            return Err(InstallError::Changed { actual });
        }
        let head = archive::head(&mut source).map_err(io_err(file.path()))?;
        let format = Format::sniff(&head).ok_or(InstallError::UnknownFormat)?;
        let partial = versions.join(format!(".partial-{:016x}", rand::random::<u64>()));
        fs::create_dir(&partial).map_err(io_err(&partial))?;
        let unpacked = archive::unpack(source, format, &partial, self.limits).map_err(InstallError::from);
        let target = self.dir.join(staged);
        let renamed = unpacked.and_then(|()| {
            remove_dir_all(&target)?;
            fs::rename(&partial, &target).map_err(io_err(&target))?;
            sync_dir(&versions)
        });
        if renamed.is_err() {
            let _ = fs::remove_dir_all(&partial);
        }
        renamed
    }

    // ---------- confirming ----------

    /// Confirms the trial of `running`, if there is one: deletes the journal and the
    /// previous build.
    pub(crate) fn confirm(&self, running: &Version) -> Result<Confirmation, InstallError> {
        let state = self.state()?;
        let Some(mut journal) = state.journal()? else { return Ok(Confirmation::NothingPending) };
        let Phase::Trial { started_at, expired } = journal.phase else { return Ok(Confirmation::NothingPending) };
        if journal.build.version != *running {
            return Ok(Confirmation::NothingPending);
        }
        let elapsed = started_at.map_or(0, |t| unix_now().saturating_sub(t));
        if expired || elapsed > journal.confirm_within_s {
            journal.phase = Phase::Trial { started_at, expired: true };
            state.set_journal(&journal)?;
            return Err(InstallError::TooLate { limit: Duration::from_secs(journal.confirm_within_s) });
        }
        state.clear_journal()?;
        self.step(InstallStep::Confirmed);
        self.clean(None)?;
        Ok(Confirmation::Confirmed(journal.build.version))
    }
}

/// An installer the platform runs (`.msi`, `.exe` setup, `.pkg`, `.dmg`, `.deb`, `.AppImage`):
/// the SDK verified it; the platform installs it and owns its rollback. Start
/// [`command`](Self::command) (or open [`path`](Self::path) the app's own way), then, when the
/// platform reports success, call [`Client::installed`](crate::Client::installed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformInstaller {
    path: PathBuf,
    version: Version,
}

impl PlatformInstaller {
    /// Hands over a verified file.
    pub fn new(file: &VerifiedFile) -> Self {
        PlatformInstaller { path: file.path().to_owned(), version: file.version().clone() }
    }

    /// The installer's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The version it installs.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// The usual way to start it on this platform, program first: `msiexec /i` for an
    /// `.msi`, the file itself for a Windows `.exe`, `open` on macOS, `xdg-open` elsewhere.
    pub fn command(&self) -> Vec<OsString> {
        let ext = self.path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let path = self.path.clone().into_os_string();
        match (std::env::consts::OS, ext.as_deref()) {
            ("windows", Some("msi")) => vec!["msiexec".into(), "/i".into(), path],
            ("windows", _) => vec![path],
            ("macos", _) => vec!["open".into(), path],
            _ => vec!["xdg-open".into(), path],
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn digest(file: &mut File) -> io::Result<Sha256> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    file.rewind()?;
    Ok(Sha256::from_bytes(hasher.finalize().into()))
}

/// Deletes the entries of `dir` (if it exists) that are not in `keep` and pass `also`.
fn remove_unless(dir: &Path, keep: &[PathBuf], also: impl Fn(&PathBuf) -> bool) -> Result<(), InstallError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(InstallError::Io { path: dir.to_owned(), source }),
    };
    for entry in entries {
        let path = entry.map_err(io_err(dir))?.path();
        if keep.contains(&path) || !also(&path) {
            continue;
        }
        if fs::symlink_metadata(&path).map_err(io_err(&path))?.is_dir() {
            remove_dir_all(&path)?;
        } else {
            remove_file(&path)?;
        }
    }
    Ok(())
}

fn remove_file(path: &Path) -> Result<(), InstallError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(InstallError::Io { path: path.to_owned(), source: e }),
        _ => Ok(()),
    }
}

fn remove_dir_all(path: &Path) -> Result<(), InstallError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(InstallError::Io { path: path.to_owned(), source: e }),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), InstallError> {
    if cfg!(unix) { File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir)) } else { Ok(()) }
}

#[cfg(unix)]
fn make_link(target: &str, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

#[cfg(not(unix))]
fn make_link(_target: &str, _path: &Path) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "the directory layout is Unix only"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tests::{E, tar_gz};

    /// An app directory with build 1.0.0 live, in either layout, and a state directory.
    struct Fixture {
        tmp: tempfile::TempDir,
        installation: Installation,
    }

    impl Fixture {
        fn directory() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let app = tmp.path().join("app");
            fs::create_dir_all(app.join("versions/1.0.0/bin")).unwrap();
            fs::write(app.join("versions/1.0.0/bin/notes"), "1.0.0").unwrap();
            make_link("versions/1.0.0", &app.join("current")).unwrap();
            let installation = Installation::directory(&app, "bin/notes", tmp.path().join("state")).unwrap();
            Fixture { tmp, installation }
        }

        fn executable() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let app = tmp.path().join("app");
            fs::create_dir_all(&app).unwrap();
            fs::write(app.join("notes"), "1.0.0").unwrap();
            let installation = Installation::executable(&app, "notes", tmp.path().join("state")).unwrap();
            Fixture { tmp, installation }
        }

        /// A verified build of `version`: an archive or the executable's bytes.
        fn build(&self, version: &str) -> VerifiedFile {
            let path = self.tmp.path().join(format!("download-{version}"));
            let bytes = match self.installation.layout {
                Layout::Directory { .. } => tar_gz(&[E::File("bin/notes", version.as_bytes(), 0o755)]),
                Layout::Executable { .. } => version.as_bytes().to_vec(),
            };
            fs::write(&path, bytes).unwrap();
            VerifiedFile::for_tests(&path, version)
        }

        /// What the live program holds.
        fn live(&self) -> String {
            fs::read_to_string(self.installation.launch_program_for_tests()).unwrap()
        }

        fn journal(&self) -> Option<Journal> {
            StateDir::open(&self.installation.state_dir).unwrap().journal().unwrap()
        }

        /// Names in the app directory's `versions/` and `.halftone/`.
        fn leftovers(&self) -> Vec<String> {
            let mut names = Vec::new();
            for sub in [VERSIONS, OWN_DIR] {
                if let Ok(entries) = fs::read_dir(self.installation.dir.join(sub)) {
                    names.extend(entries.map(|e| format!("{sub}/{}", e.unwrap().file_name().to_string_lossy())));
                }
            }
            names.sort();
            names
        }
    }

    impl Installation {
        fn launch_program_for_tests(&self) -> PathBuf {
            self.live_program().unwrap()
        }
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn an_install_that_confirms_replaces_the_build_and_deletes_the_previous_one() {
        for fixture in [Fixture::directory(), Fixture::executable()] {
            let inst = &fixture.installation;
            assert_eq!(inst.launch().unwrap().outcome, LaunchOutcome::Settled);
            let installed = inst.install(&fixture.build("2.0.0")).unwrap();
            assert_eq!(fs::read_to_string(installed.program()).unwrap(), "2.0.0");
            let launch = inst.launch().unwrap();
            assert_eq!(
                launch.outcome,
                LaunchOutcome::Trial { version: v("2.0.0"), confirm_within: DEFAULT_CONFIRM_WITHIN }
            );
            assert_eq!(fs::read_to_string(launch.program()).unwrap(), "2.0.0");
            assert_eq!(inst.confirm(&v("1.0.0")).unwrap(), Confirmation::NothingPending, "not the running trial");
            assert_eq!(inst.confirm(&v("2.0.0")).unwrap(), Confirmation::Confirmed(v("2.0.0")));
            assert_eq!(fixture.journal(), None);
            assert_eq!(inst.launch().unwrap().outcome, LaunchOutcome::Settled);
            assert_eq!(fixture.live(), "2.0.0");
            let expected: &[&str] = match inst.layout {
                Layout::Directory { .. } => &["versions/2.0.0-"],
                Layout::Executable { .. } => &[],
            };
            let left = fixture.leftovers();
            assert_eq!(left.len(), expected.len(), "{left:?}");
            assert!(left.iter().zip(expected).all(|(l, e)| l.starts_with(e)), "{left:?}");
        }
    }

    #[test]
    fn a_build_that_starts_twice_without_confirming_is_reverted_once() {
        for fixture in [Fixture::directory(), Fixture::executable()] {
            let inst = &fixture.installation;
            inst.install(&fixture.build("2.0.0")).unwrap();
            assert!(matches!(inst.launch().unwrap().outcome, LaunchOutcome::Trial { .. }));
            // The trial crashed: the next start reverts.
            let launch = inst.launch().unwrap();
            let LaunchOutcome::Reverted { failed, reason } = launch.outcome() else { panic!("{launch:?}") };
            assert_eq!(failed, &v("2.0.0"));
            assert!(reason.contains("did not confirm"), "{reason}");
            assert_eq!(fs::read_to_string(launch.program()).unwrap(), "1.0.0");
            assert_eq!(fixture.journal().unwrap().reverted(), Some(&v("2.0.0")));
            // And only once: later starts run the old build as settled.
            assert_eq!(inst.launch().unwrap().outcome, LaunchOutcome::Settled);
            assert_eq!(fixture.live(), "1.0.0");
            assert!(fixture.leftovers().iter().all(|l| l == "versions/1.0.0"), "{:?}", fixture.leftovers());
            // A newer build installs over the reverted record.
            inst.install(&fixture.build("2.0.1")).unwrap();
            assert_eq!(fixture.live(), "2.0.1");
        }
    }

    #[test]
    fn a_late_confirmation_is_refused_and_the_next_start_reverts() {
        let fixture = Fixture::executable();
        let inst = &fixture.installation;
        inst.install(&fixture.build("2.0.0")).unwrap();
        inst.launch().unwrap();
        let state = StateDir::open(&inst.state_dir).unwrap();
        let mut journal = state.journal().unwrap().unwrap();
        journal.phase = Phase::Trial { started_at: Some(unix_now() - 601), expired: false };
        state.set_journal(&journal).unwrap();
        assert!(matches!(inst.confirm(&v("2.0.0")), Err(InstallError::TooLate { .. })));
        let LaunchOutcome::Reverted { reason, .. } = inst.launch().unwrap().outcome else { panic!() };
        assert!(reason.contains("after its limit"), "{reason}");
        assert_eq!(fixture.live(), "1.0.0");
    }

    #[test]
    fn nothing_is_switched_when_the_build_is_refused() {
        let fixture = Fixture::directory();
        let inst = &fixture.installation;
        // Bytes changed after verification.
        let file = fixture.build("2.0.0");
        fs::write(file.path(), tar_gz(&[E::File("bin/notes", b"evil", 0o755)])).unwrap();
        assert!(matches!(inst.install(&file), Err(InstallError::Changed { .. })));
        // A hostile archive, verified (signed by a careless release engineer).
        let path = fixture.tmp.path().join("hostile");
        fs::write(&path, tar_gz(&[E::File("bin/notes", b"2.0.0", 0o755), E::File("../../evil", b"x", 0o644)])).unwrap();
        let err = inst.install(&VerifiedFile::for_tests(&path, "2.0.0")).unwrap_err();
        assert!(matches!(err, InstallError::UnsafeEntry { reason: UnsafeEntry::ParentDir, .. }), "{err:?}");
        assert!(!fixture.tmp.path().join("evil").exists());
        // Not an archive.
        fs::write(&path, b"\x7fELF...").unwrap();
        assert!(matches!(inst.install(&VerifiedFile::for_tests(&path, "2.0.0")), Err(InstallError::UnknownFormat)));
        assert_eq!(fixture.live(), "1.0.0");
        assert_eq!(fixture.journal(), None);
        assert_eq!(fixture.leftovers(), ["versions/1.0.0"]);
    }

    #[test]
    fn one_install_at_a_time_and_an_unswitched_one_is_abandoned() {
        let fixture = Fixture::executable();
        let inst = &fixture.installation;
        inst.install(&fixture.build("2.0.0")).unwrap();
        assert!(matches!(inst.install(&fixture.build("2.0.1")), Err(InstallError::Busy { .. })));
        // A journal that says switching while the staged file is still there: the rename
        // never happened.
        let fixture = Fixture::executable();
        let inst = &fixture.installation;
        let file = fixture.build("2.0.0");
        inst.stage_executable(&file, ".halftone/staged-x").unwrap();
        let journal = Journal {
            build: Build { version: v("2.0.0"), sha256: *file.sha256() },
            staged: ".halftone/staged-x".into(),
            previous: ".halftone/previous-notes".into(),
            confirm_within_s: 600,
            phase: Phase::Switching,
        };
        StateDir::open(&inst.state_dir).unwrap().set_journal(&journal).unwrap();
        assert_eq!(inst.launch().unwrap().outcome, LaunchOutcome::Abandoned { version: v("2.0.0") });
        assert_eq!(fixture.live(), "1.0.0");
        assert_eq!((fixture.journal(), fixture.leftovers()), (None, vec![]));
    }

    #[test]
    fn a_platform_installer_is_handed_over_with_the_usual_command() {
        let fixture = Fixture::executable();
        let file = fixture.build("2.0.0");
        let handed = PlatformInstaller::new(&file);
        assert_eq!((handed.path(), handed.version()), (file.path(), &v("2.0.0")));
        let command = handed.command();
        assert_eq!(command.last().map(PathBuf::from).as_deref(), Some(file.path()));
        if cfg!(target_os = "linux") {
            assert_eq!(command[0], "xdg-open");
        }
        // Handing over writes nothing into the app's directory.
        assert_eq!(fixture.leftovers(), Vec::<String>::new());
        assert_eq!(fixture.live(), "1.0.0");
    }

    #[test]
    fn settings_are_checked() {
        for bad in ["", "../notes", "bin/notes", ".hidden"] {
            assert!(Installation::executable("/opt/a", bad, "/s").is_err(), "{bad:?}");
        }
        for bad in ["", "/bin/notes", "../notes", "bin/../notes"] {
            assert!(Installation::directory("/opt/a", bad, "/s").is_err(), "{bad:?}");
        }
        let missing = Installation::directory("/nonexistent/app", "bin/notes", std::env::temp_dir().join("x")).unwrap();
        assert!(matches!(missing.live_program(), Err(InstallError::NotInstalled { .. })));
    }
}
