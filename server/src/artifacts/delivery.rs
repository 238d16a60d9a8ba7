//! How a download is answered: the operator's [`DownloadMode`], and the store's [`Delivery`]
//! for one request, which the HTTP handler turns into a response without knowing the backend.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use halftone_channels::Sha256;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::bucket::Known;

/// How downloads of stored artifacts are answered (`--artifact-downloads`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DownloadMode {
    /// This server sends the bytes (Range, ETag, If-Range, HEAD), from either backend.
    #[default]
    Stream,
    /// `307` to a URL pre-signed by the object store, valid for `ttl`.
    Redirect {
        /// How long the signed URL works (a download that started goes on after it expires).
        ttl: Duration,
    },
    /// `307` to `<base>/<sha256>`: a CDN (or any public URL) in front of the bucket.
    Cdn(CdnBase),
}

/// A CDN's base URL: `http(s)://host[/path]`, no query or fragment, no trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdnBase(String);

impl CdnBase {
    /// Parses a base URL.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let url = object_store::signer::Url::parse(s).map_err(|e| anyhow::anyhow!("CDN base URL {s:?}: {e}"))?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https") && url.host().is_some(),
            "CDN base URL {s:?}: expected http(s)://HOST[/PATH]"
        );
        anyhow::ensure!(
            url.query().is_none() && url.fragment().is_none(),
            "CDN base URL {s:?}: no query or fragment (the digest is appended as a path part)"
        );
        Ok(CdnBase(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The base, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl DownloadMode {
    /// Parses `stream`, `redirect` or `cdn=BASE_URL`; `ttl` is for `redirect`.
    pub fn parse(s: &str, ttl: Duration) -> anyhow::Result<Self> {
        match s.trim() {
            "stream" => Ok(DownloadMode::Stream),
            "redirect" => Ok(DownloadMode::Redirect { ttl }),
            other => match other.strip_prefix("cdn=") {
                Some(base) => Ok(DownloadMode::Cdn(CdnBase::parse(base)?)),
                None => anyhow::bail!("--artifact-downloads {s:?}: expected stream, redirect or cdn=BASE_URL"),
            },
        }
    }
}

/// What the request wants: the headers only (`HEAD`), or the bytes too (`GET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// `HEAD`: answered by this server in every mode (it knows the size), never redirected.
    Head,
    /// `GET`.
    Get,
}

/// How the store answers one download.
pub enum Delivery {
    /// Nothing is stored under the digest.
    Missing,
    /// A file on this machine (the directory backend).
    File(std::path::PathBuf),
    /// An object this server streams (the bucket backend in stream mode, and every `HEAD`).
    Object(StoredObject),
    /// The client is sent elsewhere.
    Redirect(Redirect),
}

/// A redirect answer.
#[derive(Debug)]
pub struct Redirect {
    /// The `Location`.
    pub location: String,
    /// Its `Cache-Control`: a signed URL expires, so its redirect must not be kept.
    pub cache_control: &'static str,
}

/// An object in the bucket that exists and has `size` bytes; [`read`](Self::read) streams
/// a range of it.
pub struct StoredObject {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    sha: Sha256,
    size: u64,
    known: Known,
}

/// A body of bytes from the object store.
pub type ObjectBody = BoxStream<'static, Result<Bytes, object_store::Error>>;

impl StoredObject {
    pub(super) fn new(store: Arc<dyn ObjectStore>, path: ObjectPath, sha: Sha256, size: u64, known: Known) -> Self {
        StoredObject { store, path, sha, size, known }
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Streams the bytes in `range` (within the object). The store is asked now, before any
    /// header is sent, so that a store that does not answer is an error answer, not a body
    /// cut short.
    pub async fn read(&self, range: Range<u64>) -> anyhow::Result<ObjectBody> {
        if range.is_empty() {
            return Ok(futures_util::stream::empty().boxed());
        }
        // The whole object is a plain GET: some stores serve ranges more slowly.
        let range = (range != (0..self.size)).then_some(GetRange::Bounded(range));
        let options = GetOptions { range, ..GetOptions::default() };
        let got = self.store.get_opts(&self.path, options).await.map_err(|e| {
            if matches!(e, object_store::Error::NotFound { .. }) {
                // Deleted behind our back: the next request asks the store again (and gets 404).
                self.known.lock().expect("no panic while holding the lock").remove(&self.sha);
            }
            anyhow::Error::new(e).context(format!("reading {} from the object store", self.path))
        })?;
        Ok(got.into_stream())
    }
}
