//! A CodePush deployment key, [`DeploymentKey`]: the string a React Native app compiles in
//! (`CodePushDeploymentKey`) and sends with every update check and status report. It routes a
//! device to one app's channel and target; it is an identifier, not a credential: every copy
//! of the app carries it.

use crate::error::{ParseError, What, check_slug, string_newtype};

/// A deployment key: 8–128 characters from `[A-Za-z0-9._-]` (what the server makes, 32
/// characters of URL-safe base64, and the keys other CodePush servers made, so an app can keep
/// its key). It appears in query strings, so it never needs escaping.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentKey(Box<str>);

/// The fewest characters a deployment key has.
pub const MIN_DEPLOYMENT_KEY: usize = 8;

impl DeploymentKey {
    /// Parses a deployment key.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        check_slug(What::DeploymentKey, s, 128, allowed, allowed, "letters, digits, '.', '_' and '-'")?;
        if s.len() < MIN_DEPLOYMENT_KEY {
            return Err(ParseError::new(
                What::DeploymentKey,
                s,
                format!("must be at least {MIN_DEPLOYMENT_KEY} characters"),
            ));
        }
        Ok(DeploymentKey(s.into()))
    }
}
string_newtype!(DeploymentKey);

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(), &str>) {
        match (DeploymentKey::parse(input), expected) {
            (Ok(k), Ok(())) => assert_eq!(k.as_str(), input),
            (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{e}"),
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn deployment_keys() {
        check("3cV0ZjRm_7mH-q1Ls2x9Wb8kA4nP6yTe", Ok(()));
        check("AbC12345", Ok(()));
        check("key.v2_prod-1", Ok(()));
        check(&"k".repeat(128), Ok(()));
        check("", Err("must not be empty"));
        check("short", Err("at least 8"));
        check(&"k".repeat(129), Err("at most 128"));
        check("has space1", Err("' ' is not allowed"));
        check("a&b=c%20d", Err("'&' is not allowed"));
    }
}
