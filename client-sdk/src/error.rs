//! The SDK's errors: [`BuildError`] (setting a client up), [`Error`] (every call after that),
//! with [`Refusal`] (an offer the SDK will not take) and [`Rejection`] (a download that failed
//! verification and was deleted), and [`StateError`] (the state directory).

use std::path::PathBuf;
use std::time::Duration;

use halftone_channels::wire::Problem;
use halftone_channels::{ChannelName, KeyId, Sha256, Target, Version};

/// Why [`ClientBuilder::build`](crate::ClientBuilder::build) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A required setting was not given; the value names the builder method to call.
    #[error("missing setting: call ClientBuilder::{0}")]
    Missing(&'static str),
    /// A setting's value was refused.
    #[error("invalid {setting}: {reason}")]
    Invalid {
        /// The builder method whose value was refused.
        setting: &'static str,
        /// Why, in one sentence.
        reason: String,
    },
    /// No trusted key was given, so no download could ever verify.
    #[error("no trusted key: call ClientBuilder::trusted_key with the key(s) compiled into the app")]
    NoTrustedKeys,
    /// The state directory could not be opened, or holds a corrupt file.
    #[error(transparent)]
    State(#[from] StateError),
    /// The HTTP client (for example, its TLS roots) or, for the blocking client, its runtime
    /// could not be started.
    #[error("cannot start the SDK: {0}")]
    Startup(String),
}

/// A problem with the state directory (device id, channel choice, version watermark).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing a state file failed.
    #[error("state file {path}: {source}", path = path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A state file holds something the SDK never writes. It is not replaced silently: a
    /// regenerated device id would move the device between rollout buckets, and a lost
    /// watermark would let an old build be replayed. Delete the file to reset it knowingly.
    #[error("state file {path} is corrupt: {reason}", path = path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a call to the server, a download or a state change failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not be reached, or the connection broke before an answer.
    #[error("network error: {detail}")]
    Network {
        /// The cause, with its chain.
        detail: String,
    },
    /// No answer (or, during a download, no bytes) within the configured timeout.
    #[error("timed out after {after:?}")]
    Timeout {
        /// The timeout that expired.
        after: Duration,
    },
    /// The server answered with an error status.
    #[error("server answered {status}{}", problem.as_ref().map(|p| format!(": {}", p.detail)).unwrap_or_default())]
    Server {
        /// The HTTP status code.
        status: u16,
        /// The problem body, when the server sent one.
        problem: Option<Problem>,
        /// How long the server asked us to wait (`Retry-After` on 429 and 503).
        retry_after: Option<Duration>,
    },
    /// The server's answer does not follow the protocol (bad JSON, bad headers, too large).
    #[error("unexpected answer from the server: {detail}")]
    Protocol {
        /// What was wrong.
        detail: String,
    },
    /// The answer's proof did not verify (the app pins an answer key): the update state
    /// could not be determined. Not "up to date": a withheld or replayed answer looks exactly
    /// like one.
    #[error("could not determine the update state: {0}")]
    Unverified(#[from] crate::Unverified),
    /// The server offered an update the SDK does not take.
    #[error("update refused: {0}")]
    Refused(#[from] Refusal),
    /// The downloaded file failed verification; it was deleted.
    #[error("download rejected and deleted: {0}")]
    Rejected(#[from] Rejection),
    /// The download ended before the signed size was reached. The partial file
    /// (`<dest>.<sha256>.part`) is kept, and the next [`download`](crate::Client::download)
    /// resumes it.
    #[error("download incomplete: {received} of {expected} bytes ({cause})")]
    Incomplete {
        /// Bytes on disk so far.
        received: u64,
        /// The signed size.
        expected: u64,
        /// Why the transfer stopped.
        cause: String,
    },
    /// The download's average rate over the last `window` fell below the app's minimum
    /// ([`ClientBuilder::min_download_rate`](crate::ClientBuilder::min_download_rate)): the
    /// server trickles. The partial file is kept, and the next
    /// [`download`](crate::Client::download) resumes it.
    #[error("download too slow: {received} bytes in the last {window:?}, below the minimum of {min_rate} bytes/s")]
    TooSlow {
        /// Bytes received during the window.
        received: u64,
        /// The window the rate was averaged over.
        window: Duration,
        /// The minimum rate, in bytes per second.
        min_rate: u64,
    },
    /// The download did not finish within its deadline
    /// ([`ClientBuilder::download_deadline`](crate::ClientBuilder::download_deadline)). The
    /// partial file is kept, and the next [`download`](crate::Client::download) resumes it.
    #[error("download did not finish within {deadline:?}: {received} of {expected} bytes")]
    DeadlineExceeded {
        /// The deadline that passed.
        deadline: Duration,
        /// Bytes on disk so far.
        received: u64,
        /// The signed size.
        expected: u64,
    },
    /// Reading or writing a download file failed.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The state directory failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The server's key documents do not chain onto the newest one this device trusts (a
    /// gap, a lower or equal version, another app's, or too few signatures). The SDK keeps
    /// trusting what it trusted before, and its state is unchanged.
    #[error("release key documents refused, trust unchanged: {0}")]
    KeyChain(#[from] halftone_channels::KeyChainError),
    /// Installing, launching or confirming a build failed ([`Installation`](crate::Installation)).
    #[error("install failed: {0}")]
    Install(#[from] crate::InstallError),
    /// A device trait was refused (bad value, or more than [`MAX_TRAITS`](crate::MAX_TRAITS)).
    #[error("invalid device trait: {reason}")]
    InvalidTrait {
        /// Why.
        reason: String,
    },
}

impl Error {
    /// How long the server asked us to wait before the next call, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Why the SDK refused an offered update. Such an update is never downloaded or installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The offered version is not newer than the running one: the SDK never downgrades.
    #[error("offered {offered} is not newer than the running {running}")]
    NotNewer {
        /// The offered version.
        offered: Version,
        /// The version the app runs.
        running: Version,
    },
    /// The offered version is below the highest version this device has ever verified (a
    /// replay of an old genuine build), or is that version with other bytes.
    #[error("offered {offered} is below the highest version this device has verified ({watermark})")]
    BelowWatermark {
        /// The offered version.
        offered: Version,
        /// The highest version verified on this device.
        watermark: Version,
    },
    /// The offered version was installed on this device and reverted (it did not confirm a
    /// good start), or is not newer than that version: only a newer build is taken.
    #[error("offered {offered} is not newer than {reverted}, which this device reverted")]
    Reverted {
        /// The offered version.
        offered: Version,
        /// The version this device reverted.
        reverted: Version,
    },
    /// The offered build is for another os or architecture.
    #[error("offered build is for {offered}, this device is {device}")]
    WrongTarget {
        /// The build's target.
        offered: Target,
        /// The device's target.
        device: Target,
    },
    /// The build is larger than the app allows
    /// ([`ClientBuilder::max_download_size`](crate::ClientBuilder::max_download_size)). The
    /// size is only proven by the signature once all bytes are in, so without this limit a
    /// hostile server could make the device download without end.
    #[error("offered build has {size} bytes, more than the {limit} this app allows")]
    TooLarge {
        /// The offered size.
        size: u64,
        /// The app's limit.
        limit: u64,
    },
    /// The build is signed by a key this app does not trust: its signature could never verify,
    /// so it is refused before anything is downloaded.
    #[error("offered build is signed by key {key_id}, which this app does not trust")]
    UntrustedKey {
        /// The key id the offer names.
        key_id: KeyId,
    },
    /// The build was offered through a channel less stable than the device's own (or one the
    /// app does not have): a stable device never takes a beta build.
    #[error("offered through channel {offered}, which a device on {device} does not take")]
    WrongChannel {
        /// The offer's channel.
        offered: ChannelName,
        /// The device's channel.
        device: ChannelName,
    },
    /// The offer's signature list is malformed (empty, or longer than the SDK accepts).
    #[error("offered build's signatures are malformed: {reason}")]
    BadSignatures {
        /// Why.
        reason: String,
    },
    /// The app's keys need signatures by `needed` distinct trusted keys (k-of-n), and the offer
    /// names fewer: it could never verify, so it is refused before anything is downloaded.
    #[error("offered build names {named} distinct trusted keys, {needed} needed")]
    TooFewTrustedKeys {
        /// Distinct trusted key ids the offer names.
        named: usize,
        /// The threshold of the newest trusted key document.
        needed: usize,
    },
    /// The artifact URL is neither an absolute http(s) URL nor a path on the server.
    #[error("artifact URL {url:?} is not usable: {reason}")]
    BadUrl {
        /// The URL as offered.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// The artifact URL, or a redirect a download was sent, is on a host the app does not
    /// allow: only the server's own origin (scheme, host and port) and the hosts given to
    /// [`ClientBuilder::allow_download_host`](crate::ClientBuilder::allow_download_host) are.
    /// Refused before any request to it.
    #[error("artifact URL {url:?} is on a host this app does not download from")]
    HostNotAllowed {
        /// The URL, without its query (a pre-signed URL's query is a credential).
        url: String,
    },
    /// The artifact URL, or a redirect a download was sent, is plain `http` while the server
    /// is `https`: a download is never less protected than the check that offered it.
    #[error("artifact URL {url:?} is plain http, but the server is https")]
    InsecureUrl {
        /// The URL, without its query.
        url: String,
    },
}

/// Why a downloaded file failed verification. The file is deleted before this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The server sent (or announced) more bytes than the signed size.
    #[error("server sent more than the signed {expected} bytes")]
    Oversized {
        /// The signed size.
        expected: u64,
    },
    /// The file on disk does not have the signed size.
    #[error("file has {actual} bytes, the signed size is {expected}")]
    SizeMismatch {
        /// The signed size.
        expected: u64,
        /// The size on disk.
        actual: u64,
    },
    /// The bytes' SHA-256 is not the offered one.
    #[error("sha256 is {actual}, expected {expected}")]
    HashMismatch {
        /// The offered digest.
        expected: Sha256,
        /// The digest of the bytes received.
        actual: Sha256,
    },
    /// The signature names a key that is not compiled into the app.
    #[error("signed by key {0}, which this app does not trust")]
    UnknownKey(KeyId),
    /// The signature does not cover this app, version, os, arch, digest and size under the
    /// named key: it was made for another build, or forged.
    #[error("signature by key {0} does not match this app, version, platform and file")]
    BadSignature(KeyId),
    /// Fewer distinct trusted keys made valid signatures than the app's threshold (k-of-n).
    #[error("valid signatures by {valid} distinct trusted keys, {needed} needed")]
    TooFewSignatures {
        /// Distinct trusted keys whose signature verified.
        valid: usize,
        /// The threshold.
        needed: usize,
    },
}
