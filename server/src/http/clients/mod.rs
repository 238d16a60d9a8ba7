//! The other updaters' protocols, one module each: [`tauri`] (Tauri's updater and
//! cargo-packager), [`sparkle`] (Sparkle's appcast on macOS), [`electron`] (electron-updater's
//! generic provider), [`codepush`] (the CodePush acquisition API, with its status reports). Each handler translates its client's request into the same `CheckIn` as
//! `POST /v1/apps/{app}/check`, asks `Catalog::select` on the snapshot, counts the check-in like
//! an SDK check-in ([`device::observe`](super::device::observe)) and renders the client's format.
//! Nothing is cached across devices, and nothing here touches disk or waits on a writer.
//!
//! [`identity`] decides who the device is: the client's own stable id where it sends one,
//! otherwise a hash of client IP and user agent; every answer names the identity it used in
//! the `Halftone-Device-Id` and `Halftone-Identity` headers, for `halftone explain`.

pub mod codepush;
pub mod electron;
pub mod identity;
pub mod sparkle;
pub mod tauri;

use actix_web::HttpRequest;
use halftone_channels::{
    AppId, ChannelName, CheckIn, CheckKind, Decision, OsVersion, Platform, Target, Traits, Version,
};

use crate::http::client_ip::client_ip;
use crate::problem::ApiError;
use crate::snapshot::AppSnapshot;
use crate::state::State;
use identity::Identity;

/// A client's check-in, before the decision: the device and what it runs.
pub struct ClientCheck {
    /// Who the device is, and how that was decided.
    pub identity: Identity,
    /// The version it runs.
    pub current_version: Version,
    /// The channel it follows.
    pub channel: ChannelName,
    /// What it runs on.
    pub target: Target,
    /// Its OS version, when the client sends it.
    pub os_version: Option<OsVersion>,
    /// Traits the protocol tells (CodePush: the binary's version), for rules.
    pub traits: Traits,
}

/// The channel a client follows: `?channel=` when given, `stable` otherwise.
pub fn channel(given: Option<&str>) -> Result<ChannelName, ApiError> {
    Ok(given.map(ChannelName::parse).transpose()?.unwrap_or_else(ChannelName::stable))
}

/// The decision for one client check-in, counted in the figures. `offerable` says whether the
/// client can take an offered artifact (it has what the client verifies): an offer it cannot
/// take is answered as "up to date" and not counted as an offer.
pub fn decide<'s>(
    state: &State,
    req: &HttpRequest,
    app: &'s AppSnapshot,
    check: &ClientCheck,
    offerable: impl Fn(&halftone_channels::Artifact) -> bool,
) -> Result<Decision<'s>, ApiError> {
    let checkin = CheckIn {
        device_id: check.identity.device_id().clone(),
        user_id: None,
        current_version: check.current_version.clone(),
        channel: check.channel.clone(),
        platform: Platform { target: check.target.clone(), os_version: check.os_version.clone() },
        locale: None,
        traits: check.traits.clone(),
        ip: client_ip(req, &state.config.trusted_proxies),
        kind: CheckKind::Background,
    };
    let selection = app.catalog.select_noting_release(&checkin)?;
    let decision = match selection.decision {
        Decision::Available(o) if offerable(o.artifact) => Decision::Available(o),
        _ => Decision::UpToDate,
    };
    let offered = match &decision {
        Decision::Available(o) => Some((o.release.version().clone(), o.rollout.channel.clone())),
        Decision::UpToDate => None,
    };
    super::device::observe(state, app, &checkin, selection.running, offered);
    Ok(decision)
}

/// The app of a client route, from the snapshot.
pub fn app<'s>(snapshot: &'s crate::snapshot::Snapshot, id: &str) -> Result<&'s AppSnapshot, ApiError> {
    let id = AppId::parse(id)?;
    snapshot.apps.get(&id).map(|a| &**a).ok_or_else(|| crate::views::no_app(&id))
}

/// The absolute URL of a stored artifact, on the host and scheme the client used (clients need
/// absolute URLs), or the artifact's external URL.
pub fn artifact_url(req: &HttpRequest, artifact: &halftone_channels::Artifact) -> String {
    match &artifact.url {
        Some(u) => u.to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}/v1/artifacts/{}", info.scheme(), info.host(), artifact.sha256)
        }
    }
}
