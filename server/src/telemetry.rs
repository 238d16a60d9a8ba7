//! Logging set up in one place: `RUST_LOG`-style filtering (default `info`), pretty or JSON
//! lines, and [`request_span`]: a span per request with a request id (also sent back as
//! `x-request-id`), the method and the path. Tokens never appear in logs (only token ids and
//! names); bodies are never logged.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument as _;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(format: LogFormat, filter: Option<&str>) {
    let filter = EnvFilter::try_new(filter.unwrap_or("info")).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Wraps each request in a `request` span with a process-unique id: a counter from a random
/// start, which costs no system call per request (a UUID would).
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    static NEXT_ID: std::sync::OnceLock<AtomicU64> = std::sync::OnceLock::new();
    let id = NEXT_ID.get_or_init(|| AtomicU64::new(rand::random::<u64>() >> 16)).fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("request", request_id = %format_args!("{id:012x}"), method = %req.method(), path = %req.path());
    let mut res = next.call(req).instrument(span).await?;
    if let Ok(v) = HeaderValue::from_str(&format!("{id:012x}")) {
        res.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
    }
    Ok(res)
}
