//! Operations endpoints: liveness, readiness and Prometheus metrics.

use std::fmt::Write as _;

use actix_web::{HttpResponse, web};

use crate::metrics::Metrics;
use crate::state::State;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// `GET /readyz`: the catalog is loaded (it is before the listener opens), the store answers
/// a read and the artifact store answers (a bucket within seconds); 503 otherwise, saying
/// which failed.
pub async fn readyz(state: web::Data<State>) -> HttpResponse {
    if state.store.is_shared() && state.freshness.is_stale(state.clock.now_ms()) {
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("snapshot stale: this replica has not seen the store's revisions recently\n");
    }
    if let Err(e) = state.store.is_bootstrapped().await {
        tracing::error!(error = format!("{e:#}"), "readiness check failed");
        return HttpResponse::ServiceUnavailable().content_type("text/plain").body("store unavailable\n");
    }
    if let Err(e) = state.artifacts.check().await {
        tracing::error!(error = format!("{e:#}"), "readiness check failed");
        return HttpResponse::ServiceUnavailable().content_type("text/plain").body("artifact store unavailable\n");
    }
    let apps = state.snapshot().apps.len();
    HttpResponse::Ok().content_type("text/plain").body(format!("ready: {apps} apps\n"))
}

/// `GET /metrics`: the Prometheus text format, plus offers by release.
pub async fn metrics(state: web::Data<State>, metrics: web::Data<Metrics>) -> HttpResponse {
    let mut text = metrics.render();
    text.push_str("# TYPE halftone_offers_total counter\n");
    let snapshot = state.snapshot();
    let mut apps: Vec<_> = snapshot.apps.values().collect();
    apps.sort_by(|a, b| a.id.cmp(&b.id));
    for app in apps {
        for (release, _) in app.catalog.releases() {
            let n = state.feedback.offers(&app.id, release.version());
            let _ = writeln!(text, "halftone_offers_total{{app=\"{}\",version=\"{}\"}} {n}", app.id, release.version());
        }
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(text)
}
