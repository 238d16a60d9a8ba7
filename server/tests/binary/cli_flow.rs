//! The release engineer's whole flow, driven only through the `halftone` binary against a
//! `halftone serve` process: keygen, app, publish, widen, promote, explain, halt, roll back,
//! tokens and the audit log. Devices are plain HTTP check-ins, as an SDK in any language makes.

use std::os::unix::fs::PermissionsExt as _;

use halftone_channels::Sha256;
use serde_json::Value;

use crate::support::*;

/// The rollout of `version` on `channel` in a `releases --json` answer.
fn rollout<'a>(releases: &'a Value, version: &str, channel: &str) -> &'a Value {
    let release = releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == version)
        .unwrap_or_else(|| panic!("no release {version} in {releases:#}"));
    release["rollouts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["channel"] == channel)
        .unwrap_or_else(|| panic!("{version} has no rollout on {channel}: {release:#}"))
}

/// The table rows of human output, split on runs of spaces.
fn rows(table: &str) -> Vec<Vec<&str>> {
    table.lines().map(|l| l.split_whitespace().collect()).collect()
}

#[tokio::test]
async fn a_release_engineer_ships_widens_promotes_halts_and_rolls_back_with_the_cli() {
    let (tmp, data) = data_dir();
    let server = Server::start(&data, true).await;
    let admin = Cli::new(&server, server.bootstrap.as_deref().unwrap());
    let devices = server.http(None);

    // keygen: a private key file only its owner can read; the JSON is the key to register.
    let key_file = tmp.path().join("release.key");
    let key_path = key_file.to_str().unwrap();
    let key = offline(&["keygen", "--out", key_path, "--json"]).json();
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the private key file is mode 0600");
    let (key_id, public_key) = (key["id"].as_str().unwrap(), key["public_key"].as_str().unwrap());
    assert!(key_id.starts_with("ed25519-"), "{key}");
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert!(text.contains(&format!("# key id: {key_id}\n")), "{text}");
    // A second keygen to the same file refuses and keeps the key.
    let before = std::fs::read(&key_file).unwrap();
    let e = offline(&["keygen", "--out", key_path]).failure();
    assert!(e.contains("refusing to overwrite"), "{e}");
    assert_eq!(std::fs::read(&key_file).unwrap(), before);

    // app create with the key; a second create refuses rather than replacing keys.
    let app = admin.json(&["app", "create", "notes", "--name", "Notes", "--key", &format!("{key_id}={public_key}")]);
    assert_eq!((app["id"].as_str(), app["keys"][0]["id"].as_str()), (Some("notes"), Some(key_id)), "{app}");
    assert_eq!(app["keys"][0]["public_key"], public_key);
    let e = admin.run(&["app", "create", "notes", "--key", public_key]).failure();
    assert!(e.contains("already exists"), "{e}");
    assert!(admin.text(&["app", "list"]).lines().any(|l| l.starts_with("notes ")));

    // publish 1.0.0 on stable at 100% and 1.1.0 on beta at 10%; the CLI hashes and signs
    // locally and the server stores exactly the files.
    let artifact = |version: &str| {
        let path = tmp.path().join(format!("notes-{version}.bin"));
        let bytes = format!("notes {version} linux build\n").repeat(500).into_bytes();
        std::fs::write(&path, &bytes).unwrap();
        (format!("linux/x86_64={}", path.display()), bytes)
    };
    let (a100, bytes100) = artifact("1.0.0");
    let published = admin.json(&[
        "publish",
        "notes",
        "1.0.0",
        "--channel",
        "stable",
        "--percent",
        "100%",
        "--key-file",
        key_path,
        "--artifact",
        &a100,
        "--notes",
        "First release",
    ]);
    assert_eq!(published["artifacts"][0]["sha256"], Sha256::digest(&bytes100).to_string());
    assert_eq!(published["artifacts"][0]["key_id"], key_id);
    assert_eq!(published["rollouts"][0]["basis_points"], 10000);
    let (a110, bytes110) = artifact("1.1.0");
    // whoami names the profile's token and server.
    let me = admin.text(&["whoami"]);
    assert!(me.contains("bootstrap-admin, admin on http://"), "{me}");

    // A channel typo is refused before the upload: the file is not on the server.
    let typo = admin
        .run(&[
            "publish",
            "notes",
            "1.1.0",
            "--channel",
            "betta",
            "--percent",
            "10%",
            "--key-file",
            key_path,
            "--artifact",
            &a110,
        ])
        .failure();
    assert!(typo.contains("has no channel betta") && typo.contains("nothing was uploaded"), "{typo}");
    let sha110 = Sha256::digest(&bytes110).to_string();
    assert_eq!(devices.bytes(&format!("/v1/artifacts/{sha110}")).await.0, 404, "nothing was uploaded");

    let published = admin.json(&[
        "publish",
        "notes",
        "1.1.0",
        "--channel",
        "beta",
        "--percent",
        "10%",
        "--key-file",
        key_path,
        "--artifact",
        &a110,
    ]);
    assert_eq!(
        (published["rollouts"][0]["channel"].as_str(), published["rollouts"][0]["basis_points"].as_u64()),
        (Some("beta"), Some(1000))
    );
    assert_eq!(devices.bytes(&format!("/v1/artifacts/{sha110}")).await, (200, bytes110.clone()), "served as uploaded");
    let publish_110 = |file: &str, channel: &str| {
        let args = ["publish", "notes", "1.1.0", "--channel", channel, "--percent", "10%", "--key-file", key_path];
        admin.run(&[&args[..], &["--artifact", file]].concat())
    };
    // The same version again with the same file: an idempotent success, nothing uploaded.
    let again = publish_110(&a110, "beta").success();
    assert!(again.stdout.contains("already published with identical content"), "{again:#?}");
    assert!(!again.stderr.contains("uploaded"), "nothing is uploaded again: {again:#?}");
    // The same version with another file, or on another channel: refused as a conflict (exit
    // status 5) before the upload.
    let (other, other_bytes) = artifact("1.1.0-other");
    let e = publish_110(&other, "beta").failure_with(5);
    assert!(e.contains("notes 1.1.0 already exists with other content") && e.contains("Nothing was uploaded"), "{e}");
    let other_sha = Sha256::digest(&other_bytes).to_string();
    assert_eq!(devices.bytes(&format!("/v1/artifacts/{other_sha}")).await.0, 404, "nothing was uploaded");
    let e = publish_110(&a110, "stable").failure_with(5);
    assert!(
        e.contains("already exists and is not on stable; promote it instead") && e.contains("Nothing was uploaded"),
        "{e}"
    );
    assert_eq!(devices.check("notes", "fresh", "0.9.0", "stable").await, Some(("1.0.0".into(), false)));

    // releases: the table names both, newest first, with their channels and percentages.
    let table = admin.text(&["releases", "notes"]);
    let table = rows(&table);
    assert_eq!(table[0][..4], ["VERSION", "CHANNEL", "PERCENT", "STATE"], "{table:?}");
    assert_eq!(table[1][..4], ["1.1.0", "beta", "10%", "active"], "{table:?}");
    assert_eq!(table[2][..4], ["1.0.0", "stable", "100%", "active"], "{table:?}");

    // rollout set: 10% -> 50% on beta, and the server has it.
    let said = admin.text(&["rollout", "set", "notes", "1.1.0", "beta", "--percent", "50%"]);
    assert_eq!(said.trim(), "notes 1.1.0 on beta: 10% active -> 50% active");
    let releases = admin.json(&["releases", "notes"]);
    assert_eq!(rollout(&releases, "1.1.0", "beta")["basis_points"], 5000);
    assert_eq!(rollout(&releases, "1.1.0", "beta")["etag"], "\"r2\"");

    // promote to stable at 5%.
    let promoted = admin.json(&["promote", "notes", "1.1.0", "--channel", "stable", "--percent", "5%"]);
    let stable = promoted["rollouts"].as_array().unwrap().iter().find(|r| r["channel"] == "stable").unwrap();
    assert_eq!((stable["basis_points"].as_u64(), stable["state"].as_str()), (Some(500), Some("active")));

    // explain agrees with what devices are actually told, on both sides of the 50%.
    let mut offered = 0;
    for i in 0..16 {
        let device = format!("beta-device-{i}");
        let check = devices.check("notes", &device, "1.0.0", "beta").await;
        let explained = admin.json(&[
            "explain",
            "notes",
            "--device",
            &device,
            "--version",
            "1.0.0",
            "--channel",
            "beta",
            "--os",
            "linux",
            "--arch",
            "x86_64",
        ]);
        assert_eq!(explained["offered"].as_str(), check.as_ref().map(|c| c.0.as_str()), "{device}: {explained:#}");
        let verdicts: Vec<_> =
            explained["releases"].as_array().unwrap().iter().filter(|r| r["offered"] == true).collect();
        assert_eq!(verdicts.len(), usize::from(check.is_some()), "{explained:#}");
        offered += usize::from(check.is_some());
    }
    assert!((1..16).contains(&offered), "a 50% rollout offers some of 16 devices, not {offered}");
    let human = admin.text(&[
        "explain",
        "notes",
        "--device",
        "beta-device-0",
        "--version",
        "1.0.0",
        "--channel",
        "beta",
        "--os",
        "linux",
        "--arch",
        "x86_64",
    ]);
    assert!(human.starts_with("device beta-device-0 on beta, linux/x86_64, running 1.0.0\noffered: "), "{human}");

    // explain --ip: 1.1.0 on stable also goes to an allow-listed office machine, but only on
    // the office network. The rule passes with an address inside the CIDR and fails outside it.
    let rule = r#"{"kind":"ip_in","values":["10.1.0.0/16"]}"#;
    let said = admin.text(&["rollout", "set", "notes", "1.1.0", "stable", "--rule", rule, "--allow", "office-pc"]);
    assert!(said.contains("ip in [10.1.0.0/16]"), "{said}");
    let office = ["explain", "notes", "--device", "office-pc", "--version", "1.0.0", "--channel", "stable"];
    let from = |ip: &'static str| [&office[..], &["--os", "linux", "--arch", "x86_64", "--ip", ip]].concat();
    let explain_from = |ip: &'static str| {
        let explained = admin.json(&from(ip));
        let newest = &explained["releases"][0];
        assert_eq!(newest["version"], "1.1.0", "{explained:#}");
        (explained["offered"].clone(), newest["reasons"][0].clone())
    };
    let (offered, reason) = explain_from("10.1.2.3");
    assert_eq!((offered.as_str(), reason["code"].as_str()), (Some("1.1.0"), Some("allow_list")), "{reason}");
    let (offered, reason) = explain_from("192.0.2.7");
    assert_eq!((offered.as_str(), reason["code"].as_str()), (None, Some("rule_failed")), "{reason}");
    let detail = reason["detail"].as_str().unwrap();
    assert!(detail.contains("ip in [10.1.0.0/16]") && detail.ends_with("192.0.2.7"), "{detail}");
    let human = admin.text(&from("10.1.2.3"));
    assert!(human.starts_with("device office-pc on stable, linux/x86_64, running 1.0.0, from 10.1.2.3\n"), "{human}");
    // The real check-in comes from 127.0.0.1, outside the office network.
    assert_eq!(devices.check("notes", "office-pc", "1.0.0", "stable").await, None);
    // A bad address is a usage error from the argument parser: exit status 2, one sentence.
    let bad = admin.run(&from("10.1.2"));
    assert_eq!((bad.code, bad.stdout.as_str()), (Some(2), ""), "{bad:#?}");
    let first = bad.stderr.lines().next().unwrap_or_default();
    assert_eq!(first, "error: invalid value '10.1.2' for '--ip <ADDR>': invalid IP address syntax", "{bad:#?}");

    // halt is one-way enough to ask first: a script without --yes changes nothing (exit 2).
    let e = admin.run(&["halt", "notes", "1.1.0"]).failure_with(2);
    assert_eq!(
        e,
        "halting notes 1.1.0 needs confirmation: pass --yes (stdin is not a terminal, so nobody could be asked); nothing changed"
    );
    assert_eq!(rollout(&admin.json(&["releases", "notes"]), "1.1.0", "beta")["state"], "active");
    // halt 1.1.0 everywhere: nobody is offered it any more.
    let halted = admin.json(&["halt", "notes", "1.1.0", "--yes"]);
    let states: Vec<_> = halted["rollouts"].as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["halted", "halted"], "{halted:#}");
    for i in 0..16 {
        assert_eq!(devices.check("notes", &format!("beta-device-{i}"), "1.0.0", "beta").await, None);
    }

    // rollback by rebuild: devices on the bad 1.1.0 get 1.1.1, critical, with the rebuilt
    // bytes; devices on the good 1.0.0 get nothing.
    let (a111, bytes111) = artifact("1.1.1");
    // For the dashboard's rollback form: sign and upload the rebuild, write its release, roll
    // nothing back.
    let written = tmp.path().join("rebuild.json");
    let rollback = [
        "rollback",
        "notes",
        "--bad",
        "1.1.0",
        "--version",
        "1.1.1",
        "--rebuild-of",
        "1.0.0",
        "--key-file",
        key_path,
        "--artifact",
        &a111,
    ];
    let said = admin.text(&[&rollback[..], &["--write-release", written.to_str().unwrap()]].concat());
    assert!(said.contains("Nothing was rolled back yet"), "{said}");
    let release: Value = serde_json::from_str(&std::fs::read_to_string(&written).unwrap()).unwrap();
    assert_eq!((release["version"].as_str(), release["rebuild_of"].as_str()), (Some("1.1.1"), Some("1.0.0")));
    assert_eq!(release["artifacts"][0]["sha256"], Sha256::digest(&bytes111).to_string());
    assert_eq!(admin.json(&["releases", "notes"])["releases"].as_array().unwrap().len(), 2, "no 1.1.1 yet");
    let rebuild = admin.json(&[&rollback[..], &["--yes"]].concat());
    assert_eq!((rebuild["critical"].as_bool(), rebuild["rebuild_of"].as_str()), (Some(true), Some("1.0.0")));
    assert_eq!(rebuild["notes"], "Rolls back 1.1.0 to the code of 1.0.0.");
    for channel in ["beta", "stable"] {
        assert_eq!(devices.check("notes", "on-bad", "1.1.0", channel).await, Some(("1.1.1".into(), true)), "{channel}");
        assert_eq!(devices.check("notes", "on-good", "1.0.0", channel).await, None, "{channel}");
    }
    let offer = devices
        .post(
            "/v1/apps/notes/check",
            &serde_json::json!({"device_id": "on-bad", "current_version": "1.1.0",
            "channel": "stable", "os": "linux", "arch": "x86_64"}),
        )
        .await
        .ok();
    let url = offer["update"]["artifact"]["url"].as_str().unwrap().to_owned();
    assert_eq!(devices.bytes(&url).await, (200, bytes111));
    let table = admin.text(&["releases", "notes"]);
    // Rollouts are listed least stable channel first; a release's later rows leave VERSION empty.
    let lines = rows(&table);
    assert_eq!(lines[1][..4], ["1.1.1", "beta", "100%", "active"], "{table}");
    assert_eq!(lines[2], ["stable", "100%", "active"], "{table}");
    assert_eq!(lines[3][..4], ["1.1.0", "beta", "50%", "halted"], "{table}");
    assert_eq!(lines[4], ["stable", "5%", "halted"], "{table}");
    assert!(table.contains("critical, rebuild of 1.0.0"), "{table}");

    // status: the history says what changed, by whom; --watch redraws (JSON Lines for scripts).
    let status = admin.text(&["status", "notes", "1.1.0"]);
    let history: Vec<&str> = status.lines().skip_while(|l| *l != "History").collect();
    assert!(
        history.iter().any(|l| l.contains("beta") && l.contains("bootstrap-admin") && l.contains("10% -> 50%")),
        "{status}"
    );
    assert!(history.iter().any(|l| l.contains("stable") && l.contains("active -> halted")), "{status}");
    let watched = admin.run(&["status", "notes", "--watch", "1", "--count", "2", "--json"]).success();
    let lines: Vec<Value> = watched.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{watched:#?}");
    assert!(lines.iter().all(|l| l["app"] == "notes" && l["releases"].as_array().unwrap().len() == 3), "{watched:#?}");
    let e = admin.run(&["status", "notes", "--count", "2"]);
    assert_eq!(e.code, Some(2), "--count needs --watch: {e:#?}");

    // tokens: a viewer reads but cannot write; the refusal is one sentence and exit status 1.
    let created = admin.json(&["token", "create", "--name", "viewer-1", "--role", "viewer"]);
    let (viewer_id, viewer_token) = (created["id"].as_str().unwrap(), created["token"].as_str().unwrap());
    assert!(viewer_token.starts_with(&format!("htk_{viewer_id}_")), "{created}");
    let viewer = admin.with_token(viewer_token);
    assert_eq!(viewer.json(&["releases", "notes"])["releases"].as_array().unwrap().len(), 3);
    let e = viewer.run(&["rollout", "set", "notes", "1.1.1", "stable", "--percent", "50%"]).failure_with(3);
    assert_eq!(e, "the server refused the request (403 Forbidden): token viewer-1 is read-only (viewer)");
    assert_eq!(rollout(&admin.json(&["releases", "notes"]), "1.1.1", "stable")["basis_points"], 10000);
    let list = admin.json(&["token", "list"]);
    assert!(list["tokens"].as_array().unwrap().iter().any(|t| t["id"] == viewer_id && t["role"] == "viewer"));
    let said = admin.text(&["token", "revoke", viewer_id, "--yes"]);
    assert_eq!(said.trim(), format!("revoked token {viewer_id}"));
    let e = viewer.run(&["releases", "notes"]).failure_with(3);
    assert!(e.contains("401"), "a revoked token is refused at once: {e}");
    let list = admin.json(&["token", "list"]);
    assert!(list["tokens"].as_array().unwrap().iter().all(|t| t["id"] != viewer_id), "{list}");

    // audit: every change, in order, by the bootstrap admin.
    let audit = admin.json(&["audit", "notes"]);
    let entries = audit["entries"].as_array().unwrap();
    let actions: Vec<_> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "app.create",
            "release.publish",
            "release.publish",
            "rollout.update",
            "release.promote",
            "rollout.update",
            "release.halt",
            "release.halt",
            "rollback.publish",
        ],
        "{audit:#}"
    );
    assert!(entries.iter().all(|e| e["actor"] == "bootstrap-admin"), "{audit:#}");
    assert!(entries.windows(2).all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
    let human = admin.text(&["audit", "notes"]);
    assert!(human.starts_with("SEQ  TIME (UTC)"), "{human}");
    assert_eq!(human.lines().count(), 1 + entries.len());

    // CodePush deployment keys: made, listed, refused to a viewer, revoked (asking first).
    let made =
        admin.json(&["codepush-key", "create", "notes", "--name", "ios-beta", "--channel", "beta", "--os", "ios"]);
    assert_eq!((made["channel"].as_str(), made["arch"].as_str()), (Some("beta"), Some("universal")), "{made}");
    let key = made["key"].as_str().unwrap();
    let said =
        admin.text(&["codepush-key", "create", "notes", "--name", "ios-beta", "--channel", "beta", "--os", "ios"]);
    assert_eq!(
        said.trim(),
        format!("already had deployment key ios-beta of notes: {key} (channel beta, ios/universal)")
    );
    let table = admin.text(&["codepush-key", "list", "notes"]);
    assert_eq!(rows(&table)[1], ["ios-beta", "beta", "ios/universal", key], "{table}");
    let e = admin
        .run(&["codepush-key", "create", "notes", "--name", "x", "--os", "ios", "--channel", "nightly"])
        .failure_with(1);
    assert!(e.contains("422") && e.contains("nightly"), "{e}");
    let e = admin.run(&["codepush-key", "revoke", "notes", "ios-beta"]).failure_with(2);
    assert!(e.contains("--yes"), "revoking asks first: {e}");
    let said = admin.text(&["codepush-key", "revoke", "notes", "ios-beta", "--yes"]);
    assert_eq!(said.trim(), "revoked deployment key ios-beta of notes");
    assert_eq!(admin.json(&["codepush-key", "list", "notes"])["keys"], serde_json::json!([]));
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn keys_rotate_hands_trust_to_new_keys_and_publish_signs_with_several() {
    let (tmp, data) = data_dir();
    let server = Server::start(&data, true).await;
    let admin = Cli::new(&server, server.bootstrap.as_deref().unwrap());
    let keygen = |name: &str| {
        let path = tmp.path().join(format!("{name}.key")).to_str().unwrap().to_owned();
        let key = offline(&["keygen", "--out", &path, "--json"]).json();
        (path, key["id"].as_str().unwrap().to_owned(), key["public_key"].as_str().unwrap().to_owned())
    };
    let ((a, a_id, a_pub), (b, b_id, _), (c, c_id, _)) = (keygen("a"), keygen("b"), keygen("c"));
    admin.json(&["app", "create", "notes", "--name", "Notes", "--key", &format!("{a_id}={a_pub}")]);
    let file = tmp.path().join("build.bin");
    std::fs::write(&file, b"notes build\n".repeat(100)).unwrap();
    let artifact = format!("linux/x86_64={}", file.display());
    let publish = |version: &str, keys: &[&str]| {
        let mut args = vec!["publish", "notes", version, "--channel", "stable", "--percent", "100%"];
        for k in keys {
            args.extend(["--key-file", k]);
        }
        args.extend(["--artifact", artifact.as_str()]);
        args.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    admin.json(&strs(&publish("1.0.0", &[&a])));

    // A hands over to B and C, two of which must sign from now on.
    let doc =
        admin.json(&["keys", "rotate", "notes", "--key", &a, "--new-key", &b, "--new-key", &c, "--threshold", "2"]);
    assert_eq!((doc["version"].as_u64(), doc["threshold"].as_u64()), (Some(2), Some(2)), "{doc}");
    assert_eq!(doc["signatures"].as_array().unwrap().len(), 3, "A, B and C signed: {doc}");
    let listed = admin.text(&["keys", "list", "notes"]);
    assert!(listed.lines().nth(1).unwrap().starts_with("2 "), "{listed}");
    // A second rotation signed by B alone is under its own threshold: refused, nothing changes.
    let e = admin.run(&["keys", "rotate", "notes", "--key", &b, "--new-key", &b, "--threshold", "1"]).failure();
    assert!(e.contains("does not chain") && e.contains("previous version's keys"), "{e}");

    // A is no longer trusted; one of B and C is not enough; both are.
    let e = admin.run(&strs(&publish("1.1.0", &[&a]))).failure();
    assert!(e.contains(&format!("does not trust key {a_id}")) && e.contains("keys rotate"), "{e}");
    // Refused by the server after the upload (whose note precedes the error).
    let run = admin.run(&strs(&publish("1.1.0", &[&b])));
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("signed by 1 distinct trusted keys, 2 needed"), "{run:?}");
    let published = admin.json(&strs(&publish("1.1.0", &[&b, &c])));
    let signers: Vec<&str> = published["artifacts"][0]["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(signers, [b_id.as_str(), c_id.as_str()]);
}

#[tokio::test]
async fn login_saves_a_checked_token_that_later_commands_use() {
    let (_tmp, data) = data_dir();
    let server = Server::start(&data, true).await;
    let admin = Cli::new(&server, server.bootstrap.as_deref().unwrap());
    // A token the server refuses is not saved.
    let e = admin.with_token("htk_0000000000000000_nope").run(&["login"]).failure_with(3);
    assert!(e.contains("did not accept this token; nothing was saved"), "{e}");
    let wrong = Cli::new(&server, "htk_0000000000000000_nope");
    assert!(!wrong.config_file().exists());
    // A good one is saved, in a profile, readable by its owner only.
    let said = admin.text(&["login", "--profile", "prod"]);
    assert!(said.starts_with(&format!("logged in to {} as bootstrap-admin, admin; saved to ", server.base)), "{said}");
    assert!(said.trim_end().ends_with("config.toml as [profile.prod]"), "{said}");
    let mode = std::fs::metadata(admin.config_file()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let me = admin.run_configured(&["whoami", "--profile", "prod"]).success();
    assert!(me.stdout.starts_with(&format!("bootstrap-admin, admin on {}", server.base)), "{me:#?}");
    assert_eq!(me.stderr, "", "no warning for a private file: {me:#?}");
    // Without the profile there is no token: the error says where one could go.
    let e = admin.run_configured(&["whoami"]).failure();
    assert!(e.starts_with("no admin token: pass --token, set HALFTONE_TOKEN, run `halftone login`"), "{e}");
    // Made readable by others, it still works, with a warning on stderr.
    std::fs::set_permissions(admin.config_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let me = admin.run_configured(&["whoami", "--profile", "prod"]).success();
    assert!(me.stderr.contains("holds a token and other users can read it (mode 644); run `chmod 600"), "{me:#?}");

    // Completion scripts for the shells, naming the subcommands.
    let bash = offline(&["completions", "bash"]).success().stdout;
    assert!(bash.contains("halftone") && bash.contains("rollback") && bash.contains("--leave-uncovered"), "bash");
    let tcsh = offline(&["completions", "tcsh"]);
    assert_eq!(tcsh.code, Some(2), "{tcsh:#?}");
    assert!(tcsh.stderr.starts_with("error: invalid value 'tcsh'") && tcsh.stderr.contains("zsh"), "{tcsh:#?}");
}

#[tokio::test]
async fn commands_without_a_reachable_server_or_a_valid_token_fail_in_one_sentence() {
    let (_tmp, data) = data_dir();
    let server = Server::start(&data, true).await;
    let nobody = Cli::new(&server, "htk_0000000000000000_nope");
    let e = nobody.run(&["app", "list"]).failure_with(3);
    assert!(e.contains("401"), "{e}");
    // A loopback port nobody listens on: bound by us a moment ago, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut nowhere = Cli::new(&server, server.bootstrap.as_deref().unwrap());
    nowhere.server = format!("http://127.0.0.1:{port}");
    let e = nowhere.run(&["app", "list"]).failure_with(6);
    assert!(e.starts_with(&format!("could not reach the server at http://127.0.0.1:{port}")), "{e}");
    // Under --json, scripts get the failure as an object on stdout too.
    let run = nowhere.run(&["app", "list", "--json"]);
    assert_eq!(run.code, Some(6), "{run:#?}");
    let object: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(object["error"]["kind"], "unreachable", "{object}");
    let missing = Cli::new(&server, server.bootstrap.as_deref().unwrap()).run(&["releases", "nope", "--json"]);
    assert_eq!(missing.code, Some(4), "{missing:#?}");
    let object: serde_json::Value = serde_json::from_str(&missing.stdout).unwrap();
    assert_eq!((object["error"]["kind"].as_str(), object["error"]["status"].as_u64()), (Some("not_found"), Some(404)));
}
