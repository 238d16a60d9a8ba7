//! How the CLI fails: a distinct exit status per kind of failure, so that scripts can tell them
//! apart, and under `--json` a JSON error object on stdout (the human sentence still goes to
//! stderr).
//!
//! | status | kind | when |
//! |---|---|---|
//! | 1 | `failed` | anything else (a local file, a refused change: 400, 422, 413) |
//! | 2 | `usage` | the command line is wrong (clap's own status), or a one-way change was not confirmed with `--yes` where nobody could be asked |
//! | 3 | `auth` | no valid token (401) or not allowed (403) |
//! | 4 | `not_found` | no such app, release, rollout or token (404) |
//! | 5 | `conflict` | the change contradicts what is stored, or the read is stale (409, 412, 428) |
//! | 6 | `unreachable` | the server could not be reached, or is unavailable (503) |

use halftone_admin::AdminError;
use serde::Serialize;

use super::confirm::Unconfirmed;

/// A refusal the CLI makes itself, before asking the server, with the kind it is reported as
/// (publishing a version that exists with other content is a conflict, as the server would
/// say after the upload).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// How it is reported.
    pub kind: Kind,
    /// The sentence.
    pub message: String,
}

/// A kind of failure, with its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Anything not listed below.
    Failed,
    /// The command line is wrong, or a one-way change was not confirmed.
    Usage,
    /// A token problem.
    Auth,
    /// Something named does not exist.
    NotFound,
    /// A conflict with stored state, or a stale read.
    Conflict,
    /// The server cannot be reached or is unavailable.
    Unreachable,
}

impl Kind {
    /// The exit status of this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Auth => 3,
            Kind::NotFound => 4,
            Kind::Conflict => 5,
            Kind::Unreachable => 6,
        }
    }

    /// The kind of `e`: of a refusal the CLI made itself, else of the first admin-client error
    /// in its chain.
    pub fn of(e: &anyhow::Error) -> Kind {
        for cause in e.chain() {
            if let Some(refused) = cause.downcast_ref::<Refused>() {
                return refused.kind;
            }
            if let Some(unconfirmed) = cause.downcast_ref::<Unconfirmed>() {
                return match unconfirmed {
                    Unconfirmed::NoTerminal { .. } => Kind::Usage,
                    Unconfirmed::Declined => Kind::Failed,
                };
            }
        }
        let Some(admin) = e.chain().find_map(|c| c.downcast_ref::<AdminError>()) else { return Kind::Failed };
        match admin {
            AdminError::Network { .. } => Kind::Unreachable,
            other => match other.status() {
                Some(401 | 403) => Kind::Auth,
                Some(404) => Kind::NotFound,
                Some(409 | 412 | 428) => Kind::Conflict,
                Some(502..=504) => Kind::Unreachable,
                _ => Kind::Failed,
            },
        }
    }
}

/// The JSON error object printed under `--json`.
#[derive(Debug, Serialize)]
pub struct ErrorObject {
    /// What failed: one of [`Kind`]'s names.
    pub kind: Kind,
    /// The sentence also printed on stderr.
    pub message: String,
    /// The HTTP status, when the server refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl ErrorObject {
    /// The error object of `e`.
    pub fn of(e: &anyhow::Error) -> ErrorObject {
        let status = e.chain().find_map(|c| c.downcast_ref::<AdminError>()).and_then(AdminError::status);
        ErrorObject { kind: Kind::of(e), message: format!("{e:#}"), status }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: u16) -> anyhow::Error {
        let problem = serde_json::from_value(serde_json::json!({
            "type": "urn:halftone:problem:x", "title": "x", "status": status, "detail": "refused"
        }))
        .unwrap();
        anyhow::Error::new(AdminError::Server { status, problem }).context("changing the rollout")
    }

    #[test]
    fn each_kind_of_failure_has_its_own_exit_status() {
        let cases = [
            (server(401), Kind::Auth, 3),
            (server(403), Kind::Auth, 3),
            (server(404), Kind::NotFound, 4),
            (server(412), Kind::Conflict, 5),
            (server(409), Kind::Conflict, 5),
            (server(503), Kind::Unreachable, 6),
            (server(422), Kind::Failed, 1),
            (anyhow::anyhow!("could not read dist/app.exe"), Kind::Failed, 1),
        ];
        for (e, kind, code) in cases {
            assert_eq!((Kind::of(&e), Kind::of(&e).exit_code()), (kind, code), "{e:#}");
        }
        let unasked = anyhow::Error::new(Unconfirmed::NoTerminal { what: "halting".into() });
        assert_eq!(Kind::of(&unasked).exit_code(), 2);
        assert_eq!(Kind::of(&anyhow::Error::new(Unconfirmed::Declined)).exit_code(), 1);
        let refused =
            anyhow::Error::new(Refused { kind: Kind::Conflict, message: "exists".into() }).context("publishing");
        assert_eq!(Kind::of(&refused).exit_code(), 5);
        let network = anyhow::Error::new(AdminError::Network { url: "http://h".into(), reason: "refused".into() });
        assert_eq!(Kind::of(&network).exit_code(), 6);
        let json = serde_json::to_value(ErrorObject::of(&server(404))).unwrap();
        assert_eq!(json["kind"], "not_found");
        assert_eq!(json["status"], 404);
        assert!(json["message"].as_str().unwrap().starts_with("changing the rollout: "), "{json}");
    }
}
