//! [`AdminClient`]: one method per admin route, returning the [`wire`](halftone_channels::wire)
//! types the server sends. This is the crate's only HTTP module.

use std::fmt;
use std::time::Duration;

use halftone_channels::wire::{
    AnswerKeys, AppList, AppSpec, AppView, ArtifactStored, AuditLog, CheckRequest, CheckResponse, CodePushKeyList,
    CodePushKeyRequest, CodePushKeyView, ExperimentRequest, ExperimentView, ExplainRequest, ExplainResponse,
    KeyDocumentSpec, KeyDocuments, Problem, PromoteRequest, PromoteWinnerRequest, PublishRequest, ReleaseList,
    ReleaseView, RollbackRequest, RolloutPatch, RolloutView, StatusView, TokenCreated, TokenList, TokenRequest,
    TokenView, WinnerPromoted,
};
use halftone_channels::{AppId, ChannelName, KeyId, Sha256, Version};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncReadExt as _;

use crate::artifact::CHUNK;
use crate::{AdminError, ETag, LocalArtifact, Written};

/// How long a JSON call may take in all. Uploads have no overall limit (a large artifact on a
/// slow link legitimately takes long); only connecting is bounded for them.
const JSON_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections are dropped well before the server's keep-alive (5 s) closes them, so a
/// request is rarely sent on a connection the server is closing (the benchmark seeder sends
/// thousands of requests back to back and relies on this).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this much of a non-JSON error body is quoted back in an error.
const MAX_QUOTED_BODY: usize = 200;

/// A client of one server's admin API, authenticated by one bearer token. Cheap to clone
/// (clones share the connection pool).
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
}

impl fmt::Debug for AdminClient {
    // The token is a secret: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient").field("base", &self.base.as_str()).field("token", &"<redacted>").finish()
    }
}

impl AdminClient {
    /// A client of the server at `base_url` (e.g. `https://updates.example.com`, optionally with
    /// a path prefix) that authenticates with the admin `token`.
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<Self, AdminError> {
        let invalid = |reason: &str| AdminError::InvalidUrl { url: base_url.to_owned(), reason: reason.to_owned() };
        let mut base = Url::parse(base_url.trim()).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("expected an http:// or https:// URL"));
        }
        if base.cannot_be_a_base() || base.host_str().is_none() {
            return Err(invalid("expected an absolute URL with a host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("expected no query string or fragment"));
        }
        base.set_username("").ok();
        base.set_password(None).ok();
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", token.into())).map_err(|_| AdminError::InvalidToken)?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .user_agent(concat!("halftone-admin/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|e| AdminError::Network { url: base.to_string(), reason: innermost(&e) })?;
        Ok(AdminClient { http, base, auth })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    // ---------- apps ----------

    /// `GET /v1/apps`: every app.
    pub async fn list_apps(&self) -> Result<AppList, AdminError> {
        self.call_json(Method::GET, &["v1", "apps"], None::<&()>).await.map(|r| r.body)
    }

    /// `PUT /v1/apps/{app}`: creates the app, or updates its name, keys and channels.
    pub async fn put_app(&self, app: &AppId, spec: &AppSpec) -> Result<Written<AppView>, AdminError> {
        self.call_json(Method::PUT, &["v1", "apps", app.as_str()], Some(spec)).await.map(Reply::written)
    }

    /// `GET /v1/apps/{app}`: one app.
    pub async fn get_app(&self, app: &AppId) -> Result<AppView, AdminError> {
        self.call_json(Method::GET, &["v1", "apps", app.as_str()], None::<&()>).await.map(|r| r.body)
    }

    /// `POST /v1/apps/{app}/keys`: the app's next signed key document (a release key rotation;
    /// make it with [`ReleaseKey::sign_key_document`](crate::ReleaseKey::sign_key_document)).
    pub async fn rotate_keys(
        &self,
        app: &AppId,
        document: &KeyDocumentSpec,
    ) -> Result<Written<KeyDocumentSpec>, AdminError> {
        self.call_json(Method::POST, &["v1", "apps", app.as_str(), "keys"], Some(document)).await.map(Reply::written)
    }

    /// `GET /v1/apps/{app}/keys`: every signed key document of the app, oldest first.
    pub async fn key_documents(&self, app: &AppId) -> Result<KeyDocuments, AdminError> {
        self.call_json(Method::GET, &["v1", "apps", app.as_str(), "keys"], None::<&()>).await.map(|r| r.body)
    }

    // ---------- CodePush deployment keys ----------

    /// `POST /v1/apps/{app}/codepush-keys`: a CodePush deployment key for a channel and target
    /// (`Existing` when the same name already routes the same way).
    pub async fn create_codepush_key(
        &self,
        app: &AppId,
        request: &CodePushKeyRequest,
    ) -> Result<Written<CodePushKeyView>, AdminError> {
        self.call_json(Method::POST, &["v1", "apps", app.as_str(), "codepush-keys"], Some(request))
            .await
            .map(Reply::written)
    }

    /// `GET /v1/apps/{app}/codepush-keys`: the app's deployment keys, by name.
    pub async fn list_codepush_keys(&self, app: &AppId) -> Result<CodePushKeyList, AdminError> {
        self.call_json(Method::GET, &["v1", "apps", app.as_str(), "codepush-keys"], None::<&()>).await.map(|r| r.body)
    }

    /// `DELETE /v1/apps/{app}/codepush-keys/{name}`: revokes a deployment key at once.
    pub async fn revoke_codepush_key(&self, app: &AppId, name: &str) -> Result<(), AdminError> {
        let url = self.url(&["v1", "apps", app.as_str(), "codepush-keys", name]);
        let request =
            self.http.delete(url.clone()).header(header::AUTHORIZATION, self.auth.clone()).timeout(JSON_TIMEOUT);
        let response = self.send(request, &url).await?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| network(&url, &e))?;
        if status.is_success() { Ok(()) } else { Err(refusal(status, &body)) }
    }

    // ---------- artifacts ----------

    /// `PUT /v1/artifacts/{sha256}`: streams the file to the server, calling `progress` with the
    /// total number of bytes sent so far after each chunk. Uploading bytes the server already
    /// holds is harmless (`created` is then false). If the file changed since it was hashed, the
    /// server refuses it.
    pub async fn upload_artifact(
        &self,
        artifact: &LocalArtifact,
        progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<ArtifactStored, AdminError> {
        let file = tokio::fs::File::open(artifact.path())
            .await
            .map_err(|error| AdminError::File { path: artifact.path().to_owned(), error })?;
        // The progress callback travels with the stream's state, so the stream owns it.
        let chunks =
            futures_util::stream::try_unfold((file, 0u64, progress), |(mut file, sent, mut progress)| async move {
                let mut buf = vec![0u8; CHUNK];
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(None);
                }
                buf.truncate(n);
                let sent = sent + n as u64;
                progress(sent);
                Ok(Some((buf, (file, sent, progress))))
            });
        let url = self.url(&["v1", "artifacts", &artifact.sha256().to_string()]);
        let request = self
            .http
            .put(url.clone())
            .header(header::AUTHORIZATION, self.auth.clone())
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, artifact.size())
            .body(reqwest::Body::wrap_stream(chunks));
        let endpoint = format!("PUT {}", url.path());
        self.finish(request, &url, &endpoint).await.map(|r| r.body)
    }

    /// `PUT /v1/artifacts/{sha256}` for a build already in memory (test fixtures, generated
    /// builds): hashes `bytes` and sends them in one body. As with
    /// [`upload_artifact`](Self::upload_artifact), bytes the server already holds are harmless.
    pub async fn upload_bytes(&self, bytes: Vec<u8>) -> Result<ArtifactStored, AdminError> {
        let url = self.url(&["v1", "artifacts", &Sha256::digest(&bytes).to_string()]);
        let request = self
            .http
            .put(url.clone())
            .header(header::AUTHORIZATION, self.auth.clone())
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        let endpoint = format!("PUT {}", url.path());
        self.finish(request, &url, &endpoint).await.map(|r| r.body)
    }

    /// `GET /v1/artifacts/{sha256}` into the file `dest` (created or truncated), streamed,
    /// its digest checked against `sha256`: a base build for a patch. A file whose bytes do
    /// not have that digest is removed and refused.
    pub async fn download_artifact(&self, sha256: &Sha256, dest: &std::path::Path) -> Result<u64, AdminError> {
        use sha2::Digest as _;
        use tokio::io::AsyncWriteExt as _;
        let url = self.url(&["v1", "artifacts", &sha256.to_string()]);
        let request = self.http.get(url.clone()).header(header::AUTHORIZATION, self.auth.clone());
        let mut response = request.send().await.map_err(|e| network(&url, &e))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.bytes().await.map_err(|e| network(&url, &e))?;
            return Err(refusal(status, &body));
        }
        let file_error = |error| AdminError::File { path: dest.to_owned(), error };
        let mut file = tokio::fs::File::create(dest).await.map_err(file_error)?;
        let (mut hasher, mut size) = (sha2::Sha256::new(), 0u64);
        while let Some(chunk) = response.chunk().await.map_err(|e| network(&url, &e))? {
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(file_error)?;
        }
        file.flush().await.map_err(file_error)?;
        let got = Sha256::from_bytes(hasher.finalize().into());
        if got != *sha256 {
            let _ = tokio::fs::remove_file(dest).await;
            return Err(AdminError::Decode {
                endpoint: format!("GET {}", url.path()),
                reason: format!("the bytes have digest {got}, not {sha256}"),
            });
        }
        Ok(size)
    }

    // ---------- releases ----------

    /// `POST /v1/apps/{app}/releases`: publishes a release (its artifacts uploaded before) with
    /// its first rollout. Publishing the identical release again is [`Written::Existing`].
    pub async fn publish(&self, app: &AppId, request: &PublishRequest) -> Result<Written<ReleaseView>, AdminError> {
        self.call_json(Method::POST, &["v1", "apps", app.as_str(), "releases"], Some(request)).await.map(Reply::written)
    }

    /// `GET /v1/apps/{app}/releases`: every release with its rollouts, newest first.
    pub async fn list_releases(&self, app: &AppId) -> Result<ReleaseList, AdminError> {
        self.call_json(Method::GET, &["v1", "apps", app.as_str(), "releases"], None::<&()>).await.map(|r| r.body)
    }

    /// `GET /v1/apps/{app}/releases/{version}`: one release with its rollouts.
    pub async fn get_release(&self, app: &AppId, version: &Version) -> Result<ReleaseView, AdminError> {
        let v = version.to_string();
        self.call_json(Method::GET, &["v1", "apps", app.as_str(), "releases", &v], None::<&()>).await.map(|r| r.body)
    }

    /// `POST /v1/apps/{app}/releases/{version}/promote`: rolls the release out on a more stable
    /// channel.
    pub async fn promote(
        &self,
        app: &AppId,
        version: &Version,
        request: &PromoteRequest,
    ) -> Result<ReleaseView, AdminError> {
        let v = version.to_string();
        self.call_json(Method::POST, &["v1", "apps", app.as_str(), "releases", &v, "promote"], Some(request))
            .await
            .map(|r| r.body)
    }

    /// `POST /v1/apps/{app}/releases/{version}/halt`: halts every rollout of the release.
    pub async fn halt(&self, app: &AppId, version: &Version) -> Result<ReleaseView, AdminError> {
        let v = version.to_string();
        self.call_json(Method::POST, &["v1", "apps", app.as_str(), "releases", &v, "halt"], None::<&()>)
            .await
            .map(|r| r.body)
    }

    /// `POST /v1/apps/{app}/rollback`: halts the bad version everywhere and publishes the
    /// rebuild of good code in `request`; returns the rebuild.
    pub async fn rollback(&self, app: &AppId, request: &RollbackRequest) -> Result<ReleaseView, AdminError> {
        self.call_json(Method::POST, &["v1", "apps", app.as_str(), "rollback"], Some(request)).await.map(|r| r.body)
    }

    // ---------- rollouts ----------

    /// `GET .../releases/{version}/rollouts/{channel}`: the rollout and the [`ETag`] to change it
    /// with.
    pub async fn get_rollout(
        &self,
        app: &AppId,
        version: &Version,
        channel: &ChannelName,
    ) -> Result<(RolloutView, ETag), AdminError> {
        let v = version.to_string();
        let path = ["v1", "apps", app.as_str(), "releases", &v, "rollouts", channel.as_str()];
        let reply: Reply<RolloutView> = self.call_json(Method::GET, &path, None::<&()>).await?;
        Ok(reply.tagged())
    }

    /// `PATCH .../releases/{version}/rollouts/{channel}`: changes the fields set in `patch`, if
    /// the rollout is still in the state `etag` names (412 Precondition Failed otherwise: read
    /// it again and decide again). Returns the new state and its tag.
    pub async fn patch_rollout(
        &self,
        app: &AppId,
        version: &Version,
        channel: &ChannelName,
        etag: &ETag,
        patch: &RolloutPatch,
    ) -> Result<(RolloutView, ETag), AdminError> {
        let v = version.to_string();
        let url = self.url(&["v1", "apps", app.as_str(), "releases", &v, "rollouts", channel.as_str()]);
        let request = self
            .http
            .patch(url.clone())
            .header(header::AUTHORIZATION, self.auth.clone())
            .header(header::IF_MATCH, etag.as_str())
            .json(patch)
            .timeout(JSON_TIMEOUT);
        let endpoint = format!("PATCH {}", url.path());
        let reply: Reply<RolloutView> = self.finish(request, &url, &endpoint).await?;
        Ok(reply.tagged())
    }

    // ---------- A/B/N experiments ----------

    /// `POST /v1/apps/{app}/channels/{channel}/experiment`: starts an experiment whose arms
    /// are releases already rolled out on the channel.
    pub async fn start_experiment(
        &self,
        app: &AppId,
        channel: &ChannelName,
        request: &ExperimentRequest,
    ) -> Result<ExperimentView, AdminError> {
        let path = ["v1", "apps", app.as_str(), "channels", channel.as_str(), "experiment"];
        self.call_json(Method::POST, &path, Some(request)).await.map(|r| r.body)
    }

    /// `GET /v1/apps/{app}/channels/{channel}/experiment`: the arms side by side, and the
    /// [`ETag`] to promote the winner with.
    pub async fn experiment(&self, app: &AppId, channel: &ChannelName) -> Result<(ExperimentView, ETag), AdminError> {
        let path = ["v1", "apps", app.as_str(), "channels", channel.as_str(), "experiment"];
        let reply: Reply<ExperimentView> = self.call_json(Method::GET, &path, None::<&()>).await?;
        let etag = reply
            .headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| ETag::new(reply.body.etag.clone()), ETag::new);
        Ok((reply.body, etag))
    }

    /// `POST .../experiment/promote`: promotes the winner, if the experiment is still in the
    /// state `etag` names (412 otherwise).
    pub async fn promote_winner(
        &self,
        app: &AppId,
        channel: &ChannelName,
        etag: &ETag,
        request: &PromoteWinnerRequest,
    ) -> Result<WinnerPromoted, AdminError> {
        let url = self.url(&["v1", "apps", app.as_str(), "channels", channel.as_str(), "experiment", "promote"]);
        let builder = self
            .http
            .post(url.clone())
            .header(header::AUTHORIZATION, self.auth.clone())
            .header(header::IF_MATCH, etag.as_str())
            .json(request)
            .timeout(JSON_TIMEOUT);
        let endpoint = format!("POST {}", url.path());
        let reply: Reply<WinnerPromoted> = self.finish(builder, &url, &endpoint).await?;
        Ok(reply.body)
    }

    // ---------- audit and explain ----------

    /// `GET /v1/apps/{app}/audit`: every change made to the app, oldest first.
    pub async fn audit(&self, app: &AppId) -> Result<AuditLog, AdminError> {
        self.call_json(Method::GET, &["v1", "apps", app.as_str(), "audit"], None::<&()>).await.map(|r| r.body)
    }

    /// `GET /v1/audit`: the server-wide log (token creation and revocation), oldest first;
    /// admins only.
    pub async fn server_audit(&self) -> Result<AuditLog, AdminError> {
        self.call_json(Method::GET, &["v1", "audit"], None::<&()>).await.map(|r| r.body)
    }

    /// `GET /v1/apps/{app}/status`: every release's rollouts with state, schedule, gate,
    /// feedback figures and history, and adoption by version.
    pub async fn status(&self, app: &AppId) -> Result<StatusView, AdminError> {
        self.call_json(Method::GET, &["v1", "apps", app.as_str(), "status"], None::<&()>).await.map(|r| r.body)
    }

    /// `POST /v1/apps/{app}/explain`: what the device described by `request` (a check-in, and
    /// the IP address `ip_in` rules see, if any) would be offered, and every release's verdict
    /// with its reasons.
    pub async fn explain(&self, app: &AppId, request: &ExplainRequest) -> Result<ExplainResponse, AdminError> {
        self.call_json(Method::POST, &["v1", "apps", app.as_str(), "explain"], Some(request)).await.map(|r| r.body)
    }

    /// `POST /v1/apps/{app}/check`: asks exactly as a device would (the device route, which
    /// needs no token), for demos and smoke checks. Apps embed the device SDK instead.
    pub async fn check_as_device(&self, app: &AppId, request: &CheckRequest) -> Result<CheckResponse, AdminError> {
        let url = self.url(&["v1", "apps", app.as_str(), "check"]);
        let endpoint = format!("POST {}", url.path());
        let request = self.http.post(url.clone()).json(request).timeout(JSON_TIMEOUT);
        self.finish(request, &url, &endpoint).await.map(|r| r.body)
    }

    // ---------- tokens ----------

    /// `POST /v1/tokens`: creates a token; the answer is the only time its secret is shown.
    pub async fn create_token(&self, request: &TokenRequest) -> Result<TokenCreated, AdminError> {
        self.call_json(Method::POST, &["v1", "tokens"], Some(request)).await.map(|r| r.body)
    }

    /// `GET /v1/tokens`: the live tokens, without their secrets.
    pub async fn list_tokens(&self) -> Result<TokenList, AdminError> {
        self.call_json(Method::GET, &["v1", "tokens"], None::<&()>).await.map(|r| r.body)
    }

    /// `GET /v1/whoami`: the calling token's own view (name, role, apps).
    pub async fn whoami(&self) -> Result<TokenView, AdminError> {
        self.call_json(Method::GET, &["v1", "whoami"], None::<&()>).await.map(|r| r.body)
    }

    /// `DELETE /v1/tokens/{id}`: revokes a token at once.
    pub async fn revoke_token(&self, id: &str) -> Result<(), AdminError> {
        let url = self.url(&["v1", "tokens", id]);
        let request =
            self.http.delete(url.clone()).header(header::AUTHORIZATION, self.auth.clone()).timeout(JSON_TIMEOUT);
        let response = self.send(request, &url).await?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| network(&url, &e))?;
        if status.is_success() { Ok(()) } else { Err(refusal(status, &body)) }
    }

    /// `GET /v1/answer-keys`: the public keys that sign check-in answers (no token needed).
    pub async fn answer_keys(&self) -> Result<AnswerKeys, AdminError> {
        self.call_json(Method::GET, &["v1", "answer-keys"], None::<&()>).await.map(|r| r.body)
    }

    /// `POST /v1/answer-keys`: a new answer key signs from now on; the older ones stay for
    /// apps that pin them.
    pub async fn rotate_answer_key(&self) -> Result<AnswerKeys, AdminError> {
        self.call_json(Method::POST, &["v1", "answer-keys"], None::<&()>).await.map(|r| r.body)
    }

    /// `DELETE /v1/answer-keys/{id}`: an older answer key no longer signs.
    pub async fn retire_answer_key(&self, id: &KeyId) -> Result<AnswerKeys, AdminError> {
        self.call_json(Method::DELETE, &["v1", "answer-keys", id.as_str()], None::<&()>).await.map(|r| r.body)
    }

    // ---------- plumbing ----------

    /// The base URL with `segments` appended, each percent-encoded as one path segment (so an
    /// id can never add a segment or a query).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` refused URLs that cannot be a base, so this cannot fail.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn call_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<Reply<T>, AdminError> {
        let url = self.url(segments);
        let endpoint = format!("{method} {}", url.path());
        let mut request = self
            .http
            .request(method, url.clone())
            .header(header::AUTHORIZATION, self.auth.clone())
            .timeout(JSON_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.finish(request, &url, &endpoint).await
    }

    async fn send(&self, request: RequestBuilder, url: &Url) -> Result<reqwest::Response, AdminError> {
        request.header(header::ACCEPT, "application/json").send().await.map_err(|e| network(url, &e))
    }

    /// Sends the request and reads a JSON answer, or the server's problem.
    async fn finish<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        url: &Url,
        endpoint: &str,
    ) -> Result<Reply<T>, AdminError> {
        let response = self.send(request, url).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| network(url, &e))?;
        if !status.is_success() {
            return Err(refusal(status, &body));
        }
        let body = serde_json::from_slice(&body)
            .map_err(|e| AdminError::Decode { endpoint: endpoint.to_owned(), reason: e.to_string() })?;
        Ok(Reply { status, headers, body })
    }
}

/// A successful answer, with what some calls need beyond the body.
struct Reply<T> {
    status: StatusCode,
    headers: HeaderMap,
    body: T,
}

impl<T> Reply<T> {
    fn written(self) -> Written<T> {
        if self.status == StatusCode::CREATED { Written::Created(self.body) } else { Written::Existing(self.body) }
    }
}

impl Reply<RolloutView> {
    /// The rollout and its tag: the `ETag` header, or the body's `etag` field if a proxy
    /// dropped the header.
    fn tagged(self) -> (RolloutView, ETag) {
        let etag = self
            .headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| ETag::new(self.body.etag.clone()), ETag::new);
        (self.body, etag)
    }
}

/// The error for a non-success answer: the server's problem body, or one made from the status
/// and the start of whatever text came back.
fn refusal(status: StatusCode, body: &[u8]) -> AdminError {
    let problem = serde_json::from_slice::<Problem>(body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let looks_like_text = !text.is_empty() && !text.starts_with('<') && !text.starts_with('{');
        let detail = if looks_like_text { text.chars().take(MAX_QUOTED_BODY).collect() } else { String::new() };
        Problem {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("").to_owned(),
            status: status.as_u16(),
            detail,
        }
    });
    AdminError::Server { status: status.as_u16(), problem }
}

fn network(url: &Url, error: &reqwest::Error) -> AdminError {
    let reason = if error.is_timeout() { "the request timed out".to_owned() } else { innermost(error) };
    AdminError::Network { url: url.to_string(), reason }
}

/// The innermost cause of an error: reqwest wraps the useful part ("Connection refused")
/// under layers that only repeat the URL.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut e = error;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_problem_bodies_still_give_a_sentence() {
        let e = refusal(StatusCode::BAD_GATEWAY, b"<html>nginx</html>");
        assert_eq!(e.to_string(), "the server failed to handle the request (502 Bad Gateway)");
        assert_eq!(e.status(), Some(502));
        let e = refusal(StatusCode::NOT_FOUND, b"no such route\n");
        assert_eq!(e.to_string(), "the server refused the request (404 Not Found): no such route");
        let problem = Problem {
            kind: "urn:halftone:problem:conflict".into(),
            title: "Conflict".into(),
            status: 409,
            detail: "rollout changed since it was read".into(),
        };
        let body = serde_json::to_vec(&problem).unwrap();
        let e = refusal(StatusCode::PRECONDITION_FAILED, &body);
        assert_eq!(
            e.to_string(),
            "the server refused the request (412 Precondition Failed): rollout changed since it was read"
        );
        assert_eq!(e.problem().unwrap().kind, "urn:halftone:problem:conflict");
    }

    #[test]
    fn urls_keep_a_prefix_and_encode_each_segment() {
        let c = AdminClient::new("https://example.com/updates/", "t").unwrap();
        assert_eq!(c.url(&["v1", "apps"]).as_str(), "https://example.com/updates/v1/apps");
        let c = AdminClient::new("http://127.0.0.1:8080", "t").unwrap();
        assert_eq!(c.url(&["v1", "tokens", "a/b?c"]).as_str(), "http://127.0.0.1:8080/v1/tokens/a%2Fb%3Fc");
        assert_eq!(
            c.url(&["v1", "apps", "notes", "releases", "1.2.0+build.5"]).as_str(),
            "http://127.0.0.1:8080/v1/apps/notes/releases/1.2.0+build.5"
        );
    }

    #[test]
    fn bad_urls_and_tokens_are_refused_up_front() {
        for bad in ["", "127.0.0.1:8080", "ftp://example.com", "mailto:a@b", "http://h/?q=1"] {
            let e = AdminClient::new(bad, "t").unwrap_err();
            assert!(matches!(e, AdminError::InvalidUrl { .. }), "{bad:?}: {e}");
        }
        assert!(matches!(AdminClient::new("http://h", "a\nb").unwrap_err(), AdminError::InvalidToken));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = AdminClient::new("http://h", "s3cret").unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    /// One request as a tiny fake server saw it.
    #[derive(Debug)]
    struct Seen {
        head: String,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
        }
    }

    /// Serves one canned response per connection, in order, and hands back what it received.
    async fn fake_server(responses: Vec<String>) -> (String, tokio::task::JoinHandle<Vec<Seen>>) {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for response in responses {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                let head_end = loop {
                    let n = conn.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the client closed the connection early");
                    data.extend_from_slice(&buf[..n]);
                    if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
                let mut request = Seen { head, body: data[head_end..].to_vec() };
                let len: usize = request.header("content-length").map_or(0, |v| v.parse().unwrap());
                while request.body.len() < len {
                    let n = conn.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the body ended early");
                    request.body.extend_from_slice(&buf[..n]);
                }
                conn.write_all(response.as_bytes()).await.unwrap();
                conn.shutdown().await.unwrap();
                seen.push(request);
            }
            seen
        });
        (base, task)
    }

    fn response(status: &str, headers: &[&str], body: &str) -> String {
        let mut r = format!("HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
        for h in headers {
            r.push_str(h);
            r.push_str("\r\n");
        }
        r.push_str("\r\n");
        r.push_str(body);
        r
    }

    #[tokio::test]
    async fn uploads_stream_the_file_with_its_length_and_report_progress() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("build.bin");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let artifact = LocalArtifact::hash(&path).await.unwrap();
        let stored = format!(r#"{{"sha256":"{}","size":300000,"created":true}}"#, artifact.sha256());
        let (base, server) =
            fake_server(vec![response("201 Created", &["content-type: application/json"], &stored)]).await;

        let client = AdminClient::new(&base, "t0ken").unwrap();
        let reported = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = reported.clone();
        let answer = client.upload_artifact(&artifact, move |sent| sink.lock().unwrap().push(sent)).await.unwrap();
        assert!(answer.created);

        let seen = server.await.unwrap();
        let put = &seen[0];
        assert!(put.head.starts_with(&format!("PUT /v1/artifacts/{} HTTP/1.1", artifact.sha256())), "{}", put.head);
        assert_eq!(put.header("content-length"), Some("300000"));
        assert_eq!(put.header("transfer-encoding"), None);
        assert_eq!(put.header("authorization"), Some("Bearer t0ken"));
        assert_eq!(put.header("content-type"), Some("application/octet-stream"));
        assert_eq!(put.body, data);
        let reported = reported.lock().unwrap();
        assert!(reported.windows(2).all(|w| w[0] < w[1]), "progress only grows");
        assert_eq!(reported.last(), Some(&300_000));
    }

    #[tokio::test]
    async fn builds_in_memory_upload_under_their_digest() {
        let data = b"a build made by a test".to_vec();
        let sha256 = Sha256::digest(&data);
        let stored = format!(r#"{{"sha256":"{sha256}","size":{},"created":false}}"#, data.len());
        let (base, server) = fake_server(vec![response("200 OK", &["content-type: application/json"], &stored)]).await;
        let answer = AdminClient::new(&base, "t").unwrap().upload_bytes(data.clone()).await.unwrap();
        assert!(!answer.created);
        let seen = server.await.unwrap();
        assert!(seen[0].head.starts_with(&format!("PUT /v1/artifacts/{sha256} HTTP/1.1")), "{}", seen[0].head);
        assert_eq!(seen[0].header("authorization"), Some("Bearer t"));
        assert_eq!(seen[0].body, data);
    }

    #[tokio::test]
    async fn rollout_changes_send_back_the_etag_they_read() {
        let view = r#"{"channel":"beta","etag":"\"from-body\"","basis_points":1000,"state":"active"}"#;
        let stale = r#"{"type":"urn:halftone:problem:stale","title":"Precondition Failed","status":412,
            "detail":"the rollout changed since it was read; read it again"}"#;
        let (base, server) = fake_server(vec![
            response("200 OK", &["etag: \"r7\"", "content-type: application/json"], view),
            response("412 Precondition Failed", &["content-type: application/problem+json"], stale),
        ])
        .await;
        let client = AdminClient::new(&base, "t").unwrap();
        let (app, version, beta) = (AppId::parse("notes").unwrap(), Version::new(1, 2, 0), ChannelName::beta());
        let (got, etag) = client.get_rollout(&app, &version, &beta).await.unwrap();
        assert_eq!(etag.as_str(), "\"r7\"", "the header wins over the body");
        assert_eq!(got.rollout.basis_points.basis_points(), 1000);

        let patch = RolloutPatch { state: Some(halftone_channels::RolloutState::Paused), ..RolloutPatch::default() };
        let e = client.patch_rollout(&app, &version, &beta, &etag, &patch).await.unwrap_err();
        assert_eq!(e.status(), Some(412));
        assert_eq!(
            e.to_string(),
            "the server refused the request (412 Precondition Failed): the rollout changed since it was read; read it again"
        );

        let seen = server.await.unwrap();
        assert!(seen[0].head.starts_with("GET /v1/apps/notes/releases/1.2.0/rollouts/beta "), "{}", seen[0].head);
        assert!(seen[1].head.starts_with("PATCH /v1/apps/notes/releases/1.2.0/rollouts/beta "), "{}", seen[1].head);
        assert_eq!(seen[1].header("if-match"), Some("\"r7\""));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&seen[1].body).unwrap(),
            serde_json::json!({"state":"paused"})
        );
    }

    #[tokio::test]
    async fn idempotent_writes_tell_created_from_existing() {
        let app = r#"{"id":"notes","display_name":"Notes","keys":[],"channels":[]}"#;
        let (base, server) = fake_server(vec![
            response("201 Created", &["content-type: application/json"], app),
            response("200 OK", &["content-type: application/json"], app),
            response("200 OK", &["content-type: application/json"], "{\"apps\": 3}"),
        ])
        .await;
        let client = AdminClient::new(&base, "t").unwrap();
        let id = AppId::parse("notes").unwrap();
        let spec = AppSpec { display_name: "Notes".parse().unwrap(), keys: vec![], channels: vec![], metrics: vec![] };
        assert!(client.put_app(&id, &spec).await.unwrap().is_created());
        let again = client.put_app(&id, &spec).await.unwrap();
        assert!(!again.is_created());
        assert_eq!(again.into_inner().display_name.as_str(), "Notes");
        let e = client.list_apps().await.unwrap_err();
        assert!(matches!(e, AdminError::Decode { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with("the server's answer to GET /v1/apps was not what this client expects: "),
            "{e}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_network_error() {
        // Port 9 on loopback: nothing listens there in a test environment.
        let c = AdminClient::new("http://127.0.0.1:9", "t").unwrap();
        let e = c.list_apps().await.unwrap_err();
        assert!(matches!(e, AdminError::Network { .. }), "{e:?}");
        assert!(e.to_string().starts_with("could not reach the server at http://127.0.0.1:9/v1/apps: "), "{e}");
    }
}
