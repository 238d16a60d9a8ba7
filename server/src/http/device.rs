//! The device side, no token: check-in, artifact download, event reports.
//!
//! The check-in handler is the hot path: it parses the body, loads the snapshot (lock-free)
//! and asks `channels` for the decision. It never touches disk and never waits on a writer.

use std::time::Instant;

use actix_files::NamedFile;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use halftone_channels::wire::{ArtifactOffer, CheckRequest, CheckResponse, EventBatch, EventsAccepted, UpdateOffer};
use halftone_channels::{AppId, Decision, Sha256};
use rand::RngExt as _;

use crate::feedback::{CheckSample, device_hash};
use crate::http::{body, client_ip::client_ip};
use crate::problem::ApiError;
use crate::state::State;

/// The most events one report may carry.
pub const MAX_EVENTS: usize = 100;

/// `POST /v1/apps/{app}/check`
pub async fn check(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let app = AppId::parse(&path)?;
    let request: CheckRequest = body::json(payload, state.config.max_json_bytes).await?;
    let snapshot = state.snapshot();
    let catalog_app = snapshot.apps.get(&app).ok_or_else(|| ApiError::NotFound(format!("there is no app {app}")))?;
    let checkin = request.into_checkin(client_ip(&req, &state.config.trusted_proxies));
    let decision = catalog_app.catalog.select(&checkin).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let offered = match &decision {
        Decision::Available(o) => Some((o.release.version().clone(), o.rollout.channel.clone())),
        Decision::UpToDate => None,
    };
    state.feedback.observe(CheckSample {
        app,
        channel: checkin.channel.clone(),
        version: checkin.current_version.clone(),
        device: device_hash(checkin.device_id.as_str()),
        offered,
        at_ms: state.clock.now_ms(),
    });
    let update = match decision {
        Decision::UpToDate => None,
        Decision::Available(offer) => {
            let version = offer.release.version();
            let a = offer.artifact;
            Some(UpdateOffer {
                version: version.clone(),
                channel: offer.rollout.channel.clone(),
                notes: offer.release.notes().to_owned(),
                critical: offer.critical,
                artifact: ArtifactOffer {
                    url: a.url.as_ref().map_or_else(|| format!("/v1/artifacts/{}", a.sha256), |u| u.to_string()),
                    os: checkin.platform.target.os.clone(),
                    arch: checkin.platform.target.arch.clone(),
                    sha256: a.sha256,
                    size: a.size,
                    signature: a.signature,
                    key_id: a.key_id.clone(),
                },
            })
        }
    };
    let base = state.config.poll_interval_s;
    let jitter = base / 10;
    let next_check_s = base - jitter + rand::rng().random_range(0..=2 * jitter);
    let body = serde_json::to_vec(&CheckResponse { next_check_s, update }).map_err(anyhow::Error::from)?;
    metrics::histogram!("halftone_checkin_seconds").record(started.elapsed().as_secs_f64());
    Ok(HttpResponse::Ok().content_type("application/json").body(body))
}

/// `GET /v1/artifacts/{sha256}`: Range requests, a strong ETag (the digest) and a year of
/// immutable caching, since a digest's bytes never change.
pub async fn download(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let sha = Sha256::parse(&path)?;
    let etag = format!("\"{sha}\"");
    if state.artifacts.size(&sha).await.is_none() {
        return Err(ApiError::NotFound(format!("there is no artifact {sha}")));
    }
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
    }
    let path = state.artifacts.path(&sha);
    let file = web::block(move || NamedFile::open(path))
        .await
        .map_err(anyhow::Error::from)?
        .map_err(|_| ApiError::NotFound(format!("there is no artifact {sha}")))?
        .use_etag(false)
        .use_last_modified(false)
        .disable_content_disposition()
        .set_content_type("application/octet-stream".parse().expect("valid mime"));
    let mut res = file.into_response(&req);
    res.headers_mut().insert(header::ETAG, header::HeaderValue::from_str(&etag).expect("hex is a valid header"));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("public, max-age=31536000, immutable"));
    Ok(res)
}

/// `POST /v1/apps/{app}/events`: up to 100 events, validated strictly (every event names a
/// release and a channel of the app); answered 202 once they are durably counted. Devices are
/// counted once per release, channel and kind, however often they report.
pub async fn events(
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let app = AppId::parse(&path)?;
    let batch: EventBatch = body::json(payload, state.config.max_json_bytes).await?;
    if batch.events.is_empty() || batch.events.len() > MAX_EVENTS {
        return Err(ApiError::BadRequest(format!(
            "a report carries 1 to {MAX_EVENTS} events, not {}",
            batch.events.len()
        )));
    }
    {
        let snapshot = state.snapshot();
        let known = snapshot.apps.get(&app).ok_or_else(|| ApiError::NotFound(format!("there is no app {app}")))?;
        for (i, e) in batch.events.iter().enumerate() {
            if e.detail.as_ref().is_some_and(|d| d.chars().count() > 1024) {
                return Err(ApiError::BadRequest(format!("event {i}: detail is longer than 1024 characters")));
            }
            if known.catalog.release(&e.version).is_none() {
                return Err(ApiError::Unprocessable(format!("event {i}: app {app} has no release {}", e.version)));
            }
            if !known.catalog.ladder().contains(e.channel.as_str()) {
                return Err(ApiError::Unprocessable(format!("event {i}: app {app} has no channel {}", e.channel)));
            }
        }
    }
    let distinct: std::collections::HashSet<_> =
        batch.events.iter().map(|e| (&e.device_id, &e.version, &e.channel, e.kind)).collect();
    let accepted = distinct.len() as u32;
    let duplicates = batch.events.len() as u32 - accepted;
    let kinds: Vec<_> = batch.events.iter().map(|e| e.kind).collect();
    state
        .feedback
        .report(batch.events.into_iter().map(|e| (app.clone(), e)).collect())
        .await
        .map_err(anyhow::Error::from)?;
    // Counted once stored: a batch that failed is not in the metric.
    for kind in kinds {
        let kind = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        metrics::counter!("halftone_events_total", "app" => app.to_string(), "kind" => kind).increment(1);
    }
    Ok(HttpResponse::Accepted().json(EventsAccepted { accepted, duplicates }))
}
