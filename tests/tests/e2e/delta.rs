//! Delta patches on the server: a patch is published only when a trusted release key signed
//! its patch message and its file is uploaded at its size; a refusal changes nothing; an
//! accepted patch survives a restart and is offered only to devices that name its base. (The
//! whole flow through the `halftone publish` binary and the SDK is in
//! `server/tests/binary/delta.rs`, where the binary runs as a process.)

use halftone_channels::wire::{CheckRequest, PublishRequest};
use halftone_channels::{Blob, PatchFormat, Sha256, SignedFields, Target};
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn the_server_verifies_patches_on_publish_and_offers_them_only_to_their_base() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    let base = p.draft("1.0.0", &[]).files.remove(0);
    let mut draft = p.draft("2.0.0", &[]);
    let target = Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() };
    let (result, version) = (draft.spec.artifacts[0].clone(), draft.spec.version.clone());
    let fields =
        SignedFields { app: &p.app, version: &version, target: &target, sha256: &result.sha256, size: result.size };
    // Not a real patch: the server checks signatures and storage, the device the bytes.
    let patch_bytes = b"patch bytes".to_vec();
    let file = Blob { sha256: Sha256::digest(&patch_bytes), size: patch_bytes.len() as u64 };
    let base_blob = Blob { sha256: Sha256::digest(&base), size: base.len() as u64 };
    let genuine = p.key.sign_patch(fields, PatchFormat::ZstdPatchFrom, &base_blob, &file);
    let publish = |spec: halftone_channels::wire::ReleaseSpec| PublishRequest {
        release: spec,
        channel: "stable".parse().unwrap(),
        rollout: serde_json::from_value(json!({"basis_points": 10_000})).unwrap(),
    };
    p.upload(&draft).await;

    // Not uploaded yet: refused.
    draft.spec.artifacts[0].patches = vec![genuine.clone()];
    assert_refused(p.admin.publish(&p.app, &publish(draft.spec.clone())).await, 422, "is not uploaded");
    p.admin.upload_bytes(patch_bytes.clone()).await.unwrap();
    // Signed by a key the app does not trust, under its trusted key's id.
    let mut forged = signing_key(9).sign_patch(fields, PatchFormat::ZstdPatchFrom, &base_blob, &file);
    forged.key_id = genuine.key_id.clone();
    draft.spec.artifacts[0].patches = vec![forged];
    assert_refused(p.admin.publish(&p.app, &publish(draft.spec.clone())).await, 422, "does not verify");
    // The artifact's own signature replayed as the patch's.
    let mut replayed = genuine.clone();
    replayed.signature = result.signature;
    draft.spec.artifacts[0].patches = vec![replayed];
    assert_refused(p.admin.publish(&p.app, &publish(draft.spec.clone())).await, 422, "does not verify");
    // Signed for another base than it names.
    let mut other_base = genuine.clone();
    other_base.base_sha256 = Sha256::digest(b"another build");
    draft.spec.artifacts[0].patches = vec![other_base];
    assert_refused(p.admin.publish(&p.app, &publish(draft.spec.clone())).await, 422, "does not verify");
    // A patch no smaller than its result.
    let mut large = genuine.clone();
    large.size = result.size;
    draft.spec.artifacts[0].patches = vec![large];
    assert_refused(p.admin.publish(&p.app, &publish(draft.spec.clone())).await, 400, "must be smaller");
    let none = server.admin().get_release(&p.app, &"2.0.0".parse().unwrap()).await;
    assert_eq!(none.unwrap_err().status(), Some(404), "refusals store nothing");

    draft.spec.artifacts[0].patches = vec![genuine.clone()];
    p.admin.publish(&p.app, &publish(draft.spec.clone())).await.unwrap();

    // Acknowledged, so it survives a restart (sled; PostgreSQL keeps it in the same record).
    let (dir, token) = server.stop();
    let dir = dir.unwrap();
    let server = TestServer::start_in(dir.path(), Some(token));
    let devices = server.anonymous();
    let ask = |sha: Option<Sha256>| {
        let mut request: CheckRequest = Device::new("d1", "1.0.0", "stable").request();
        request.current_sha256 = sha;
        request
    };
    for (sha, patched) in [(Some(base_blob.sha256), true), (None, false), (Some(Sha256::digest(b"other")), false)] {
        let r = devices.post("/v1/apps/notes/check", &serde_json::to_value(ask(sha)).unwrap()).await.ok();
        let patch = &r["update"]["artifact"]["patch"];
        assert_eq!(!patch.is_null(), patched, "{sha:?}: {r}");
        if patched {
            assert_eq!(patch["url"], format!("/v1/artifacts/{}", file.sha256));
            assert_eq!(patch["base_sha256"], base_blob.sha256.to_string());
            assert_eq!(patch["signature"], genuine.signature.to_string());
            assert_eq!(devices.get(patch["url"].as_str().unwrap()).await.status, 200);
        }
    }
}
