//! Who a device is when it does not run the Halftone SDK: [`Identity`], the client's own stable
//! id where it sends one, otherwise a documented fallback derived from the client's IP address
//! and user agent (`net-` and 32 hex digits of SHA-256 over both). With the fallback, every
//! device behind one NAT address that runs the same build moves together in a percentage
//! rollout: docs/clients.md says so, and each answer names the identity it used.

use actix_web::HttpRequest;
use actix_web::http::header::{HeaderName, HeaderValue, USER_AGENT};
use halftone_channels::DeviceId;
use sha2::Digest as _;

use crate::http::client_ip::client_ip;
use crate::problem::ApiError;

/// The header naming the device id an answer was decided for.
pub const DEVICE_ID_HEADER: &str = "halftone-device-id";
/// The header saying where that id came from: `client`, `codepush` or `ip-user-agent`.
pub const IDENTITY_HEADER: &str = "halftone-identity";

/// What a CodePush device's id starts with: `codepush-` and its `clientUniqueId`.
pub const CODEPUSH_PREFIX: &str = "codepush-";

/// What `halftone explain` says of a device id: for a CodePush id, that it is one; for a fallback id (`net-` and 32 hex digits),
/// that it stands for every device behind one address with one user agent.
pub fn describe(id: &DeviceId) -> Option<String> {
    if let Some(unique) = id.as_str().strip_prefix(CODEPUSH_PREFIX) {
        return Some(format!(
            "codepush: the CodePush client's clientUniqueId {unique:?}, which the server prefixes with \
             {CODEPUSH_PREFIX:?}"
        ));
    }
    let hex = id.as_str().strip_prefix("net-")?;
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| {
        "ip-user-agent: derived from the client's IP address and user agent (the client sent no id); every \
         device behind that address with that user agent shares it"
            .to_owned()
    })
}

/// A device's identity and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The client's own stable id (a header or a field of its protocol).
    Client(DeviceId),
    /// Derived from the client's IP address and user agent: no id was sent.
    Network(DeviceId),
    /// A CodePush client's `clientUniqueId`, prefixed with [`CODEPUSH_PREFIX`].
    CodePush(DeviceId),
}

impl Identity {
    /// The id from `header` when the request carries it (a malformed one is a 400), otherwise
    /// the fallback.
    pub fn from_header(req: &HttpRequest, header: &str, trusted: &[ipnet::IpNet]) -> Result<Identity, ApiError> {
        match req.headers().get(header) {
            Some(v) => Self::client(v.to_str().unwrap_or("\u{0}")),
            None => Ok(Self::fallback(req, trusted)),
        }
    }

    /// The client's own id, sent in its protocol.
    pub fn client(id: &str) -> Result<Identity, ApiError> {
        Ok(Identity::Client(DeviceId::parse(id)?))
    }

    /// A CodePush client's `clientUniqueId` (1–119 characters: the id is prefixed).
    pub fn codepush(unique_id: &str) -> Result<Identity, ApiError> {
        Ok(Identity::CodePush(DeviceId::parse(&format!("{CODEPUSH_PREFIX}{unique_id}"))?))
    }

    /// The fallback: `net-` and the first 16 bytes of SHA-256 of the client IP (as the
    /// server determines it, trusting only the configured proxies) and the user agent.
    pub fn fallback(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Identity {
        let ip = client_ip(req, trusted).map(|ip| ip.to_string()).unwrap_or_default();
        let agent = req.headers().get(USER_AGENT).map(HeaderValue::as_bytes).unwrap_or_default();
        let mut h = sha2::Sha256::new();
        h.update(b"halftone-network-device-v1\n");
        h.update(ip.as_bytes());
        h.update(b"\n");
        h.update(agent);
        let digest = h.finalize();
        let id = format!("net-{}", hex::encode(&digest[..16]));
        Identity::Network(DeviceId::parse(&id).expect("net- and hex is a device id"))
    }

    /// The device id decisions are made for.
    pub fn device_id(&self) -> &DeviceId {
        match self {
            Identity::Client(id) | Identity::Network(id) | Identity::CodePush(id) => id,
        }
    }

    /// Where the id came from, as the `Halftone-Identity` header says it.
    pub fn source(&self) -> &'static str {
        match self {
            Identity::Client(_) => "client",
            Identity::Network(_) => "ip-user-agent",
            Identity::CodePush(_) => "codepush",
        }
    }

    /// The two headers that name this identity in an answer.
    pub fn headers(&self) -> [(HeaderName, HeaderValue); 2] {
        [
            (
                HeaderName::from_static(DEVICE_ID_HEADER),
                HeaderValue::from_str(self.device_id().as_str()).unwrap_or_else(|_| HeaderValue::from_static("?")),
            ),
            (HeaderName::from_static(IDENTITY_HEADER), HeaderValue::from_static(self.source())),
        ]
    }
}
