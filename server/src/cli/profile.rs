//! Where the server is and which token to use: a [`Profile`], resolved once from flags (or
//! their environment variables, which clap reads), then the config file, then the default.
//!
//! The config file is TOML (`halftone login` writes it, mode 0600):
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
//! Only `server` and `token` string keys, at the top and in `[profile.NAME]` sections, are
//! understood; anything else is an error, so a typo never silently sends a command to the wrong
//! server. A config file that holds a token and that other users can read is used, with a
//! warning on stderr ([`exposure_warning`]).

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
        let read = |path: &Path, text: &str| {
            let file = parse(text).with_context(|| format!("in {}", path.display()))?;
            let has_token = file.top.token.is_some() || file.profiles.values().any(|p| p.token.is_some());
            if let Some(warning) = has_token.then(|| exposure_warning(path)).flatten() {
                eprintln!("{warning}");
            }
            anyhow::Ok(file)
        };
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
            bail!(
                "no admin token: pass --token, set HALFTONE_TOKEN, run `halftone login`, or put token = \"...\" in {}",
                self.config_hint
            );
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

/// Parses the config file (TOML, through `toml_edit`) and checks its shape: only `server` and
/// `token` strings, at the top and in `[profile.NAME]` tables.
pub fn parse(text: &str) -> anyhow::Result<ConfigFile> {
    let doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| anyhow::anyhow!("{e}"))?;
    let mut file = ConfigFile::default();
    for (key, item) in doc.iter() {
        match key {
            "profile" => {
                let Some(profiles) = item.as_table_like() else {
                    bail!("profile must be a table of [profile.NAME] sections");
                };
                for (name, section) in profiles.iter() {
                    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
                        bail!("[profile.{name}]: a profile's name is letters, digits, '-' and '_'");
                    }
                    let Some(section) = section.as_table_like() else {
                        bail!("profile.{name} must be a [profile.{name}] section");
                    };
                    let mut entry = Entry::default();
                    for (key, value) in section.iter() {
                        entry.set(key, value).with_context(|| format!("in [profile.{name}]"))?;
                    }
                    file.profiles.insert(name.to_owned(), entry);
                }
            }
            other if item.is_table_like() => {
                bail!("unknown section [{other}]: expected a section header like [profile.{other}]")
            }
            _ => file.top.set(key, item)?,
        }
    }
    Ok(file)
}

impl Entry {
    fn set(&mut self, key: &str, value: &toml_edit::Item) -> anyhow::Result<()> {
        let slot = match key {
            "server" => &mut self.server,
            "token" => &mut self.token,
            other => bail!("unknown key {other:?} (expected server or token)"),
        };
        let Some(value) = value.as_str() else {
            bail!("{key} must be a string in double quotes");
        };
        *slot = Some(value.to_owned());
        Ok(())
    }
}

/// Saves `server` and `token` in the config file at `path`, at the top or in
/// `[profile.NAME]`, keeping everything else in it (comments included). The file is written
/// whole to a temporary file with mode 0600 and renamed into place, so it is never half
/// written nor readable by others; its directory is made (0700) when missing.
pub fn save(path: &Path, profile: Option<&str>, server: &str, token: &str) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("could not read the config file {}", path.display())),
    };
    parse(&text).with_context(|| format!("in {}; fix it before logging in", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text.parse().expect("parsed just above");
    let section = match profile {
        None => doc.as_table_mut(),
        Some(name) => {
            let profiles = doc.entry("profile").or_insert_with(|| {
                let mut t = toml_edit::Table::new();
                t.set_implicit(true);
                toml_edit::Item::Table(t)
            });
            let profiles = profiles.as_table_mut().context("profile is not a table")?;
            profiles
                .entry(name)
                .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
                .as_table_mut()
                .with_context(|| format!("profile.{name} is not a table"))?
        }
    };
    section["server"] = toml_edit::value(server);
    section["token"] = toml_edit::value(token);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    make_private_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.toml.")
        .permissions(private_file())
        .tempfile_in(dir)
        .with_context(|| format!("could not write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, doc.to_string().as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).with_context(|| format!("could not write the config file {}", path.display()))?;
    Ok(())
}

#[cfg(unix)]
fn private_file() -> std::fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(0o600)
}

#[cfg(not(unix))]
fn private_file() -> std::fs::Permissions {
    std::fs::metadata(".").map(|m| m.permissions()).unwrap_or_else(|_| unreachable!("the working directory exists"))
}

fn make_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("could not make {}", dir.display()))
}

/// A warning when the file at `path`, which holds a token, can be read by other users of the
/// machine (any group or other permission bit), with the command that fixes it.
pub fn exposure_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "warning: {} holds a token and other users can read it (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
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
            ("[profile.s]\ncolour = \"red\"", "in [profile.s]"),
            ("server = 3", "server must be a string"),
            ("server = \"a\"\nserver = \"b\"", "line 2"),
            ("token = \"open", "line 1"),
            ("[profile.a]\n[profile.a]", "line 2"),
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
    fn login_saves_a_profile_keeping_the_rest_and_only_the_owner_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("halftone").join("config.toml");
        save(&path, None, "http://a:1", "tok-a").unwrap();
        save(&path, Some("staging"), "https://s.example.com", "tok-s").unwrap();
        save(&path, None, "http://a:2", "tok-a2").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let f = parse(&text).unwrap();
        assert_eq!((f.top.server.as_deref(), f.top.token.as_deref()), (Some("http://a:2"), Some("tok-a2")));
        assert_eq!(f.profiles["staging"].token.as_deref(), Some("tok-s"), "{text}");
        assert_eq!(exposure_warning(&path), None, "written 0600");
        // A comment someone wrote survives a login.
        std::fs::write(&path, format!("# mine\n{text}")).unwrap();
        save(&path, Some("prod"), "https://p", "tok-p").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# mine\n"), "{text}");
        assert_eq!(parse(&text).unwrap().profiles.len(), 2);
        // A file it cannot understand is not overwritten.
        std::fs::write(&path, "colour = \"red\"\n").unwrap();
        assert!(save(&path, None, "http://x", "t").is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "colour = \"red\"\n");
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_others_can_read_is_warned_about() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "token = \"t\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let warning = exposure_warning(&path).unwrap();
        assert!(warning.contains("other users can read it (mode 644); run `chmod 600"), "{warning}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(exposure_warning(&path), None);
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
