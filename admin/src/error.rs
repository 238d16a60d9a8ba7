//! [`AdminError`]: why an admin call failed, as one sentence a release engineer can act on.

use std::path::PathBuf;

use halftone_channels::wire::Problem;
use reqwest::StatusCode;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The server URL given to [`AdminClient::new`](crate::AdminClient::new) is not an absolute `http` or `https` URL.
    #[error("the server URL {url:?} is not usable: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The admin token contains characters that cannot be sent in an HTTP header.
    #[error("the admin token contains characters that cannot be sent in an HTTP header")]
    InvalidToken,
    /// The server answered with an error status; `problem` is its RFC 9457 body (or one made up
    /// from the status when the answer had none, e.g. from a proxy in between).
    #[error("{}", server_sentence(*.status, .problem))]
    Server {
        /// The HTTP status code.
        status: u16,
        /// The server's explanation.
        problem: Problem,
    },
    /// The server could not be reached, or the connection broke before an answer arrived.
    #[error("could not reach the server at {url}: {reason}")]
    Network {
        /// The URL that was called.
        url: String,
        /// What went wrong, from the innermost cause (`connection refused`, `timed out`).
        reason: String,
    },
    /// The server answered with success, but not with what this client expects (a different
    /// server, or a server of another version).
    #[error("the server's answer to {endpoint} was not what this client expects: {reason}")]
    Decode {
        /// The call, e.g. `GET /v1/apps`.
        endpoint: String,
        /// What did not match.
        reason: String,
    },
    /// A local file (an artifact to hash or upload) could not be read.
    #[error("could not read {}: {error}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

impl AdminError {
    /// The HTTP status, when the server refused the request.
    pub fn status(&self) -> Option<u16> {
        match self {
            AdminError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's problem body, when the server refused the request.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            AdminError::Server { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// "the server refused the request (409 Conflict): release 1.2.0 already exists".
fn server_sentence(status: u16, problem: &Problem) -> String {
    let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let what = if status >= 500 { "the server failed to handle the request" } else { "the server refused the request" };
    let status = if reason.is_empty() { status.to_string() } else { format!("{status} {reason}") };
    // The detail is a sentence of its own; keep ours to one by dropping its final period.
    let detail = problem.detail.trim().trim_end_matches('.');
    let detail = if detail.is_empty() { problem.title.trim().trim_end_matches('.') } else { detail };
    if detail.is_empty() || detail.eq_ignore_ascii_case(reason) {
        format!("{what} ({status})")
    } else {
        format!("{what} ({status}): {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(detail: &str) -> Problem {
        Problem {
            kind: "urn:halftone:problem:conflict".into(),
            title: "Conflict".into(),
            status: 409,
            detail: detail.into(),
        }
    }

    #[test]
    fn a_server_problem_reads_as_one_sentence() {
        let check = |status: u16, detail: &str, expected: &str| {
            let e = AdminError::Server { status, problem: problem(detail) };
            assert_eq!(e.to_string(), expected);
        };
        check(
            409,
            "release 1.2.0 already exists with different content.",
            "the server refused the request (409 Conflict): release 1.2.0 already exists with different content",
        );
        check(
            500,
            "internal error",
            "the server failed to handle the request (500 Internal Server Error): internal error",
        );
        // No detail: the title stands in.
        check(409, "", "the server refused the request (409 Conflict)");
        check(599, "odd", "the server failed to handle the request (599): odd");
    }
}
