//! An object from the bucket, answered by the rules `NamedFile` applies to a local file (as
//! configured for artifacts: no ETag or Last-Modified of its own), so that a device cannot
//! tell the backends apart: `Accept-Ranges: bytes`; the first range of a `Range` on GET (206
//! with `Content-Range`), an unsatisfiable one 416 with `Content-Range: bytes */<size>` and
//! no body, a range unit other than `bytes` ignored; `Range` ignored on HEAD; an `If-Match`
//! with ETags 412 (it is compared with no ETag). `If-Range` was settled by the middleware
//! [`if_range`](super::device::if_range); ETag and caching headers are the handler's.
//! The e2e tests compare both backends' answers header by header.

use actix_files::HttpRange;
use actix_web::body::SizedStream;
use actix_web::http::header::{self, IfMatch};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse};

use crate::artifacts::StoredObject;
use crate::problem::ApiError;

/// Answers a GET or HEAD of `object`.
pub async fn respond(req: &HttpRequest, object: &StoredObject) -> Result<HttpResponse, ApiError> {
    let size = object.size();
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CONTENT_TYPE, "application/octet-stream"));
    res.insert_header((header::ACCEPT_RANGES, "bytes"));
    if matches!(req.get_header::<IfMatch>(), Some(IfMatch::Items(_))) {
        return Ok(res.status(StatusCode::PRECONDITION_FAILED).finish());
    }
    let (mut start, mut length) = (0, size);
    let range = req.headers().get(header::RANGE).filter(|_| req.method() == Method::GET).filter(|value| {
        // RFC 9110 §14.2: an unknown range unit is ignored.
        value.to_str().ok().and_then(|v| v.split_once('=')).is_none_or(|(unit, _)| unit.eq_ignore_ascii_case("bytes"))
    });
    if let Some(value) = range {
        let Ok(text) = value.to_str() else {
            return Ok(res.status(StatusCode::BAD_REQUEST).finish());
        };
        match HttpRange::parse(text, size).ok().and_then(|ranges| ranges.first().copied()) {
            Some(r) => {
                (start, length) = (r.start, r.length);
                res.status(StatusCode::PARTIAL_CONTENT);
                res.insert_header((header::CONTENT_RANGE, format!("bytes {}-{}/{size}", start, start + length - 1)));
            }
            None => {
                res.insert_header((header::CONTENT_RANGE, format!("bytes */{size}")));
                return Ok(res.status(StatusCode::RANGE_NOT_SATISFIABLE).finish());
            }
        }
    }
    if req.method() == Method::HEAD {
        // The length is announced, the body never read: the object store is not asked.
        let nothing = futures_util::stream::empty::<Result<actix_web::web::Bytes, std::io::Error>>();
        return Ok(res.body(SizedStream::new(length, nothing)));
    }
    let body = object.read(start..start + length).await.map_err(ApiError::object_store_unavailable)?;
    Ok(res.body(SizedStream::new(length, body)))
}
