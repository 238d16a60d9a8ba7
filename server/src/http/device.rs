//! The device side, no token: check-in, artifact download, event reports.
//!
//! The check-in handler is the hot path: it parses the body, loads the snapshot (lock-free)
//! and asks `channels` for the decision. It never touches disk and never waits on a writer.

use std::sync::Arc;
use std::time::Instant;

use actix_files::NamedFile;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use halftone_channels::wire::{CheckRequest, EventBatch, EventKind, EventsAccepted, MetricReport};
use halftone_channels::{
    AppId, Arch, ChannelName, CheckIn, Decision, ExternalUrl, KeyId, MAX_COUNT, MetricKind, Os, PROOF_HEADER, Patch,
    PatchFormat, ReportToken, Serving, Sha256, Signature, Signatures, Target, Version,
};
use rand::RngExt as _;
use serde::Serialize;

use crate::artifacts::{Delivery, Fetch};
use crate::feedback::{CheckSample, FeedbackError, Report, device_hash};
use crate::http::{body, client_ip::client_ip, range};
use crate::network_cap::Network;
use crate::problem::ApiError;
use crate::report_key::Subject;
use crate::signer::Unsigned;
use crate::snapshot::AppSnapshot;
use crate::state::State;

/// The most events one report may carry.
pub const MAX_EVENTS: usize = 100;
/// The most metric reports (devices and builds) one report may carry.
pub const MAX_METRIC_REPORTS: usize = 100;
/// The most metric values and counts one report may carry, in all.
pub const MAX_METRIC_VALUES: usize = 1_000;

/// `POST /v1/apps/{app}/check`
pub async fn check(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let app = AppId::parse(&path)?;
    let mut request: CheckRequest = body::json(payload, state.config.max_json_bytes).await?;
    let snapshot = state.snapshot();
    let catalog_app = snapshot.apps.get(&app).ok_or_else(|| crate::views::no_app(&app))?;
    let (nonce, pinned) = (request.nonce.take(), request.answer_key.take());
    let running_build = request.current_sha256.take();
    // A device on a channel the app no longer has is served as on stable (and told so).
    let served =
        request.into_checkin(client_ip(&req, &state.config.trusted_proxies)).served_on(catalog_app.catalog.ladder());
    let checkin = &served.checkin;
    let selection = catalog_app.catalog.select_noting_release(checkin)?;
    let decision = selection.decision;
    let offered = match &decision {
        Decision::Available(o) => Some((o.release.version().clone(), o.rollout.channel.clone())),
        Decision::UpToDate => None,
    };
    observe(&state, catalog_app, checkin, selection.running, offered);
    let base = state.config.poll_interval_s;
    let jitter = base / 10;
    let next_check_s = base - jitter + rand::rng().random_range(0..=2 * jitter);
    // Report tokens: for the offered version (downloads, installs, first runs) and the running
    // one (crashes), both on the channel the device named, which its events name. One MAC each.
    let token_for = |version| {
        state.report_key.token(Subject {
            app: &catalog_app.id,
            device: &checkin.device_id,
            version,
            channel: served.named_channel(),
        })
    };
    let tokens = Tokens {
        running: selection.running.map(token_for),
        offered: match &decision {
            Decision::Available(o) => Some(token_for(o.release.version())),
            Decision::UpToDate => None,
        },
    };
    let served_channel = served.named.is_some().then_some(&checkin.channel);
    let body = serde_json::to_vec(&Answer::new(
        next_check_s,
        &decision,
        &checkin.platform.target,
        tokens,
        served_channel,
        running_build.as_ref(),
    ))
    .map_err(anyhow::Error::from)?;
    thread_local! {
        // The handle, kept per HTTP worker: recording then takes no lock in the registry.
        static CHECKIN_SECONDS: metrics::Histogram = metrics::histogram!("halftone_checkin_seconds");
    }
    let unsigned = Unsigned {
        app: &catalog_app.id,
        device: &checkin.device_id,
        nonce: nonce.as_ref(),
        pinned: pinned.as_ref(),
        body: &body,
    };
    let proof = state
        .signer
        .sign(unsigned, state.clock.now_ms() / 1000)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    CHECKIN_SECONDS.with(|h| h.record(started.elapsed().as_secs_f64()));
    let mut response = HttpResponse::Ok();
    response.content_type("application/json");
    if let Some(proof) = proof {
        response.insert_header((PROOF_HEADER, proof));
    }
    Ok(response.body(body))
}

/// Hands one check-in's figures to the feedback aggregator (lock-free, never waits): the
/// device's channel, the release it runs (when it is one) and what it was offered. Every
/// client protocol's check-in counts through here.
pub(crate) fn observe(
    state: &State,
    app: &AppSnapshot,
    checkin: &CheckIn,
    running: Option<&Version>,
    offered: Option<(Version, ChannelName)>,
) {
    // The sample goes to another thread: its names are the snapshot's own (shared, so cloning
    // allocates nothing), never this request's, which the aggregator thread would have to free
    // into this thread's allocator arena (that cross-thread freeing cost a fifth of the
    // throughput).
    let ladder = app.catalog.ladder();
    state.feedback.observe(CheckSample {
        app: app.id.clone(),
        channel: ladder.name(checkin.channel.as_str()).unwrap_or(&checkin.channel).clone(),
        version: running.cloned(),
        device: device_hash(checkin.device_id.as_str()),
        offered,
        at_ms: state.clock.now_ms(),
    });
}

/// `GET /v1/answer-keys`: the public keys that sign check-in answers, for apps to pin.
pub async fn answer_keys(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(state.signer.view())
}

/// The check-in answer, serialised from the snapshot's data as it is: the same JSON as
/// [`CheckResponse`](halftone_channels::wire::CheckResponse) (a test holds them equal)
/// without copying the offer's strings first, which cost a check-in six allocations.
#[derive(Serialize)]
struct Answer<'a> {
    next_check_s: u32,
    update: Option<OfferRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report_token: Option<ReportToken>,
    #[serde(skip_serializing_if = "Option::is_none")]
    served_channel: Option<&'a ChannelName>,
}

#[derive(Serialize)]
struct OfferRef<'a> {
    version: &'a Version,
    channel: &'a ChannelName,
    notes: &'a str,
    critical: bool,
    artifact: ArtifactRef<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report_token: Option<ReportToken>,
}

/// The report tokens of one answer.
#[derive(Debug, Clone, Copy, Default)]
struct Tokens {
    /// For the version the device runs, when that is a release of the app.
    running: Option<ReportToken>,
    /// For the offered version, when there is an offer.
    offered: Option<ReportToken>,
}

#[derive(Serialize)]
struct ArtifactRef<'a> {
    url: Url<'a>,
    os: &'a Os,
    arch: &'a Arch,
    sha256: &'a Sha256,
    size: u64,
    signature: &'a Signature,
    key_id: &'a KeyId,
    /// Every signature, when there are several (k-of-n): the wire's compatibility rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    signatures: Option<AllSignatures<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<PatchRef<'a>>,
}

/// A patch from the device's build, as the wire's `PatchOffer`.
#[derive(Serialize)]
struct PatchRef<'a> {
    url: Url<'a>,
    format: PatchFormat,
    base_sha256: &'a Sha256,
    base_size: u64,
    sha256: &'a Sha256,
    size: u64,
    signature: &'a Signature,
    key_id: &'a KeyId,
    #[serde(skip_serializing_if = "Option::is_none")]
    signatures: Option<AllSignatures<'a>>,
}

impl<'a> PatchRef<'a> {
    fn new(p: &'a Patch) -> Self {
        PatchRef {
            url: Url::Stored(&p.file.sha256),
            format: p.format,
            base_sha256: &p.base.sha256,
            base_size: p.base.size,
            sha256: &p.file.sha256,
            size: p.file.size,
            signature: &p.signatures.first().signature,
            key_id: &p.signatures.first().key_id,
            signatures: p.signatures.iter().nth(1).map(|_| AllSignatures(&p.signatures)),
        }
    }
}

/// The signatures of a k-of-n artifact, serialised as the wire's `signatures` list.
struct AllSignatures<'a>(&'a Signatures);

impl Serialize for AllSignatures<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct One<'a> {
            key_id: &'a KeyId,
            signature: &'a Signature,
        }
        s.collect_seq(self.0.iter().map(|k| One { key_id: &k.key_id, signature: &k.signature }))
    }
}

/// Where the artifact is: elsewhere, or in this server's store.
enum Url<'a> {
    External(&'a ExternalUrl),
    Stored(&'a Sha256),
}

impl Serialize for Url<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Url::External(u) => s.serialize_str(u.as_str()),
            Url::Stored(sha) => s.collect_str(&format_args!("/v1/artifacts/{sha}")),
        }
    }
}

impl<'a> Answer<'a> {
    fn new(
        next_check_s: u32,
        decision: &'a Decision<'a>,
        target: &'a Target,
        tokens: Tokens,
        served_channel: Option<&'a ChannelName>,
        running_build: Option<&Sha256>,
    ) -> Self {
        let update = match decision {
            Decision::UpToDate => None,
            Decision::Available(offer) => {
                let a = offer.artifact;
                Some(OfferRef {
                    version: offer.release.version(),
                    channel: &offer.rollout.channel,
                    notes: offer.release.notes(),
                    critical: offer.critical,
                    artifact: ArtifactRef {
                        url: a.url.as_ref().map_or(Url::Stored(&a.sha256), Url::External),
                        os: &target.os,
                        arch: &target.arch,
                        sha256: &a.sha256,
                        size: a.size,
                        signature: &a.signatures.first().signature,
                        key_id: &a.signatures.first().key_id,
                        signatures: a.signatures.iter().nth(1).map(|_| AllSignatures(&a.signatures)),
                        // Offered only to a device that said which build it runs, and only
                        // when this artifact has a patch from that build.
                        patch: running_build.and_then(|b| a.patches.from_base(b)).map(PatchRef::new),
                    },
                    report_token: tokens.offered,
                })
            }
        };
        Answer { next_check_s, update, report_token: tokens.running, served_channel }
    }
}

/// An artifact's ETag: its digest, quoted. Strong, since the bytes under a digest never change.
fn artifact_etag(sha: &Sha256) -> String {
    format!("\"{sha}\"")
}

/// Middleware for `GET /v1/artifacts/{sha256}`: `If-Range` (RFC 9110 §13.1.5), decided before
/// [`download`] runs. `NamedFile` checks `If-Range` only against its own validators, which are
/// off here (the ETag is the digest, ours), so on its own it would ignore every `Range` that
/// comes with an `If-Range`. And a handler cannot change its request's headers; a middleware
/// can. So: an `If-Range` that is exactly the artifact's strong ETag is removed, and the `Range`
/// is served; any other (another ETag, a weak one, or a date, since we send no
/// `Last-Modified`) removes the `Range`, and the whole file is served with 200.
pub async fn if_range(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(validator) = req.headers().get(header::IF_RANGE) {
        // A path that is not a digest matches nothing; the handler then refuses it.
        let ours = req.match_info().get("sha256").and_then(|s| Sha256::parse(s).ok()).map(|sha| artifact_etag(&sha));
        let matches = ours.is_some_and(|etag| validator.as_bytes() == etag.as_bytes());
        let drop = if matches { header::IF_RANGE } else { header::RANGE };
        req.headers_mut().remove(drop);
    }
    next.call(req).await
}

/// `GET|HEAD /v1/artifacts/{sha256}`: Range requests (with `If-Range`, see [`if_range`]), a
/// strong ETag (the digest) and a year of immutable caching, since a digest's bytes never
/// change. The store says how to answer ([`Delivery`]): a local file (served by `NamedFile`),
/// an object streamed from the bucket (served by [`range::respond`] by the same rules), or a
/// redirect to a pre-signed or CDN URL.
pub async fn download(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let sha = Sha256::parse(&path)?;
    let etag = artifact_etag(&sha);
    let fetch = if req.method() == Method::HEAD { Fetch::Head } else { Fetch::Get };
    let delivery = state.artifacts.deliver(&sha, fetch).await.map_err(ApiError::object_store_unavailable)?;
    if matches!(delivery, Delivery::Missing) {
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
    let mut res = match delivery {
        Delivery::Missing => return Err(ApiError::NotFound(format!("there is no artifact {sha}"))),
        Delivery::File(path) => web::block(move || NamedFile::open(path))
            .await
            .map_err(anyhow::Error::from)?
            .map_err(|_| ApiError::NotFound(format!("there is no artifact {sha}")))?
            .use_etag(false)
            .use_last_modified(false)
            .disable_content_disposition()
            .set_content_type("application/octet-stream".parse().expect("valid mime"))
            .into_response(&req),
        Delivery::Object(object) => range::respond(&req, &object).await?,
        Delivery::Redirect(to) => {
            return Ok(HttpResponse::TemporaryRedirect()
                .insert_header((header::LOCATION, to.location))
                .insert_header((header::CACHE_CONTROL, to.cache_control))
                .finish());
        }
    };
    res.headers_mut().insert(header::ETAG, header::HeaderValue::from_str(&etag).expect("hex is a valid header"));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("public, max-age=31536000, immutable"));
    Ok(res)
}

/// `POST /v1/apps/{app}/events`: up to 100 events and 100 metric reports, validated strictly
/// (every event and metric report names a release of the app, every metric one the app
/// declared, of its kind; an event on a channel the app no longer has counts on stable, where
/// its device is served); answered 202 once they are durably counted. Only reports
/// with a valid report token are counted (the others are answered as `rejected`), and one
/// client network counts for at most `--max-devices-per-network` devices of a release. Devices
/// are counted once per release, channel and kind, however often they report; metric values
/// and counts add up.
///
/// The request worker only reads the body and waits for the answer: parsing, validating and
/// screening a batch ([`intake`], up to 100 JSON events and 100 MACs, about 70 µs) run on the
/// feedback aggregator's thread (`crate::background`, at a lower priority) at its next tick,
/// just before it counts the batch ([`EventIntake`]), so that a wave of install reports never
/// holds up the check-ins the same worker serves, and costs no thread wake-up of its own
/// (docs/api.md, `POST /v1/apps/{app}/events`).
pub async fn events(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let app = AppId::parse(&path)?;
    let body = body::read(payload, state.config.max_json_bytes).await?;
    let network = Network::of(client_ip(&req, &state.config.trusted_proxies));
    let (tx, answered) = tokio::sync::oneshot::channel();
    let job = EventIntake { state: state.clone().into_inner(), app: app.clone(), body, taken: None, tx };
    state.feedback.take_in(app.clone(), network, Box::new(job)).await.map_err(|e| ApiError::Internal(e.into()))?;
    let stopped = || ApiError::Internal(anyhow::anyhow!("the feedback aggregator stopped"));
    let Accepted { answer, kinds, delta_fallbacks } = answered.await.map_err(|_| stopped())??;
    // Counted once stored: a batch that failed is not in the metric.
    for (kind, n) in EventKind::ALL.iter().zip(kinds).filter(|(_, n)| *n > 0) {
        metrics::counter!("halftone_events_total", "app" => app.to_string(), "kind" => kind.as_str()).increment(n);
    }
    if delta_fallbacks > 0 {
        metrics::counter!("halftone_delta_fallbacks_total", "app" => app.to_string()).increment(delta_fallbacks);
    }
    Ok(HttpResponse::Accepted().json(answer))
}

/// An event report's body, taken in by the feedback aggregator ([`crate::feedback::Intake`]):
/// [`intake`] there, then the answer (or the refusal) sent back to [`events`] once counted.
struct EventIntake {
    state: Arc<State>,
    app: AppId,
    body: web::Bytes,
    /// What `intake` left for the answer, or why the body was refused.
    taken: Option<Result<Accepted, ApiError>>,
    tx: tokio::sync::oneshot::Sender<Result<Accepted, ApiError>>,
}

impl crate::feedback::Intake for EventIntake {
    fn take(&mut self) -> Option<Report> {
        match intake(&self.state, &self.app, &self.body) {
            Ok(Intake { report, accepted }) => {
                self.taken = Some(Ok(accepted));
                Some(report)
            }
            Err(e) => {
                self.taken = Some(Err(e));
                None
            }
        }
    }

    fn done(self: Box<Self>, stored: Result<(), FeedbackError>) {
        let taken = self.taken.unwrap_or_else(|| Err(ApiError::Internal(anyhow::anyhow!("a report answered untaken"))));
        let answer = taken.and_then(|answer| {
            stored.map(|()| answer).map_err(|e| match e {
                FeedbackError::Unavailable(_) => {
                    ApiError::Unavailable("the database is unavailable; retry shortly".into())
                }
                FeedbackError::Failed(_) => ApiError::Internal(e.into()),
            })
        });
        let _ = self.tx.send(answer);
    }
}

/// What [`intake`] leaves the handler: the reports to count and the answer once they are.
struct Intake {
    /// The events and metric reports with a valid token, on the channels that serve them.
    report: Report,
    /// The answer once they are counted.
    accepted: Accepted,
}

/// An event report's answer once counted.
struct Accepted {
    /// The 202's body.
    answer: EventsAccepted,
    /// Events to count per kind, in [`EventKind::ALL`]'s order, once stored.
    kinds: [u64; EventKind::ALL.len()],
    /// Downloads that fell back from a patch to the whole file.
    delta_fallbacks: u64,
}

/// Parses, validates and screens an event report's `body` for `app` (see [`events`]): a 4xx
/// for a batch that is malformed, too large or about releases or metrics the app does not
/// have; otherwise what to count (reports with a valid token), and the answer.
fn intake(state: &State, app: &AppId, body: &[u8]) -> Result<Intake, ApiError> {
    let batch: EventBatch = body::parse(body)?;
    if batch.events.len() > MAX_EVENTS || (batch.events.is_empty() && batch.metrics.is_empty()) {
        return Err(ApiError::BadRequest(format!(
            "a report carries 1 to {MAX_EVENTS} events (or metrics only), not {}",
            batch.events.len()
        )));
    }
    if batch.metrics.len() > MAX_METRIC_REPORTS {
        return Err(ApiError::BadRequest(format!(
            "a report carries at most {MAX_METRIC_REPORTS} metric reports, not {}",
            batch.metrics.len()
        )));
    }
    let values: usize = batch.metrics.iter().map(MetricReport::size).sum();
    if values > MAX_METRIC_VALUES {
        return Err(ApiError::BadRequest(format!(
            "a report carries at most {MAX_METRIC_VALUES} metric values and counts, not {values}"
        )));
    }
    let snapshot = state.snapshot();
    let known = snapshot.apps.get(app).ok_or_else(|| ApiError::NotFound(format!("there is no app {app}")))?;
    for (i, e) in batch.events.iter().enumerate() {
        if e.detail.as_ref().is_some_and(|d| d.chars().count() > 1024) {
            return Err(ApiError::BadRequest(format!("event {i}: detail is longer than 1024 characters")));
        }
        if known.catalog.release(&e.version).is_none() {
            return Err(ApiError::Unprocessable(format!("event {i}: app {app} has no release {}", e.version)));
        }
    }
    for (i, m) in batch.metrics.iter().enumerate() {
        check_metrics(known, i, m)?;
    }
    let (mut events, rejections) = state.report_key.screen(app, batch.events);
    let mut metrics: Vec<MetricReport> = batch
        .metrics
        .into_iter()
        .filter(|m| {
            let subject = Subject { app, device: &m.device_id, version: &m.version, channel: &m.channel };
            m.token.as_ref().is_some_and(|t| state.report_key.verify(subject, t))
        })
        .collect();
    let metrics_accepted = metrics.iter().map(MetricReport::size).sum::<usize>() as u32;
    let metrics_rejected = values as u32 - metrics_accepted;
    // Tokens were checked against the channel the device named; the figures count it where
    // it is served (a removed channel's devices are served as on stable).
    let ladder = known.catalog.ladder();
    for channel in events.iter_mut().map(|e| &mut e.channel).chain(metrics.iter_mut().map(|m| &mut m.channel)) {
        if let Serving::Fallback(to) = ladder.serving(channel.as_str()) {
            *channel = to.clone();
        }
    }
    let rejected = rejections.missing_token + rejections.invalid_token;
    for (reason, n) in [("missing_token", rejections.missing_token), ("invalid_token", rejections.invalid_token)] {
        if n > 0 {
            metrics::counter!("halftone_events_rejected_total", "app" => app.to_string(), "reason" => reason)
                .increment(u64::from(n));
        }
    }
    if metrics_rejected > 0 {
        metrics::counter!("halftone_metric_values_rejected_total", "app" => app.to_string())
            .increment(u64::from(metrics_rejected));
    }
    let distinct: std::collections::HashSet<_, foldhash::fast::RandomState> =
        events.iter().map(|e| (&e.device_id, &e.version, &e.channel, e.kind)).collect();
    let accepted = distinct.len() as u32;
    let duplicates = events.len() as u32 - accepted;
    let mut kinds = [0u64; EventKind::ALL.len()];
    for e in &events {
        kinds[EventKind::ALL.iter().position(|k| *k == e.kind).expect("every kind is in ALL")] += 1;
    }
    // A patch the SDK could not use (it then downloaded the whole file) says so in the detail
    // of its download event: counted per app, the reason left in the SDK's log.
    let delta_fallbacks = events
        .iter()
        .filter(|e| e.kind == EventKind::DownloadStarted && e.detail.as_deref().is_some_and(is_delta_fallback))
        .count() as u64;
    Ok(Intake {
        report: Report { events, metrics },
        accepted: Accepted {
            answer: EventsAccepted { accepted, duplicates, rejected, rejections, metrics_accepted, metrics_rejected },
            kinds,
            delta_fallbacks,
        },
    })
}

/// Checks metric report `i` against the app: its release exists, every metric is declared and
/// of the kind reported, and no count is above [`MAX_COUNT`].
fn check_metrics(known: &AppSnapshot, i: usize, m: &MetricReport) -> Result<(), ApiError> {
    let app = &known.id;
    if known.catalog.release(&m.version).is_none() {
        return Err(ApiError::Unprocessable(format!("metric report {i}: app {app} has no release {}", m.version)));
    }
    let declared = &known.settings.metrics;
    for name in m.values.keys() {
        match declared.kind(name.as_str()) {
            Some(MetricKind::Value(_)) => {}
            Some(MetricKind::Counter) => {
                return Err(ApiError::Unprocessable(format!(
                    "metric report {i}: {name} is a counter: report it in counts"
                )));
            }
            None => return Err(ApiError::Unprocessable(format!("metric report {i}: app {app} has no metric {name}"))),
        }
    }
    for (name, n) in &m.counts {
        match declared.kind(name.as_str()) {
            Some(MetricKind::Counter) => {}
            Some(MetricKind::Value(_)) => {
                return Err(ApiError::Unprocessable(format!(
                    "metric report {i}: {name} is a value metric: report it in values"
                )));
            }
            None => return Err(ApiError::Unprocessable(format!("metric report {i}: app {app} has no metric {name}"))),
        }
        if *n > MAX_COUNT {
            return Err(ApiError::Unprocessable(format!(
                "metric report {i}: a count of {name} is at most {MAX_COUNT}, not {n}"
            )));
        }
    }
    Ok(())
}

/// Whether an event's detail is the SDK's report of a patch it fell back from
/// (`delta_fallback: <reason>`, client-sdk `Client::download`).
fn is_delta_fallback(detail: &str) -> bool {
    detail.starts_with("delta_fallback:")
}

#[cfg(test)]
mod tests {
    use halftone_channels::wire::{ArtifactOffer, CheckResponse, PatchOffer, ReleaseSpec, RolloutSpec, UpdateOffer};
    use halftone_channels::{Admission, Offer, Release};
    use serde_json::json;

    use super::*;

    /// The answer as the wire types serialise it: what `Answer` must match.
    fn owned(
        next_check_s: u32,
        decision: &Decision<'_>,
        target: &Target,
        tokens: Tokens,
        served_channel: Option<&ChannelName>,
        running_build: Option<&Sha256>,
    ) -> CheckResponse {
        let update = match decision {
            Decision::UpToDate => None,
            Decision::Available(o) => Some(UpdateOffer {
                version: o.release.version().clone(),
                channel: o.rollout.channel.clone(),
                notes: o.release.notes().to_owned(),
                critical: o.critical,
                artifact: ArtifactOffer {
                    url: o
                        .artifact
                        .url
                        .as_ref()
                        .map_or_else(|| format!("/v1/artifacts/{}", o.artifact.sha256), |u| u.to_string()),
                    os: target.os.clone(),
                    arch: target.arch.clone(),
                    sha256: o.artifact.sha256,
                    size: o.artifact.size,
                    signature: o.artifact.signatures.first().signature,
                    key_id: o.artifact.signatures.first().key_id.clone(),
                    signatures: halftone_channels::wire::extra_signatures(&o.artifact.signatures),
                    patch: running_build.and_then(|b| o.artifact.patches.from_base(b)).map(|p| PatchOffer {
                        url: format!("/v1/artifacts/{}", p.file.sha256),
                        format: p.format,
                        base_sha256: p.base.sha256,
                        base_size: p.base.size,
                        sha256: p.file.sha256,
                        size: p.file.size,
                        signature: p.signatures.first().signature,
                        key_id: p.signatures.first().key_id.clone(),
                        signatures: halftone_channels::wire::extra_signatures(&p.signatures),
                    }),
                },
                report_token: tokens.offered,
            }),
        };
        CheckResponse { next_check_s, update, report_token: tokens.running, served_channel: served_channel.cloned() }
    }

    #[test]
    fn the_borrowed_answer_is_the_wire_answer() {
        let artifact = |os: &str, url: Option<&str>| {
            json!({"os": os, "arch": "x86_64", "sha256": "ab".repeat(32), "size": 1234,
                   "signature": "cd".repeat(64), "key_id": "k1", "url": url,
                   "patches": [{"format": "zstd-patch-from", "base_sha256": "01".repeat(32), "base_size": 1000,
                                "sha256": "02".repeat(32), "size": 99, "signature": "03".repeat(64), "key_id": "k1",
                                "signatures": [{"key_id": "k1", "signature": "03".repeat(64)},
                                               {"key_id": "k2", "signature": "04".repeat(64)}]}]})
        };
        let (base, other) = (Sha256::parse(&"01".repeat(32)).unwrap(), Sha256::parse(&"05".repeat(32)).unwrap());
        let spec: ReleaseSpec = serde_json::from_value(json!({
            "version": "1.2.0-beta.1",
            "notes": "Fixes \"quotes\", back\\slashes,\nnew lines and ünïcödé.",
            "artifacts": [artifact("linux", None), artifact("windows", Some("https://cdn.example.com/a?b=c&d"))],
        }))
        .unwrap();
        let release = Release::try_from(spec).unwrap();
        let rollout_spec: RolloutSpec = serde_json::from_value(json!({"basis_points": 10_000})).unwrap();
        let app = AppId::parse("notes").unwrap();
        let rollout = rollout_spec.into_rollout(&app, release.version().clone(), "beta".parse().unwrap()).unwrap();
        let stable = ChannelName::stable();
        for os in ["linux", "windows"] {
            let target = Target { os: os.parse().unwrap(), arch: "x86_64".parse().unwrap() };
            for critical in [false, true] {
                let decision = Decision::Available(Offer {
                    release: &release,
                    artifact: release.artifact(&target).unwrap(),
                    rollout: &rollout,
                    admission: Admission::AllowList,
                    critical,
                });
                for (tokens, served) in all_tokens().into_iter().zip([None, Some(&stable)].into_iter().cycle()) {
                    for running in [None, Some(&base), Some(&other)] {
                        let answer = Answer::new(3600, &decision, &target, tokens, served, running);
                        let fast = serde_json::to_vec(&answer).unwrap();
                        let parsed: CheckResponse = serde_json::from_slice(&fast).unwrap();
                        let wire = owned(3600, &decision, &target, tokens, served, running);
                        assert_eq!(parsed, wire, "{}", String::from_utf8_lossy(&fast));
                        assert_eq!(fast, serde_json::to_vec(&wire).unwrap());
                        let patched = parsed.update.unwrap().artifact.patch;
                        assert_eq!(patched.is_some(), running == Some(&base), "only the patch's own base gets it");
                    }
                }
            }
        }
        let target = Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() };
        for tokens in all_tokens() {
            for served in [None, Some(&stable)] {
                let answer = Answer::new(60, &Decision::UpToDate, &target, tokens, served, Some(&base));
                let fast = serde_json::to_vec(&answer).unwrap();
                let wire = owned(60, &Decision::UpToDate, &target, tokens, served, Some(&base));
                assert_eq!(fast, serde_json::to_vec(&wire).unwrap());
            }
        }
    }

    /// With and without each token.
    fn all_tokens() -> Vec<Tokens> {
        let (a, b) = (ReportToken::from_bytes([0xa5; 16]), ReportToken::from_bytes([0x3c; 16]));
        vec![
            Tokens::default(),
            Tokens { running: Some(a), offered: None },
            Tokens { running: None, offered: Some(b) },
            Tokens { running: Some(a), offered: Some(b) },
        ]
    }
}
