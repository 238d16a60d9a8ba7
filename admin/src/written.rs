//! [`Written`]: what an idempotent write did.

/// The result of an idempotent write: a new thing, or one that was already there (for an app:
/// updated in place; for a release: the identical release was already published).
#[derive(Debug, Clone, PartialEq)]
pub enum Written<T> {
    /// The server created it (201).
    Created(T),
    /// It existed already (200).
    Existing(T),
}

impl<T> Written<T> {
    /// The server's view of the thing, either way.
    pub fn into_inner(self) -> T {
        match self {
            Written::Created(v) | Written::Existing(v) => v,
        }
    }

    /// The server's view of the thing, either way.
    pub fn value(&self) -> &T {
        match self {
            Written::Created(v) | Written::Existing(v) => v,
        }
    }

    /// True when this call created it.
    pub fn is_created(&self) -> bool {
        matches!(self, Written::Created(_))
    }
}
