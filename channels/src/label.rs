//! Names people give things: an app's [`DisplayName`] and a token's [`TokenName`]. Both are
//! trimmed, non-empty, printable and bounded, so a stored name never holds a control
//! character that would garble a terminal or a log line.

use std::sync::Arc;

use crate::error::{ParseError, What};

/// The longest app display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 200;
/// The longest token name, in characters.
pub const MAX_TOKEN_NAME: usize = 100;

/// Trims `s` and checks it is 1 to `max` printable characters.
fn label(what: What, s: &str, max: usize) -> Result<Arc<str>, ParseError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(ParseError::new(what, s, format!("must be 1 to {max} printable characters")));
    }
    Ok(Arc::from(t))
}

/// An app's name as people read it, e.g. `Notes`: 1 to [`MAX_DISPLAY_NAME`] printable
/// characters, surrounding whitespace trimmed.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DisplayName(Arc<str>);

impl DisplayName {
    /// Parses a display name (trimming it).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        label(What::DisplayName, s, MAX_DISPLAY_NAME).map(DisplayName)
    }
}

/// A token's name, e.g. `ci-notes`: what the audit log shows as the actor. 1 to
/// [`MAX_TOKEN_NAME`] printable characters, surrounding whitespace trimmed.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenName(Arc<str>);

impl TokenName {
    /// Parses a token name (trimming it).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        label(What::TokenName, s, MAX_TOKEN_NAME).map(TokenName)
    }
}

crate::error::string_newtype!(DisplayName);
crate::error::string_newtype!(TokenName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_printable_and_bounded() {
        assert_eq!(DisplayName::parse("  Notes ").unwrap().as_str(), "Notes");
        assert_eq!(DisplayName::parse(&"n".repeat(200)).unwrap().as_str().len(), 200);
        assert_eq!(DisplayName::parse("笔记").unwrap().as_str(), "笔记");
        for bad in ["", "   ", "a\nb", "tab\there", "\u{7}"] {
            let e = DisplayName::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid display name") && e.contains("1 to 200 printable"), "{bad:?}: {e}");
        }
        assert!(DisplayName::parse(&"n".repeat(201)).is_err());
        assert_eq!(TokenName::parse(&"t".repeat(100)).unwrap().as_str().len(), 100);
        let e = TokenName::parse(&"t".repeat(101)).unwrap_err().to_string();
        assert!(e.starts_with("invalid token name") && e.contains("1 to 100 printable"), "{e}");
        let parsed: DisplayName = serde_json::from_str("\" Notes\"").unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"Notes\"");
        assert!(serde_json::from_str::<TokenName>("\"\"").is_err());
    }
}
