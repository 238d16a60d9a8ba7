//! Where downloads may come from: [`Origins`], the server's own origin (scheme, host and port)
//! plus the hosts the app allows with
//! [`ClientBuilder::allow_download_host`](crate::ClientBuilder::allow_download_host).
//!
//! The rule applies to the URL an offer names (at check time, before any request) and to
//! every redirect a download follows, so a server (or whoever answers in its name) cannot
//! send the device to fetch from an arbitrary host. A server reached over `https` is never
//! downgraded: every download URL, redirects included, must then be `https` too. The
//! signature still decides whether the bytes are taken; this rule decides whom the device
//! talks to at all.

use reqwest::Url;

use crate::Refusal;

/// A host the app allows downloads from: a host name or IP address, with a port when it is
/// not the scheme's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowedHost {
    /// Lowercase, as [`Url::host_str`] gives it (IPv6 in brackets).
    host: String,
    /// `None`: the default port of the URL's scheme (443 for https, 80 for http).
    port: Option<u16>,
}

impl AllowedHost {
    /// Parses `cdn.example.com` or `cdn.example.com:8443` (no scheme, path or wildcard).
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        const EXPECTED: &str =
            "expected a host name and an optional port, like cdn.example.com or cdn.example.com:8443";
        if value.is_empty() || value.contains("://") || value.contains(['/', '*', '@', '?', '#', ' ']) {
            return Err(format!("{value:?}: {EXPECTED}"));
        }
        let url = Url::parse(&format!("https://{value}/")).map_err(|e| format!("{value:?}: {e}"))?;
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("{value:?}: {EXPECTED}"))?;
        // `Url` hides a port that is the scheme's default, so whether one was written is read
        // from the text: `cdn.example.com:443` allows port 443 only, whatever the scheme.
        let written_port = match value.rsplit_once(':') {
            Some((before, digits)) if !digits.is_empty() && (!before.contains(':') || before.ends_with(']')) => {
                Some(digits.parse::<u16>().map_err(|_| format!("{value:?}: invalid port"))?)
            }
            _ => None,
        };
        Ok(AllowedHost { host: host.to_owned(), port: written_port })
    }

    fn matches(&self, url: &Url) -> bool {
        url.host_str() == Some(self.host.as_str())
            && match self.port {
                Some(port) => url.port_or_known_default() == Some(port),
                None => url.port().is_none(),
            }
    }
}

/// The origins downloads may come from.
#[derive(Debug, Clone)]
pub(crate) struct Origins {
    /// The server's scheme, host and port (the port made explicit).
    server: (String, String, Option<u16>),
    allowed: Vec<AllowedHost>,
}

impl Origins {
    /// The origin of `server` (an http(s) base URL) and the app's `allowed` hosts.
    pub(crate) fn new(server: &Url, allowed: Vec<AllowedHost>) -> Self {
        let origin = (
            server.scheme().to_owned(),
            server.host_str().unwrap_or_default().to_owned(),
            server.port_or_known_default(),
        );
        Origins { server: origin, allowed }
    }

    /// Admits `url` if it is on the server's origin, or on an allowed host without
    /// downgrading an https server to http.
    pub(crate) fn admit(&self, url: &Url) -> Result<(), Refusal> {
        let shown = without_query(url);
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::BadUrl { url: shown, reason: "expected an http(s) URL" });
        }
        if self.server.0 == "https" && url.scheme() == "http" {
            return Err(Refusal::InsecureUrl { url: shown });
        }
        let origin = (url.scheme(), url.host_str().unwrap_or_default(), url.port_or_known_default());
        if origin == (self.server.0.as_str(), self.server.1.as_str(), self.server.2) {
            return Ok(());
        }
        if self.allowed.iter().any(|host| host.matches(url)) {
            return Ok(());
        }
        Err(Refusal::HostNotAllowed { url: shown })
    }
}

/// The URL as shown in errors and events: without its query, which for a pre-signed URL is a
/// credential for a while.
fn without_query(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(server: &str, allowed: &[&str]) -> Origins {
        let allowed = allowed.iter().map(|h| AllowedHost::parse(h).unwrap()).collect();
        Origins::new(&Url::parse(server).unwrap(), allowed)
    }

    #[track_caller]
    fn check(origins: &Origins, url: &str, expected: Result<(), &str>) {
        let got = origins.admit(&Url::parse(url).unwrap()).map_err(|r| match r {
            Refusal::HostNotAllowed { .. } => "host",
            Refusal::InsecureUrl { .. } => "insecure",
            Refusal::BadUrl { .. } => "bad",
            other => panic!("{other:?}"),
        });
        assert_eq!(got, expected, "{url}");
    }

    #[test]
    fn the_servers_own_origin_is_admitted_and_nothing_else_unless_allowed() {
        let o = origins("https://updates.example.com/halftone", &[]);
        check(&o, "https://updates.example.com/v1/artifacts/ab", Ok(()));
        check(&o, "https://updates.example.com:443/elsewhere", Ok(()));
        check(&o, "https://UPDATES.example.com/x", Ok(()));
        check(&o, "https://updates.example.com:8443/x", Err("host"));
        check(&o, "https://cdn.example.com/a.bin", Err("host"));
        check(&o, "https://updates.example.com.evil.test/x", Err("host"));
        check(&o, "ftp://updates.example.com/x", Err("bad"));
        let local = origins("http://127.0.0.1:8080", &[]);
        check(&local, "http://127.0.0.1:8080/v1/artifacts/ab", Ok(()));
        check(&local, "http://127.0.0.1:8081/v1/artifacts/ab", Err("host"));
        check(&local, "http://localhost:8080/v1/artifacts/ab", Err("host"));
    }

    #[test]
    fn allowed_hosts_are_admitted_on_their_port() {
        let o = origins("https://updates.example.com", &["cdn.example.com", "dl.example.net:8443", "[::1]:9000"]);
        check(&o, "https://cdn.example.com/a.bin?X-Amz-Signature=1", Ok(()));
        check(&o, "https://Cdn.Example.com:443/a.bin", Ok(()));
        check(&o, "https://cdn.example.com:444/a.bin", Err("host"));
        check(&o, "https://sub.cdn.example.com/a.bin", Err("host"));
        check(&o, "https://dl.example.net:8443/a.bin", Ok(()));
        check(&o, "https://dl.example.net/a.bin", Err("host"));
        check(&o, "https://[::1]:9000/a.bin", Ok(()));
    }

    #[test]
    fn an_https_server_is_never_downgraded_to_http() {
        let o = origins("https://updates.example.com", &["cdn.example.com"]);
        check(&o, "http://updates.example.com/v1/artifacts/ab", Err("insecure"));
        check(&o, "http://cdn.example.com/a.bin", Err("insecure"));
        check(&o, "http://elsewhere.example.com/a.bin", Err("insecure"));
        // An http server (a local one, say) may name an allowed host on http or https.
        let o = origins("http://127.0.0.1:8080", &["cdn.example.com"]);
        check(&o, "http://cdn.example.com/a.bin", Ok(()));
        check(&o, "https://cdn.example.com/a.bin", Ok(()));
    }

    #[test]
    fn allowed_hosts_are_plain_hosts() {
        assert_eq!(
            AllowedHost::parse("CDN.example.com").unwrap(),
            AllowedHost { host: "cdn.example.com".into(), port: None }
        );
        assert_eq!(AllowedHost::parse("cdn.example.com:443").unwrap().port, Some(443));
        assert_eq!(AllowedHost::parse("127.0.0.1:9000").unwrap().port, Some(9000));
        assert_eq!(AllowedHost::parse("[::1]").unwrap().port, None);
        for bad in [
            "",
            "https://cdn.example.com",
            "cdn.example.com/path",
            "*.example.com",
            "a b",
            "user@cdn",
            "cdn:99999",
            "::1",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refusals_never_show_a_query() {
        let o = origins("https://updates.example.com", &[]);
        let refused = o.admit(&Url::parse("https://bucket.s3.example.com/a?X-Amz-Signature=secret").unwrap());
        assert_eq!(refused, Err(Refusal::HostNotAllowed { url: "https://bucket.s3.example.com/a".into() }));
    }
}
