//! Tauri's updater and cargo-packager's: `GET
//! /v1/apps/{app}/tauri/{target}/{arch}/{current_version}` (the app's endpoint is this path
//! with `{{target}}`, `{{arch}}` and `{{current_version}}`), optional `?channel=` (default
//! `stable`) and `?format=` (cargo-packager's installer kind: `app`, `appimage`, `nsis`, `wix`;
//! by default `app` on macOS, `nsis` on Windows, `appimage` elsewhere). The device id is the
//! `Halftone-Device-Id` header when the app adds it, else the IP and user agent fallback.
//!
//! `204 No Content` when there is nothing to take (also when the offered build was published
//! without client signatures: the client could not verify it), otherwise the "dynamic" JSON
//! both clients read: `version`, `notes`, `url`, `signature` (the minisign `.sig` file in
//! base64) and `format`.

use actix_web::{HttpRequest, HttpResponse, web};
use halftone_channels::{Arch, Decision, Os, Target, Version};
use serde::{Deserialize, Serialize};

use super::identity::{DEVICE_ID_HEADER, Identity};
use super::{ClientCheck, app, artifact_url, channel, decide};
use crate::problem::ApiError;
use crate::state::State;

/// The query of a Tauri check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    channel: Option<String>,
    format: Option<String>,
}

/// The update JSON (the "dynamic" shape of both clients).
#[derive(Serialize)]
struct Update<'a> {
    version: &'a Version,
    notes: &'a str,
    url: String,
    signature: String,
    format: &'a str,
}

/// Tauri's and cargo-packager's names for an os and an arch, in Halftone's spelling: Tauri says
/// `darwin` for macOS and `i686` for 32-bit x86.
fn target(os: &str, arch: &str) -> Result<Target, ApiError> {
    let os = match os {
        "darwin" => "macos",
        other => other,
    };
    let arch = match arch {
        "i686" => "x86",
        other => other,
    };
    Ok(Target { os: Os::parse(os)?, arch: Arch::parse(arch)? })
}

/// The installer kind cargo-packager needs (Tauri ignores it).
fn format<'q>(given: Option<&'q str>, os: &Os) -> Result<&'q str, ApiError> {
    match given {
        Some(f @ ("app" | "appimage" | "nsis" | "wix")) => Ok(f),
        Some(other) => Err(ApiError::BadRequest(format!(
            "format {:?} is not one of app, appimage, nsis, wix",
            other.chars().take(80).collect::<String>()
        ))),
        None => Ok(match os.as_str() {
            "macos" => "app",
            "windows" => "nsis",
            _ => "appimage",
        }),
    }
}

/// `GET /v1/apps/{app}/tauri/{target}/{arch}/{current_version}`
pub async fn check(
    req: HttpRequest,
    path: web::Path<(String, String, String, String)>,
    query: web::Query<Query>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let (app_id, os, arch, version) = path.into_inner();
    let target = target(&os, &arch)?;
    let format = format(query.format.as_deref(), &target.os)?;
    let check = ClientCheck {
        identity: Identity::from_header(&req, DEVICE_ID_HEADER, &state.config.trusted_proxies)?,
        current_version: Version::parse(version.trim_start_matches('v'))?,
        channel: channel(query.channel.as_deref())?,
        target,
        os_version: None,
        traits: Default::default(),
    };
    let snapshot = state.snapshot();
    let app = app(&snapshot, &app_id)?;
    let decision = decide(&state, &req, app, &check, |a| a.clients.is_some())?;
    let mut response = match &decision {
        Decision::UpToDate => HttpResponse::NoContent(),
        Decision::Available(_) => HttpResponse::Ok(),
    };
    for h in check.identity.headers() {
        response.insert_header(h);
    }
    response.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    Ok(match decision {
        Decision::UpToDate => response.finish(),
        Decision::Available(offer) => {
            let clients = offer.artifact.clients.as_ref().expect("offerable artifacts have client signatures");
            response.json(Update {
                version: offer.release.version(),
                notes: offer.release.notes(),
                url: artifact_url(&req, offer.artifact),
                signature: clients.minisign.to_base64(),
                format,
            })
        }
    })
}
