//! The `halftone` command line: `serve` and the release engineer's subcommands.
//!
//! Every subcommand but `serve`, `keygen` and `demo` talks to a running server through
//! [`halftone_admin::AdminClient`]; where that server is and which token to use comes
//! from `--server`/`--token`, `HALFTONE_SERVER`/`HALFTONE_TOKEN`, or a config file
//! ([`profile`]). Output is a table or a sentence for people, or with `--json` the server's wire
//! JSON, unchanged, for scripts ([`output`]).
//!
//! Release private keys stay on the machine that runs the CLI: `publish` and `rollback` hash
//! and sign artifacts locally ([`keys`], [`artifact`]) and send the server only signatures.
//!
//! Modules, one concept each: [`profile`] (where the server is), [`output`] (tables, JSON),
//! [`keys`] (key files; the key itself, which signs, is [`halftone_admin::ReleaseKey`]),
//! [`artifact`] (hash, sign, upload), [`app`], [`publish`] (publish, rollback), [`rollout`]
//! (rollout changes, promote, halt), [`releases`], [`explain`], [`token`], [`codepush_key`], [`audit`],
//! [`serve`], [`demo`], [`experiment`] (A/B/N); [`confirm`] asks before one-way changes (or takes `--yes`), and
//! [`failure`] gives each kind of failure its exit status.

pub mod answer_key;
pub mod app;
pub mod artifact;
pub mod audit;
pub mod codepush_key;
pub mod confirm;
pub mod demo;
pub mod experiment;
pub mod explain;
pub mod failure;
pub mod key_rotation;
pub mod keys;
pub mod migrate;
pub mod output;
pub mod patches;
pub mod profile;
pub mod publish;
pub mod releases;
pub mod rollout;
pub mod serve;
pub mod status;
pub mod token;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::ServeArgs;
use output::Output;
use profile::{ConfigLocation, Profile};

/// `halftone`: an update server with gray (staged) releases, and the tools to drive it.
#[derive(Debug, Parser)]
#[command(
    name = "halftone",
    version,
    after_help = "New here? `halftone demo` walks through a staged release in under a minute.",
    after_long_help = "New here? `halftone demo` walks through a staged release in under a minute.\n\n\
        Exit status: 0 done, 1 failed, 2 usage, 3 auth (401/403), 4 not found, 5 conflict \
        (409/412/428), 6 server unreachable or unavailable. With --json a failure is also printed \
        on stdout as {\"error\": {\"kind\", \"message\", \"status\"}}."
)]
pub struct Cli {
    /// Flags every subcommand accepts.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts: where the server is, who we are, how to print.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The server's URL [default: from the config file, else http://127.0.0.1:8080].
    #[arg(long, global = true, help_heading = "Global options", env = "HALFTONE_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The admin token [default: from the config file].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HALFTONE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// The config file [default: ~/.config/halftone/config.toml, if it exists].
    #[arg(long, global = true, help_heading = "Global options", env = "HALFTONE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The `[profile.NAME]` section of the config file to use.
    #[arg(long, global = true, help_heading = "Global options", env = "HALFTONE_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// Print the server's JSON instead of tables, and nothing else on stdout.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Make a new release signing key (private key file, 0600) and print its public key and id.
    Keygen(keys::KeygenArgs),
    /// Print a release key's public key as Tauri, cargo-packager and Sparkle are configured with it.
    ClientKeys(keys::ClientKeysArgs),
    /// List an app's release key documents, or rotate its release keys.
    #[command(subcommand)]
    Keys(key_rotation::KeysCommand),
    /// Create, change and show apps.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Sign and upload artifacts, then publish a release with its first rollout.
    Publish(publish::PublishArgs),
    /// Change a release's rollout on one channel (percentage, state, rules, lists).
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
    /// Roll a release out on a more stable channel.
    Promote(rollout::PromoteArgs),
    /// Halt a release on every channel: nobody new is offered it.
    Halt(rollout::HaltArgs),
    /// A/B/N experiments on a channel: start one, compare its arms, promote the winner.
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
    /// Halt a bad release and publish a rebuild of older good code under a new, higher version.
    Rollback(publish::RollbackArgs),
    /// List an app's releases with their rollouts.
    Releases(releases::ReleasesArgs),
    /// Show what a described device would be offered, and why for each release.
    Explain(explain::ExplainArgs),
    /// Create, list and revoke admin tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Create, list and revoke CodePush deployment keys (a key routes React Native apps to a
    /// channel).
    #[command(subcommand)]
    CodepushKey(codepush_key::CodePushKeyCommand),
    /// List, rotate and retire the server's answer keys (which sign check-in answers).
    #[command(subcommand)]
    AnswerKey(answer_key::AnswerKeyCommand),
    /// Show which server and token this profile uses: the token's name, role and apps.
    Whoami,
    /// Check a token with the server and save it in the config file (mode 0600).
    ///
    /// The server is `--server URL`; `--profile NAME` saves into a [profile.NAME] section.
    Login(token::LoginArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// For example: `halftone completions bash > ~/.local/share/bash-completion/completions/halftone`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Show an app's audit log.
    Audit(audit::AuditArgs),
    /// Show rollout states, schedules, gates, install feedback and adoption.
    Status(status::StatusArgs),
    /// Start a throwaway server and walk through a staged release with simulated devices.
    Demo(demo::DemoArgs),
    /// Copy an embedded data dir into PostgreSQL (for several replicas), and verify the copy.
    Migrate(migrate::MigrateArgs),
}

/// Parses the command line and runs the chosen subcommand. Errors print as `error: <sentence>`
/// on stderr (and as a JSON object on stdout under `--json`) and exit with the status of their
/// kind (see [`failure`]).
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let json = cli.global.json;
    // The runtime's threads are background (scheduler, store, the feedback aggregator's
    // checkpoints): they yield the CPU to the HTTP workers, which the main thread starts
    // (crate::background).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .on_thread_start(crate::background::lower_this_thread)
        .enable_all()
        .build()?;
    // A LocalSet lets `serve` run a server future that is not `Send`.
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, run(cli)) {
        Ok(()) => Ok(()),
        Err(e) => {
            // `{:#}` prints the chain on one line: our context, then the error's own sentence
            // (an `AdminError`'s Display, never a debug dump).
            eprintln!("error: {e:#}");
            if json {
                let object = serde_json::json!({ "error": failure::ErrorObject::of(&e) });
                println!("{object}");
            }
            std::process::exit(failure::Kind::of(&e).exit_code())
        }
    }
}

/// Runs one parsed command line. The environment is read here and nowhere below.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output::new(cli.global.json);
    let config_location = ConfigLocation::from_env(
        cli.global.config.clone(),
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    );
    let profile = || Profile::resolve(&cli.global, &config_location);
    match cli.command {
        Command::Serve(args) => serve::run(args, std::env::var("RUST_LOG").ok().as_deref()).await,
        Command::Keygen(args) => keys::keygen(&args, &out),
        Command::ClientKeys(args) => keys::client_keys(&args, &out),
        Command::Keys(cmd) => key_rotation::run(cmd, &profile()?, &out).await,
        Command::App(cmd) => app::run(cmd, &profile()?, &out).await,
        Command::Publish(args) => publish::publish(args, &profile()?, &out).await,
        Command::Rollout(cmd) => rollout::run(cmd, &profile()?, &out).await,
        Command::Promote(args) => rollout::promote(args, &profile()?, &out).await,
        Command::Halt(args) => rollout::halt(args, &profile()?, &out).await,
        Command::Experiment(cmd) => experiment::run(cmd, &profile()?, &out).await,
        Command::Rollback(args) => publish::rollback(args, &profile()?, &out).await,
        Command::Releases(args) => releases::run(args, &profile()?, &out).await,
        Command::Explain(args) => explain::run(args, &profile()?, &out).await,
        // Recovery needs no server and no token, so no profile either.
        Command::Token(token::TokenCommand::Recover { data_dir, store }) => {
            token::recover(&data_dir, &store, &out).await
        }
        Command::Token(cmd) => token::run(cmd, &profile()?, &out).await,
        Command::AnswerKey(cmd) => answer_key::run(cmd, &profile()?, &out).await,
        Command::CodepushKey(cmd) => codepush_key::run(cmd, &profile()?, &out).await,
        Command::Whoami => token::whoami(&profile()?, &out).await,
        Command::Login(args) => token::login(&args, &cli.global, &config_location, &out).await,
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "halftone", &mut std::io::stdout());
            Ok(())
        }
        Command::Audit(args) => audit::run(args, &profile()?, &out).await,
        Command::Status(args) => status::run(args, &profile()?, &out).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Migrate(args) => migrate::run(args, &out).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli =
            Cli::try_parse_from(["halftone", "releases", "notes", "--server", "http://h:1", "--token", "t", "--json"])
                .unwrap();
        assert_eq!(cli.global.server.as_deref(), Some("http://h:1"));
        assert_eq!(cli.global.token.as_deref(), Some("t"));
        assert!(cli.global.json);
    }
}
