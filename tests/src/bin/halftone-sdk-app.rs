//! A tiny app for the install crash tests (`tests/e2e/install.rs`): one start of an app that
//! embeds the SDK, acting as its own launcher. It launches (finishing or reverting what a
//! crash left), "runs" the live build (reads its program file: the build's version), confirms
//! a trial, checks, downloads, installs, and exits for the test to start it again.
//!
//! ```text
//! halftone-sdk-app SERVER APP KEY_ID KEY_HEX APP_DIR STATE_DIR (dir|exe)
//! ```
//!
//! With `HALFTONE_CRASH_AT=<point>` it prints `CRASH-POINT <point>` when it reaches that
//! point and waits there for the test's SIGKILL. Points: `mid-download`, `after-verify`,
//! `before-confirm`, and every `InstallStep` by its name (`Staged`, `Switching`, `Switched`,
//! `Installed`, `TrialStarted`, `Reverting`, `Reverted`, `Confirmed`).
//! Each start prints `RAN <version> <launch outcome>` and one of `INSTALLED <version>`,
//! `UP-TO-DATE`, `REFUSED <reason>`, `ERROR <error>`, then `EVENTS` with the reporter's counts.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use halftone_client::{CheckOutcome, Client, Error, Installation, LaunchOutcome};

/// Waits for the test's SIGKILL at `point` if the environment names it.
fn stop_if(crash_at: &Option<String>, point: &str) {
    if crash_at.as_deref() == Some(point) {
        println!("CRASH-POINT {point}");
        std::io::stdout().flush().expect("stdout");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, app, key_id, key_hex, app_dir, state_dir, layout] = &args[..] else {
        bail!("usage: halftone-sdk-app SERVER APP KEY_ID KEY_HEX APP_DIR STATE_DIR (dir|exe)");
    };
    let crash_at = Arc::new(std::env::var("HALFTONE_CRASH_AT").ok());
    let (app_dir, state_dir) = (PathBuf::from(app_dir), PathBuf::from(state_dir));
    let installation = match layout.as_str() {
        "dir" => Installation::directory(&app_dir, "bin/notes", &state_dir)?,
        "exe" => Installation::executable(&app_dir, "notes", &state_dir)?,
        other => bail!("unknown layout {other}"),
    };
    let hook_crash = crash_at.clone();
    let installation = installation.on_step(move |step| stop_if(&hook_crash, &format!("{step:?}")));

    // The launcher's part: what runs is decided before anything of the build is read.
    let launch = installation.launch()?;
    let program = std::fs::read(launch.program()).context("reading the program")?;
    let first_line = program.split(|b| *b == b'\n').next().context("an empty program")?;
    let version = String::from_utf8(first_line.to_vec()).context("the program's version")?;
    let outcome = match launch.outcome() {
        LaunchOutcome::Settled => "settled",
        LaunchOutcome::Trial { .. } => "trial",
        LaunchOutcome::Reverted { .. } => "reverted",
        LaunchOutcome::Abandoned { .. } => "abandoned",
        _ => "other",
    };
    println!("RAN {version} {outcome}");

    // The app's part.
    let client = Client::builder()
        .server(server)
        .app(app)
        .version(&version)
        .platform("linux", "x86_64")
        .trusted_key(key_id, key_hex)
        .state_dir(&state_dir)
        .build()
        .await?;
    if matches!(launch.outcome(), LaunchOutcome::Trial { .. }) {
        stop_if(&crash_at, "before-confirm");
        client.confirm(&installation).await?;
    }
    match client.check().await {
        Ok(CheckOutcome::Available(update)) => {
            let progress_crash = crash_at.clone();
            let dest = state_dir.join("download");
            let file = client
                .download(&update, &dest, move |done, total| {
                    if done > 0 && done < total {
                        stop_if(&progress_crash, "mid-download");
                    }
                })
                .await?;
            stop_if(&crash_at, "after-verify");
            let installed = client.install(&installation, &file).await?;
            println!("INSTALLED {}", installed.version());
        }
        Ok(CheckOutcome::UpToDate) => println!("UP-TO-DATE"),
        Err(Error::Refused(refusal)) => println!("REFUSED {refusal}"),
        Err(e) => println!("ERROR {e}"),
    }
    client.flush().await?;
    let stats = client.report_stats();
    println!("EVENTS sent={} rejected={} dropped={}", stats.sent, stats.rejected, stats.dropped);
    Ok(())
}
