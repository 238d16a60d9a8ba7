//! Reading request bodies with a size limit and turning JSON errors into clear 4xx answers.

use actix_web::web;
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// Reads the whole body, refusing more than `limit` bytes (413).
pub async fn read(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("the request body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(format!("the request body exceeds the limit of {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses a JSON body into `T`; serde's message (with line and column) becomes the detail.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::BadRequest("the request needs a JSON body".into()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Reads and parses a JSON body.
pub async fn json<T: DeserializeOwned>(payload: web::Payload, limit: usize) -> Result<T, ApiError> {
    parse(&read(payload, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use halftone_channels::wire::CheckRequest;

    #[test]
    fn json_errors_are_bad_requests_with_a_location() {
        for (body, msg) in [
            (&b""[..], "needs a JSON body"),
            (b"{", "EOF while parsing"),
            (b"[]", "expected struct CheckRequest"),
            (b"{\"device_id\":1}", "invalid type: integer"),
            (b"{\"device_id\":\"d\",\"current_version\":\"1.x\"}", "invalid version"),
        ] {
            let e = parse::<CheckRequest>(body).unwrap_err();
            assert!(matches!(&e, ApiError::BadRequest(d) if d.contains(msg)), "{e}");
        }
    }
}
