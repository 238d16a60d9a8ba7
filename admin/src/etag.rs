//! [`ETag`]: the revision of a rollout that a change must name.

use std::fmt;

/// An entity tag that identifies one state of a rollout; sent back in `If-Match` to change it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(String);

impl ETag {
    /// An entity tag as the server sent it (quotes included).
    pub fn new(tag: impl Into<String>) -> Self {
        ETag(tag.into())
    }

    /// The tag as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
