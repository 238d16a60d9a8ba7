//! [`ApiError`]: every way a request can fail, mapped in one place to an HTTP status and an
//! RFC 9457 `application/problem+json` body. Internal causes are logged once, with their
//! chain, and never shown to the caller.
//!
//! ## 400 or 422: one policy
//!
//! - **400 Bad Request**: the request cannot be read as what the route takes. The body is
//!   missing, unreadable or not JSON, a field has the wrong type or is unknown, or a single
//!   value (an app id in the path, a version, a percentage, a rule, a name) does not parse as
//!   its type. It is decided from the request alone: the same bytes are a 400 on any server.
//! - **422 Unprocessable Content**: every value parses, but a whole they make up is refused:
//!   its parts do not fit together (a release whose `min_from_version` is not below its
//!   version, more rules or listed ids than a rollout holds, a rollout that does not start at
//!   its schedule's first step, two channels with one rank, more keys than an app trusts), or
//!   it does not fit what is stored (a channel the app lacks, a signature no trusted key made,
//!   an artifact that is not uploaded, a rollback that is not above every version).
//! - What names something missing or already there has its own status: 404, 409, 412.
//!
//! The policy is implemented here once, by `From` conversions from the domain's errors, so a
//! handler or a change writes `?` and never picks the status itself: a [`ParseError`] about one
//! value is a 400 and one about a whole (a release, a rollout, a key set, a check-in) is a 422; the errors of
//! consistency checks ([`SelectError`], [`LadderError`], [`CatalogError`], [`SnapshotError`])
//! are 422; an upload whose bytes do not hash to its name is a 422, one cut short a 400; an
//! object store that does not answer is a 503 with `Retry-After`.
//!
//! ## Echoed input is bounded
//!
//! Details quote what they refuse (a value, a field name, a path), and a client can send
//! megabytes of it. [`ApiError::problem`] shortens every quoted span and every unbroken word
//! of a detail to [`MAX_ECHO`] characters followed by `…`, whichever error made it.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use halftone_channels::wire::Problem;
use halftone_channels::{CatalogError, LadderError, ParseError, SelectError, What};

use crate::artifacts::UploadError;
use crate::snapshot::SnapshotError;

/// The content type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or invalid input (400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid bearer token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The token's role does not allow this (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such app, release, rollout, token or artifact (404).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The change contradicts what is stored (409).
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` names an older revision (412).
    #[error("{0}")]
    PreconditionFailed(String),
    /// The body did not arrive within the body deadline (408); the connection is closed.
    #[error("{0}")]
    RequestTimeout(String),
    /// The body is larger than allowed (413); the connection is closed, since the rest of the
    /// body is not read.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Well-formed but refused: bad signature, missing artifact, version not higher (422).
    #[error("{0}")]
    Unprocessable(String),
    /// `If-Match` is required (428).
    #[error("{0}")]
    PreconditionRequired(String),
    /// Over a request rate limit (429 with `Retry-After`, whole seconds). Nothing was done.
    #[error("{detail}")]
    TooManyRequests {
        /// What limit, for people.
        detail: String,
        /// Seconds until a request would be allowed again (at least 1).
        retry_after_s: u64,
    },
    /// The store cannot be reached; retry later (503 with `Retry-After`). Nothing was written.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an I/O failure on our side (500); the cause is logged, not shown.
    #[error("internal error")]
    Internal(anyhow::Error),
}

impl ApiError {
    /// The 503 for an object store that does not answer; the cause is logged, not shown.
    pub fn object_store_unavailable(e: anyhow::Error) -> ApiError {
        tracing::warn!(error = format!("{e:#}"), "object store unavailable");
        ApiError::Unavailable("the artifact store is unavailable; retry shortly".into())
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed(_) => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed(_) => "precondition-failed",
            ApiError::RequestTimeout(_) => "request-timeout",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::PreconditionRequired(_) => "precondition-required",
            ApiError::TooManyRequests { .. } => "too-many-requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The problem body of this error.
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        Problem {
            kind: format!("urn:halftone:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: match self {
                ApiError::Internal(_) => "the server failed to handle this request; it has been logged".to_owned(),
                other => shorten_echoes(&other.to_string()),
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(e) => tracing::error!(error = format!("{e:#}"), "request failed"),
            ApiError::Unavailable(e) => tracing::error!(error = format!("{e:#}"), "a backing service is unavailable"),
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        match self {
            ApiError::Unauthorized(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::Unavailable(_) => {
                res.insert_header((header::RETRY_AFTER, RETRY_AFTER_S.to_string()));
            }
            ApiError::TooManyRequests { retry_after_s, .. } => {
                res.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
            }
            // The rest of the body is not read: the connection cannot carry another request.
            ApiError::RequestTimeout(_) | ApiError::PayloadTooLarge(_) => {
                res.force_close();
            }
            _ => {}
        }
        res.body(serde_json::to_vec(&self.problem()).expect("problems serialize"))
    }
}

/// Seconds a client should wait before retrying while the store is unavailable.
pub const RETRY_AFTER_S: u32 = 5;

/// The most characters of a quoted span or of an unbroken word a problem's detail shows.
pub const MAX_ECHO: usize = 80;

/// `detail` with every quoted span (`"…"`, `` `…` ``) and every unbroken word longer than
/// [`MAX_ECHO`] characters cut to its first [`MAX_ECHO`] characters and `…` (on a character
/// boundary). A span already cut to [`MAX_ECHO`] and `…` (as `ParseError` does) is left alone.
fn shorten_echoes(detail: &str) -> String {
    let mut out = String::with_capacity(detail.len().min(1024));
    let mut rest = detail;
    while let Some(c) = rest.chars().next() {
        // A span: a quoted run up to its closing quote (escapes skipped), or a run of
        // non-whitespace, or one whitespace character.
        let (open, body_end, close) = if c == '"' || c == '`' {
            let mut escaped = false;
            let end = rest[1..]
                .char_indices()
                .find(|&(_, ch)| {
                    let closes = ch == c && !escaped;
                    escaped = c == '"' && ch == '\\' && !escaped;
                    closes
                })
                .map(|(i, _)| i + 1);
            match end {
                Some(end) => (1, end, end + 1),
                None => (1, rest.len(), rest.len()),
            }
        } else if c.is_whitespace() {
            (0, c.len_utf8(), c.len_utf8())
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (0, end, end)
        };
        let body = &rest[open..body_end];
        out.push_str(&rest[..open]);
        match body.char_indices().nth(MAX_ECHO) {
            Some((cut, _)) if body.chars().count() > MAX_ECHO + 1 || !body.ends_with('…') => {
                out.push_str(&body[..cut]);
                out.push('…');
            }
            _ => out.push_str(body),
        }
        out.push_str(&rest[body_end..close]);
        rest = &rest[close..];
    }
    out
}

impl From<anyhow::Error> for ApiError {
    /// An unreachable store is a 503 the client may retry; anything else is a bug (500).
    fn from(e: anyhow::Error) -> Self {
        if crate::store::is_unavailable(&e) {
            tracing::warn!(error = format!("{e:#}"), "store unavailable");
            ApiError::Unavailable("the database is unavailable; retry shortly".into())
        } else {
            ApiError::Internal(e)
        }
    }
}

impl From<ParseError> for ApiError {
    /// A value that breaks its own rules is a 400; a whole whose valid parts do not fit
    /// together is a 422.
    fn from(e: ParseError) -> Self {
        match e.what() {
            What::Release
            | What::Rollout
            | What::TrustedKeys
            | What::CheckIn
            | What::KeyDocument
            | What::Signatures
            | What::Experiment
            | What::MetricSet
            | What::MetricGate => ApiError::Unprocessable(e.to_string()),
            _ => ApiError::BadRequest(e.to_string()),
        }
    }
}

impl From<SelectError> for ApiError {
    fn from(e: SelectError) -> Self {
        ApiError::Unprocessable(e.to_string())
    }
}

impl From<LadderError> for ApiError {
    fn from(e: LadderError) -> Self {
        ApiError::Unprocessable(e.to_string())
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        ApiError::Unprocessable(e.to_string())
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::HashMismatch { .. } => ApiError::Unprocessable(e.to_string()),
            UploadError::TooLarge(_) => ApiError::PayloadTooLarge(e.to_string()),
            UploadError::Interrupted(_) => ApiError::BadRequest(e.to_string()),
            UploadError::TimedOut(_) => ApiError::RequestTimeout(e.to_string()),
            UploadError::Unavailable(e) => ApiError::object_store_unavailable(e),
            UploadError::Io(e) => ApiError::Internal(e),
        }
    }
}

impl From<SnapshotError> for ApiError {
    fn from(e: SnapshotError) -> Self {
        ApiError::Unprocessable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: impl Into<ApiError>) -> u16 {
        e.into().status_code().as_u16()
    }

    #[test]
    fn one_value_is_a_400_and_a_whole_that_does_not_fit_is_a_422() {
        assert_eq!(status(halftone_channels::Version::parse("1.x").unwrap_err()), 400);
        assert_eq!(status(halftone_channels::AppId::parse("Notes").unwrap_err()), 400);
        assert_eq!(status(halftone_channels::Percent::from_basis_points(10_001).unwrap_err()), 400);
        assert_eq!(status(ParseError::new(What::Release, "1.0.0", "needs at least one artifact")), 422);
        assert_eq!(status(ParseError::new(What::Rollout, "1.0.0", "at most 32 rules")), 422);
        let ladder = halftone_channels::Ladder::with_custom([("beta".parse().unwrap(), 100)]).unwrap_err();
        assert_eq!(status(ladder), 422);
    }

    #[test]
    fn echoed_input_is_cut_to_80_characters() {
        let long = "é".repeat(10_000);
        for detail in [
            format!("invalid JSON body: unknown field `{long}`, expected one of `a`, `b` at line 1 column 20012"),
            format!("invalid JSON body: invalid type: string \"{long}\", expected u16"),
            format!("there is no route GET /v1/{long}"),
            format!("unterminated \"{long}"),
        ] {
            let p = ApiError::BadRequest(detail.clone()).problem();
            assert!(p.detail.chars().count() < 200, "{}", p.detail);
            assert!(p.detail.contains("é…"), "{}", p.detail);
            assert!(!p.detail.contains(&"é".repeat(81)), "{}", p.detail);
        }
        let p = ApiError::BadRequest("invalid JSON body: unknown field `a\"b`, line 1".into()).problem();
        assert_eq!(p.detail, "invalid JSON body: unknown field `a\"b`, line 1", "short details are untouched");
        let escaped = format!("invalid x \"{}\\\"{}\": too long", "a".repeat(10), "b".repeat(100));
        let p = ApiError::BadRequest(escaped).problem();
        assert_eq!(p.detail, format!("invalid x \"{}\\\"{}…\": too long", "a".repeat(10), "b".repeat(68)));
        // What `ParseError` already cut is not cut again.
        let e = halftone_channels::AppId::parse(&"a".repeat(500)).unwrap_err();
        let p = ApiError::from(e.clone()).problem();
        assert_eq!(p.detail, e.to_string());
        assert_eq!(status(ApiError::TooManyRequests { detail: "x".into(), retry_after_s: 1 }), 429);
        assert_eq!(status(ApiError::RequestTimeout("x".into())), 408);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = ApiError::Internal(anyhow::anyhow!("disk on fire at /secret/path"));
        let p = e.problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("secret"));
        let p = ApiError::Conflict("release 1.0.0 exists".into()).problem();
        assert_eq!(
            (p.status, p.kind.as_str(), p.detail.as_str()),
            (409, "urn:halftone:problem:conflict", "release 1.0.0 exists")
        );
    }
}
