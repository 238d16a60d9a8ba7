//! Admin tokens: `token create|list|revoke`.

use anyhow::Context as _;
use halftone_channels::wire::{Role, TokenList, TokenRequest, TokenView};
use halftone_channels::{AppId, TokenName};

use super::confirm::{YesArg, confirm};
use super::output::{Output, Table};
use super::profile::ConfigLocation;
use super::profile::Profile;

/// A token's role (`--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Everything, including tokens.
    Admin,
    /// Publish and change rollouts of the `--app`s; read everything.
    Publisher,
    /// Read only.
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Publisher => Role::Publisher,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

/// `halftone token ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        /// A label for people (`ci-notes`, `alice`).
        #[arg(long)]
        name: TokenName,
        /// What the token may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// For publishers: an app it may change (repeat).
        #[arg(long = "app", value_name = "APP")]
        apps: Vec<AppId>,
    },
    /// List live tokens (without secrets).
    List,
    /// Revoke a token at once.
    Revoke {
        /// The token's id, as `token list` shows it.
        id: String,
        /// Revoking asks first; this answers yes.
        #[command(flatten)]
        yes: YesArg,
    },
    /// Make a new admin token without one, with access to the server's store: its data dir
    /// (stop that server first) or its PostgreSQL database. Printed once.
    Recover {
        /// The data dir of the server (`halftone serve --data-dir`).
        #[arg(long, value_name = "DIR")]
        data_dir: std::path::PathBuf,
        /// The server's store, when it is not the embedded one (`postgres://…`).
        #[arg(long, value_name = "URL", default_value = "embedded")]
        store: String,
    },
}

/// Runs `halftone token recover`: opens the store directly (no server, no token).
pub async fn recover(data_dir: &std::path::Path, store: &str, out: &Output) -> anyhow::Result<()> {
    let config = crate::config::Config::offline(data_dir, crate::config::StoreLocation::parse(store)?);
    let state = crate::state::State::open(config, std::sync::Arc::new(crate::clock::SystemClock)).await?;
    let created = state.recover_admin_token().await?;
    state.feedback.close().await?;
    out.emit(&created, |c| format!("recovered admin token (shown only now): {}", c.token))
}

/// Runs `halftone token ...`.
pub async fn run(cmd: TokenCommand, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    // `recover` works without a server or a token: it opens the store.
    let client = || profile.admin();
    match cmd {
        TokenCommand::Recover { data_dir, store } => recover(&data_dir, &store, out).await,
        TokenCommand::Create { name, role, apps } => {
            let created = client()?.create_token(&TokenRequest { name, role: role.into(), apps }).await?;
            out.emit(&created, |c| {
                format!("created token {} ({})\nsecret (shown only now): {}", c.view.id, who(&c.view), c.token)
            })
        }
        TokenCommand::List => {
            let list = client()?.list_tokens().await?;
            out.emit(&list, |l| table(l).render())
        }
        TokenCommand::Revoke { id, yes } => {
            confirm(
                yes,
                &format!("revoking token {id}"),
                &format!("Revoke token {id}? Whoever uses it is refused from now on; this cannot be undone."),
            )?;
            client()?.revoke_token(&id).await?;
            out.line(&format!("revoked token {id}"))
        }
    }
}

/// Runs `halftone whoami`: the server this profile talks to and the token's own view.
pub async fn whoami(profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let client = profile.admin()?;
    let me = client.whoami().await?;
    out.emit(&me, |t| format!("{} on {} (token {})", who(t), client.base_url(), t.id))
}

/// `halftone login`: the server and the profile come from the global flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    /// Read the token from stdin even when it is a terminal (for a token piped in, it is read
    /// from stdin anyway).
    #[arg(long)]
    pub token_stdin: bool,
}

/// Runs `halftone login`: asks for a token (without echo on a terminal; one line from stdin
/// otherwise) unless `--token` gave one, checks it with the server (`whoami`), then saves the
/// server and token in the config file, at the top or in `[profile.NAME]` with `--profile`.
pub async fn login(
    args: &LoginArgs,
    global: &super::Global,
    location: &ConfigLocation,
    out: &Output,
) -> anyhow::Result<()> {
    let path = match location {
        ConfigLocation::Explicit(p) | ConfigLocation::Default(p) => p.clone(),
        ConfigLocation::Nowhere => {
            anyhow::bail!("there is no home directory to keep the config file in: pass --config FILE")
        }
    };
    let server = global.server.clone().unwrap_or_else(|| super::profile::DEFAULT_SERVER.to_owned());
    let token = match &global.token {
        Some(token) => token.clone(),
        None => read_token(args.token_stdin)?,
    };
    let client = halftone_admin::AdminClient::new(&server, token.as_str())?;
    let me = client.whoami().await.context("the server did not accept this token; nothing was saved")?;
    super::profile::save(&path, global.profile.as_deref(), &server, &token)?;
    let section = global.profile.as_ref().map(|p| format!(" as [profile.{p}]")).unwrap_or_default();
    out.emit(&me, |t| format!("logged in to {server} as {}; saved to {}{section}", who(t), path.display()))
}

fn read_token(from_stdin: bool) -> anyhow::Result<String> {
    use std::io::IsTerminal as _;
    let token = if std::io::stdin().is_terminal() && !from_stdin {
        rpassword::prompt_password("admin token: ").context("could not read the token")?
    } else {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line).context("could not read the token")?;
        line
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        anyhow::bail!("no token given: paste an admin token (halftone token create makes one)");
    }
    Ok(token)
}

/// `ci-notes, publisher of notes, chat`.
fn who(t: &TokenView) -> String {
    let role = match t.role {
        Role::Admin => "admin",
        Role::Publisher => "publisher",
        Role::Viewer => "viewer",
    };
    let apps: Vec<&str> = t.apps.iter().map(AppId::as_str).collect();
    if apps.is_empty() { format!("{}, {role}", t.name) } else { format!("{}, {role} of {}", t.name, apps.join(", ")) }
}

/// The tokens table.
pub fn table(list: &TokenList) -> Table {
    let mut t = Table::new(["ID", "NAME", "ROLE", "APPS"]);
    for tok in &list.tokens {
        let role = serde_json::to_value(tok.role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let apps: Vec<&str> = tok.apps.iter().map(AppId::as_str).collect();
        t.row([tok.id.clone(), tok.name.to_string(), role, apps.join(", ")]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_as_a_table_and_a_phrase() {
        let list: TokenList = serde_json::from_str(
            r#"{"tokens":[{"id":"t1","name":"ci","role":"publisher","apps":["notes","chat"]},
                          {"id":"t2","name":"root","role":"admin","apps":[]}]}"#,
        )
        .unwrap();
        assert_eq!(
            table(&list).render(),
            "ID  NAME  ROLE       APPS\nt1  ci    publisher  notes, chat\nt2  root  admin\n"
        );
        assert_eq!(who(&list.tokens[0]), "ci, publisher of notes, chat");
        assert_eq!(who(&list.tokens[1]), "root, admin");
    }
}
