//! The whole update cycle of an app that lets the SDK install: launch, confirm, check,
//! download, install, restart, confirm, report.
//!
//! ```text
//! cargo run -p halftone-client --example update -- \
//!     --server http://127.0.0.1:8080 --app notes --key <id>=<hex> \
//!     --app-dir ./notes --state-dir ./state [--layout dir|exe] [--platform linux/x86_64]
//! ```
//!
//! The demo's "app" is data, so the example can act as its own launcher: with `--layout dir`
//! (the default) the app's directory holds `versions/<v>/bin/notes` and a `current` link, and
//! each release is a tar.gz of one version directory; with `--layout exe` the app is one file,
//! `<app-dir>/notes`, and each release is that file. Either way the program's first line is
//! its version, which is what the example "runs". Lay out the first version by hand, as a
//! platform installer would:
//!
//! ```text
//! mkdir -p notes/versions/1.0.0/bin && echo 1.0.0 > notes/versions/1.0.0/bin/notes
//! ln -s versions/1.0.0 notes/current
//! ```
//!
//! Each start: [`Installation::launch`] decides what runs (a new build on trial, or the
//! previous one if the new one never confirmed); a build on trial confirms with
//! [`Client::confirm`]; then the example checks, downloads (resuming a partial file), installs
//! with [`Client::install`] and restarts itself into the new build (`exec` on Unix). Set
//! `HALFTONE_DEMO_CRASH=1` to make a new build "crash" before confirming: the next start
//! reverts it, reports `install_failed`, and refuses that build from then on.

use std::path::PathBuf;
use std::process::ExitCode;

use halftone_client::{CheckOutcome, Client, Delivery, Error, Installation, LaunchOutcome, Layout};

const USAGE: &str = "usage: update --server URL --app ID --key ID=HEX [--key ID=HEX ...]
              --app-dir DIR --state-dir DIR [--layout dir|exe] [--platform OS/ARCH]";

#[derive(Default, Clone)]
struct Args {
    server: Option<String>,
    app: Option<String>,
    keys: Vec<(String, String)>,
    app_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    layout: Option<String>,
    platform: Option<(String, String)>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--server" => args.server = Some(value),
            "--app" => args.app = Some(value),
            "--key" => {
                let (id, hex) = value.split_once('=').ok_or("--key takes ID=HEX")?;
                args.keys.push((id.into(), hex.into()));
            }
            "--app-dir" => args.app_dir = Some(value.into()),
            "--state-dir" => args.state_dir = Some(value.into()),
            "--layout" => args.layout = Some(value),
            "--platform" => {
                let (os, arch) = value.split_once('/').ok_or("--platform takes OS/ARCH")?;
                args.platform = Some((os.into(), arch.into()));
            }
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    Ok(Some(args))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let app_dir = args.app_dir.clone().ok_or("--app-dir is required")?;
    let state_dir = args.state_dir.clone().ok_or("--state-dir is required")?;
    let installation = match args.layout.as_deref().unwrap_or("dir") {
        "dir" => Installation::directory(&app_dir, "bin/notes", &state_dir)?,
        "exe" => Installation::executable(&app_dir, "notes", &state_dir)?,
        other => return Err(format!("unknown layout {other}").into()),
    };

    // 1. Launch: before anything of the build is loaded.
    let launch = installation.launch()?;
    match launch.outcome() {
        LaunchOutcome::Reverted { failed, reason } => println!("reverted {failed}: {reason}"),
        LaunchOutcome::Abandoned { version } => println!("an interrupted install of {version} was discarded"),
        LaunchOutcome::Trial { version, confirm_within } => {
            println!("starting {version} on trial (confirm within {confirm_within:?})")
        }
        _ => {}
    }
    let program = std::fs::read(launch.program())?;
    let first_line = program.split(|b| *b == b'\n').next().unwrap_or_default();
    let version = String::from_utf8(first_line.to_vec())?;
    println!("running {version} from {}", launch.program().display());

    let mut builder = Client::builder()
        .server(args.server.as_deref().ok_or("--server is required")?)
        .app(args.app.as_deref().ok_or("--app is required")?)
        .version(&version)
        .state_dir(&state_dir);
    for (id, hex) in &args.keys {
        builder = builder.trusted_key(id, hex);
    }
    if let Some((os, arch)) = &args.platform {
        builder = builder.platform(os, arch);
    }
    // With one executable, the running file is the build as it was downloaded: its digest goes
    // with each check-in, so the server can offer a patch from it (delta update). An unpacked
    // archive is not the downloaded file, so the directory layout downloads whole builds.
    if let Layout::Executable { .. } = installation.layout() {
        builder = builder.running_build(launch.program());
    }
    // A revert found by the launch is reported (install_failed) by the client built here.
    let client = builder.build().await?;

    // 2. Confirm a build on trial once it works.
    if matches!(launch.outcome(), LaunchOutcome::Trial { .. }) {
        if std::env::var_os("HALFTONE_DEMO_CRASH").is_some() {
            println!("crashing before confirming, as asked");
            std::process::abort();
        }
        println!("confirmed: {:?}", client.confirm(&installation).await?);
    }

    // 3. Check, download, install, restart.
    let result = match client.check().await {
        Ok(CheckOutcome::Available(update)) => {
            match update.patch_size() {
                Some(patch) => {
                    println!("{} is available ({} bytes, or a {patch}-byte patch)", update.version(), update.size())
                }
                None => println!("{} is available ({} bytes)", update.version(), update.size()),
            }
            let file = client.download(&update, state_dir.join("download"), |_, _| {}).await?;
            match file.delivery() {
                Delivery::Patch { patch_size } => println!("patched from the running build ({patch_size} bytes)"),
                Delivery::FullAfterPatch { reason } => println!("the patch failed ({reason}); downloaded in full"),
                _ => {}
            }
            let installed = client.install(&installation, &file).await?;
            println!("installed {}; restarting", installed.version());
            client.flush().await?;
            return restart();
        }
        Ok(CheckOutcome::UpToDate) => {
            println!("up to date");
            Ok(())
        }
        Err(Error::Refused(refusal)) => {
            println!("refused: {refusal}");
            Ok(())
        }
        Err(e) => Err(e),
    };
    // 4. Report: events are sent in the background; flush before exiting.
    client.flush().await?;
    Ok(result?)
}

/// Starts this program again with the same arguments, in place of this process on Unix.
fn restart() -> Result<(), Box<dyn std::error::Error>> {
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.args(std::env::args_os().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(command.exec().into())
    }
    #[cfg(not(unix))]
    {
        let status = command.status()?;
        std::process::exit(status.code().unwrap_or(1));
    }
}
