//! The RFC 9457 problem body: the shape of every 4xx and 5xx answer, on both sides.

use serde::{Deserialize, Serialize};

/// An RFC 9457 problem body (`application/problem+json`), the shape of every 4xx and 5xx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the problem type (`urn:halftone:problem:<slug>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, in one sentence.
    pub detail: String,
}
