//! Checks a Halftone server for an update, and optionally downloads and verifies it.
//!
//! ```text
//! cargo run -p halftone-client --example check -- \
//!     --server http://127.0.0.1:8080 --app notes --version 1.0.0 --key <id>=<hex> \
//!     [--channel beta] [--download ./update.bin] [--state-dir ./state] [--platform linux/x86_64] \
//!     [--allow-host cdn.example.com]
//! ```
//!
//! `--key` takes a key id and the 64-hex-digit ed25519 public key, as `halftone keys` prints
//! them; repeat it for several keys. `--allow-host` lets downloads come from a host other than
//! the server's (its bucket or CDN, when it redirects downloads there); repeat it for several.

use std::path::PathBuf;
use std::process::ExitCode;

use halftone_client::{ChannelName, CheckOutcome, Client};

const USAGE: &str = "usage: check --server URL --app ID --version X.Y.Z --key ID=HEX [--key ID=HEX ...]
             [--channel NAME] [--download PATH] [--state-dir DIR] [--platform OS/ARCH]
             [--allow-host HOST[:PORT] ...]";

#[derive(Default)]
struct Args {
    server: Option<String>,
    app: Option<String>,
    version: Option<String>,
    keys: Vec<(String, String)>,
    channel: Option<String>,
    download: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    platform: Option<(String, String)>,
    allowed_hosts: Vec<String>,
}

/// The arguments, or `None` when help was asked for.
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
            "--version" => args.version = Some(value),
            "--key" => {
                let (id, hex) = value.split_once('=').ok_or("--key takes ID=HEX")?;
                args.keys.push((id.into(), hex.into()));
            }
            "--channel" => args.channel = Some(value),
            "--download" => args.download = Some(value.into()),
            "--state-dir" => args.state_dir = Some(value.into()),
            "--platform" => {
                let (os, arch) = value.split_once('/').ok_or("--platform takes OS/ARCH, e.g. linux/x86_64")?;
                args.platform = Some((os.into(), arch.into()));
            }
            "--allow-host" => args.allowed_hosts.push(value),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(Some(args))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let Some(args) = parse_args()? else {
        println!("{USAGE}");
        return Ok(());
    };
    let app = args.app.ok_or(USAGE)?;
    let state_dir = args.state_dir.unwrap_or_else(|| std::env::temp_dir().join(format!("halftone-example-{app}")));

    let mut builder = Client::builder()
        .server(args.server.as_deref().ok_or(USAGE)?)
        .app(&app)
        .version(args.version.as_deref().ok_or(USAGE)?)
        .state_dir(&state_dir);
    for (id, hex) in &args.keys {
        builder = builder.trusted_key(id, hex);
    }
    if let Some((os, arch)) = &args.platform {
        builder = builder.platform(os, arch);
    }
    for host in &args.allowed_hosts {
        builder = builder.allow_download_host(host);
    }
    let client = builder.build().await?;
    if let Some(channel) = &args.channel {
        client.set_channel(channel.parse::<ChannelName>()?)?;
    }
    println!(
        "device {} ({}, os version {}, locale {}) on channel {}; state in {}",
        client.device_id(),
        client.target(),
        client.os_version().map_or("unknown", |v| v.as_str()),
        client.locale().map_or("unknown", |l| l.as_str()),
        client.channel(),
        state_dir.display(),
    );

    match client.check_interactive().await? {
        CheckOutcome::UpToDate => println!("{app} {} is up to date", client.version()),
        CheckOutcome::Available(update) => {
            println!(
                "{} available on {} ({} bytes{}): {}",
                update.version(),
                update.channel(),
                update.size(),
                if update.is_critical() { ", critical" } else { "" },
                update.notes()
            );
            if let Some(dest) = &args.download {
                let mut last_percent = None;
                let file = client
                    .download(&update, dest, move |done: u64, total: u64| {
                        let percent = (done * 100).checked_div(total).unwrap_or(100);
                        if last_percent != Some(percent) && percent.is_multiple_of(10) {
                            println!("  {percent:>3}% ({done}/{total} bytes)");
                            last_percent = Some(percent);
                        }
                    })
                    .await?;
                println!("verified {} (sha256 {}) at {}", file.version(), file.sha256(), file.path().display());
            }
        }
    }
    client.flush().await?;
    Ok(())
}
