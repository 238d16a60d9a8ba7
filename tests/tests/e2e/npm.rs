//! npm packages for the tests that run an ecosystem's own client code under Node
//! (electron-updater, CodePush): installed once per target dir into the test target's
//! temporary dir. Where npm or Node cannot be had the tests print SKIPPED and pass, unless
//! `HALFTONE_TEST_NPM=required` (as `.ci/run` sets).

use std::path::PathBuf;
use std::sync::Mutex;

/// The `node_modules` holding `package` (`name@version`), installed once per target dir;
/// `None` (after a SKIPPED line naming `test`) when npm is not there or fails, unless npm is
/// required.
pub fn node_modules(package: &str, test: &str) -> Option<PathBuf> {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let name = package.rsplit_once('@').map_or(package, |(name, _)| name);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("npm").join(package.replace('@', "-"));
    let modules = dir.join("node_modules");
    if modules.join(name).join("package.json").exists() {
        return Some(modules);
    }
    std::fs::create_dir_all(&dir).unwrap();
    let installed = std::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix"])
        .arg(&dir)
        .arg(package)
        .output();
    let why = match installed {
        Ok(o) if o.status.success() => return Some(modules),
        Ok(o) => format!("npm install {package} failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => format!("npm could not run: {e}"),
    };
    if std::env::var("HALFTONE_TEST_NPM").as_deref() == Ok("required") {
        panic!("HALFTONE_TEST_NPM=required: {why}");
    }
    // Written to stderr itself, past libtest's capture, so a plain `cargo test` shows it.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{test}: SKIPPED (npm unavailable: {why})");
    None
}

/// Runs `tests/node/{script}` under Node with `modules` on its path and `input` (JSON) as its
/// argument; returns the JSON array it prints (one value per device).
pub async fn run_script(script: &str, modules: &std::path::Path, input: serde_json::Value) -> Vec<serde_json::Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node").join(script);
    let modules = modules.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node").arg(script).arg(input.to_string()).env("NODE_PATH", modules).output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}
