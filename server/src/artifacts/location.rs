//! Where artifacts are kept ([`ArtifactLocation`]): the data dir, or an S3-compatible bucket
//! ([`S3Location`]) with its endpoint, region and credentials. Parsed once from the flags in
//! `config.rs`; the [`Secret`] key never prints.

use std::fmt;

/// Where artifact files are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ArtifactLocation {
    /// `<data dir>/artifacts/<sha256>` (the default).
    #[default]
    DataDir,
    /// Objects `[<prefix>/]<sha256>` in an S3-compatible bucket.
    S3(S3Location),
}

/// An S3-compatible bucket, with what it takes to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket's name.
    pub bucket: String,
    /// Keys start with `<prefix>/` (no leading or trailing `/`); empty for the bucket's root.
    pub prefix: String,
    /// The service's URL (`http(s)://host[:port]`, path-style requests); `None` is AWS itself.
    pub endpoint: Option<String>,
    /// The region that requests are signed for.
    pub region: String,
    /// Static credentials; `None` uses the instance's role (EC2/ECS metadata).
    pub credentials: Option<S3Credentials>,
}

/// An access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// The access key id (not a secret: it shows in logs of the store anyway).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
}

/// A string that never prints: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX]`; the endpoint, region and credentials are set apart.
    pub fn parse_url(url: &str) -> anyhow::Result<(String, String)> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| anyhow::anyhow!("--artifacts {url:?}: expected s3://BUCKET[/PREFIX]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(
            valid_bucket(bucket),
            "--artifacts {url:?}: the bucket name must be 3 to 63 lowercase letters, digits, dots and hyphens, \
             starting and ending with a letter or digit"
        );
        let prefix = prefix.trim_end_matches('/');
        anyhow::ensure!(
            prefix.split('/').all(|p| !matches!(p, "." | ".."))
                && (prefix.is_empty() || prefix.split('/').all(|p| !p.is_empty() && valid_prefix_part(p))),
            "--artifacts {url:?}: the prefix must be /-separated names of letters, digits and -_.!*'() \
             (no empty parts, no . or ..)"
        );
        Ok((bucket.to_owned(), prefix.to_owned()))
    }

    /// `s3://bucket/prefix`, for messages (no endpoint, no credentials).
    pub fn url(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}", self.bucket),
            p => format!("s3://{}/{p}", self.bucket),
        }
    }
}

/// S3's rules for new bucket names.
fn valid_bucket(name: &str) -> bool {
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && ends_ok(name.chars().next())
        && ends_ok(name.chars().last())
        && !name.contains("..")
}

/// A prefix part made of S3's "safe characters", so that keys need no escaping.
fn valid_prefix_part(part: &str) -> bool {
    part.chars().all(|c| c.is_ascii_alphanumeric() || "-_.!*'()".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(url: &str, expected: Option<(&str, &str)>) {
        let got = S3Location::parse_url(url).ok();
        assert_eq!(got.as_ref().map(|(b, p)| (b.as_str(), p.as_str())), expected, "{url}");
    }

    #[test]
    fn bucket_urls() {
        check("s3://artifacts", Some(("artifacts", "")));
        check("s3://artifacts/", Some(("artifacts", "")));
        check("s3://my.bucket-1/halftone/prod/", Some(("my.bucket-1", "halftone/prod")));
        check("s3://ab", None);
        check("s3://Upper", None);
        check("s3://-bucket", None);
        check("s3://a..b", None);
        check("https://bucket", None);
        check("bucket", None);
        check("s3://bucket//x", None);
        check("s3://bucket/a/../b", None);
        check("s3://bucket/a b", None);
    }

    #[test]
    fn secrets_never_print() {
        let creds = S3Credentials { access_key_id: "AKIA1".into(), secret_access_key: Secret::new("hunter2") };
        assert!(!format!("{creds:?}").contains("hunter2"));
        assert_eq!(Secret::new("hunter2").to_string(), "***");
        assert_eq!(Secret::new("hunter2").expose(), "hunter2");
    }
}
