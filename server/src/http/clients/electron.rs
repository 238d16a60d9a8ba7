//! electron-updater's generic provider: `GET /v1/apps/{app}/electron/{file}`, where the app's
//! `publish` (or `setFeedURL`) URL is `https://…/v1/apps/{app}/electron/` and `{file}` is the
//! channel file electron-updater asks for: `${channel}${suffix}.yml`, the suffix `-mac`,
//! `-linux`, `-linux-arm64`, `-linux-armv7l`, or none on Windows. Channels: `latest` is
//! Halftone's `stable`, `alpha` its `unstable`, others by their name. The target comes from the
//! suffix (`windows/x86_64`, `macos/x86_64`, `linux/x86_64`, `linux/aarch64`, `linux/armv7`;
//! `?arch=` on the URL overrides the arch).
//!
//! The device id is the `x-user-staging-id` header electron-updater sends (a UUID it keeps in
//! the app's data dir). The running version is not sent by electron-updater: an app may send it
//! in `Halftone-Current-Version` (`autoUpdater.requestHeaders`); without it the device is
//! treated as running none of the releases and is served the newest build it may see.
//!
//! The file is JSON, which is YAML (electron-updater parses it with js-yaml): `version`,
//! `files` (`url`, `sha512`, `size`), `path`, `sha512`, `releaseNotes`. Up to date: the
//! device's own version (electron-updater then reports no update). Nothing to serve at all (no
//! release visible to a device whose version is unknown) is a 404 problem, which
//! electron-updater reports as a missing channel file.

use actix_web::{HttpRequest, HttpResponse, web};
use halftone_channels::{Arch, ChannelName, Decision, Os, Target, Version};
use serde::{Deserialize, Serialize};

use super::identity::Identity;
use super::{ClientCheck, app, artifact_url, decide};
use crate::problem::ApiError;
use crate::state::State;

/// The header electron-updater sends with its staging user id.
pub const STAGING_ID_HEADER: &str = "x-user-staging-id";
/// The header an app may add with its running version.
pub const VERSION_HEADER: &str = "halftone-current-version";

/// The query of a channel file request.
#[derive(Debug, Deserialize)]
pub struct Query {
    arch: Option<String>,
}

/// One file of the update info.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct File {
    url: String,
    sha512: String,
    size: u64,
}

/// The update info (`latest.yml`), as electron-builder writes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UpdateInfo<'a> {
    version: &'a Version,
    files: Vec<File>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha512: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_notes: Option<&'a str>,
}

/// The channel and target a channel file names.
fn parse_file(file: &str, arch: Option<&str>) -> Result<(ChannelName, Target), ApiError> {
    let bad = || {
        ApiError::NotFound(format!(
            "there is no channel file {:?}: expected <channel>[-mac|-linux[-arm64|-armv7l]].yml",
            file.chars().take(80).collect::<String>()
        ))
    };
    let stem = file.strip_suffix(".yml").ok_or_else(bad)?;
    let suffixes = [
        ("-linux-arm64", "linux", "aarch64"),
        ("-linux-armv7l", "linux", "armv7"),
        ("-linux", "linux", "x86_64"),
        ("-mac", "macos", "x86_64"),
    ];
    let (channel, os, default_arch) = suffixes
        .iter()
        .find_map(|(suffix, os, a)| stem.strip_suffix(suffix).map(|c| (c, *os, *a)))
        .unwrap_or((stem, "windows", "x86_64"));
    let channel = match channel {
        "latest" => "stable",
        "alpha" => "unstable",
        other => other,
    };
    let channel = ChannelName::parse(channel).map_err(|_| bad())?;
    Ok((channel, Target { os: Os::parse(os)?, arch: Arch::parse(arch.unwrap_or(default_arch))? }))
}

/// `GET /v1/apps/{app}/electron/{file}`
pub async fn channel_file(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<Query>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let (app_id, file) = path.into_inner();
    let (channel, target) = parse_file(&file, query.arch.as_deref())?;
    let version = req.headers().get(VERSION_HEADER).map(|v| Version::parse(v.to_str().unwrap_or("?"))).transpose()?;
    let check = ClientCheck {
        identity: Identity::from_header(&req, STAGING_ID_HEADER, &state.config.trusted_proxies)?,
        current_version: version.clone().unwrap_or_else(|| Version::parse("0.0.0").expect("a version")),
        channel,
        target,
        os_version: None,
        traits: Default::default(),
    };
    let snapshot = state.snapshot();
    let app = app(&snapshot, &app_id)?;
    let decision = decide(&state, &req, app, &check, |a| a.clients.is_some())?;
    let info = match &decision {
        Decision::Available(offer) => {
            let clients = offer.artifact.clients.as_ref().expect("offerable artifacts have client signatures");
            let url = artifact_url(&req, offer.artifact);
            let sha512 = clients.sha512.to_string();
            UpdateInfo {
                version: offer.release.version(),
                files: vec![File { url: url.clone(), sha512: sha512.clone(), size: offer.artifact.size }],
                path: Some(url),
                sha512: Some(sha512),
                release_notes: Some(offer.release.notes()).filter(|n| !n.is_empty()),
            }
        }
        Decision::UpToDate => match &version {
            Some(v) => UpdateInfo { version: v, files: Vec::new(), path: None, sha512: None, release_notes: None },
            None => {
                return Err(ApiError::NotFound(format!(
                    "app {} has no release for {} on {} yet",
                    app.id, check.target, check.channel
                )));
            }
        },
    };
    let body = serde_json::to_vec(&info).map_err(anyhow::Error::from)?;
    let mut response = HttpResponse::Ok();
    for h in check.identity.headers() {
        response.insert_header(h);
    }
    Ok(response
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .content_type("text/yaml; charset=utf-8")
        .body(body))
}
