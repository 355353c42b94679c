//! The HTTP endpoints of the routing API, as an axum [`Router`] over a [`RoutingState`].

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::{ErrorBody, Health, RoutingState};

/// The routing API over `state`:
///
/// - `GET /v1/route/{key}`: [`RouteAnswer`](super::RouteAnswer) for the percent-decoded key,
/// - `GET /v1/partition/{customer}`: the [`PartitionView`](super::PartitionView), 404 if none,
/// - `GET /v1/map`: the whole [`ShardMap`](shardcast_shardmap::ShardMap) with its version,
/// - `GET /v1/changes?since=V`: [`ChangesSince`](super::ChangesSince),
/// - `GET /healthz`: [`Health`].
///
/// Every error is an [`ErrorBody`] with a 4xx status. Serve it with
/// [`RoutingServer`](super::RoutingServer), or mount it in an existing axum application.
pub fn router(state: RoutingState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        // The key is a wildcard so that keys with a raw `/` route too; an encoded one (`%2F`) is
        // decoded like any other escape.
        .route("/v1/route/", get(route_empty))
        .route("/v1/route/{*key}", get(route))
        .route("/v1/partition/{*customer}", get(partition))
        .route("/v1/map", get(map))
        .route("/v1/changes", get(changes))
        .fallback(unknown_path)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// An error answer: status and JSON body.
struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: &str, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.to_string(),
                reason: reason.into(),
            },
        }
    }

    fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

async fn health(State(state): State<RoutingState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: state.version(),
        shards: state.shard_count(),
        partitions: state.partition_count(),
    })
}

async fn route_empty(State(state): State<RoutingState>) -> Response {
    Json(state.route("")).into_response()
}

async fn route(
    State(state): State<RoutingState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(key) = key.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(state.route(&key)).into_response())
}

async fn partition(
    State(state): State<RoutingState>,
    customer: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(customer) = customer.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match state.partition(&customer) {
        Some(view) => Ok(Json(view).into_response()),
        None => Err(ApiError::not_found(format!(
            "no partition for customer {customer:?}"
        ))),
    }
}

async fn map(State(state): State<RoutingState>) -> Response {
    Json(state.map()).into_response()
}

#[derive(Deserialize)]
struct SinceQuery {
    since: u64,
}

async fn changes(
    State(state): State<RoutingState>,
    query: Result<Query<SinceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(SinceQuery { since }) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "expected ?since=VERSION (a non-negative integer): {}",
            e.body_text()
        ))
    })?;
    Ok(Json(state.changes_since(since)).into_response())
}

async fn unknown_path(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint {}; try /v1/route/{{key}}, /v1/partition/{{customer}}, /v1/map, /v1/changes?since=V or /healthz",
        uri.path()
    ))
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "the routing API is read-only: use GET",
    )
}
