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
