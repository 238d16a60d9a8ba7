//! Install, confirm, revert, through a real app process killed with SIGKILL at every step.
//!
//! `halftone-sdk-app` (tests/src/bin) is an app embedding the SDK that acts as its own
//! launcher: each start launches, "runs" the live build, confirms a trial, checks, downloads
//! and installs. Each test here kills it at one point (mid-download, after verification, at
//! every install step, before confirmation, mid-revert), then starts it again until the device
//! settles, and checks after every process that the app's directory holds one whole build, old
//! or new, never a mix: every file of the live version directory (or the one executable) is
//! byte for byte one build's. A build that never confirmed is reverted, reported as a failed
//! install in the release's figures, and refused afterwards.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use halftone_channels::{Sha256, SignedFields, Target};
use serde_json::json;

use crate::harness::*;

const APP: &str = env!("CARGO_BIN_EXE_halftone-sdk-app");

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    Dir,
    Exe,
}

/// The files of one build of the app, by path relative to its version directory (the
/// executable layout has one, `notes`).
fn build_files(layout: Layout, version: &str) -> BTreeMap<String, Vec<u8>> {
    // Incompressible bulk, so the download spans many reads.
    let bulk = |name: &str, n: usize| -> Vec<u8> {
        let mut out = format!("{version}\n").into_bytes();
        let mut block = Sha256::digest(format!("{version} {name}").as_bytes());
        while out.len() < n {
            block = Sha256::digest(block.as_bytes());
            out.extend_from_slice(block.as_bytes());
        }
        out
    };
    match layout {
        Layout::Exe => BTreeMap::from([("notes".to_owned(), bulk("notes", 600_000))]),
        Layout::Dir => BTreeMap::from([
            ("bin/notes".to_owned(), format!("{version}\n").into_bytes()),
            ("share/a".to_owned(), bulk("a", 300_000)),
            ("share/b".to_owned(), bulk("b", 300_000)),
            ("share/c".to_owned(), bulk("c", 10)),
        ]),
    }
}

/// The artifact of a build: the executable, or a tar.gz of the version directory.
fn artifact(layout: Layout, version: &str) -> Vec<u8> {
    let files = build_files(layout, version);
    if layout == Layout::Exe {
        return files["notes"].clone();
    }
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, bytes) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(if path == "bin/notes" { 0o755 } else { 0o644 });
        tar.append_data(&mut header, path, &bytes[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Every file under `dir`, relative, with its bytes.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

struct Scene {
    server: TestServer,
    publisher: Publisher,
    layout: Layout,
    _tmp: tempfile::TempDir,
    app_dir: PathBuf,
    state_dir: PathBuf,
}

impl Scene {
    /// A server with 1.1.0 published to everyone, and a device with 1.0.0 installed (as the
    /// platform installer would lay it out).
    async fn new(app: &str, layout: Layout) -> Scene {
        let server = TestServer::start();
        let publisher = Publisher::create(&server, app).await;
        publisher.publish("1.0.0", "stable", "100%").await;
        let mut draft = publisher.draft("1.1.0", &[]);
        let bytes = artifact(layout, "1.1.0");
        draft.spec.artifacts[0] = publisher.key.sign_artifact(SignedFields {
            app: &publisher.app,
            version: &draft.spec.version,
            target: &Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() },
            sha256: &Sha256::digest(&bytes),
            size: bytes.len() as u64,
        });
        draft.files = vec![bytes];
        publisher.publish_draft(&draft, "stable", json!({"basis_points": 10000})).await.unwrap();

        let tmp = tempfile::tempdir().unwrap();
        let (app_dir, state_dir) = (tmp.path().join("app"), tmp.path().join("state"));
        match layout {
            Layout::Exe => {
                std::fs::create_dir_all(&app_dir).unwrap();
                std::fs::write(app_dir.join("notes"), &build_files(layout, "1.0.0")["notes"]).unwrap();
            }
            Layout::Dir => {
                for (path, bytes) in build_files(layout, "1.0.0") {
                    let path = app_dir.join("versions/1.0.0").join(path);
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, bytes).unwrap();
                }
                std::os::unix::fs::symlink("versions/1.0.0", app_dir.join("current")).unwrap();
            }
        }
        Scene { server, publisher, layout, _tmp: tmp, app_dir, state_dir }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(APP);
        let key = self.publisher.key.public_key().to_string();
        cmd.args([&self.server.base, self.publisher.app.as_str(), self.publisher.key.id().as_str(), &key])
            .arg(&self.app_dir)
            .arg(&self.state_dir)
            .arg(if self.layout == Layout::Dir { "dir" } else { "exe" })
            .env_remove("HALFTONE_CRASH_AT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts the app, which stops at `point`, and kills it there with SIGKILL.
    async fn kill_at(&self, point: &str) -> Vec<String> {
        let mut cmd = self.command();
        cmd.env("HALFTONE_CRASH_AT", point);
        let point = point.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            let mut lines = Vec::new();
            for line in BufReader::new(child.stdout.take().unwrap()).lines() {
                let line = line.unwrap();
                let reached = line == format!("CRASH-POINT {point}");
                lines.push(line);
                if reached {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    return lines;
                }
            }
            let status = child.wait().unwrap();
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            panic!("the app never reached {point} ({status}): {lines:?}\n{stderr}");
        })
        .await
        .unwrap()
    }

    /// Starts the app and lets it finish.
    async fn run(&self) -> Vec<String> {
        let mut cmd = self.command();
        let output = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        stdout.lines().map(str::to_owned).collect()
    }

    /// The version whose build the app's directory holds, whole; panics on a mix.
    fn whole_build(&self) -> &'static str {
        let live = match self.layout {
            Layout::Exe => BTreeMap::from([("notes".to_owned(), std::fs::read(self.app_dir.join("notes")).unwrap())]),
            Layout::Dir => {
                let target = std::fs::read_link(self.app_dir.join("current")).unwrap();
                files_under(&self.app_dir.join(target))
            }
        };
        for version in ["1.0.0", "1.1.0"] {
            if live == build_files(self.layout, version) {
                return version;
            }
        }
        let names: Vec<_> = live.iter().map(|(k, v)| (k, String::from_utf8_lossy(&v[..6.min(v.len())]))).collect();
        panic!("the app's directory holds no whole build: {names:?}");
    }

    /// 1.1.0's (installs, install failures) in the server's figures.
    async fn figures(&self) -> (u64, u64) {
        let status = self.publisher.admin.status(&self.publisher.app).await.unwrap();
        let release = status.releases.iter().find(|r| r.version.to_string() == "1.1.0").unwrap();
        let sum =
            |f: fn(&halftone_channels::wire::Figures) -> u64| release.rollouts.iter().map(|r| f(&r.figures)).sum();
        (sum(|f| f.installs), sum(|f| f.install_failures))
    }
}

/// Runs the app through `steps` (`None`: a start that finishes; `Some(point)`: a start killed
/// at `point`), then three more starts, checking the directory after every process;
/// `reverted` says how it must end.
async fn crash_and_recover(app: &str, layout: Layout, steps: &[Option<&str>], reverted: bool) {
    let scene = Scene::new(app, layout).await;
    let mut outputs = Vec::new();
    for step in steps.iter().copied().chain([None, None, None]) {
        outputs.push(match step {
            Some(point) => scene.kill_at(point).await,
            None => scene.run().await,
        });
        scene.whole_build();
    }
    let last = outputs.last().unwrap();
    if reverted {
        assert_eq!(scene.whole_build(), "1.0.0", "{steps:?}: {outputs:?}");
        assert_eq!(last[0], "RAN 1.0.0 settled", "{steps:?}: {outputs:?}");
        let refusal = "REFUSED offered 1.1.0 is not newer than 1.1.0, which this device reverted";
        assert!(last[1].starts_with(refusal), "{last:?}");
        assert_eq!(scene.figures().await, (0, 1), "the revert counts once in the release's figures: {outputs:?}");
    } else {
        assert_eq!(scene.whole_build(), "1.1.0", "{steps:?}: {outputs:?}");
        assert_eq!(last[..2], ["RAN 1.1.0 settled", "UP-TO-DATE"], "{steps:?}: {outputs:?}");
        assert_eq!(scene.figures().await, (1, 0), "the confirmation counts once: {outputs:?}");
    }
    // Nothing but the live build is left: no half-unpacked directory, no previous build.
    let versions_dir: Vec<_> = match std::fs::read_dir(scene.app_dir.join("versions")) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().into_string().unwrap()).collect(),
        Err(_) => Vec::new(),
    };
    assert!(versions_dir.len() <= 1, "{steps:?}: left behind {versions_dir:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_at_any_install_step_leaves_one_whole_build_and_the_update_completes() {
    for layout in [Layout::Dir, Layout::Exe] {
        for (i, point) in
            ["mid-download", "after-verify", "Staged", "Switching", "Switched", "Installed"].iter().enumerate()
        {
            let app = format!("kill-{i}-{layout:?}").to_lowercase();
            crash_and_recover(&app, layout, &[Some(point)], false).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_killed_before_confirming_is_reverted_reported_and_refused() {
    for layout in [Layout::Dir, Layout::Exe] {
        let cases: [&[Option<&str>]; 4] = [
            // Killed as its trial was recorded, before the build ran.
            &[None, Some("TrialStarted")],
            // Killed while running, before it confirmed.
            &[None, Some("before-confirm")],
            // And the launch that reverts it killed mid-revert, and right after.
            &[None, Some("before-confirm"), Some("Reverting")],
            &[None, Some("before-confirm"), Some("Reverted")],
        ];
        for (i, steps) in cases.iter().enumerate() {
            let app = format!("revert-{i}-{layout:?}").to_lowercase();
            crash_and_recover(&app, layout, steps, true).await;
        }
    }
}
