//! What every route checks before its handler runs, in this order: the request rate of its
//! lane (429, see [`shedding`](crate::http::shedding)), then the declared body size (413
//! before any of the body is read), then the body's deadline is set (408, see
//! [`body`]). Answers are problems from `ApiError`, counted like any other.

use std::sync::Arc;

use actix_web::HttpMessage as _;
use actix_web::ResponseError as _;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use ipnet::IpNet;

use crate::config::Config;
use crate::http::body::{self, Deadline};
use crate::http::client_ip::client_ip;
use crate::http::shedding::{Lane, Shedding};

/// The body a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// A JSON document (or none): `--max-json-bytes`, all of it within `--body-timeout-s`.
    Json,
    /// An artifact: `--max-artifact-bytes`, no pause longer than `--body-timeout-s`.
    Upload,
}

/// The limits every route is checked against, shared by the workers.
pub struct Gate {
    shedding: Shedding,
    trusted_proxies: Vec<IpNet>,
    max_json_bytes: u64,
    max_artifact_bytes: u64,
    body_timeout: std::time::Duration,
}

impl Gate {
    /// The gate `config` sets up.
    pub fn new(config: &Config) -> Arc<Self> {
        Arc::new(Gate {
            shedding: Shedding::new(&config.limits),
            trusted_proxies: config.trusted_proxies.clone(),
            max_json_bytes: config.max_json_bytes as u64,
            max_artifact_bytes: config.max_artifact_bytes,
            body_timeout: config.limits.body_timeout,
        })
    }

    /// The rate limits (the server forgets idle addresses every minute).
    pub fn shedding(&self) -> &Shedding {
        &self.shedding
    }
}

/// The middleware: the lane's rate, the declared size, the body's deadline; then the handler.
pub async fn check<B: MessageBody>(
    gate: Arc<Gate>,
    lane: Lane,
    kind: BodyKind,
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    if let Err(e) = gate.shedding.admit(lane, || client_ip(req.request(), &gate.trusted_proxies)) {
        return Ok(req.into_response(e.error_response()).map_into_right_body());
    }
    let (limit, what, deadline) = match kind {
        BodyKind::Json => {
            (gate.max_json_bytes, "the request body", Deadline::Whole(tokio::time::Instant::now() + gate.body_timeout))
        }
        BodyKind::Upload => (gate.max_artifact_bytes, "the upload", Deadline::Pauses(gate.body_timeout)),
    };
    if let Some(e) = body::declared_too_large(req.headers(), limit, what) {
        return Ok(req.into_response(e.error_response()).map_into_right_body());
    }
    let payload = req.take_payload();
    if !matches!(payload, actix_web::dev::Payload::None) {
        req.set_payload(body::with_deadline(payload, deadline));
    }
    Ok(next.call(req).await?.map_into_left_body())
}
