//! Logging set up in one place: `RUST_LOG`-style filtering (default `info`), pretty or JSON
//! lines, and [`request_span`]: a span per request with a request id (also sent back as
//! `x-request-id`), the method and the path. Tokens never appear in logs (only token ids and
//! names); bodies are never logged.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
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
///
/// Device traffic (check-ins, event reports, downloads) is the server's volume: its span is at
/// DEBUG, so at the default INFO level it costs nothing (formatting the span's fields was 5%
/// of a check-in). Admin and operations requests get an INFO span. A device request that
/// fails with a 5xx is logged here with its id, since it has no span at INFO.
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    static NEXT_ID: std::sync::OnceLock<AtomicU64> = std::sync::OnceLock::new();
    let id = NEXT_ID.get_or_init(|| AtomicU64::new(rand::random::<u64>() >> 16)).fetch_add(1, Ordering::Relaxed);
    let device = is_device_traffic(req.method(), req.path());
    let span = if device {
        tracing::debug_span!("request", request_id = %format_args!("{id:012x}"), method = %req.method(), path = %req.path())
    } else {
        tracing::info_span!("request", request_id = %format_args!("{id:012x}"), method = %req.method(), path = %req.path())
    };
    let (method, path) = if device { (Some(req.method().clone()), Some(req.path().to_owned())) } else { (None, None) };
    let mut res = next.call(req).instrument(span).await?;
    if res.status().is_server_error()
        && let (Some(method), Some(path)) = (method, path)
    {
        tracing::error!(request_id = %format_args!("{id:012x}"), %method, %path, status = res.status().as_u16(), "device request failed");
    }
    let mut buf = [0u8; 16];
    if let Ok(v) = HeaderValue::from_bytes(request_id(id, &mut buf)) {
        res.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
    }
    Ok(res)
}

/// Check-ins, event reports and artifact downloads.
fn is_device_traffic(method: &Method, path: &str) -> bool {
    (*method == Method::POST && (path.ends_with("/check") || path.ends_with("/events")))
        || ((*method == Method::GET || *method == Method::HEAD) && path.starts_with("/v1/artifacts/"))
}

/// `id` as 12 lowercase hex digits (more if it ever needs them), without allocating.
fn request_id(id: u64, buf: &mut [u8; 16]) -> &[u8] {
    let digits = (16 - id.leading_zeros() as usize / 4).max(12);
    hex::encode_to_slice(id.to_be_bytes(), buf).expect("8 bytes make 16 digits");
    &buf[16 - digits..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_have_at_least_twelve_hex_digits() {
        let mut buf = [0; 16];
        assert_eq!(request_id(0x1a2b, &mut buf), b"000000001a2b");
        assert_eq!(request_id(0xffff_ffff_ffff, &mut buf), b"ffffffffffff");
        assert_eq!(request_id(0x1_0000_0000_0000, &mut buf), b"1000000000000");
        assert_eq!(request_id(u64::MAX, &mut buf), b"ffffffffffffffff");
    }

    #[test]
    fn device_traffic_is_check_ins_events_and_downloads() {
        assert!(is_device_traffic(&Method::POST, "/v1/apps/notes/check"));
        assert!(is_device_traffic(&Method::POST, "/v1/apps/notes/events"));
        assert!(is_device_traffic(&Method::GET, "/v1/artifacts/ab12"));
        assert!(is_device_traffic(&Method::HEAD, "/v1/artifacts/ab12"));
        assert!(!is_device_traffic(&Method::PUT, "/v1/artifacts/ab12"));
        assert!(!is_device_traffic(&Method::POST, "/v1/apps/notes/releases"));
        assert!(!is_device_traffic(&Method::GET, "/v1/apps/notes/check"));
        assert!(!is_device_traffic(&Method::GET, "/metrics"));
    }
}
