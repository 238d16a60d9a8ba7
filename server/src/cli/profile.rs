//! Where the server is and which token to use: a [`Profile`], resolved once from flags (or
//! their environment variables, which clap reads), then the config file, then the default.
//!
//! The config file is a small subset of TOML, so reading it needs no parser dependency:
//!
//! ```toml
//! # ~/.config/halftone/config.toml
//! server = "https://updates.example.com"
//! token = "ht_..."
//!
//! [profile.staging]
//! server = "https://staging.example.com"
//! token = "ht_..."
//! ```
//!
//! Only `server` and `token` keys with double-quoted string values, `#` comments and
//! `[profile.NAME]` headers are understood; anything else is an error naming the line, so a
//! typo never silently sends a command to the wrong server.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use halftone_admin::AdminClient;

use super::Global;

/// The server a plain `halftone` talks to: the default address of `halftone serve`.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Where the config file is, and whether it must exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigLocation {
    /// Given by `--config`/`HALFTONE_CONFIG`: it must exist.
    Explicit(PathBuf),
    /// The default place: read if it exists.
    Default(PathBuf),
    /// No home directory to look in.
    Nowhere,
}

impl ConfigLocation {
    /// The config file's location from `--config` and the `XDG_CONFIG_HOME` and `HOME`
    /// environment variables (passed in, so that this stays testable).
    pub fn from_env(explicit: Option<PathBuf>, xdg_config_home: Option<OsString>, home: Option<OsString>) -> Self {
        if let Some(path) = explicit {
            return ConfigLocation::Explicit(path);
        }
        let base = match (xdg_config_home.filter(|x| !x.is_empty()), home.filter(|h| !h.is_empty())) {
            (Some(xdg), _) => PathBuf::from(xdg),
            (None, Some(home)) => PathBuf::from(home).join(".config"),
            (None, None) => return ConfigLocation::Nowhere,
        };
        ConfigLocation::Default(base.join("halftone").join("config.toml"))
    }
}

/// The server URL and token to use.
#[derive(Clone, PartialEq, Eq)]
pub struct Profile {
    /// The server's base URL.
    pub server: String,
    /// The admin token, if one was given anywhere.
    pub token: Option<String>,
    /// Where the token could have come from, for the error when it is missing.
    config_hint: String,
}

impl std::fmt::Debug for Profile {
    // The token is a secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Profile {
    /// Flags (and their environment variables) first, then the config file's profile section,
    /// then its top level, then [`DEFAULT_SERVER`].
    pub fn resolve(global: &Global, location: &ConfigLocation) -> anyhow::Result<Profile> {
        let read = |path: &Path, text: &str| parse(text).with_context(|| format!("in {}", path.display()));
        let (file, path) = match location {
            ConfigLocation::Explicit(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("could not read the config file {}", path.display()))?;
                (read(path, &text)?, Some(path.as_path()))
            }
            ConfigLocation::Default(path) => match std::fs::read_to_string(path) {
                Ok(text) => (read(path, &text)?, Some(path.as_path())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (ConfigFile::default(), Some(path.as_path())),
                Err(e) => return Err(e).with_context(|| format!("could not read the config file {}", path.display())),
            },
            ConfigLocation::Nowhere => (ConfigFile::default(), None),
        };
        Self::merge(global, &file, path)
    }

    fn merge(global: &Global, file: &ConfigFile, path: Option<&Path>) -> anyhow::Result<Profile> {
        let section = match &global.profile {
            Some(name) => match file.profiles.get(name) {
                Some(section) => section.clone(),
                None => bail!(
                    "there is no [profile.{name}] in {}",
                    path.map_or_else(|| "the config file (none was found)".to_owned(), |p| p.display().to_string())
                ),
            },
            None => Entry::default(),
        };
        let pick = |flag: &Option<String>, from_section: &Option<String>, top: &Option<String>| {
            flag.clone().or_else(|| from_section.clone()).or_else(|| top.clone()).filter(|s| !s.trim().is_empty())
        };
        let server =
            pick(&global.server, &section.server, &file.top.server).unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let token = pick(&global.token, &section.token, &file.top.token);
        let config_hint = path.map_or_else(|| "a config file".to_owned(), |p| p.display().to_string());
        Ok(Profile { server, token, config_hint })
    }

    /// An admin client for this profile; an error when no token was given.
    pub fn admin(&self) -> anyhow::Result<AdminClient> {
        let Some(token) = &self.token else {
            bail!("no admin token: pass --token, set HALFTONE_TOKEN, or put token = \"...\" in {}", self.config_hint);
        };
        Ok(AdminClient::new(&self.server, token.as_str())?)
    }
}

/// One section of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// `server = "..."`.
    pub server: Option<String>,
    /// `token = "..."`.
    pub token: Option<String>,
}

/// The config file: top-level keys and `[profile.NAME]` sections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    /// Keys before any section header.
    pub top: Entry,
    /// Sections by name.
    pub profiles: BTreeMap<String, Entry>,
}

/// Parses the config file subset described in the module documentation.
pub fn parse(text: &str) -> anyhow::Result<ConfigFile> {
    let mut file = ConfigFile::default();
    let mut current: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = strip_comment(header).trim_end();
            let name =
                header.strip_suffix(']').and_then(|h| h.trim().strip_prefix("profile.")).map(str::trim).filter(
                    |name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)),
                );
            let Some(name) = name else {
                bail!("line {n}: expected a section header like [profile.staging]");
            };
            if file.profiles.insert(name.to_owned(), Entry::default()).is_some() {
                bail!("line {n}: [profile.{name}] appears twice");
            }
            current = Some(name.to_owned());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {n}: expected key = \"value\"");
        };
        let value = parse_string(value.trim()).with_context(|| format!("line {n}"))?;
        let entry = match &current {
            Some(name) => file.profiles.entry(name.clone()).or_default(),
            None => &mut file.top,
        };
        let slot = match key.trim() {
            "server" => &mut entry.server,
            "token" => &mut entry.token,
            other => bail!("line {n}: unknown key {other:?} (expected server or token)"),
        };
        if slot.replace(value).is_some() {
            bail!("line {n}: {} is set twice in the same section", key.trim());
        }
    }
    Ok(file)
}

/// A basic TOML string: `"..."` with `\"`, `\\`, `\n` and `\t` escapes, then an optional
/// comment.
fn parse_string(s: &str) -> anyhow::Result<String> {
    let Some(body) = s.strip_prefix('"') else {
        bail!("expected a double-quoted string");
    };
    let mut out = String::new();
    let mut chars = body.chars();
    loop {
        match chars.next() {
            None => bail!("the string is not closed with a \""),
            Some('"') => break,
            Some('\\') => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                other => bail!("unsupported escape \\{}", other.map(String::from).unwrap_or_default()),
            },
            Some(c) => out.push(c),
        }
    }
    let rest = chars.as_str().trim();
    if !(rest.is_empty() || rest.starts_with('#')) {
        bail!("unexpected text after the string: {rest:?}");
    }
    Ok(out)
}

fn strip_comment(s: &str) -> &str {
    s.split_once('#').map_or(s, |(before, _)| before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(server: Option<&str>, token: Option<&str>, profile: Option<&str>) -> Global {
        Global {
            server: server.map(Into::into),
            token: token.map(Into::into),
            config: None,
            profile: profile.map(Into::into),
            json: false,
        }
    }

    const FILE: &str = r#"
# top
server = "https://prod.example.com"   # the real one
token = "top-token"

[profile.staging]  # comments are fine here too
server = "https://staging.example.com"
token = "a \"quoted\" token"
"#;

    #[test]
    fn the_config_subset_parses() {
        let f = parse(FILE).unwrap();
        assert_eq!(f.top.server.as_deref(), Some("https://prod.example.com"));
        assert_eq!(f.profiles["staging"].token.as_deref(), Some("a \"quoted\" token"));
        for (bad, says) in [
            ("server = https://x", "line 1"),
            ("[staging]", "[profile.staging]"),
            ("colour = \"red\"", "unknown key"),
            ("server = \"a\"\nserver = \"b\"", "set twice"),
            ("token = \"open", "line 1"),
            ("[profile.a]\n[profile.a]", "appears twice"),
            ("server = \"a\" b", "line 1"),
        ] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn flags_beat_profiles_beat_the_top_level() {
        let f = parse(FILE).unwrap();
        let p = |g| Profile::merge(&g, &f, None).unwrap();
        let top = p(global(None, None, None));
        assert_eq!((top.server.as_str(), top.token.as_deref()), ("https://prod.example.com", Some("top-token")));
        let staging = p(global(None, None, Some("staging")));
        assert_eq!(staging.server, "https://staging.example.com");
        let flagged = p(global(Some("http://h:1"), Some("t"), Some("staging")));
        assert_eq!((flagged.server.as_str(), flagged.token.as_deref()), ("http://h:1", Some("t")));
        let e = Profile::merge(&global(None, None, Some("nope")), &f, None).unwrap_err();
        assert!(e.to_string().contains("no [profile.nope]"), "{e}");
    }

    #[test]
    fn without_anything_the_local_server_is_used_and_a_token_is_asked_for() {
        let p = Profile::merge(&global(None, None, None), &ConfigFile::default(), None).unwrap();
        assert_eq!(p.server, DEFAULT_SERVER);
        let e = p.admin().unwrap_err();
        assert!(e.to_string().starts_with("no admin token: pass --token"), "{e}");
        assert!(!format!("{:?}", Profile { token: Some("s3cret".into()), ..p }).contains("s3cret"));
    }

    #[test]
    fn the_default_location_follows_xdg() {
        let at =
            |x: Option<&str>, h: Option<&str>| ConfigLocation::from_env(None, x.map(Into::into), h.map(Into::into));
        assert_eq!(at(Some("/x"), Some("/h")), ConfigLocation::Default("/x/halftone/config.toml".into()));
        assert_eq!(at(None, Some("/h")), ConfigLocation::Default("/h/.config/halftone/config.toml".into()));
        assert_eq!(at(Some(""), None), ConfigLocation::Nowhere);
        assert_eq!(
            ConfigLocation::from_env(Some("/c.toml".into()), None, None),
            ConfigLocation::Explicit("/c.toml".into())
        );
    }

    #[test]
    fn an_explicit_config_must_exist_and_the_default_may_not() {
        let none = global(None, None, None);
        let e = Profile::resolve(&none, &ConfigLocation::Explicit("/nonexistent/c.toml".into())).unwrap_err();
        assert!(e.to_string().contains("could not read the config file /nonexistent/c.toml"), "{e}");
        let p = Profile::resolve(&none, &ConfigLocation::Default("/nonexistent/c.toml".into())).unwrap();
        assert_eq!(p.server, DEFAULT_SERVER);
    }
}
