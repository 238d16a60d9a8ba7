//! What the SDK learns about the machine it runs on: the target (os and arch in Halftone's
//! names), the OS version and the locale. Detection is best effort and happens once, when the
//! client is built; every value can be overridden on the builder. The parsing is pure and
//! tested; only [`detect_os_version`] and the environment lookups touch the system.

use std::process::Command;

use halftone_channels::{Arch, Locale, Os, OsVersion, ParseError, Target};

/// The target this binary was compiled for, in Halftone's names.
///
/// Rust's `std::env::consts` names are already Halftone's for the os (`windows`, `macos`,
/// `linux`, `android`, `ios`, ...) and the arch (`x86_64`, `aarch64`, `x86`, ...), except
/// 32-bit ARM, which Rust calls `arm` and Halftone calls `armv7` when the v7 instructions
/// are available.
pub(crate) fn compiled_target() -> Result<Target, ParseError> {
    target_from(std::env::consts::OS, std::env::consts::ARCH, cfg!(target_feature = "v7"))
}

fn target_from(os: &str, arch: &str, armv7: bool) -> Result<Target, ParseError> {
    let arch = match arch {
        "arm" if armv7 => "armv7",
        other => other,
    };
    Ok(Target { os: Os::parse(os)?, arch: Arch::parse(arch)? })
}

/// The locale from the environment (`LC_ALL`, then `LC_MESSAGES`, then `LANG`, as POSIX
/// orders them), normalised: `zh_CN.UTF-8` becomes `zh-cn`. `C`, `POSIX` and unparsable values
/// give `None`.
pub(crate) fn env_locale() -> Option<Locale> {
    locale_from(|name| std::env::var(name).ok())
}

fn locale_from(lookup: impl Fn(&str) -> Option<String>) -> Option<Locale> {
    let value = ["LC_ALL", "LC_MESSAGES", "LANG"].iter().filter_map(|name| lookup(name)).find(|v| !v.is_empty())?;
    // `language_TERRITORY.codeset@modifier`: only the first two parts name a locale.
    let name = value.split(['.', '@']).next().unwrap_or_default();
    if name == "C" || name == "POSIX" {
        return None;
    }
    Locale::parse(name).ok()
}

/// The OS version, best effort: `/etc/os-release` `VERSION_ID` or `uname -r` on Linux,
/// `sw_vers -productVersion` on macOS, `ver` on Windows, `getprop` on Android; `None` when
/// unknown.
pub(crate) fn detect_os_version(os: &Os) -> Option<OsVersion> {
    let text = match os.as_str() {
        "linux" => std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| os_release_version(&t))
            .or_else(|| command_output("uname", &["-r"])),
        "macos" => command_output("sw_vers", &["-productVersion"]),
        "windows" => command_output("cmd", &["/C", "ver"]).and_then(|t| windows_version(&t)),
        "android" => command_output("getprop", &["ro.build.version.release"]),
        _ => None,
    }?;
    OsVersion::parse(text.trim()).ok()
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// `VERSION_ID` from an os-release file (`VERSION_ID="22.04"` gives `22.04`).
fn os_release_version(text: &str) -> Option<String> {
    let value = text.lines().find_map(|line| line.trim().strip_prefix("VERSION_ID="))?;
    let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
    (!value.is_empty()).then(|| value.to_owned())
}

/// The version in the output of Windows' `ver`: `Microsoft Windows [Version 10.0.19045.3803]`.
fn windows_version(text: &str) -> Option<String> {
    let start = text.find("Version ")? + "Version ".len();
    let rest = &text[start..];
    let end = rest.find(']').unwrap_or(rest.len());
    Some(rest[..end].trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_use_halftone_names() {
        let t = target_from("linux", "x86_64", false).unwrap();
        assert_eq!((t.os.as_str(), t.arch.as_str()), ("linux", "x86_64"));
        let t = target_from("android", "arm", true).unwrap();
        assert_eq!((t.os.as_str(), t.arch.as_str()), ("android", "armv7"));
        assert_eq!(target_from("linux", "arm", false).unwrap().arch.as_str(), "arm");
        assert_eq!(target_from("macos", "aarch64", false).unwrap().os.as_str(), "macos");
        assert!(compiled_target().is_ok());
    }

    fn locale(vars: &[(&str, &str)]) -> Option<String> {
        locale_from(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
            .map(|l| l.as_str().to_owned())
    }

    #[test]
    fn locale_follows_posix_precedence_and_normalises() {
        assert_eq!(locale(&[("LANG", "zh_CN.UTF-8")]).as_deref(), Some("zh-cn"));
        assert_eq!(locale(&[("LANG", "de_DE@euro")]).as_deref(), Some("de-de"));
        assert_eq!(locale(&[("LANG", "en_US.UTF-8"), ("LC_ALL", "pt_BR")]).as_deref(), Some("pt-br"));
        assert_eq!(locale(&[("LANG", "en_US"), ("LC_MESSAGES", "fr_FR.UTF-8")]).as_deref(), Some("fr-fr"));
        assert_eq!(locale(&[("LC_ALL", ""), ("LANG", "ja_JP")]).as_deref(), Some("ja-jp"));
        assert_eq!(locale(&[("LANG", "C.UTF-8")]), None);
        assert_eq!(locale(&[("LANG", "POSIX")]), None);
        assert_eq!(locale(&[("LANG", "???")]), None);
        assert_eq!(locale(&[]), None);
    }

    #[test]
    fn os_versions_are_read_from_system_text() {
        let os_release = "NAME=\"Ubuntu\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\nVERSION_ID=\"22.04\"\n";
        assert_eq!(os_release_version(os_release).as_deref(), Some("22.04"));
        assert_eq!(os_release_version("ID=debian\nVERSION_ID=12\n").as_deref(), Some("12"));
        assert_eq!(os_release_version("NAME=Arch\nBUILD_ID=rolling\n"), None);
        let ver = "\r\nMicrosoft Windows [Version 10.0.19045.3803]\r\n";
        assert_eq!(windows_version(ver).as_deref(), Some("10.0.19045.3803"));
        assert_eq!(windows_version("nothing here"), None);
    }
}
