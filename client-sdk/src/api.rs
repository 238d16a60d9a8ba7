//! The device side of the server's HTTP API (`/v1`): check-in, event batches and artifact
//! fetches, with the mapping of HTTP failures (status, `application/problem+json` body,
//! `Retry-After`) to [`Error`]. The only module that speaks HTTP.

use std::sync::Arc;
use std::time::Duration;

use halftone_channels::AppId;
use halftone_channels::PROOF_HEADER;
use halftone_channels::wire::{CheckRequest, CheckResponse, EventBatch, EventsAccepted, KeyDocuments, Problem};
use reqwest::header::{HeaderMap, HeaderValue, RANGE, RETRY_AFTER};
use reqwest::{Response, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::origin::{AllowedHost, Origins};
use crate::pace::DownloadLimits;
use crate::{BuildError, Error, Refusal};

/// The largest JSON answer read (a check response with long release notes fits easily).
const MAX_JSON: usize = 1 << 20;
/// The largest error body read.
const MAX_PROBLEM: usize = 64 << 10;
/// The most redirects one request follows (reqwest's own default).
const MAX_REDIRECTS: usize = 10;

/// How long the SDK waits for the network.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// Establishing a connection.
    pub(crate) connect: Duration,
    /// A whole check-in or event request, answer included.
    pub(crate) request: Duration,
    /// During a download: the longest wait for the response headers or for the next bytes.
    pub(crate) stall: Duration,
}

/// A connection to one server, for one app.
#[derive(Debug)]
pub(crate) struct Api {
    http: reqwest::Client,
    /// The server URL without a trailing `/`; paths are appended to it.
    base: String,
    app: AppId,
    timeouts: Timeouts,
    /// Where artifact URLs, and the redirects of any request, may lead.
    origins: Arc<Origins>,
    limits: DownloadLimits,
}

impl Api {
    /// A client of the server at `server` (`http(s)://host[:port][/prefix]`), downloading
    /// from its origin and the `allowed` hosts only, within `limits`.
    pub(crate) fn new(
        server: &str,
        app: AppId,
        timeouts: Timeouts,
        allowed: Vec<AllowedHost>,
        limits: DownloadLimits,
    ) -> Result<Self, BuildError> {
        let invalid = |reason: &str| BuildError::Invalid { setting: "server", reason: format!("{server:?}: {reason}") };
        let url = Url::parse(server).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("expected an http:// or https:// URL"));
        }
        if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
            return Err(invalid("expected a base URL without query or fragment"));
        }
        let origins = Arc::new(Origins::new(&url, allowed));
        // A redirect is held to the same rule as the URL it redirects: the server may send a
        // download to a pre-signed bucket URL or a CDN, but only on a host the app allows.
        let rule = origins.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match rule.admit(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        });
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .redirect(redirects)
            .user_agent(concat!("halftone-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError::Startup(chain(&e)))?;
        Ok(Api { http, base: url.as_str().trim_end_matches('/').to_owned(), app, timeouts, origins, limits })
    }

    /// The configured timeouts.
    pub(crate) fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The configured download deadline and minimum rate.
    pub(crate) fn limits(&self) -> DownloadLimits {
        self.limits
    }

    /// The URL of an artifact as offered: absolute `http(s)://`, or a path on this server;
    /// refused unless on the server's origin or a host the app allows (never http from an
    /// https server).
    pub(crate) fn resolve(&self, url: &str) -> Result<Url, Refusal> {
        let bad = |reason| Refusal::BadUrl { url: url.to_owned(), reason };
        let absolute = if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            return Err(bad("expected an http(s) URL or a path starting with /"));
        };
        let resolved = Url::parse(&absolute).map_err(|_| bad("not a valid URL"))?;
        self.origins.admit(&resolved)?;
        Ok(resolved)
    }

    /// `POST /v1/apps/{app}/check`: the answer's bytes and proof header, parsed by the caller
    /// once the proof is checked.
    pub(crate) async fn check(&self, request: &CheckRequest) -> Result<CheckAnswer, Error> {
        let (body, response_headers) = self.post("check", request).await?;
        let proof = response_headers.get(PROOF_HEADER).map(|v| v.to_str().map(str::to_owned));
        let proof = proof.transpose().map_err(|_| Error::Protocol { detail: "the answer proof is not text".into() })?;
        Ok(CheckAnswer { body, proof })
    }

    /// `POST /v1/apps/{app}/events`.
    pub(crate) async fn send_events(&self, batch: &EventBatch) -> Result<EventsAccepted, Error> {
        self.post_json("events", batch).await
    }

    /// `GET url`, from byte `from` on (`Range: bytes=<from>-` when `from > 0`). Waits at most
    /// the stall timeout for the headers; the status is left to the caller. The URL, and every
    /// redirect followed, must pass the same rule as [`resolve`](Self::resolve).
    pub(crate) async fn fetch(&self, url: &Url, from: u64) -> Result<Response, Error> {
        self.origins.admit(url)?;
        let mut request = self.http.get(url.clone());
        if from > 0 {
            let range = HeaderValue::from_str(&format!("bytes={from}-")).expect("digits are a valid header value");
            request = request.header(RANGE, range);
        }
        let stall = self.timeouts.stall;
        match tokio::time::timeout(stall, request.send()).await {
            Ok(sent) => sent.map_err(|e| refused_redirect(&e).map_or_else(|| transport(&e, stall), Error::Refused)),
            Err(_) => Err(Error::Timeout { after: stall }),
        }
    }

    /// `GET /v1/apps/{app}/keys?after=N`: the signed key documents above version `after`, not
    /// believed yet. A server without the route (404) has none to give.
    pub(crate) async fn key_documents(&self, after: u64) -> Result<KeyDocuments, Error> {
        let url = format!("{}/v1/apps/{}/keys?after={after}", self.base, self.app);
        let timeout = self.timeouts.request;
        let response = self.http.get(&url).timeout(timeout).send().await.map_err(|e| transport(&e, timeout))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(KeyDocuments { documents: Vec::new() });
        }
        let response = fail_on_status(response).await?;
        parse_json(&read_capped(response, MAX_JSON, timeout).await?, "keys")
    }

    async fn post_json<B: Serialize, R: DeserializeOwned>(&self, endpoint: &str, body: &B) -> Result<R, Error> {
        let (bytes, _) = self.post(endpoint, body).await?;
        parse_json(&bytes, endpoint)
    }

    /// Posts `body` as JSON to `/v1/apps/{app}/{endpoint}`; the answer's bytes and headers.
    async fn post<B: Serialize>(&self, endpoint: &str, body: &B) -> Result<(Vec<u8>, HeaderMap), Error> {
        let url = format!("{}/v1/apps/{}/{endpoint}", self.base, self.app);
        let timeout = self.timeouts.request;
        let response =
            self.http.post(&url).timeout(timeout).json(body).send().await.map_err(|e| transport(&e, timeout))?;
        let response = fail_on_status(response).await?;
        let headers = response.headers().clone();
        Ok((read_capped(response, MAX_JSON, timeout).await?, headers))
    }
}

/// A check-in answer as received: its bytes and its proof, not believed yet.
pub(crate) struct CheckAnswer {
    /// The body, exactly as received.
    pub(crate) body: Vec<u8>,
    /// The `Halftone-Answer-Proof` header, if any.
    pub(crate) proof: Option<String>,
}

impl CheckAnswer {
    /// The parsed answer.
    pub(crate) fn parse(&self) -> Result<CheckResponse, Error> {
        parse_json(&self.body, "check")
    }
}

fn parse_json<R: DeserializeOwned>(bytes: &[u8], endpoint: &str) -> Result<R, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Protocol { detail: format!("{endpoint}: {e}") })
}

/// Turns a non-2xx answer into [`Error::Server`], with its problem body and `Retry-After`.
pub(crate) async fn fail_on_status(response: Response) -> Result<Response, Error> {
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Ok(response);
    }
    let retry_after = match status {
        429 | 503 => response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after),
        _ => None,
    };
    // The body is only a courtesy: an unreadable one still leaves the status.
    let body = read_capped(response, MAX_PROBLEM, Duration::from_secs(5)).await.unwrap_or_default();
    let problem = serde_json::from_slice::<Problem>(&body).ok();
    Err(Error::Server { status, problem, retry_after })
}

/// `Retry-After` in delay-seconds (the form Halftone sends); HTTP dates are ignored.
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Reads a whole body of at most `cap` bytes within `timeout`.
async fn read_capped(mut response: Response, cap: usize, timeout: Duration) -> Result<Vec<u8>, Error> {
    let read = async {
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e, timeout))? {
            if out.len() + chunk.len() > cap {
                return Err(Error::Protocol { detail: format!("answer larger than {cap} bytes") });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    };
    tokio::time::timeout(timeout, read).await.unwrap_or(Err(Error::Timeout { after: timeout }))
}

/// Maps a transport failure; `timeout` is the limit that applied to the request.
pub(crate) fn transport(e: &reqwest::Error, timeout: Duration) -> Error {
    if e.is_timeout() { Error::Timeout { after: timeout } } else { Error::Network { detail: chain(e) } }
}

/// The refusal the redirect policy stopped a request with, if it did.
fn refused_redirect(e: &reqwest::Error) -> Option<Refusal> {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(refusal) = c.downcast_ref::<Refusal>() {
            return Some(refusal.clone());
        }
        cause = c.source();
    }
    None
}

/// An error and its causes, joined: reqwest's own message alone rarely says what failed.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(server: &str) -> Result<Api, BuildError> {
        let t = Duration::from_secs(1);
        let timeouts = Timeouts { connect: t, request: t, stall: t };
        Api::new(server, AppId::parse("notes").unwrap(), timeouts, Vec::new(), DownloadLimits::default())
    }

    #[test]
    fn server_urls_are_http_bases() {
        assert_eq!(api("http://127.0.0.1:8080").unwrap().base, "http://127.0.0.1:8080");
        assert_eq!(api("https://updates.example.com/halftone/").unwrap().base, "https://updates.example.com/halftone");
        for bad in ["ftp://x", "not a url", "http://x/?q=1", "mailto:a@b"] {
            assert!(matches!(api(bad), Err(BuildError::Invalid { setting: "server", .. })), "{bad}");
        }
    }

    #[test]
    fn artifact_urls_resolve_against_the_server() {
        let api = api("https://updates.example.com/halftone/").unwrap();
        let r = |u: &str| api.resolve(u).map(|u| u.to_string());
        assert_eq!(r("/v1/artifacts/ab").unwrap(), "https://updates.example.com/halftone/v1/artifacts/ab");
        assert_eq!(r("https://updates.example.com/a.bin").unwrap(), "https://updates.example.com/a.bin");
        let host = |url: &str| Refusal::HostNotAllowed { url: url.into() };
        assert_eq!(r("https://cdn.example.com/a.bin"), Err(host("https://cdn.example.com/a.bin")));
        let insecure = Refusal::InsecureUrl { url: "http://updates.example.com/a.bin".into() };
        assert_eq!(r("http://updates.example.com/a.bin"), Err(insecure));
        let allowing = Api::new(
            "https://updates.example.com",
            AppId::parse("notes").unwrap(),
            api.timeouts,
            vec![AllowedHost::parse("cdn.example.com").unwrap()],
            DownloadLimits::default(),
        )
        .unwrap();
        assert_eq!(
            allowing.resolve("https://cdn.example.com/a.bin").unwrap().as_str(),
            "https://cdn.example.com/a.bin"
        );
        assert!(matches!(allowing.resolve("http://cdn.example.com/a.bin"), Err(Refusal::InsecureUrl { .. })));
        for bad in ["v1/artifacts/ab", "file:///etc/passwd", "ftp://x/y", ""] {
            assert!(matches!(api.resolve(bad), Err(Refusal::BadUrl { .. })), "{bad}");
        }
    }

    #[test]
    fn retry_after_is_seconds() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
