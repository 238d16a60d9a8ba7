//! The application identifier, [`AppId`].

use crate::error::{ParseError, What, check_slug, string_newtype};

/// An app's id: a slug of 1–64 characters from `[a-z0-9._-]`, starting with a letter or digit.
/// It appears in URLs and signed messages, so it never needs escaping. Shared (`Arc`): a
/// clone, such as the one each check-in hands to the feedback aggregator, allocates nothing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(std::sync::Arc<str>);

impl AppId {
    /// Parses an app id.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check_slug(
            What::AppId,
            s,
            64,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'),
            "lowercase letters, digits, '.', '_' and '-'",
        )?;
        Ok(AppId(s.into()))
    }
}
string_newtype!(AppId);

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(), &str>) {
        match (AppId::parse(input), expected) {
            (Ok(id), Ok(())) => assert_eq!(id.as_str(), input),
            (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{e}"),
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn app_ids() {
        check("notes", Ok(()));
        check("com.example.notes-app_2", Ok(()));
        check("9lives", Ok(()));
        check(&"a".repeat(64), Ok(()));
        check("", Err("must not be empty"));
        check(&"a".repeat(65), Err("at most 64"));
        check("Notes", Err("'N' is not allowed"));
        check("-notes", Err("must start with a letter or digit"));
        check(".hidden", Err("must start with a letter or digit"));
        check("../etc", Err("must start with a letter or digit"));
        check("a/b", Err("'/' is not allowed"));
        check("a b", Err("' ' is not allowed"));
    }
}
