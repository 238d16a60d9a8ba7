//! The JSON of the protocol, pinned. Each representative body parses and prints back to
//! exactly the expected bytes (and those bytes parse to the same value), so renaming a field,
//! skipping a field that was printed or printing one that was skipped is caught here.
//! `SHA`, `SIG` and `PUB` stand for a digest, a signature and a public key in hex.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;

/// `input` with `SHA`, `SIG` and `PUB` replaced by hex.
fn hex(input: &str) -> String {
    input.replace("SHA", &"ab".repeat(32)).replace("SIG", &"cd".repeat(64)).replace("PUB", &"ef".repeat(32))
}

/// Parses `input` as a `T`, prints it and compares with `expected`; `expected` must also
/// parse to the same value.
#[track_caller]
fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(input: &str, expected: &str) {
    let (input, expected) = (hex(input), hex(expected));
    let parsed: T = serde_json::from_str(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
    assert_eq!(serde_json::to_string(&parsed).unwrap(), expected, "printed from {input}");
    let reparsed: T = serde_json::from_str(&expected).unwrap_or_else(|e| panic!("{expected}: {e}"));
    assert_eq!(reparsed, parsed, "{expected}");
}

/// Checks that `input` is refused as a `T` with an error containing `msg`.
#[track_caller]
fn refused<T: DeserializeOwned + Debug>(input: &str, msg: &str) {
    let input = hex(input);
    let e = serde_json::from_str::<T>(&input).map(|v| format!("accepted: {v:?}")).unwrap_or_else(|e| e.to_string());
    assert!(e.contains(msg), "{input}: {e}");
}

#[test]
fn device_side() {
    let full = r#"{"device_id":"d-1","user_id":"u-1","current_version":"1.2.0","channel":"beta","os":"windows","arch":"x86_64","os_version":"10.0.19045","locale":"zh-cn","traits":{"ram":8.0,"tier":"gold"},"interactive":true}"#;
    check::<CheckRequest>(full, full);
    check::<CheckRequest>(&full.replace("zh-cn", "zh-CN"), full);
    // Optional fields are skipped when absent, defaults filled in, unknown fields ignored.
    check::<CheckRequest>(
        r#"{"device_id":"d-1","current_version":"1.2.0","channel":"stable","os":"linux","arch":"aarch64","from_the_future":1}"#,
        r#"{"device_id":"d-1","current_version":"1.2.0","channel":"stable","os":"linux","arch":"aarch64","traits":{},"interactive":false}"#,
    );

    let offer = r#"{"next_check_s":3600,"update":{"version":"1.3.0","channel":"beta","notes":"Faster.","critical":false,"artifact":{"url":"/v1/artifacts/SHA","os":"linux","arch":"x86_64","sha256":"SHA","size":1234,"signature":"SIG","key_id":"k1"}}}"#;
    check::<CheckResponse>(offer, offer);
    let none = r#"{"next_check_s":60,"update":null}"#;
    check::<CheckResponse>(none, none);

    let events = r#"{"events":[{"device_id":"d-1","kind":"install_failed","version":"1.3.0","channel":"beta","detail":"disk full"},{"device_id":"d-1","kind":"first_run","version":"1.3.0","channel":"beta"}]}"#;
    check::<EventBatch>(events, events);
    // An older server's answer still parses: nothing rejected.
    let zero = r#"{"accepted":2,"duplicates":0,"rejected":0,"rejections":{"missing_token":0,"invalid_token":0}}"#;
    check::<EventsAccepted>(r#"{"accepted":2,"duplicates":0}"#, zero);
    let rejected = r#"{"accepted":1,"duplicates":0,"rejected":2,"rejections":{"missing_token":1,"invalid_token":1}}"#;
    check::<EventsAccepted>(rejected, rejected);

    // Report tokens: in the offer, at the top of the answer, and on events.
    let tokens = offer
        .replace(r#""key_id":"k1"}"#, &format!(r#""key_id":"k1"}},"report_token":"{}""#, "ab".repeat(16)))
        .replace(r#"}}"#, &format!(r#"}},"report_token":"{}"}}"#, "cd".repeat(16)));
    check::<CheckResponse>(&tokens, &tokens);
    let token = format!(
        r#"{{"events":[{{"device_id":"d-1","kind":"crash","version":"1.3.0","channel":"beta","token":"{}"}}]}}"#,
        "0f".repeat(16)
    );
    check::<EventBatch>(&token, &token);
    refused::<EventBatch>(&token.replace(&"0f".repeat(16), &"0F".repeat(16)), "invalid report token");
}

#[test]
fn admin_requests() {
    let app =
        r#"{"display_name":"Notes","keys":[{"id":"k1","public_key":"PUB"}],"channels":[{"name":"canary","rank":400}]}"#;
    check::<AppSpec>(app, app);
    check::<AppSpec>(r#"{"display_name":"Notes"}"#, r#"{"display_name":"Notes","keys":[],"channels":[]}"#);

    let publish = r#"{"release":{"version":"1.3.0","notes":"Faster.","critical":true,"min_from_version":"1.0.0","artifacts":[{"os":"linux","arch":"x86_64","sha256":"SHA","size":1234,"signature":"SIG","key_id":"k1","url":"https://cdn.example.com/a.tar.gz"}]},"channel":"beta","rollout":{"basis_points":100,"salt":"s","stickiness":"user","allow":["tester"],"deny":["d-9"],"rules":[{"kind":"os_version","range":">=10.0.19041"},{"kind":"trait","values":["gold","silver"],"name":"tier","op":"in"},{"kind":"trait","name":"ram","op":"ge","value":8.0}],"state":"paused","interactive_bypass":true,"schedule":{"preset":"apple_phased"},"gate":{"max_install_failure_rate":0.05,"max_crash_rate":0.02,"min_sample":100,"action":"pause"}}}"#;
    check::<PublishRequest>(publish, publish);
    // The least a publish needs, with every default printed back.
    check::<PublishRequest>(
        r#"{"release":{"version":"1.3.0","artifacts":[]},"channel":"beta","rollout":{"basis_points":10000,"schedule":{"steps":[{"basis_points":100,"hold_s":3600},{"basis_points":10000}]},"gate":{"max_crash_rate":0.1,"min_sample":5}}}"#,
        r#"{"release":{"version":"1.3.0","notes":"","critical":false,"artifacts":[]},"channel":"beta","rollout":{"basis_points":10000,"stickiness":"device","allow":[],"deny":[],"rules":[],"state":"active","interactive_bypass":false,"schedule":{"steps":[{"basis_points":100,"hold_s":3600},{"basis_points":10000,"hold_s":0}]},"gate":{"max_crash_rate":0.1,"min_sample":5,"action":"halt"}}}"#,
    );

    let patch = r#"{"basis_points":2500,"rules":[{"kind":"ip_in","values":["10.0.0.0/8"]}],"state":"halted"}"#;
    check::<RolloutPatch>(patch, patch);
    check::<RolloutPatch>("{}", "{}");

    let rollback = r#"{"bad_version":"1.3.0","release":{"version":"1.3.1","notes":"","critical":true,"rebuild_of":"1.2.0","artifacts":[]}}"#;
    check::<RollbackRequest>(rollback, rollback);
    let promote = r#"{"channel":"stable","rollout":{"basis_points":500,"stickiness":"device","allow":[],"deny":[],"rules":[],"state":"active","interactive_bypass":false}}"#;
    check::<PromoteRequest>(promote, promote);

    check::<TokenRequest>(
        r#"{"name":"ci","role":"publisher","apps":["notes"]}"#,
        r#"{"name":"ci","role":"publisher","apps":["notes"]}"#,
    );
    check::<TokenRequest>(r#"{"name":"alice","role":"admin"}"#, r#"{"name":"alice","role":"admin","apps":[]}"#);

    let explain = r#"{"device_id":"d-1","current_version":"1.2.0","channel":"beta","os":"linux","arch":"x86_64","traits":{},"interactive":false,"ip":"10.1.2.3"}"#;
    check::<ExplainRequest>(explain, explain);
}

#[test]
fn admin_requests_refuse_unknown_fields() {
    refused::<AppSpec>(r#"{"display_name":"Notes","colour":"red"}"#, "unknown field `colour`");
    refused::<KeySpec>(r#"{"id":"k1","public_key":"PUB","x":1}"#, "unknown field `x`");
    refused::<ChannelSpec>(r#"{"name":"canary","rank":400,"x":1}"#, "unknown field `x`");
    refused::<PublishRequest>(
        r#"{"release":{"version":"1.0.0","artifacts":[]},"channel":"beta","rollout":{"basis_points":1},"x":1}"#,
        "unknown field `x`",
    );
    refused::<ReleaseSpec>(r#"{"version":"1.0.0","artifacts":[],"notez":""}"#, "unknown field `notez`");
    refused::<ArtifactSpec>(
        r#"{"os":"linux","arch":"x86_64","sha256":"SHA","size":1,"signature":"SIG","key_id":"k","x":1}"#,
        "unknown field `x`",
    );
    refused::<RolloutSpec>(r#"{"basis_points":1,"percent":1}"#, "unknown field `percent`");
    refused::<RolloutSpec>(r#"{"basis_points":1,"schedule":{"preset":"apple_phased","x":1}}"#, "unknown field `x`");
    refused::<RolloutSpec>(
        r#"{"basis_points":1,"schedule":{"steps":[{"basis_points":1,"hold":1}]}}"#,
        "unknown field `hold`",
    );
    refused::<RolloutSpec>(r#"{"basis_points":1,"gate":{"min_sample":1,"max_rate":0.1}}"#, "unknown field `max_rate`");
    refused::<RolloutPatch>(r#"{"percent":1}"#, "unknown field `percent`");
    // Presets are named values: an unknown one is refused with the body, as an invalid value.
    refused::<RolloutSpec>(r#"{"basis_points":1,"schedule":{"preset":"google"}}"#, "unknown schedule preset");
    refused::<PromoteRequest>(r#"{"channel":"stable","rollout":{"basis_points":1},"x":1}"#, "unknown field `x`");
    refused::<RollbackRequest>(
        r#"{"bad_version":"1.0.0","release":{"version":"1.0.1","artifacts":[]},"x":1}"#,
        "unknown field `x`",
    );
    refused::<TokenRequest>(r#"{"name":"ci","role":"viewer","x":1}"#, "unknown field `x`");
}

#[test]
fn admin_answers() {
    let rollout = r#"{"basis_points":100,"salt":"notes:1.3.0","stickiness":"device","allow":[],"deny":[],"rules":[],"state":"active","interactive_bypass":false,"schedule":{"steps":[{"basis_points":100,"hold_s":86400},{"basis_points":10000,"hold_s":0}]},"gate":{"max_install_failure_rate":0.05,"min_sample":100,"action":"halt"}}"#;
    let view = format!(r#"{{"channel":"beta","etag":"\"r3\"",{}"#, &rollout[1..]);
    let release = r#""version":"1.3.0","notes":"n","critical":false,"artifacts":[{"os":"linux","arch":"x86_64","sha256":"SHA","size":1,"signature":"SIG","key_id":"k1"}]"#;
    let list = format!(r#"{{"releases":[{{{release},"rollouts":[{view}],"offers":7}}]}}"#);
    check::<ReleaseList>(&list, &list);

    let app = r#"{"apps":[{"id":"notes","display_name":"Notes","keys":[{"id":"k1","public_key":"PUB"}],"channels":[{"name":"stable","rank":100}]}]}"#;
    check::<AppList>(app, app);

    let created = r#"{"id":"t1","name":"ci","role":"viewer","apps":[],"token":"secret"}"#;
    check::<TokenCreated>(created, created);
    check::<TokenList>(
        r#"{"tokens":[{"id":"t1","name":"ci","role":"viewer","apps":[]}]}"#,
        r#"{"tokens":[{"id":"t1","name":"ci","role":"viewer","apps":[]}]}"#,
    );

    let audit = r#"{"entries":[{"seq":1,"at_ms":1000,"actor":"alice","action":"rollout.update","app":"notes","subject":"1.3.0/beta","before":null,"after":{"basis_points":100}}]}"#;
    check::<AuditLog>(audit, audit);

    let explained = r#"{"offered":"1.3.0","critical":false,"releases":[{"version":"1.3.0","offered":true,"reasons":[{"code":"allow_list","detail":"on the beta rollout's allow list"}]}]}"#;
    check::<ExplainResponse>(explained, explained);

    let stored = r#"{"sha256":"SHA","size":1234,"created":true}"#;
    check::<ArtifactStored>(stored, stored);
}

#[test]
fn status() {
    let status = r#"{"app":"notes","releases":[{"version":"1.3.0","critical":false,"rebuild_of":null,"rollouts":[{"channel":"beta","state":"active","basis_points":100,"schedule":{"steps":[{"basis_points":100,"hold_s":86400},{"basis_points":10000,"hold_s":0}],"step":0,"since_ms":1000,"next_at_ms":86401000},"gate":{"max_crash_rate":0.02,"min_sample":100,"action":"pause"},"figures":{"offers":10,"offered_devices":9,"downloads":8,"download_failures":1,"installs":6,"install_failures":1,"first_runs":5,"crashes":0},"history":[]},{"channel":"stable","state":"halted","basis_points":0,"schedule":null,"gate":null,"figures":{"offers":0,"offered_devices":0,"downloads":0,"download_failures":0,"installs":0,"install_failures":0,"first_runs":0,"crashes":0},"history":[]}]}],"adoption":[{"channel":"beta","versions":[{"version":"1.3.0","last_day":5,"last_week":9}]}]}"#;
    check::<StatusView>(status, status);
}

#[test]
fn problem() {
    let p =
        r#"{"type":"urn:halftone:problem:not-found","title":"Not found","status":404,"detail":"no app named notes"}"#;
    check::<Problem>(p, p);
}

#[test]
fn every_event_kind_is_listed_once_and_named_as_on_the_wire() {
    for (i, kind) in EventKind::ALL.iter().enumerate() {
        assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::Value::String(kind.as_str().to_owned()));
        assert!(!EventKind::ALL[..i].contains(kind), "{kind:?} is listed twice");
    }
    // A kind missing from ALL would not be named by serde the same way: every wire name parses
    // back to a listed kind.
    for name in ["download_started", "download_failed", "install_succeeded", "install_failed", "first_run", "crash"] {
        let kind: EventKind = serde_json::from_value(serde_json::Value::String(name.into())).unwrap();
        assert!(EventKind::ALL.contains(&kind));
    }
}
