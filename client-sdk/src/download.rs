//! Fetching a build into its partial file, `<dest>.<sha256>.part`: resumed with `Range` when
//! a partial file of the same build is there, capped at the signed size, and bounded in time
//! three ways (a stall timeout per read, a minimum average rate over a sliding window, an
//! overall deadline; see [`crate::pace`]). Verification and the move into place are
//! [`crate::verify`]'s.
//!
//! The partial file is named after the expected digest, so the bytes of one build are never
//! resumed into another: a download removes the partial files other builds left for the same
//! `dest` (and the digest-less `<dest>.part` of older SDKs) before it starts.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Response;
use reqwest::header::CONTENT_RANGE;
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::api::{Api, chain, fail_on_status};
use crate::pace::DownloadLimits;
use crate::{Error, Progress, Rejection, Sha256, Update};

/// Where the download of the build with digest `sha256` to `dest` accumulates until it is
/// verified: `<dest>.<sha256>.part`.
pub(crate) fn part_path(dest: &Path, sha256: &Sha256) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(format!(".{sha256}.part"));
    PathBuf::from(name)
}

/// Fetches `update` for `dest` into its part file until it holds exactly the signed size;
/// answers the part file's path.
///
/// Partial files of other builds for `dest` are removed first. A partial file of this build
/// left by an interrupted download is resumed with `Range: bytes=<len>-`; a `206` that starts
/// there is appended, a `200` starts over. Bytes beyond the signed size are never written: the
/// part file is deleted and the download rejected. An interruption (a stall, a closed
/// connection, a rate below the minimum, the deadline) keeps the part file for the next
/// attempt.
pub(crate) async fn fetch(
    api: &Api,
    update: Source<'_>,
    dest: &Path,
    progress: &mut dyn Progress,
) -> Result<PathBuf, Error> {
    let part = part_path(dest, update.sha256);
    remove_stale_parts(dest, update.sha256).await;
    let size = update.size;
    let mut have = match tokio::fs::metadata(&part).await {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(source) => return Err(Error::Io { path: part, source }),
    };
    if have > size {
        remove(&part).await?;
        have = 0;
    }
    if have == size {
        progress.update(have, size);
        return Ok(part);
    }
    let limits = api.limits();
    let deadline = limits.deadline_for(size);
    let clock = Clock { deadline_at: after(Instant::now(), deadline), deadline, expected: size };
    let (response, from) = match tokio::time::timeout_at(clock.deadline_at, request(api, update, have)).await {
        Ok(answered) => answered?,
        Err(_) => return Err(clock.exceeded(have)),
    };
    if response.content_length().is_some_and(|len| from.saturating_add(len) > size) {
        remove(&part).await?;
        return Err(Rejection::Oversized { expected: size }.into());
    }
    let mut file = open(&part, from).await?;
    let stall = api.timeouts().stall;
    let sink = Sink { file: &mut file, path: &part, progress };
    let streamed = stream(response, sink, from, stall, &limits, &clock).await;
    // Flush even on failure, so what arrived is on disk for a resume.
    let flushed = async {
        file.flush().await?;
        file.sync_all().await
    }
    .await;
    drop(file);
    match streamed {
        Err(Error::Rejected(rejection)) => {
            remove(&part).await?;
            Err(rejection.into())
        }
        Err(e) => Err(e),
        Ok(received) => {
            flushed.map_err(|source| Error::Io { path: part.clone(), source })?;
            if received < size {
                return Err(Error::Incomplete { received, expected: size, cause: "connection closed".into() });
            }
            Ok(part)
        }
    }
}

/// What one download fetches: a build, or a patch to one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    /// Where from.
    pub(crate) url: &'a reqwest::Url,
    /// The signed digest (the part file is named after it).
    pub(crate) sha256: &'a Sha256,
    /// The signed size: never more is written.
    pub(crate) size: u64,
}

impl<'a> From<&'a Update> for Source<'a> {
    fn from(u: &'a Update) -> Self {
        Source { url: &u.url, sha256: &u.sha256, size: u.size }
    }
}

/// The overall deadline of one download.
struct Clock {
    deadline_at: Instant,
    deadline: Duration,
    expected: u64,
}

impl Clock {
    fn exceeded(&self, received: u64) -> Error {
        Error::DeadlineExceeded { deadline: self.deadline, received, expected: self.expected }
    }
}

/// `now + wait`, or about thirty years from now when that overflows (an app may set a
/// stall timeout of `Duration::MAX` to mean "never").
fn after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait).unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 3600))
}

/// Where streamed bytes go.
struct Sink<'a> {
    file: &'a mut File,
    path: &'a Path,
    progress: &'a mut dyn Progress,
}

/// Removes the partial files of other builds for `dest`: `<dest>.<other sha256>.part`, and
/// `<dest>.part` as older SDKs named it. Best effort: one that cannot be removed only costs
/// disk space, never correctness, since a partial file is only resumed for its own digest.
async fn remove_stale_parts(dest: &Path, keep: &Sha256) {
    let Some(name) = dest.file_name().and_then(|n| n.to_str()) else { return };
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let Ok(mut entries) = tokio::fs::read_dir(&dir).await else { return };
    let legacy = format!("{name}.part");
    let prefix = format!("{name}.");
    let keep = keep.to_string();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let file_name: OsString = entry.file_name();
        let Some(file_name) = file_name.to_str() else { continue };
        let digest = file_name.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix(".part"));
        let other_build = digest.is_some_and(|d| {
            d != keep && d.len() == 64 && d.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if (other_build || file_name == legacy)
            && let Err(e) = tokio::fs::remove_file(entry.path()).await
        {
            tracing::debug!(path = %entry.path().display(), error = %e, "could not remove a stale partial download");
        }
    }
}

/// Sends the request, resuming from `have`; answers the response and the offset its body
/// starts at.
async fn request(api: &Api, update: Source<'_>, have: u64) -> Result<(Response, u64), Error> {
    let mut from = have;
    loop {
        let response = api.fetch(update.url, from).await?;
        let status = response.status().as_u16();
        match status {
            200 => return Ok((response, 0)),
            206 if content_range_start(&response) == Some(from) => return Ok((response, from)),
            // A range the server cannot serve as asked (the file changed, or a proxy
            // mangled it): start over once without a range.
            206 | 416 if from > 0 => from = 0,
            206 => return Err(Error::Protocol { detail: "206 answer without a matching Content-Range".into() }),
            _ if response.status().is_success() => {
                return Err(Error::Protocol { detail: format!("unexpected status {status} for a download") });
            }
            _ => return Err(fail_on_status(response).await.expect_err("status is not a success")),
        }
    }
}

/// The first byte of a `Content-Range: bytes <first>-<last>/<len>` header.
fn content_range_start(response: &Response) -> Option<u64> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// Opens the part file to continue at `from` (0 truncates it).
async fn open(part: &Path, from: u64) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    if from == 0 {
        options.write(true).create(true).truncate(true);
    } else {
        options.append(true);
    }
    options.open(part).await.map_err(|source| Error::Io { path: part.to_owned(), source })
}

/// Streams the body into the sink, waiting at most `stall` for each piece, failing when the
/// rate over the last window falls below the minimum or the deadline passes; answers the
/// bytes now on disk.
async fn stream(
    mut response: Response,
    sink: Sink<'_>,
    mut have: u64,
    stall: Duration,
    limits: &DownloadLimits,
    clock: &Clock,
) -> Result<u64, Error> {
    let size = clock.expected;
    sink.progress.update(have, size);
    let mut meter = limits.meter(Instant::now(), have);
    let mut stall_at = after(Instant::now(), stall);
    let mut look_at = after(Instant::now(), meter.check_every());
    loop {
        let wake = stall_at.min(clock.deadline_at).min(look_at);
        let next = tokio::time::timeout_at(wake, response.chunk()).await;
        let now = Instant::now();
        let chunk = match next {
            Err(_) if now >= clock.deadline_at => return Err(clock.exceeded(have)),
            Err(_) if now >= stall_at => return Err(Error::Timeout { after: stall }),
            Err(_) => None,
            Ok(Err(e)) => return Err(Error::Incomplete { received: have, expected: size, cause: chain(&e) }),
            Ok(Ok(None)) => return Ok(have),
            Ok(Ok(Some(chunk))) => Some(chunk),
        };
        if let Some(chunk) = chunk {
            if have.saturating_add(chunk.len() as u64) > size {
                return Err(Rejection::Oversized { expected: size }.into());
            }
            sink.file.write_all(&chunk).await.map_err(|source| Error::Io { path: sink.path.to_owned(), source })?;
            have += chunk.len() as u64;
            sink.progress.update(have, size);
            meter.record(now, have);
            stall_at = after(now, stall);
        }
        if now >= clock.deadline_at {
            return Err(clock.exceeded(have));
        }
        if now >= look_at {
            meter.check(now).map_err(|slow| Error::TooSlow {
                received: slow.received,
                window: limits.window,
                min_rate: limits.min_rate,
            })?;
            look_at = after(now, meter.check_every());
        }
    }
}

async fn remove(part: &Path) -> Result<(), Error> {
    match tokio::fs::remove_file(part).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io { path: part.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::fake_server::{FakeServer, serve_file};
    use crate::test_support::{Scenario, Serve, Signed, build_bytes, builder_for, offer};
    use crate::{CheckOutcome, Client, EventKind, Refusal, Sha256, VerifiedFile};

    struct Attempt {
        result: Result<VerifiedFile, Error>,
        dest: PathBuf,
        /// Where the partial file of this build is kept.
        part: PathBuf,
        /// Every progress call: (downloaded, total).
        progress: Vec<(u64, u64)>,
    }

    async fn available(client: &Client) -> Update {
        match client.check().await.unwrap() {
            CheckOutcome::Available(update) => update,
            CheckOutcome::UpToDate => panic!("expected an update"),
        }
    }

    async fn attempt(client: &Client, update: &Update, dir: &Path) -> Attempt {
        let dest = dir.join("notes-update.bin");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let sink = calls.clone();
        let result = client.download(update, &dest, move |done, total| sink.lock().unwrap().push((done, total))).await;
        let progress = calls.lock().unwrap().clone();
        let part = part_path(&dest, update.sha256());
        Attempt { result, dest, part, progress }
    }

    /// Downloads what `scenario` offers, with a client running 1.0.0 on a fresh state dir.
    async fn download_offer(scenario: &Scenario) -> (Attempt, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        let update = available(&client).await;
        (attempt(&client, &update, dir.path()).await, dir)
    }

    /// A server offering `version` signed as `signed`.
    async fn signed_as(version: &str, signed: Signed) -> Scenario {
        let scenario = Scenario::empty().await;
        let bytes = build_bytes(version);
        scenario.offer(offer(version, &bytes, &signed), &bytes);
        scenario
    }

    fn assert_nothing_left(a: &Attempt) {
        assert!(!a.dest.exists(), "nothing may be at dest after {:?}", a.result);
        assert!(!a.part.exists(), "the part file must be deleted after {:?}", a.result);
    }

    fn rejection(a: &Attempt) -> Rejection {
        match &a.result {
            Err(Error::Rejected(r)) => r.clone(),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_genuine_build_is_verified_and_moved_into_place() {
        let scenario = Scenario::genuine("1.1.0").await;
        let (a, _dir) = download_offer(&scenario).await;
        let file = a.result.unwrap();
        assert_eq!(file.path(), a.dest);
        assert_eq!(file.version().to_string(), "1.1.0");
        assert_eq!(*file.sha256(), Sha256::digest(&scenario.bytes));
        assert_eq!(std::fs::read(&a.dest).unwrap(), scenario.bytes);
        assert!(!a.part.exists());
        let size = scenario.bytes.len() as u64;
        assert_eq!(a.progress.first(), Some(&(0, size)));
        assert_eq!(a.progress.last(), Some(&(size, size)));
        assert!(a.progress.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[tokio::test]
    async fn changed_bytes_are_refused() {
        let scenario = Scenario::genuine("1.1.0").await;
        let mut tampered = scenario.bytes.clone();
        tampered[50_000] ^= 1;
        scenario.serve_next(Serve::Replace(tampered));
        let (a, _dir) = download_offer(&scenario).await;
        assert!(matches!(rejection(&a), Rejection::HashMismatch { .. }));
        assert_nothing_left(&a);
    }

    #[tokio::test]
    async fn a_build_signed_by_an_untrusted_key_is_refused_before_anything_downloads() {
        let signed = Signed { key: 2, key_id: "k2", ..Signed::genuine("1.1.0") };
        let scenario = signed_as("1.1.0", signed).await;
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        // The check itself refuses: there is no update to download. Every poll refuses it
        // again, but it is reported once.
        for _ in 0..3 {
            match client.check().await {
                Err(Error::Refused(Refusal::UntrustedKey { key_id })) => assert_eq!(key_id.as_str(), "k2"),
                other => panic!("expected a refusal before download, got {other:?}"),
            }
        }
        client.flush().await.unwrap();
        let events: Vec<_> = scenario.world().batches.iter().flat_map(|b| b.events.clone()).collect();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, EventKind::DownloadFailed);
        assert!(events[0].detail.as_deref().unwrap().contains("k2"), "{:?}", events[0].detail);
    }

    #[tokio::test]
    async fn a_signature_by_another_key_under_a_trusted_id_is_refused() {
        let signed = Signed { key: 2, ..Signed::genuine("1.1.0") };
        let (a, _dir) = download_offer(&signed_as("1.1.0", signed).await).await;
        assert_eq!(rejection(&a), Rejection::BadSignature("k1".parse().unwrap()));
        assert_nothing_left(&a);
    }

    #[tokio::test]
    async fn a_genuine_signature_for_another_app_is_refused() {
        let signed = Signed { app: "other-app", ..Signed::genuine("1.1.0") };
        let (a, _dir) = download_offer(&signed_as("1.1.0", signed).await).await;
        assert_eq!(rejection(&a), Rejection::BadSignature("k1".parse().unwrap()));
        assert_nothing_left(&a);
    }

    #[tokio::test]
    async fn a_genuine_signature_for_another_version_is_refused() {
        // The build signed as 1.1.0, offered as 1.2.0.
        let (a, _dir) = download_offer(&signed_as("1.2.0", Signed::genuine("1.1.0")).await).await;
        assert_eq!(rejection(&a), Rejection::BadSignature("k1".parse().unwrap()));
        assert_nothing_left(&a);
    }

    #[tokio::test]
    async fn a_genuine_signature_for_another_platform_is_refused() {
        let signed = Signed { os: "windows", ..Signed::genuine("1.1.0") };
        let (a, _dir) = download_offer(&signed_as("1.1.0", signed).await).await;
        assert_eq!(rejection(&a), Rejection::BadSignature("k1".parse().unwrap()));
        let signed = Signed { arch: "aarch64", ..Signed::genuine("1.1.0") };
        let (a, _dir) = download_offer(&signed_as("1.1.0", signed).await).await;
        assert_eq!(rejection(&a), Rejection::BadSignature("k1".parse().unwrap()));
        assert_nothing_left(&a);
    }

    #[tokio::test]
    async fn a_replayed_older_genuine_build_is_refused_below_the_watermark() {
        let scenario = Scenario::empty().await;
        let (old, new) = (build_bytes("1.5.0"), build_bytes("2.0.0"));
        let dir = tempfile::tempdir().unwrap();
        // Two clients on one state dir, like two processes of the app.
        let first = scenario.client(dir.path(), "1.0.0").await;
        let second = scenario.client(dir.path(), "1.0.0").await;
        scenario.offer(offer("1.5.0", &old, &Signed::genuine("1.5.0")), &old);
        let replayed = available(&first).await;
        scenario.offer(offer("2.0.0", &new, &Signed::genuine("2.0.0")), &new);
        let newest = available(&second).await;
        let elsewhere = tempfile::tempdir().unwrap();
        let file = attempt(&second, &newest, elsewhere.path()).await.result.unwrap();
        // Downloading alone raises nothing: 1.5.0 is still taken until 2.0.0 is installed.
        let before = attempt(&first, &replayed, tempfile::tempdir().unwrap().path()).await;
        assert!(before.result.is_ok(), "{:?}", before.result);
        second.installed(&file).await.unwrap();

        // `first` has not seen the raise in memory; verification reads the watermark on disk.
        let a = attempt(&first, &replayed, dir.path()).await;
        let expected =
            Refusal::BelowWatermark { offered: "1.5.0".parse().unwrap(), watermark: "2.0.0".parse().unwrap() };
        assert!(matches!(&a.result, Err(Error::Refused(r)) if *r == expected), "{:?}", a.result);
        assert_nothing_left(&a);
        // And now the client knows without downloading.
        let a = attempt(&first, &replayed, dir.path()).await;
        assert!(matches!(&a.result, Err(Error::Refused(Refusal::BelowWatermark { .. }))));
        assert!(a.progress.is_empty(), "refused before any byte");

        // A reinstalled app (a new client on the same state) is refused at check time.
        scenario.offer(offer("1.5.0", &old, &Signed::genuine("1.5.0")), &old);
        let reinstalled = scenario.client(dir.path(), "1.0.0").await;
        let checked = reinstalled.check().await;
        assert!(matches!(checked, Err(Error::Refused(Refusal::BelowWatermark { .. }))), "{checked:?}");
    }

    #[tokio::test]
    async fn running_a_version_raises_the_watermark_to_it() {
        let scenario = Scenario::empty().await;
        let old = build_bytes("1.5.0");
        let dir = tempfile::tempdir().unwrap();
        // The app ran 2.0.0 once (installed by whatever means), then an old installer put 1.0.0
        // back: a replayed genuine 1.5.0 is still refused.
        drop(scenario.client(dir.path(), "2.0.0").await);
        scenario.offer(offer("1.5.0", &old, &Signed::genuine("1.5.0")), &old);
        let reinstalled = scenario.client(dir.path(), "1.0.0").await;
        let checked = reinstalled.check().await;
        assert!(matches!(checked, Err(Error::Refused(Refusal::BelowWatermark { .. }))), "{checked:?}");
    }

    #[tokio::test]
    async fn the_same_build_may_be_downloaded_again() {
        let scenario = Scenario::genuine("1.1.0").await;
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        let update = available(&client).await;
        attempt(&client, &update, dir.path()).await.result.unwrap();
        std::fs::remove_file(dir.path().join("notes-update.bin")).unwrap();
        attempt(&client, &update, dir.path()).await.result.unwrap();
    }

    #[tokio::test]
    async fn a_truncated_download_is_not_handed_out() {
        let scenario = Scenario::genuine("1.1.0").await;
        scenario.serve_next(Serve::Truncate(40_000));
        let (a, _dir) = download_offer(&scenario).await;
        match a.result {
            Err(Error::Incomplete { received, expected, .. }) => {
                assert!(received <= 40_000);
                assert_eq!(expected, 100_000);
            }
            other => panic!("expected Incomplete, got {other:?}"),
        }
        assert!(!a.dest.exists());
    }

    #[tokio::test]
    async fn more_bytes_than_signed_are_refused_announced() {
        let scenario = Scenario::genuine("1.1.0").await;
        scenario.serve_next(Serve::Extra(10));
        let (a, _dir) = download_offer(&scenario).await;
        assert_eq!(rejection(&a), Rejection::Oversized { expected: 100_000 });
        assert_nothing_left(&a);
    }

    #[tokio::test]
    async fn more_bytes_than_signed_are_refused_unannounced() {
        let scenario = Scenario::genuine("1.1.0").await;
        scenario.serve_next(Serve::ExtraUnannounced(10));
        let (a, _dir) = download_offer(&scenario).await;
        assert_eq!(rejection(&a), Rejection::Oversized { expected: 100_000 });
        assert_nothing_left(&a);
        assert!(a.progress.iter().all(|&(done, _)| done <= 100_000));
    }

    #[tokio::test]
    async fn a_server_that_never_stops_is_cut_off() {
        let scenario = Scenario::genuine("1.1.0").await;
        scenario.serve_next(Serve::Endless);
        let (a, _dir) = download_offer(&scenario).await;
        assert_eq!(rejection(&a), Rejection::Oversized { expected: 100_000 });
        assert_nothing_left(&a);
    }

    #[tokio::test]
    async fn an_interrupted_download_resumes_with_range() {
        let scenario = Scenario::genuine("1.1.0").await;
        scenario.serve_next(Serve::Truncate(50_000));
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        let update = available(&client).await;
        let first = attempt(&client, &update, dir.path()).await;
        let Err(Error::Incomplete { received, .. }) = first.result else { panic!("{:?}", first.result) };
        assert!(received > 0, "the fake server sent bytes before closing");
        assert_eq!(std::fs::metadata(first.part).unwrap().len(), received);

        let second = attempt(&client, &update, dir.path()).await;
        second.result.unwrap();
        assert_eq!(std::fs::read(&second.dest).unwrap(), scenario.bytes);
        assert_eq!(second.progress.first(), Some(&(received, 100_000)), "progress starts at the resumed size");
        let fetches = scenario.server.requests_to(update.url().strip_prefix(&scenario.server.url).unwrap());
        assert_eq!(fetches.len(), 2);
        assert_eq!(fetches[0].header("range"), None);
        assert_eq!(fetches[1].header("range"), Some(format!("bytes={received}-").as_str()));
    }

    #[tokio::test]
    async fn a_server_ignoring_range_makes_the_download_start_over() {
        let scenario = Scenario::genuine("1.1.0").await;
        scenario.serve_next(Serve::Truncate(50_000));
        scenario.serve_next(Serve::IgnoreRange);
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        let update = available(&client).await;
        assert!(attempt(&client, &update, dir.path()).await.result.is_err());
        let second = attempt(&client, &update, dir.path()).await;
        second.result.unwrap();
        assert_eq!(std::fs::read(&second.dest).unwrap(), scenario.bytes);
        assert_eq!(second.progress.first(), Some(&(0, 100_000)), "restarted from zero");
        let fetches = scenario.server.requests_to(update.url().strip_prefix(&scenario.server.url).unwrap());
        assert!(fetches[1].header("range").is_some(), "the second attempt asked for a range");
    }

    #[tokio::test]
    async fn a_stalled_download_times_out_and_keeps_its_part() {
        let scenario = Scenario::genuine("1.1.0").await;
        scenario.serve_next(Serve::Stall(1_000));
        let dir = tempfile::tempdir().unwrap();
        let stall = Duration::from_millis(300);
        let client = scenario.impatient_client(dir.path(), "1.0.0", stall).await;
        let update = available(&client).await;
        let a = attempt(&client, &update, dir.path()).await;
        assert!(matches!(a.result, Err(Error::Timeout { after }) if after == stall), "{:?}", a.result);
        assert!(!a.dest.exists());
        assert!(std::fs::metadata(&a.part).unwrap().len() <= 1_000);
        // The next attempt (by a patient client, so a busy machine cannot fail it) resumes.
        let patient = scenario.client(dir.path(), "1.0.0").await;
        let update = available(&patient).await;
        attempt(&patient, &update, dir.path()).await.result.unwrap();
    }

    #[tokio::test]
    async fn leftover_part_files_never_poison_a_download() {
        let scenario = Scenario::genuine("1.1.0").await;
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        let update = available(&client).await;
        let dest = dir.path().join("notes-update.bin");
        // Longer than the signed size: discarded before downloading.
        std::fs::write(part_path(&dest, update.sha256()), vec![0u8; 200_000]).unwrap();
        attempt(&client, &update, dir.path()).await.result.unwrap();
        // Complete but wrong (another build's bytes): rejected and deleted, then downloaded anew.
        std::fs::write(part_path(&dest, update.sha256()), vec![0u8; 100_000]).unwrap();
        let a = attempt(&client, &update, dir.path()).await;
        assert!(matches!(rejection(&a), Rejection::HashMismatch { .. }));
        assert!(!part_path(&dest, update.sha256()).exists());
        attempt(&client, &update, dir.path()).await.result.unwrap();
    }

    #[tokio::test]
    async fn absolute_artifact_urls_are_followed() {
        let scenario = Scenario::empty().await;
        let bytes = build_bytes("1.1.0");
        let mut absolute = offer("1.1.0", &bytes, &Signed::genuine("1.1.0"));
        absolute.artifact.url = format!("{}{}", scenario.server.url, absolute.artifact.url);
        scenario.offer(absolute, &bytes);
        let (a, _dir) = download_offer(&scenario).await;
        assert_eq!(std::fs::read(a.result.unwrap().path()).unwrap(), bytes);
    }

    #[tokio::test]
    async fn a_missing_artifact_is_a_server_error() {
        let scenario = Scenario::empty().await;
        let bytes = build_bytes("1.1.0");
        let mut missing = offer("1.1.0", &bytes, &Signed::genuine("1.1.0"));
        missing.artifact.url = format!("/v1/artifacts/{}", Sha256::digest(b"other"));
        scenario.offer(missing, &bytes);
        let (a, _dir) = download_offer(&scenario).await;
        assert!(matches!(&a.result, Err(Error::Server { status: 404, problem: Some(_), .. })), "{:?}", a.result);
        assert_nothing_left(&a);
    }

    /// Fails the test if `work` takes longer than 20 s: the bounds under test must end it
    /// long before.
    async fn bounded<T>(work: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(20), work).await.expect("the download was not bounded")
    }

    /// The `host:port` of a fake server.
    fn host_of(server: &FakeServer) -> &str {
        server.url.strip_prefix("http://").unwrap()
    }

    #[tokio::test]
    async fn a_trickling_server_fails_the_minimum_rate_and_the_part_is_resumed() {
        let scenario = Scenario::genuine("1.1.0").await;
        // 10 bytes every 50 ms: 200 bytes/s, each piece well within the stall timeout.
        scenario.serve_next(Serve::Trickle { piece: 10, every: Duration::from_millis(50) });
        let dir = tempfile::tempdir().unwrap();
        let window = Duration::from_millis(500);
        let client = builder_for(&scenario.server.url, dir.path(), "1.0.0")
            .stall_timeout(Duration::from_secs(10))
            .min_download_rate(10_000, window)
            .build()
            .await
            .unwrap();
        let update = available(&client).await;
        let started = std::time::Instant::now();
        let a = bounded(attempt(&client, &update, dir.path())).await;
        let Err(Error::TooSlow { received, window: w, min_rate: 10_000 }) = a.result else { panic!("{:?}", a.result) };
        assert_eq!(w, window);
        assert!(received < 5_000, "below 10,000 bytes/s over 500 ms: {received}");
        assert!(started.elapsed() < Duration::from_secs(10), "failed by the rate, not the stall timeout");
        assert!(a.progress.last().is_some_and(|&(done, _)| done > 0), "some bytes came in");
        let kept = std::fs::metadata(&a.part).unwrap().len();
        assert!(kept > 0 && kept < 100_000, "the part file is kept: {kept}");
        assert!(!a.dest.exists());

        let again = attempt(&client, &update, dir.path()).await;
        assert_eq!(std::fs::read(again.result.unwrap().path()).unwrap(), scenario.bytes);
        let fetches = scenario.server.requests_to(update.url().strip_prefix(&scenario.server.url).unwrap());
        assert_eq!(fetches[1].header("range"), Some(format!("bytes={kept}-").as_str()), "resumed");
    }

    #[tokio::test]
    async fn the_deadline_ends_a_download_that_keeps_the_minimum_rate() {
        let scenario = Scenario::genuine("1.1.0").await;
        // 100 kB/s, above any minimum rate: the whole build would take a second.
        scenario.serve_next(Serve::Trickle { piece: 2_000, every: Duration::from_millis(20) });
        let dir = tempfile::tempdir().unwrap();
        let deadline = Duration::from_millis(300);
        let client =
            builder_for(&scenario.server.url, dir.path(), "1.0.0").download_deadline(deadline).build().await.unwrap();
        let update = available(&client).await;
        let started = std::time::Instant::now();
        let a = bounded(attempt(&client, &update, dir.path())).await;
        let Err(Error::DeadlineExceeded { deadline: d, received, expected: 100_000 }) = a.result else {
            panic!("{:?}", a.result)
        };
        assert_eq!(d, deadline);
        assert!(received < 100_000);
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        assert_eq!(std::fs::metadata(&a.part).unwrap().len(), received, "the part file is kept");

        let again = attempt(&client, &update, dir.path()).await;
        assert_eq!(std::fs::read(again.result.unwrap().path()).unwrap(), scenario.bytes);
    }

    #[tokio::test]
    async fn an_offer_on_another_host_is_refused_before_any_request_unless_allowed() {
        let scenario = Scenario::empty().await;
        let bytes = build_bytes("1.1.0");
        let cdn_bytes = bytes.clone();
        let cdn = FakeServer::start(move |request| serve_file(request, &cdn_bytes)).await;
        let mut elsewhere = offer("1.1.0", &bytes, &Signed::genuine("1.1.0"));
        elsewhere.artifact.url = format!("{}/builds/notes-1.1.0.bin", cdn.url);
        scenario.offer(elsewhere, &bytes);
        let dir = tempfile::tempdir().unwrap();

        let client = scenario.client(dir.path(), "1.0.0").await;
        match client.check().await {
            Err(Error::Refused(Refusal::HostNotAllowed { url })) => {
                assert_eq!(url, format!("{}/builds/notes-1.1.0.bin", cdn.url));
            }
            other => panic!("expected a refusal at check time, got {other:?}"),
        }
        assert!(cdn.requests().is_empty(), "nothing was asked of the other host");

        let allowing = builder_for(&scenario.server.url, dir.path(), "1.0.0")
            .allow_download_host(host_of(&cdn))
            .build()
            .await
            .unwrap();
        let update = available(&allowing).await;
        let a = attempt(&allowing, &update, dir.path()).await;
        assert_eq!(std::fs::read(a.result.unwrap().path()).unwrap(), bytes);
        assert_eq!(cdn.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_redirect_to_another_host_is_refused_before_any_request_to_it_unless_allowed() {
        let scenario = Scenario::genuine("1.1.0").await;
        let cdn_bytes = scenario.bytes.clone();
        let cdn = FakeServer::start(move |request| serve_file(request, &cdn_bytes)).await;
        let location = format!("{}/bucket/notes.bin?X-Amz-Signature=secret", cdn.url);
        let dir = tempfile::tempdir().unwrap();

        scenario.serve_next(Serve::Redirect(location.clone()));
        let client = scenario.client(dir.path(), "1.0.0").await;
        let update = available(&client).await;
        let a = attempt(&client, &update, dir.path()).await;
        match &a.result {
            Err(Error::Refused(Refusal::HostNotAllowed { url })) => {
                assert_eq!(*url, format!("{}/bucket/notes.bin", cdn.url), "shown without the signature");
            }
            other => panic!("expected the redirect to be refused, got {other:?}"),
        }
        assert!(cdn.requests().is_empty(), "nothing was asked of the other host");
        assert!(a.progress.is_empty(), "nothing downloaded");
        assert_nothing_left(&a);

        // The server's CDN, once the app allows it, serves the build (and resumes it).
        scenario.serve_next(Serve::Redirect(location.clone()));
        let allowing = builder_for(&scenario.server.url, dir.path(), "1.0.0")
            .allow_download_host(host_of(&cdn))
            .build()
            .await
            .unwrap();
        let a = attempt(&allowing, &update, dir.path()).await;
        assert_eq!(std::fs::read(a.result.unwrap().path()).unwrap(), scenario.bytes);
        assert_eq!(cdn.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_partial_of_one_build_is_never_resumed_into_another() {
        let scenario = Scenario::empty().await;
        let (a_bytes, b_bytes) = (build_bytes("1.1.0"), build_bytes("1.2.0"));
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        scenario.offer(offer("1.1.0", &a_bytes, &Signed::genuine("1.1.0")), &a_bytes);
        let build_a = available(&client).await;
        scenario.offer(offer("1.2.0", &b_bytes, &Signed::genuine("1.2.0")), &b_bytes);
        let build_b = available(&client).await;
        let path_of = |u: &Update| u.url().strip_prefix(&scenario.server.url).unwrap().to_owned();

        // Build A is interrupted at 50,000 bytes; a digest-less part file of an older SDK is
        // there too.
        scenario.serve_next(Serve::Truncate(50_000));
        let a = attempt(&client, &build_a, dir.path()).await;
        assert!(matches!(a.result, Err(Error::Incomplete { .. })), "{:?}", a.result);
        assert_eq!(std::fs::metadata(&a.part).unwrap().len(), 50_000);
        let legacy = dir.path().join("notes-update.bin.part");
        std::fs::write(&legacy, &a_bytes[..10_000]).unwrap();

        // Build B to the same dest starts from zero and removes the other partial files.
        scenario.serve_next(Serve::Truncate(30_000));
        let b = attempt(&client, &build_b, dir.path()).await;
        assert!(matches!(b.result, Err(Error::Incomplete { .. })), "{:?}", b.result);
        assert_ne!(a.part, b.part);
        assert!(!a.part.exists(), "build A's partial is removed when B starts");
        assert!(!legacy.exists(), "and so is the digest-less one");
        assert_eq!(std::fs::metadata(&b.part).unwrap().len(), 30_000);
        // Build B's own partial is resumed.
        let b = attempt(&client, &build_b, dir.path()).await;
        assert_eq!(std::fs::read(b.result.unwrap().path()).unwrap(), b_bytes);
        let fetches = scenario.server.requests_to(&path_of(&build_b));
        assert_eq!(fetches.iter().map(|r| r.header("range")).collect::<Vec<_>>(), [None, Some("bytes=30000-")]);
        assert!(!b.part.exists());
        // Build A's partial of another dest is left alone.
        let other_dest = dir.path().join("elsewhere.bin");
        let other_part = part_path(&other_dest, build_a.sha256());
        std::fs::write(&other_part, &a_bytes[..1_000]).unwrap();
        scenario.serve_next(Serve::Truncate(1_000));
        let _ = attempt(&client, &build_b, dir.path()).await;
        assert!(other_part.exists());
    }
}
