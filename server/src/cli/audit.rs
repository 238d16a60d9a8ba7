//! `halftone audit [app]`: who changed what, when; without an app, the server-wide log
//! (tokens).

use halftone_channels::AppId;
use halftone_channels::wire::AuditLog;

use super::output::{Output, Table, utc};
use super::profile::Profile;

/// `halftone audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// The app; without one, the server-wide log (token creation and revocation, admins only).
    pub app: Option<AppId>,
}

/// Runs `halftone audit`.
pub async fn run(args: AuditArgs, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let admin = profile.admin()?;
    let (log, subject) = match &args.app {
        Some(app) => (admin.audit(app).await?, app.to_string()),
        None => (admin.server_audit().await?, "tokens".to_owned()),
    };
    out.emit(&log, |l| if l.entries.is_empty() { format!("no changes to {subject} yet") } else { table(l).render() })
}

/// The audit table, oldest first.
pub fn table(log: &AuditLog) -> Table {
    let mut t = Table::new(["SEQ", "TIME (UTC)", "ACTOR", "ACTION", "SUBJECT"]);
    for e in &log.entries {
        t.row([e.seq.to_string(), utc(e.at_ms), e.actor.clone(), e.action.clone(), e.subject.clone()]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_as_a_table() {
        let log: AuditLog = serde_json::from_str(
            r#"{"entries":[{"seq":7,"at_ms":1793714709123,"actor":"ci","action":"rollout.update",
                "app":"notes","subject":"1.2.0/beta","before":null,"after":{"basis_points":2500}}]}"#,
        )
        .unwrap();
        assert_eq!(
            table(&log).render(),
            "SEQ  TIME (UTC)            ACTOR  ACTION          SUBJECT\n\
             7    2026-11-03 14:05:09Z  ci     rollout.update  1.2.0/beta\n"
        );
    }
}
