//! The web dashboard: a static single-page app under `/ui` whose files (`server/ui/assets/`)
//! are compiled into the binary (rust-embed, in debug builds too), so `halftone serve` needs no
//! second server, no Node and no network. The page reads and changes everything through the
//! admin API, with the token the user typed (kept in the browser's session storage, never in a
//! URL); this module only serves files.
//!
//! Every answer under `/ui` (errors included) carries a strict Content-Security-Policy: scripts,
//! styles and requests from this origin only, no inline script or style, no plugins, and no
//! framing (`frame-ancestors 'none'`, `X-Frame-Options: DENY`). `/` redirects to `/ui/`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, web};

use crate::problem::ApiError;

/// The dashboard's files, compiled in.
#[derive(rust_embed::Embed)]
#[folder = "ui/assets/"]
struct Assets;

/// The policy of every dashboard answer: nothing inline, nothing from elsewhere, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// The security headers of every answer under `/ui` (and of the redirect at `/`).
pub fn headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)))
        .add((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .add((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .add((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        // The files change with the binary: the browser asks again (cheap, and never stale).
        .add((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
}

/// `GET /`: the dashboard.
pub async fn root() -> HttpResponse {
    HttpResponse::Found().insert_header((header::LOCATION, "/ui/")).finish()
}

/// `GET /ui` and `GET /ui/`: the page.
pub async fn index() -> Result<HttpResponse, ApiError> {
    file("index.html")
}

/// `GET /ui/{file}`: one of the page's files (the page itself for an empty name).
pub async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    match path.as_str() {
        "" => file("index.html"),
        name => file(name),
    }
}

fn file(name: &str) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound(format!("the dashboard has no file {name}"));
    let content_type = content_type(name).ok_or_else(not_found)?;
    let found = Assets::get(name).ok_or_else(not_found)?;
    let mut answer = HttpResponse::Ok();
    answer.content_type(content_type);
    Ok(match found.data {
        // Compiled in: served from the binary's own bytes, without a copy.
        std::borrow::Cow::Borrowed(bytes) => answer.body(bytes),
        std::borrow::Cow::Owned(bytes) => answer.body(bytes),
    })
}

/// The content type of a dashboard file, by its extension; `None` for a kind it does not ship.
fn content_type(name: &str) -> Option<&'static str> {
    let (_, ext) = name.rsplit_once('.')?;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_file_has_a_content_type() {
        let names: Vec<_> = Assets::iter().collect();
        assert!(names.iter().any(|n| n == "index.html"), "{names:?}");
        for name in names {
            assert!(content_type(&name).is_some(), "{name} would be refused");
        }
    }

    #[test]
    fn unknown_and_traversing_names_are_refused() {
        for name in ["nope.js", "../Cargo.toml", "index", "vendor/../../src/main.rs", "app.exe"] {
            assert!(file(name).is_err(), "{name}");
        }
        assert!(file("index.html").is_ok());
    }

    #[test]
    fn the_policy_allows_nothing_inline_or_foreign() {
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
    }
}
