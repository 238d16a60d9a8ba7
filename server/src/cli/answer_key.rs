//! The server's answer keys: `answer-key list|rotate|retire`. Apps pin these public keys
//! (`ClientBuilder::answer_key`) to believe only fresh, signed check-in answers.

use halftone_channels::KeyId;
use halftone_channels::wire::AnswerKeys;

use super::confirm::{YesArg, confirm};
use super::output::{Output, Table, utc};
use super::profile::Profile;

/// `halftone answer-key ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AnswerKeyCommand {
    /// List the answer keys with their public keys (the one marked current signs).
    List,
    /// Make a new answer key, which signs from now on. Pin it in app builds before rotating;
    /// the older keys keep signing for devices that pin them until they are retired.
    Rotate,
    /// Retire an older answer key: devices that pin only it can no longer verify answers.
    Retire {
        /// The key's id, as `answer-key list` shows it.
        id: KeyId,
        /// Retiring asks first; this answers yes.
        #[command(flatten)]
        yes: YesArg,
    },
}

/// Runs `halftone answer-key ...`.
pub async fn run(cmd: AnswerKeyCommand, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let client = profile.admin()?;
    let keys = match cmd {
        AnswerKeyCommand::List => client.answer_keys().await?,
        AnswerKeyCommand::Rotate => client.rotate_answer_key().await?,
        AnswerKeyCommand::Retire { id, yes } => {
            confirm(
                yes,
                &format!("retiring answer key {id}"),
                &format!(
                    "Retire answer key {id}? App builds that pin only this key can no longer verify answers, \
                     so they stop taking updates; this cannot be undone."
                ),
            )?;
            client.retire_answer_key(&id).await?
        }
    };
    out.emit(&keys, |k| table(k).render())
}

/// The keys table, with the builder line an app pins each key with.
pub fn table(keys: &AnswerKeys) -> Table {
    let mut t = Table::new(["ID", "CURRENT", "CREATED", "PIN IN THE APP"]);
    for k in &keys.keys {
        let current = if k.current { "yes" } else { "" };
        t.row([k.key_id.to_string(), current.into(), utc(k.created_ms), format!(".answer_key(\"{}\")", k.public_key)]);
    }
    t
}
