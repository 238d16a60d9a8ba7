//! Reading request bodies with a size limit and a deadline, and turning JSON errors into clear
//! 4xx answers.
//!
//! Two checks run before the handler, in the route's middleware (`http::gate`): a declared
//! `Content-Length` over the route's limit is a 413 at once ([`declared_too_large`]), before
//! any of the body is read; and the body is wrapped in a [`Deadline`] ([`with_deadline`]), so a
//! client that trickles it is cut off with a 408 ([`read`] and the upload path tell the
//! deadline's error from a broken stream with [`is_deadline`]).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web;
use futures_util::{FutureExt as _, Stream, StreamExt as _};
use serde::de::DeserializeOwned;
use tokio::time::{Instant, Sleep};

use crate::http::objects::ObjectsOnly;
use crate::problem::ApiError;

/// When a body must have arrived.
#[derive(Debug, Clone, Copy)]
pub enum Deadline {
    /// All of it by then (JSON bodies: small, sent at once by any honest client).
    Whole(Instant),
    /// No pause between two pieces longer than this (uploads: large, and slow links are fine
    /// as long as bytes keep coming).
    Pauses(Duration),
}

/// The mark of a body cut off by its [`Deadline`], inside the stream's `PayloadError::Io`.
#[derive(Debug)]
struct DeadlinePassed;

impl std::fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for DeadlinePassed {}

/// Whether a body stream's error is its deadline passing (a 408), not a broken stream (400).
pub fn is_deadline(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<DeadlinePassed>()))
}

/// A declared body over `limit` bytes: the 413 to answer before reading any of it.
pub fn declared_too_large(headers: &header::HeaderMap, limit: u64, what: &str) -> Option<ApiError> {
    let declared: u64 = headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()?;
    (declared > limit).then(|| ApiError::PayloadTooLarge(format!("{what} exceeds the limit of {limit} bytes")))
}

/// `payload` that ends with an error once `deadline` passes.
pub fn with_deadline(payload: Payload, deadline: Deadline) -> Payload {
    Payload::Stream { payload: Box::pin(Timed { inner: payload, deadline, timer: None, done: false }) }
}

/// A body stream with a deadline. The timer is made only when the body is not all there at
/// once: the usual check-in, whose body comes with its head, never arms one.
struct Timed {
    inner: Payload,
    deadline: Deadline,
    timer: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl Stream for Timed {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = this.inner.poll_next_unpin(cx) {
            if matches!(this.deadline, Deadline::Pauses(_)) {
                this.timer = None;
            }
            return Poll::Ready(item);
        }
        let deadline = this.deadline;
        let timer = this.timer.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep_until(match deadline {
                Deadline::Whole(at) => at,
                Deadline::Pauses(pause) => Instant::now() + pause,
            }))
        });
        match timer.poll_unpin(cx) {
            Poll::Ready(()) => {
                this.done = true;
                let e = std::io::Error::new(std::io::ErrorKind::TimedOut, DeadlinePassed);
                Poll::Ready(Some(Err(PayloadError::Io(e))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Reads the whole body, refusing more than `limit` bytes (413) and a body past its deadline
/// (408). A body that arrived in one piece, as most do, is returned as it is, without a copy.
pub async fn read(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let (mut first, mut joined, mut len) = (None::<web::Bytes>, web::BytesMut::new(), 0);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match is_deadline(&e) {
            true => ApiError::RequestTimeout(format!("{}; send the whole body at once", DeadlinePassed)),
            false => ApiError::BadRequest(format!("the request body could not be read: {e}")),
        })?;
        len += chunk.len();
        if len > limit {
            return Err(ApiError::PayloadTooLarge(format!("the request body exceeds the limit of {limit} bytes")));
        }
        match &first {
            None => first = Some(chunk),
            Some(f) => {
                if joined.is_empty() {
                    joined.extend_from_slice(f);
                }
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Ok(if joined.is_empty() { first.unwrap_or_default() } else { joined.freeze() })
}

/// Every body the API takes is a JSON object, and only an object is read as one, at the top
/// and at every depth ([`ObjectsOnly`]): serde would otherwise take an array for a struct, its
/// fields by position (`[2500]` for `{"basis_points": 2500}`), which no client means.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::BadRequest("the request needs a JSON body".into()));
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::BadRequest(
                "invalid JSON body: expected a JSON object (`{...}`) at the top level".into(),
            ));
        }
        None => return Err(ApiError::BadRequest("the request needs a JSON body".into())),
    }
    // Nested structs must be objects too (see `ObjectsOnly`).
    let mut de = serde_json::Deserializer::from_slice(body);
    T::deserialize(ObjectsOnly(&mut de))
        .and_then(|t| de.end().map(|()| t))
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Reads and parses a JSON body.
pub async fn json<T: DeserializeOwned>(payload: web::Payload, limit: usize) -> Result<T, ApiError> {
    parse(&read(payload, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use halftone_channels::wire::CheckRequest;

    #[tokio::test]
    async fn a_trickled_body_is_cut_off_at_its_deadline() {
        let trickle =
            futures_util::stream::iter([Ok(web::Bytes::from_static(b"{\"a\""))]).chain(futures_util::stream::pending());
        let start = Instant::now();
        let deadline = Deadline::Whole(start + Duration::from_millis(50));
        let mut timed = with_deadline(Payload::Stream { payload: Box::pin(trickle) }, deadline);
        assert_eq!(timed.next().await.unwrap().unwrap(), &b"{\"a\""[..]);
        let e = timed.next().await.unwrap().unwrap_err();
        assert!(is_deadline(&e), "{e}");
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(timed.next().await.is_none());
    }

    /// `chunks` as a request's body stream.
    async fn body_of(chunks: &[&'static [u8]]) -> web::Payload {
        let stream =
            futures_util::stream::iter(chunks.iter().map(|c| Ok(web::Bytes::from_static(c))).collect::<Vec<_>>());
        let stream: Pin<Box<dyn Stream<Item = Result<web::Bytes, PayloadError>>>> = Box::pin(stream);
        let mut payload = Payload::Stream { payload: stream };
        let req = actix_web::test::TestRequest::default().to_http_request();
        <web::Payload as actix_web::FromRequest>::from_request(&req, &mut payload).await.unwrap()
    }

    #[actix_web::test]
    async fn a_body_is_read_whole_within_its_limit_and_one_piece_is_not_copied() {
        let one: &'static [u8] = b"{\"events\":[]}";
        let read_one = read(body_of(&[one]).await, 100).await.unwrap();
        assert_eq!(read_one, one);
        assert_eq!(read_one.as_ptr(), one.as_ptr(), "a body in one piece is the piece itself");
        assert_eq!(read(body_of(&[b"{\"a\"", b":", b"1}"]).await, 7).await.unwrap(), &b"{\"a\":1}"[..]);
        assert!(read(body_of(&[]).await, 7).await.unwrap().is_empty());
        let e = read(body_of(&[b"{\"a\"", b":", b"12}"]).await, 7).await.unwrap_err();
        assert!(matches!(&e, ApiError::PayloadTooLarge(d) if d.contains("limit of 7 bytes")), "{e}");
        let e = read(body_of(&[b"{\"abcdefgh\":1}"]).await, 7).await.unwrap_err();
        assert!(matches!(e, ApiError::PayloadTooLarge(_)), "{e}");
    }

    #[test]
    fn json_errors_are_bad_requests_with_a_location() {
        for (body, msg) in [
            (&b""[..], "needs a JSON body"),
            (b"{", "EOF while parsing"),
            (b"[]", "expected a JSON object"),
            (b" \n [\"d\", \"1.0.0\"]", "expected a JSON object"),
            (b"\"d\"", "expected a JSON object"),
            (b"null", "expected a JSON object"),
            (b"  ", "needs a JSON body"),
            (b"{\"device_id\":1}", "invalid type: integer"),
            (b"{\"device_id\":\"d\",\"current_version\":\"1.x\"}", "invalid version"),
        ] {
            let e = parse::<CheckRequest>(body).unwrap_err();
            assert!(matches!(&e, ApiError::BadRequest(d) if d.contains(msg)), "{e}");
        }
    }
}
