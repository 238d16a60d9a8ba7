//! The HTTP API under `/v1`, thin and separate from decisions: routes map to handlers in
//! [`device`], [`admin`] and [`ops`]; every failure is an RFC 9457 problem (see `problem.rs`).

pub mod admin;
pub mod body;
pub mod client_ip;
pub mod device;
pub mod keys;
pub mod ops;
pub mod range;

use actix_web::{HttpRequest, HttpResponse, Route, middleware, web};

use crate::metrics::count_requests;

use crate::problem::ApiError;

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("there is no route {} {}", req.method(), req.path())))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(format!("{} is not allowed on {}", req.method(), req.path())))
}

/// A resource with its routes, a 405 for other methods, and request counting labelled with
/// `path` (known here, so counting costs no second routing pass).
fn resource(
    path: &'static str,
    routes: impl IntoIterator<Item = Route>,
) -> actix_web::Resource<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let mut r = web::resource(path);
    for route in routes {
        r = r.route(route);
    }
    r.default_service(web::to(method_not_allowed)).wrap(middleware::from_fn(
        move |req: actix_web::dev::ServiceRequest, next: middleware::Next<actix_web::body::BoxBody>| {
            count_requests(path, req, next)
        },
    ))
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // The check-in first: resources are matched in order, and it is the hot path.
    cfg.service(resource("/v1/apps/{app}/check", [web::post().to(device::check)]))
        .service(resource("/healthz", [web::get().to(ops::healthz)]))
        .service(resource("/readyz", [web::get().to(ops::readyz)]))
        .service(resource("/metrics", [web::get().to(ops::metrics)]))
        .service(resource("/v1/apps", [web::get().to(admin::list_apps)]))
        .service(resource("/v1/apps/{app}", [web::get().to(admin::get_app), web::put().to(admin::put_app)]))
        .service(resource("/v1/apps/{app}/events", [web::post().to(device::events)]))
        .service(resource("/v1/apps/{app}/keys", [web::get().to(keys::list), web::post().to(keys::rotate)]))
        .service(resource("/v1/apps/{app}/explain", [web::post().to(admin::explain)]))
        .service(resource("/v1/apps/{app}/audit", [web::get().to(admin::audit)]))
        .service(resource("/v1/apps/{app}/status", [web::get().to(admin::status)]))
        .service(resource("/v1/apps/{app}/rollback", [web::post().to(admin::rollback)]))
        .service(resource(
            "/v1/apps/{app}/releases",
            [web::get().to(admin::list_releases), web::post().to(admin::publish)],
        ))
        .service(resource("/v1/apps/{app}/releases/{version}", [web::get().to(admin::get_release)]))
        .service(resource("/v1/apps/{app}/releases/{version}/promote", [web::post().to(admin::promote)]))
        .service(resource("/v1/apps/{app}/releases/{version}/halt", [web::post().to(admin::halt)]))
        .service(resource(
            "/v1/apps/{app}/releases/{version}/rollouts/{channel}",
            [web::get().to(admin::get_rollout), web::patch().to(admin::patch_rollout)],
        ))
        .service(resource(
            "/v1/artifacts/{sha256}",
            [
                web::get().to(device::download).wrap(middleware::from_fn(device::if_range)),
                web::head().to(device::download),
                web::put().to(admin::upload),
            ],
        ))
        .service(resource("/v1/audit", [web::get().to(admin::server_audit)]))
        .service(resource(
            "/v1/answer-keys",
            [web::get().to(device::answer_keys), web::post().to(admin::rotate_answer_key)],
        ))
        .service(resource("/v1/answer-keys/{id}", [web::delete().to(admin::retire_answer_key)]))
        .service(resource("/v1/tokens", [web::get().to(admin::list_tokens), web::post().to(admin::create_token)]))
        .service(resource("/v1/tokens/{id}", [web::delete().to(admin::revoke_token)]))
        .default_service(web::to(not_found));
}
