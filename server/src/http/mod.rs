//! The HTTP API under `/v1`, thin and separate from decisions: routes map to handlers in
//! [`device`], [`admin`] and [`ops`], and the dashboard's files in [`ui`]; every failure is an
//! RFC 9457 problem (see `problem.rs`).
//! Before any handler, the route's [`gate`] checks its lane's request rate ([`shedding`]) and
//! its body's size and deadline ([`body`]); [`connections`] caps connections per address.

pub mod admin;
pub mod body;
pub mod client_ip;
pub mod clients;
pub mod connections;
pub mod device;
pub mod gate;
pub mod keys;
pub mod objects;
pub mod ops;
pub mod range;
pub mod shedding;
pub mod ui;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, Route, middleware, web};

use crate::http::gate::{BodyKind, Gate};
use crate::http::shedding::Lane;
use crate::metrics::count_requests;

use crate::problem::ApiError;

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("there is no route {} {}", req.method(), req.path())))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(format!("{} is not allowed on {}", req.method(), req.path())))
}

/// The gate of one route (for a resource whose routes differ, like `/v1/artifacts/{sha256}`).
fn gated(gate: &Arc<Gate>, lane: Lane, kind: BodyKind, route: Route) -> Route {
    let gate = gate.clone();
    route.wrap(middleware::from_fn(move |req, next| gate::check(gate.clone(), lane, kind, req, next)))
}

/// A resource with its routes behind the `lane`'s gate (JSON bodies; `None` when each route has
/// its own, see [`gated`]), a 405 for other methods, and request counting labelled with `path` (known here, so counting costs no second routing
/// pass; refusals by the gate are counted too).
fn resource(
    gate: Arc<Gate>,
    lane: Option<Lane>,
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
    r.default_service(web::to(method_not_allowed))
        .wrap(middleware::from_fn(move |req, next| {
            let gate = gate.clone();
            async move {
                match lane {
                    Some(lane) => gate::check(gate, lane, BodyKind::Json, req, next).await,
                    None => Ok(next.call(req).await?.map_into_left_body()),
                }
            }
        }))
        .wrap(middleware::from_fn(
            move |req: actix_web::dev::ServiceRequest,
                  next: middleware::Next<actix_web::body::EitherBody<actix_web::body::BoxBody>>| {
                count_requests(path, req, next)
            },
        ))
}

/// Registers every route, behind `gate`.
pub fn configure(cfg: &mut web::ServiceConfig, gate: &Arc<Gate>) {
    let device = Some(Lane::Device);
    let admin = Some(Lane::Admin);
    let ops = Some(Lane::Ops);
    let r = |lane, path, routes: Vec<Route>| resource(gate.clone(), lane, path, routes);
    // The check-in first: resources are matched in order, and it is the hot path.
    cfg.service(r(device, "/v1/apps/{app}/check", vec![web::post().to(device::check)]))
        .service(r(ops, "/healthz", vec![web::get().to(ops::healthz)]))
        .service(r(ops, "/readyz", vec![web::get().to(ops::readyz)]))
        .service(r(ops, "/metrics", vec![web::get().to(ops::metrics)]))
        .service(r(admin, "/v1/apps", vec![web::get().to(admin::list_apps)]))
        .service(r(admin, "/v1/apps/{app}", vec![web::get().to(admin::get_app), web::put().to(admin::put_app)]))
        .service(r(device, "/v1/apps/{app}/events", vec![web::post().to(device::events)]))
        .service(r(device, "/v1/apps/{app}/keys", vec![web::get().to(keys::list), web::post().to(keys::rotate)]))
        .service(r(
            device,
            "/v1/apps/{app}/tauri/{target}/{arch}/{current_version}",
            vec![web::get().to(clients::tauri::check)],
        ))
        .service(r(device, "/v1/apps/{app}/electron/{file}", vec![web::get().to(clients::electron::channel_file)]))
        .service(r(device, "/v1/apps/{app}/sparkle/appcast.xml", vec![web::get().to(clients::sparkle::appcast)]))
        .service(r(
            device,
            "/v1/apps/{app}/codepush/updateCheck",
            vec![web::get().to(clients::codepush::update_check_legacy)],
        ))
        .service(r(
            device,
            "/v1/apps/{app}/codepush/v0.1/public/codepush/update_check",
            vec![web::get().to(clients::codepush::update_check_v01)],
        ))
        .service(r(
            device,
            "/v1/apps/{app}/codepush/reportStatus/deploy",
            vec![web::post().to(clients::codepush::report_deploy)],
        ))
        .service(r(
            device,
            "/v1/apps/{app}/codepush/v0.1/public/codepush/report_status/deploy",
            vec![web::post().to(clients::codepush::report_deploy)],
        ))
        .service(r(
            device,
            "/v1/apps/{app}/codepush/reportStatus/download",
            vec![web::post().to(clients::codepush::report_download)],
        ))
        .service(r(
            device,
            "/v1/apps/{app}/codepush/v0.1/public/codepush/report_status/download",
            vec![web::post().to(clients::codepush::report_download)],
        ))
        .service(r(
            admin,
            "/v1/apps/{app}/codepush-keys",
            vec![web::get().to(admin::list_codepush_keys), web::post().to(admin::create_codepush_key)],
        ))
        .service(r(admin, "/v1/apps/{app}/codepush-keys/{name}", vec![web::delete().to(admin::revoke_codepush_key)]))
        .service(r(admin, "/v1/apps/{app}/explain", vec![web::post().to(admin::explain)]))
        .service(r(admin, "/v1/apps/{app}/audit", vec![web::get().to(admin::audit)]))
        .service(r(admin, "/v1/apps/{app}/status", vec![web::get().to(admin::status)]))
        .service(r(admin, "/v1/apps/{app}/adoption", vec![web::get().to(admin::adoption)]))
        .service(r(admin, "/v1/apps/{app}/rollback", vec![web::post().to(admin::rollback)]))
        .service(r(
            admin,
            "/v1/apps/{app}/releases",
            vec![web::get().to(admin::list_releases), web::post().to(admin::publish)],
        ))
        .service(r(admin, "/v1/apps/{app}/releases/{version}", vec![web::get().to(admin::get_release)]))
        .service(r(admin, "/v1/apps/{app}/releases/{version}/promote", vec![web::post().to(admin::promote)]))
        .service(r(admin, "/v1/apps/{app}/releases/{version}/halt", vec![web::post().to(admin::halt)]))
        .service(r(
            admin,
            "/v1/apps/{app}/channels/{channel}/experiment",
            vec![web::get().to(admin::get_experiment), web::post().to(admin::start_experiment)],
        ))
        .service(r(
            admin,
            "/v1/apps/{app}/channels/{channel}/experiment/promote",
            vec![web::post().to(admin::promote_winner)],
        ))
        .service(r(
            admin,
            "/v1/apps/{app}/releases/{version}/rollouts/{channel}",
            vec![web::get().to(admin::get_rollout), web::patch().to(admin::patch_rollout)],
        ))
        .service(r(
            admin,
            "/v1/apps/{app}/releases/{version}/rollouts/{channel}/trend",
            vec![web::get().to(admin::rollout_trend)],
        ))
        .service(r(
            None,
            "/v1/artifacts/{sha256}",
            vec![
                gated(
                    gate,
                    Lane::Device,
                    BodyKind::Json,
                    web::get().to(device::download).wrap(middleware::from_fn(device::if_range)),
                ),
                gated(gate, Lane::Device, BodyKind::Json, web::head().to(device::download)),
                gated(gate, Lane::Admin, BodyKind::Upload, web::put().to(admin::upload)),
            ],
        ))
        .service(r(admin, "/v1/audit", vec![web::get().to(admin::server_audit)]))
        .service(r(
            admin,
            "/v1/answer-keys",
            vec![web::get().to(device::answer_keys), web::post().to(admin::rotate_answer_key)],
        ))
        .service(r(admin, "/v1/answer-keys/{id}", vec![web::delete().to(admin::retire_answer_key)]))
        .service(r(admin, "/v1/tokens", vec![web::get().to(admin::list_tokens), web::post().to(admin::create_token)]))
        .service(r(admin, "/v1/tokens/{id}", vec![web::delete().to(admin::revoke_token)]))
        .service(r(admin, "/v1/whoami", vec![web::get().to(admin::whoami)]))
        // The dashboard (static files; the page uses the admin API above with its own token).
        .service(r(admin, "/", vec![web::get().to(ui::root)]).wrap(ui::headers()))
        .service(r(admin, "/ui", vec![web::get().to(ui::index)]).wrap(ui::headers()))
        .service(r(admin, "/ui/{file:.*}", vec![web::get().to(ui::asset)]).wrap(ui::headers()))
        .default_service(web::to(not_found));
}
