//! Fetching a build into `<dest>.part`: resumed with `Range` when a partial file is there,
//! capped at the signed size, and timed out when the server stalls. Verification and the move
//! into place are [`crate::verify`]'s.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Response;
use reqwest::header::CONTENT_RANGE;
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;

use crate::api::{Api, chain, fail_on_status};
use crate::{Error, Progress, Rejection, Update};

/// Where the download of `dest` accumulates until it is verified: `<dest>.part`.
pub(crate) fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Fetches `update` into `part` until it holds exactly the signed size.
///
/// A partial file left by an interrupted download is resumed with `Range: bytes=<len>-`; a
/// `206` that starts there is appended, a `200` starts over. Bytes beyond the signed size are
/// never written: the part file is deleted and the download rejected. An interruption (a
/// stall, a closed connection) keeps the part file for the next attempt.
pub(crate) async fn fetch(api: &Api, update: &Update, part: &Path, progress: &mut dyn Progress) -> Result<(), Error> {
    let size = update.size;
    let mut have = match tokio::fs::metadata(part).await {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(source) => return Err(Error::Io { path: part.to_owned(), source }),
    };
    if have > size {
        remove(part).await?;
        have = 0;
    }
    if have == size {
        progress.update(have, size);
        return Ok(());
    }
    let (response, from) = request(api, update, have).await?;
    if response.content_length().is_some_and(|len| from.saturating_add(len) > size) {
        remove(part).await?;
        return Err(Rejection::Oversized { expected: size }.into());
    }
    let mut file = open(part, from).await?;
    let stall = api.timeouts().stall;
    let streamed = stream(response, &mut file, from, size, stall, part, progress).await;
    // Flush even on failure, so what arrived is on disk for a resume.
    let flushed = async {
        file.flush().await?;
        file.sync_all().await
    }
    .await;
    drop(file);
    match streamed {
        Err(Error::Rejected(rejection)) => {
            remove(part).await?;
            Err(rejection.into())
        }
        Err(e) => Err(e),
        Ok(received) => {
            flushed.map_err(|source| Error::Io { path: part.to_owned(), source })?;
            if received < size {
                return Err(Error::Incomplete { received, expected: size, cause: "connection closed".into() });
            }
            Ok(())
        }
    }
}

/// Sends the request, resuming from `have`; answers the response and the offset its body
/// starts at.
async fn request(api: &Api, update: &Update, have: u64) -> Result<(Response, u64), Error> {
    let mut from = have;
    loop {
        let response = api.fetch(&update.url, from).await?;
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

/// Streams the body into `file`, waiting at most `stall` for each piece; answers the bytes
/// now on disk.
async fn stream(
    mut response: Response,
    file: &mut File,
    mut have: u64,
    size: u64,
    stall: Duration,
    part: &Path,
    progress: &mut dyn Progress,
) -> Result<u64, Error> {
    progress.update(have, size);
    loop {
        let chunk = match tokio::time::timeout(stall, response.chunk()).await {
            Err(_) => return Err(Error::Timeout { after: stall }),
            Ok(Err(e)) => return Err(Error::Incomplete { received: have, expected: size, cause: chain(&e) }),
            Ok(Ok(None)) => return Ok(have),
            Ok(Ok(Some(chunk))) => chunk,
        };
        if have.saturating_add(chunk.len() as u64) > size {
            return Err(Rejection::Oversized { expected: size }.into());
        }
        file.write_all(&chunk).await.map_err(|source| Error::Io { path: part.to_owned(), source })?;
        have += chunk.len() as u64;
        progress.update(have, size);
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
    use crate::test_support::{Scenario, Serve, Signed, build_bytes, offer};
    use crate::{CheckOutcome, Client, Refusal, Sha256, VerifiedFile};

    struct Attempt {
        result: Result<VerifiedFile, Error>,
        dest: PathBuf,
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
        Attempt { result, dest, progress }
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
        assert!(!part_path(&a.dest).exists(), "the part file must be deleted after {:?}", a.result);
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
        assert!(!part_path(&a.dest).exists());
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
        // The check itself refuses: there is no update to download.
        match client.check().await {
            Err(Error::Refused(Refusal::UntrustedKey { key_id })) => assert_eq!(key_id.as_str(), "k2"),
            other => panic!("expected a refusal before download, got {other:?}"),
        }
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
        attempt(&second, &newest, elsewhere.path()).await.result.unwrap();

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
        assert_eq!(std::fs::metadata(part_path(&first.dest)).unwrap().len(), received);

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
        assert!(std::fs::metadata(part_path(&a.dest)).unwrap().len() <= 1_000);
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
        std::fs::write(part_path(&dest), vec![0u8; 200_000]).unwrap();
        attempt(&client, &update, dir.path()).await.result.unwrap();
        // Complete but wrong (another build's bytes): rejected and deleted, then downloaded anew.
        std::fs::write(part_path(&dest), vec![0u8; 100_000]).unwrap();
        let a = attempt(&client, &update, dir.path()).await;
        assert!(matches!(rejection(&a), Rejection::HashMismatch { .. }));
        assert!(!part_path(&dest).exists());
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
}
