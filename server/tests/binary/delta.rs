//! Delta updates end to end: `halftone publish` (the binary) builds, signs and uploads a patch
//! from the previous release's build; devices embedding the SDK get it only when they name the
//! build they run, end with the new build's exact bytes, and fall back to the full file (and
//! say so) when the stored patch is corrupt.

use std::path::{Path, PathBuf};

use halftone_channels::Sha256;
use halftone_client::{CheckOutcome, Client, Delivery, PatchFailure};

use crate::support::*;

/// A build of about 300 kB: pseudo-random words, so it does not compress on its own and only
/// a patch can make it small.
fn build(version: &str, changed: &[(usize, &[u8])]) -> Vec<u8> {
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut bytes: Vec<u8> = (0..300_000 / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    for (at, with) in changed {
        bytes[*at..*at + with.len()].copy_from_slice(with);
    }
    bytes.extend_from_slice(format!("version {version}\n").as_bytes());
    bytes
}

async fn device(server: &Server, dir: &Path, key: (&str, &str), running_build: Option<&Path>) -> Client {
    let mut builder = Client::builder()
        .server(&server.base)
        .app("notes")
        .version("1.0.0")
        .platform("linux", "x86_64")
        .trusted_key(key.0, key.1)
        .state_dir(dir.join("state"));
    if let Some(file) = running_build {
        builder = builder.running_build(file);
    }
    builder.build().await.unwrap()
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
        if path.is_dir()
            && let Some(found) = find(&path, name)
        {
            return Some(found);
        }
    }
    None
}

#[tokio::test]
async fn publish_builds_a_patch_that_devices_on_the_previous_build_apply() {
    let (tmp, data) = data_dir();
    let server = Server::start(&data, true).await;
    let admin = Cli::new(&server, server.bootstrap.as_deref().unwrap());
    let key_file = tmp.path().join("release.key");
    let key_path = key_file.to_str().unwrap();
    let key = offline(&["keygen", "--out", key_path, "--json"]).json();
    let (key_id, public_key) = (key["id"].as_str().unwrap(), key["public_key"].as_str().unwrap());
    admin.json(&["app", "create", "notes", "--key", &format!("{key_id}={public_key}")]);

    let v1 = build("1.0.0", &[]);
    let v2 = build("2.0.0", &[(1_000, b"a fixed bug"), (200_000, b"a new feature")]);
    let (p1, p2) = (tmp.path().join("notes-1.bin"), tmp.path().join("notes-2.bin"));
    std::fs::write(&p1, &v1).unwrap();
    std::fs::write(&p2, &v2).unwrap();
    let publish = |version: &str, file: &Path| {
        admin.json(&[
            "publish",
            "notes",
            version,
            "--channel",
            "stable",
            "--percent",
            "100%",
            "--key-file",
            key_path,
            "--artifact",
            &format!("linux/x86_64={}", file.display()),
        ])
    };
    let first = publish("1.0.0", &p1);
    assert!(first["artifacts"][0].get("patches").is_none(), "nothing to patch from: {first}");
    // 2.0.0: the CLI downloads 1.0.0's build from the server and patches from it.
    let second = publish("2.0.0", &p2);
    let patch = &second["artifacts"][0]["patches"][0];
    assert_eq!(patch["base_sha256"], Sha256::digest(&v1).to_string(), "{second}");
    assert_eq!(patch["format"], "zstd-patch-from");
    let patch_size = patch["size"].as_u64().unwrap();
    assert!(patch_size * 2 < v2.len() as u64, "kept only when under half: {patch_size} of {}", v2.len());
    let patch_sha = patch["sha256"].as_str().unwrap().to_owned();

    // A device that names the build it runs gets the patch and ends with 2.0.0's exact bytes.
    let dir = tempfile::tempdir().unwrap();
    let running = dir.path().join("notes");
    std::fs::write(&running, &v1).unwrap();
    let client = device(&server, dir.path(), (key_id, public_key), Some(&running)).await;
    let CheckOutcome::Available(update) = client.check().await.unwrap() else { panic!("2.0.0 is offered") };
    assert_eq!(update.patch_size(), Some(patch_size));
    let file = client.download(&update, dir.path().join("next"), |_, _| {}).await.unwrap();
    assert_eq!(file.delivery(), &Delivery::Patch { patch_size });
    assert_eq!(std::fs::read(file.path()).unwrap(), v2);

    // A device that does not say which build it runs gets the full file.
    let plain = tempfile::tempdir().unwrap();
    let client = device(&server, plain.path(), (key_id, public_key), None).await;
    let CheckOutcome::Available(update) = client.check().await.unwrap() else { panic!("2.0.0 is offered") };
    assert_eq!(update.patch_size(), None);
    let file = client.download(&update, plain.path().join("next"), |_, _| {}).await.unwrap();
    assert_eq!(file.delivery(), &Delivery::Full);
    assert_eq!(std::fs::read(file.path()).unwrap(), v2);

    // The stored patch corrupted on the server's disk: the device applies nothing, takes the
    // full file, and says why.
    let stored = find(&data, &patch_sha).expect("the patch is stored under its digest");
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&stored, &bytes).unwrap();
    let corrupt = tempfile::tempdir().unwrap();
    let running = corrupt.path().join("notes");
    std::fs::write(&running, &v1).unwrap();
    let client = device(&server, corrupt.path(), (key_id, public_key), Some(&running)).await;
    let CheckOutcome::Available(update) = client.check().await.unwrap() else { panic!("2.0.0 is offered") };
    let file = client.download(&update, corrupt.path().join("next"), |_, _| {}).await.unwrap();
    let Delivery::FullAfterPatch { reason: PatchFailure::File(_) } = file.delivery() else {
        panic!("{:?}", file.delivery())
    };
    assert_eq!(std::fs::read(file.path()).unwrap(), v2);
    client.flush().await.unwrap();
    // The server counts the fallback the device reported (and only that one).
    let (status, metrics) = server.http(None).bytes("/metrics").await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert_eq!(status, 200);
    assert!(metrics.lines().any(|l| l == r#"halftone_delta_fallbacks_total{app="notes"} 1"#), "{metrics}");

    // --no-patches publishes without any.
    let v3 = build("3.0.0", &[(5, b"x")]);
    let p3 = tmp.path().join("notes-3.bin");
    std::fs::write(&p3, &v3).unwrap();
    let third = admin.json(&[
        "publish",
        "notes",
        "3.0.0",
        "--channel",
        "stable",
        "--percent",
        "100%",
        "--key-file",
        key_path,
        "--artifact",
        &format!("linux/x86_64={}", p3.display()),
        "--no-patches",
    ]);
    assert!(third["artifacts"][0].get("patches").is_none(), "{third}");
}
