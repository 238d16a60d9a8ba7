//! The CodePush acquisition API, as the CodePush JavaScript acquisition SDK (`code-push`'s
//! `AcquisitionManager`, inside react-native-code-push) calls it. The app's `CodePushServerURL`
//! is `https://…/v1/apps/{app}/codepush/`; the routes under it, in both spellings the SDK
//! versions use:
//!
//! - the update check: `GET updateCheck` (camelCase query and answer, older SDKs) and
//!   `GET v0.1/public/codepush/update_check` (snake_case, `code-push` 4.x);
//! - status reports: `POST reportStatus/deploy` and `POST reportStatus/download`, and
//!   `POST v0.1/public/codepush/report_status/{deploy,download}`.
//!
//! The deployment key (in the query or the report) routes the device to one of the app's
//! channels and targets ([`CodePushKey`]); an unknown key is a 404. The device id is
//! `codepush-` and the client's `clientUniqueId` ([`Identity::CodePush`]). A Halftone release
//! with an artifact for the key's target is a CodePush package: its `label` is the version,
//! its `packageHash` the artifact's SHA-256 in hex, `isMandatory` Halftone's `critical`, and
//! `appVersion` (`target_binary_range`) the binary version the device sent, which
//! react-native-code-push compares with its own to keep the package. The version the device
//! runs ([`running_version`]) is its package's label, else the release whose artifact has its
//! package hash, else its binary version; nothing at or below it is offered. The binary version
//! is also the check-in's `binary_version` trait, for rules that keep a bundle to the binaries
//! it was built for.
//!
//! Status reports carry no report token (the client cannot); the server makes the events
//! itself and counts them only for a release with an artifact for the key's target and a
//! rollout that admits the device now or is halted (so failures reported after a halt still
//! count), once per device, release and kind, within the per-network cap. `DeploymentSucceeded`
//! is an install and a first run, `DeploymentFailed` an install failure (react-native-code-push
//! rolled the bundle back), a download report a download. docs/clients.md says what this
//! trusts.

use actix_web::{HttpRequest, HttpResponse, web};
use halftone_channels::wire::{Event, EventKind};
use halftone_channels::{Decision, Exclusion, Serving, Sha256, Target, TraitName, TraitValue, Traits, Version};
use serde::{Deserialize, Serialize};

use super::identity::Identity;
use super::{ClientCheck, app, artifact_url, decide};
use crate::feedback::FeedbackError;
use crate::http::{body, client_ip::client_ip};
use crate::network_cap::Network;
use crate::problem::ApiError;
use crate::snapshot::{AppSnapshot, CodePushKey};
use crate::state::State;

/// The trait a CodePush check-in carries with the binary's version (as the app sent it).
pub const BINARY_VERSION_TRAIT: &str = "binary_version";

/// Which spelling of the protocol a request used: the answer is in the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `updateCheck`, camelCase (`updateInfo`, `downloadURL`, ...).
    Legacy,
    /// `v0.1/public/codepush/update_check`, snake_case (`update_info`, `download_url`, ...).
    V01,
}

/// The update check's query, in either spelling (unknown parameters, like `is_companion`, are
/// ignored).
#[derive(Debug, Deserialize)]
pub struct CheckQuery {
    #[serde(alias = "deploymentKey")]
    deployment_key: String,
    #[serde(alias = "appVersion")]
    app_version: String,
    #[serde(default, alias = "packageHash")]
    package_hash: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default, alias = "clientUniqueId")]
    client_unique_id: Option<String>,
}

/// A status report's body, in either spelling (unknown fields are ignored).
#[derive(Debug, Deserialize)]
pub struct Report {
    #[serde(alias = "deploymentKey")]
    deployment_key: String,
    #[serde(default, alias = "clientUniqueId")]
    client_unique_id: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, alias = "appVersion")]
    app_version: Option<String>,
    #[serde(default, alias = "previousLabelOrAppVersion")]
    previous_label_or_app_version: Option<String>,
}

/// The update info in the answer; serialised in the request's [`Dialect`].
#[derive(Debug, Default, PartialEq)]
pub struct UpdateInfo {
    /// Whether a package is offered.
    pub is_available: bool,
    /// Its download URL.
    pub download_url: String,
    /// Its release notes.
    pub description: String,
    /// Halftone's `critical`.
    pub is_mandatory: bool,
    /// The binary version the device sent (the package's `appVersion`).
    pub app_version: String,
    /// The artifact's SHA-256, hex.
    pub package_hash: String,
    /// The version.
    pub label: String,
    /// The artifact's size.
    pub package_size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LegacyInfo<'a> {
    #[serde(rename = "downloadURL")]
    download_url: &'a str,
    description: &'a str,
    is_available: bool,
    is_mandatory: bool,
    app_version: &'a str,
    package_hash: &'a str,
    label: &'a str,
    package_size: u64,
    update_app_version: bool,
    should_run_binary_version: bool,
}

#[derive(Serialize)]
struct V01Info<'a> {
    download_url: &'a str,
    description: &'a str,
    is_available: bool,
    is_disabled: bool,
    is_mandatory: bool,
    target_binary_range: &'a str,
    package_hash: &'a str,
    label: &'a str,
    package_size: u64,
    update_app_version: bool,
    should_run_binary_version: bool,
}

impl UpdateInfo {
    /// The answer's JSON in `dialect`: `{"updateInfo": …}` or `{"update_info": …}`.
    pub fn to_json(&self, dialect: Dialect) -> serde_json::Value {
        match dialect {
            Dialect::Legacy => serde_json::json!({ "updateInfo": LegacyInfo {
                download_url: &self.download_url,
                description: &self.description,
                is_available: self.is_available,
                is_mandatory: self.is_mandatory,
                app_version: &self.app_version,
                package_hash: &self.package_hash,
                label: &self.label,
                package_size: self.package_size,
                update_app_version: false,
                should_run_binary_version: false,
            }}),
            Dialect::V01 => serde_json::json!({ "update_info": V01Info {
                download_url: &self.download_url,
                description: &self.description,
                is_available: self.is_available,
                is_disabled: false,
                is_mandatory: self.is_mandatory,
                target_binary_range: &self.app_version,
                package_hash: &self.package_hash,
                label: &self.label,
                package_size: self.package_size,
                update_app_version: false,
                should_run_binary_version: false,
            }}),
        }
    }
}

/// A binary version as CodePush apps send it (`1.4`, `1.4.0`, iOS's `CFBundleShortVersionString`
/// often has two numbers): one or two numbers are completed with zeros.
pub fn binary_version(s: &str) -> Result<Version, ApiError> {
    let dots = s.bytes().filter(|b| *b == b'.').count();
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let completed = match dots {
        0 if plain => format!("{s}.0.0"),
        1 if plain => format!("{s}.0"),
        _ => s.to_owned(),
    };
    Version::parse(&completed).map_err(|e| ApiError::BadRequest(format!("appVersion: {e}")))
}

/// A package label as a Halftone version: the version, with or without a leading `v`. A label
/// another CodePush server gave (`v7`) is no version: `None`.
pub fn label_version(label: &str) -> Option<Version> {
    Version::parse(label.strip_prefix('v').unwrap_or(label)).ok()
}

/// The version a CodePush device runs: its package's label when that is a version, else the
/// release whose artifact for `target` has the package hash it sent, else its binary version.
pub fn running_version(
    app: &AppSnapshot,
    target: &Target,
    label: Option<&str>,
    package_hash: Option<&str>,
    binary: Version,
) -> Version {
    if let Some(v) = label.and_then(label_version) {
        return v;
    }
    let by_hash = package_hash.and_then(|h| h.parse::<Sha256>().ok()).and_then(|sha| {
        app.catalog
            .releases()
            .find(|(r, _)| r.artifact(target).is_some_and(|a| a.sha256 == sha))
            .map(|(r, _)| r.version().clone())
    });
    by_hash.unwrap_or(binary)
}

/// The deployment key `key` of `app` (404 when it has none such).
fn key_of<'a>(app: &'a AppSnapshot, key: &str) -> Result<&'a CodePushKey, ApiError> {
    app.codepush_key(key).ok_or_else(|| {
        ApiError::NotFound(format!(
            "app {} has no CodePush deployment key {:?}",
            app.id,
            key.chars().take(80).collect::<String>()
        ))
    })
}

/// The device's identity: `clientUniqueId` when sent, else the IP and user agent fallback.
fn identity(req: &HttpRequest, state: &State, unique_id: Option<&str>) -> Result<Identity, ApiError> {
    match unique_id {
        Some(id) if !id.is_empty() => Identity::codepush(id),
        _ => Ok(Identity::fallback(req, &state.config.trusted_proxies)),
    }
}

/// `GET /v1/apps/{app}/codepush/updateCheck`
pub async fn update_check_legacy(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    update_check(req, &path, &state, Dialect::Legacy)
}

/// `GET /v1/apps/{app}/codepush/v0.1/public/codepush/update_check`
pub async fn update_check_v01(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    update_check(req, &path, &state, Dialect::V01)
}

fn update_check(req: HttpRequest, app_id: &str, state: &State, dialect: Dialect) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<CheckQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("the update check's query: {e}")))?
        .into_inner();
    let snapshot = state.snapshot();
    let app = app(&snapshot, app_id)?;
    let key = key_of(app, &query.deployment_key)?;
    let binary = binary_version(&query.app_version)?;
    let package_hash = query.package_hash.as_deref().filter(|h| !h.is_empty());
    let running = running_version(app, &key.target, query.label.as_deref(), package_hash, binary);
    let mut traits = std::collections::BTreeMap::new();
    traits.insert(
        TraitName::parse(BINARY_VERSION_TRAIT).expect("a trait name"),
        TraitValue::string(&query.app_version).map_err(|e| ApiError::BadRequest(format!("appVersion: {e}")))?,
    );
    // A key whose channel was removed since serves its devices as on stable, as the check-in.
    let channel = match app.catalog.ladder().serving(key.channel.as_str()) {
        Serving::Own(c) | Serving::Fallback(c) => c.clone(),
    };
    let check = ClientCheck {
        identity: identity(&req, state, query.client_unique_id.as_deref())?,
        current_version: running,
        channel,
        target: key.target.clone(),
        os_version: None,
        traits: Traits::new(traits)?,
    };
    let decision = decide(state, &req, app, &check, |_| true)?;
    let info = match &decision {
        Decision::Available(offer) => UpdateInfo {
            is_available: true,
            download_url: artifact_url(&req, offer.artifact),
            description: offer.release.notes().to_owned(),
            is_mandatory: offer.critical,
            app_version: query.app_version.clone(),
            package_hash: offer.artifact.sha256.to_string(),
            label: offer.release.version().to_string(),
            package_size: offer.artifact.size,
        },
        Decision::UpToDate => UpdateInfo { app_version: query.app_version.clone(), ..UpdateInfo::default() },
    };
    let mut response = HttpResponse::Ok();
    for h in check.identity.headers() {
        response.insert_header(h);
    }
    Ok(response.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store")).json(info.to_json(dialect)))
}

/// What a status report says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// The package ran and called `notifyAppReady` (`DeploymentSucceeded`).
    Deployed,
    /// The package was rolled back by the client (`DeploymentFailed`).
    Failed,
    /// The package was downloaded.
    Downloaded,
}

impl Reported {
    /// The events it counts as.
    pub fn kinds(self) -> &'static [EventKind] {
        match self {
            Reported::Deployed => &[EventKind::InstallSucceeded, EventKind::FirstRun],
            Reported::Failed => &[EventKind::InstallFailed],
            Reported::Downloaded => &[EventKind::DownloadStarted],
        }
    }
}

/// Why a well-formed report was not counted (answered 200 all the same: the client would
/// retry a failed report for ever, and a report about another server's package or the binary
/// itself is normal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotCounted {
    /// The report names no package (the binary's own first run).
    NoPackage,
    /// The label is not a version of a release with a package for the key's target.
    UnknownPackage,
    /// No rollout of that release admits the device (and none is halted).
    NotOffered,
}

impl NotCounted {
    /// The reason as the answer and the metric name it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotCounted::NoPackage => "no_package",
            NotCounted::UnknownPackage => "unknown_package",
            NotCounted::NotOffered => "not_offered",
        }
    }
}

/// The answer to a status report.
#[derive(Debug, Serialize)]
struct ReportAnswer {
    counted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<NotCounted>,
}

/// `POST …/reportStatus/deploy` and `…/report_status/deploy`
pub async fn report_deploy(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let report: Report = body::json(payload, state.config.max_json_bytes).await?;
    let reported = match report.status.as_deref() {
        Some("DeploymentSucceeded") => Some(Reported::Deployed),
        Some("DeploymentFailed") => Some(Reported::Failed),
        None => None,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "status {:?} is not DeploymentSucceeded or DeploymentFailed",
                other.chars().take(80).collect::<String>()
            )));
        }
    };
    record(&req, &path, &state, report, reported).await
}

/// `POST …/reportStatus/download` and `…/report_status/download`
pub async fn report_download(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let report: Report = body::json(payload, state.config.max_json_bytes).await?;
    record(&req, &path, &state, report, Some(Reported::Downloaded)).await
}

/// Counts a report when its package is one the server offers this device (see the module
/// doc), durably before the answer.
async fn record(
    req: &HttpRequest,
    app_id: &str,
    state: &State,
    report: Report,
    reported: Option<Reported>,
) -> Result<HttpResponse, ApiError> {
    let counter = |app: &halftone_channels::AppId, outcome: &'static str| {
        metrics::counter!("halftone_codepush_reports_total", "app" => app.to_string(), "outcome" => outcome)
            .increment(1);
    };
    let (app_id, events) = {
        let snapshot = state.snapshot();
        let app = app(&snapshot, app_id)?;
        let key = key_of(app, &report.deployment_key)?;
        let not_counted = |reason: NotCounted| {
            counter(&app.id, reason.as_str());
            HttpResponse::Ok().json(ReportAnswer { counted: false, reason: Some(reason) })
        };
        let identity = identity(req, state, report.client_unique_id.as_deref())?;
        let (Some(reported), Some(label)) = (reported, report.label.as_deref().filter(|l| !l.is_empty())) else {
            return Ok(not_counted(NotCounted::NoPackage));
        };
        let Some(version) = label_version(label) else { return Ok(not_counted(NotCounted::UnknownPackage)) };
        let Some((release, rollouts)) = app.catalog.release(&version) else {
            return Ok(not_counted(NotCounted::UnknownPackage));
        };
        if release.artifact(&key.target).is_none() {
            return Ok(not_counted(NotCounted::UnknownPackage));
        }
        // The device as it checked in before it took the package: on the previous label or
        // its binary.
        let before = report
            .previous_label_or_app_version
            .as_deref()
            .and_then(|p| label_version(p).or_else(|| binary_version(p).ok()))
            .or_else(|| report.app_version.as_deref().and_then(|v| binary_version(v).ok()))
            .unwrap_or_else(|| Version::parse("0.0.0").expect("a version"));
        let mut traits = std::collections::BTreeMap::new();
        if let Some(v) = report.app_version.as_deref().and_then(|v| TraitValue::string(v).ok()) {
            traits.insert(TraitName::parse(BINARY_VERSION_TRAIT).expect("a trait name"), v);
        }
        let checkin = halftone_channels::CheckIn {
            device_id: identity.device_id().clone(),
            user_id: None,
            current_version: before,
            channel: key.channel.clone(),
            platform: halftone_channels::Platform { target: key.target.clone(), os_version: None },
            locale: None,
            traits: Traits::new(traits)?,
            ip: client_ip(req, &state.config.trusted_proxies),
            kind: halftone_channels::CheckKind::Background,
        };
        let offered = rollouts.iter().any(|r| matches!(r.evaluate(&checkin), Ok(_) | Err(Exclusion::Halted)));
        if !offered {
            return Ok(not_counted(NotCounted::NotOffered));
        }
        // Counted where the device is served (a removed channel's devices on stable).
        let channel = match app.catalog.ladder().serving(key.channel.as_str()) {
            Serving::Own(c) | Serving::Fallback(c) => c.clone(),
        };
        let events = reported
            .kinds()
            .iter()
            .map(|kind| Event {
                device_id: identity.device_id().clone(),
                kind: *kind,
                version: version.clone(),
                channel: channel.clone(),
                detail: None,
                token: None,
            })
            .collect::<Vec<_>>();
        (app.id.clone(), events)
    };
    let network = Network::of(client_ip(req, &state.config.trusted_proxies));
    let report = crate::feedback::Report { events, metrics: Vec::new() };
    state.feedback.report(app_id.clone(), report, network).await.map_err(|e| match e {
        FeedbackError::Unavailable(_) => ApiError::Unavailable("the database is unavailable; retry shortly".into()),
        FeedbackError::Failed(_) => ApiError::Internal(e.into()),
    })?;
    counter(&app_id, "counted");
    Ok(HttpResponse::Ok().json(ReportAnswer { counted: true, reason: None }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_versions_are_completed_and_labels_read_as_versions() {
        for (given, expected) in
            [("1", "1.0.0"), ("1.4", "1.4.0"), ("1.4.2", "1.4.2"), ("2.0.0-beta.1", "2.0.0-beta.1")]
        {
            assert_eq!(binary_version(given).unwrap().to_string(), expected, "{given}");
        }
        for bad in ["", "1..2", "one", "1.2.3.4", "1.4 "] {
            assert!(matches!(binary_version(bad), Err(ApiError::BadRequest(_))), "{bad:?}");
        }
        assert_eq!(label_version("v1.2.0").unwrap().to_string(), "1.2.0");
        assert_eq!(label_version("1.2.0").unwrap().to_string(), "1.2.0");
        assert_eq!(label_version("v7"), None, "another server's label is no version");
        assert_eq!(label_version(""), None);
    }

    #[test]
    fn both_dialects_carry_the_same_answer() {
        let info = UpdateInfo {
            is_available: true,
            download_url: "http://h/v1/artifacts/ab".into(),
            description: "notes".into(),
            is_mandatory: true,
            app_version: "1.0".into(),
            package_hash: "ab".repeat(32),
            label: "1.2.0".into(),
            package_size: 42,
        };
        let legacy = info.to_json(Dialect::Legacy);
        let v01 = info.to_json(Dialect::V01);
        let l = &legacy["updateInfo"];
        let v = &v01["update_info"];
        assert_eq!(l["downloadURL"], v["download_url"]);
        assert_eq!(l["isAvailable"], true);
        assert_eq!(v["is_available"], true);
        assert_eq!(l["isMandatory"], v["is_mandatory"]);
        assert_eq!(l["appVersion"], v["target_binary_range"]);
        assert_eq!(l["packageHash"], v["package_hash"]);
        assert_eq!(l["packageSize"], 42);
        assert_eq!(v["package_size"], 42);
        assert_eq!(l["label"], "1.2.0");
        assert_eq!(v["update_app_version"], false);
        assert_eq!(l["shouldRunBinaryVersion"], false);
        let none = UpdateInfo { app_version: "1.0".into(), ..UpdateInfo::default() }.to_json(Dialect::V01);
        assert_eq!(none["update_info"]["is_available"], false);
        assert_eq!(none["update_info"]["target_binary_range"], "1.0");
    }

    #[test]
    fn reports_count_as_installs_first_runs_failures_and_downloads() {
        assert_eq!(Reported::Deployed.kinds(), [EventKind::InstallSucceeded, EventKind::FirstRun]);
        assert_eq!(Reported::Failed.kinds(), [EventKind::InstallFailed]);
        assert_eq!(Reported::Downloaded.kinds(), [EventKind::DownloadStarted]);
    }
}
