//! Prometheus metrics: one process-wide recorder ([`Metrics`]) and the middleware that counts
//! requests by route pattern and status.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// A handle to the process's metrics recorder.
#[derive(Clone)]
pub struct Metrics(PrometheusHandle);

impl Metrics {
    /// The process-wide recorder, installed on first use (several servers in one test process
    /// share it).
    pub fn global() -> Metrics {
        static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
        Metrics(
            HANDLE
                .get_or_init(|| {
                    let recorder = PrometheusBuilder::new()
                        .set_buckets_for_metric(
                            Matcher::Full("halftone_checkin_seconds".into()),
                            &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
                        )
                        .expect("valid buckets")
                        .build_recorder();
                    let handle = recorder.handle();
                    // Histograms keep every sample until upkeep folds them in: without it,
                    // memory would grow with each check-in between two scrapes.
                    let upkeep = handle.clone();
                    std::thread::Builder::new()
                        .name("metrics upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(std::time::Duration::from_secs(5));
                                upkeep.run_upkeep();
                            }
                        })
                        .expect("spawning the metrics upkeep thread");
                    // Another recorder may already be installed by an embedding program;
                    // then our handle renders an empty registry, which is harmless.
                    let _ = metrics::set_global_recorder(recorder);
                    handle
                })
                .clone(),
        )
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        self.0.render()
    }
}

/// Counts every response by route (the pattern the resource was registered with, given here,
/// so that counting never re-runs routing) and status.
pub async fn count_requests(
    route: &'static str,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let method = req.method().clone();
    let res = next.call(req).await?;
    count_request(route, &method, res.status().as_u16());
    Ok(res)
}

/// Counts one request by route, method and status. Each HTTP worker thread keeps the counter
/// handles it has used, so counting takes no lock in the registry and allocates no labels.
/// Methods outside the standard ones are counted as `other`, so a client cannot make new
/// series by inventing methods.
fn count_request(route: &'static str, method: &Method, status: u16) {
    thread_local! {
        static COUNTERS: RefCell<HashMap<(&'static str, &'static str, u16), metrics::Counter>> = Default::default();
    }
    let method = method_label(method);
    COUNTERS.with_borrow_mut(|counters| {
        counters
            .entry((route, method, status))
            .or_insert_with(|| {
                metrics::counter!(
                    "halftone_http_requests_total",
                    "route" => route,
                    "method" => method,
                    "status" => status.to_string()
                )
            })
            .increment(1);
    });
}

fn method_label(method: &Method) -> &'static str {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ]
    .into_iter()
    .zip(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"])
    .find_map(|(m, label)| (m == *method).then_some(label))
    .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::from_bytes(b"get").unwrap()), "other");
    }
}
