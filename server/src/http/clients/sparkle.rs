//! Sparkle's appcast: `GET /v1/apps/{app}/sparkle/appcast.xml`, an RSS feed personalised per
//! request. The app's `SUFeedURL` is this URL; Sparkle's system profile (or the app's
//! `feedParameters`) adds `appVersion` (the running CFBundleVersion, which must be the Halftone
//! version), `osVersion` and `cpuArch`; `?channel=` picks the channel (default `stable`),
//! `?arch=` the build (`x86_64`, `aarch64`, or by default from `cpuArch`, else `universal`).
//! The device id is the `Halftone-Device-Id` header (`SPUUpdater.httpHeaders`) or `?device_id=`,
//! else the IP and user agent fallback.
//!
//! The feed has one item when the device is offered a build, none otherwise: Sparkle's own
//! phased rollout (`sparkle:phasedRolloutInterval`) is decided on the device from a random
//! group, so the server decides instead and serves each device only what it should see. The
//! item carries `sparkle:edSignature` (Ed25519 over the archive) and `length`,
//! `sparkle:channel` when the offer comes from a channel other than `stable`,
//! `sparkle:criticalUpdate` when the update is critical, and `sparkle:minimumSystemVersion`
//! when the offering rollout's `os_version` rules set an inclusive floor
//! (`Rules::os_version_floor`; the server already decided on the profile's `osVersion`, and
//! Sparkle checks it again on the Mac). A device running a version older than
//! a release's stepping stone is offered the stepping stone, as any device is.

use std::fmt::Write as _;

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use halftone_channels::{Arch, Decision, Os, OsVersion, Target, Version};
use serde::Deserialize;

use super::identity::{DEVICE_ID_HEADER, Identity};
use super::{ClientCheck, app, artifact_url, channel, decide};
use crate::problem::ApiError;
use crate::state::State;

/// The query of an appcast request: ours, and the keys of Sparkle's system profile we read
/// (others, like `lang` or `model`, are ignored).
#[derive(Debug, Deserialize)]
pub struct Query {
    channel: Option<String>,
    device_id: Option<String>,
    arch: Option<String>,
    #[serde(rename = "appVersion")]
    app_version: Option<String>,
    #[serde(rename = "osVersion")]
    os_version: Option<String>,
    #[serde(rename = "cpuArch")]
    cpu_arch: Option<String>,
}

/// The architecture of the build: `?arch=`, else Sparkle's `cpuArch` (a Mach-O CPU type:
/// 16777223 is x86_64, 16777228 arm64), else `universal`.
fn arch(q: &Query) -> Result<Arch, ApiError> {
    let name = match (q.arch.as_deref(), q.cpu_arch.as_deref()) {
        (Some(a), _) => a,
        (None, Some("16777223")) => "x86_64",
        (None, Some("16777228")) => "aarch64",
        _ => "universal",
    };
    Ok(Arch::parse(name)?)
}

/// `s` escaped for XML text and attribute values (the five predefined entities; control
/// characters cannot occur: notes and names are checked on publish).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// `GET /v1/apps/{app}/sparkle/appcast.xml`
pub async fn appcast(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<Query>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let identity = match (req.headers().contains_key(DEVICE_ID_HEADER), query.device_id.as_deref()) {
        (false, Some(id)) => Identity::client(id)?,
        _ => Identity::from_header(&req, DEVICE_ID_HEADER, &state.config.trusted_proxies)?,
    };
    let check = ClientCheck {
        identity,
        // Without a version, the device is treated as running none of the releases: it is
        // offered the newest build it may see, and Sparkle itself skips what is not newer.
        current_version: Version::parse(query.app_version.as_deref().unwrap_or("0.0.0"))?,
        channel: channel(query.channel.as_deref())?,
        target: Target { os: Os::parse("macos")?, arch: arch(&query)? },
        os_version: query.os_version.as_deref().map(OsVersion::parse).transpose()?,
        traits: Default::default(),
    };
    let snapshot = state.snapshot();
    let app = app(&snapshot, &path)?;
    let decision = decide(&state, &req, app, &check, |a| a.clients.is_some())?;
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\" \
         xmlns:sparkle=\"http://www.andymatuschak.org/xml-namespaces/sparkle\">\n<channel>\n",
    );
    let _ = writeln!(xml, "<title>{}</title>", escape(app.settings.display_name.as_str()));
    if let Decision::Available(offer) = &decision {
        let clients = offer.artifact.clients.as_ref().expect("offerable artifacts have client signatures");
        let v = escape(&offer.release.version().to_string());
        let _ = writeln!(xml, "<item>\n<title>{v}</title>");
        let _ = writeln!(xml, "<sparkle:version>{v}</sparkle:version>");
        let _ = writeln!(xml, "<sparkle:shortVersionString>{v}</sparkle:shortVersionString>");
        if offer.rollout.channel.as_str() != "stable" {
            let _ = writeln!(xml, "<sparkle:channel>{}</sparkle:channel>", escape(offer.rollout.channel.as_str()));
        }
        if offer.critical {
            let _ = writeln!(xml, "<sparkle:criticalUpdate></sparkle:criticalUpdate>");
        }
        if let Some(floor) = offer.rollout.rules.os_version_floor() {
            let _ = writeln!(
                xml,
                "<sparkle:minimumSystemVersion>{}</sparkle:minimumSystemVersion>",
                escape(floor.as_str())
            );
        }
        if !offer.release.notes().is_empty() {
            let _ = writeln!(xml, "<description>{}</description>", escape(offer.release.notes()));
        }
        let _ = writeln!(
            xml,
            "<enclosure url=\"{}\" length=\"{}\" type=\"application/octet-stream\" sparkle:edSignature=\"{}\"/>",
            escape(&artifact_url(&req, offer.artifact)),
            offer.artifact.size,
            base64::engine::general_purpose::STANDARD.encode(clients.ed_signature.to_bytes())
        );
        xml.push_str("</item>\n");
    }
    xml.push_str("</channel>\n</rss>\n");
    let mut response = HttpResponse::Ok();
    for h in check.identity.headers() {
        response.insert_header(h);
    }
    Ok(response
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .content_type("application/rss+xml; charset=utf-8")
        .body(xml))
}
