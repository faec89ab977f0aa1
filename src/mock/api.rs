//! Armor's API as the mock serves it: `/me`, `/accounts`, the account
//! context, the endpoints PSK keys may not call, and the error envelope.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{any, get};
use serde_json::json;

use super::fixtures::{Account, Fixtures, MeResponse};
use crate::protocol::identity::Identity;

/// The header that names the account a request acts on.
pub const ACCOUNT_CONTEXT: &str = "x-account-context";

/// Armor's error envelope, `{"ErrorCode", "Message", "Detail",
/// "ReferenceId"}`, as a response; the code is also put in the response's
/// extensions for the journal.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The `ErrorCode` of an [`ApiError`] response, in its extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorCode(pub(crate) &'static str);

impl ApiError {
    /// An error with its status, `ErrorCode` and `Message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No resource matches {path}"),
        )
    }

    fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "ErrorCode": self.code,
            "Message": self.message,
            "Detail": format!("{} {}", self.status.as_u16(), self.status.canonical_reason().unwrap_or("")),
            "ReferenceId": crate::protocol::new_uuid_v4(),
        });
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

/// The account a request acts on, chosen by `X-Account-Context`; custom
/// routes take it as an extractor.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountContext {
    /// The user the key belongs to (`user.links.userId`).
    pub user_id: i64,
    /// The account named by the header.
    pub account: Account,
}

impl<S: Send + Sync> FromRequestParts<S> for AccountContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "AccountContext is only available on routes of a MockArmorServer",
            )
        })
    }
}

/// Who owns which key, and the users' data.
#[derive(Debug, Clone)]
pub(crate) struct Directory {
    fixtures: Arc<Fixtures>,
    owners: Arc<RwLock<HashMap<String, i64>>>,
    require_account: bool,
}

impl Directory {
    pub(crate) fn new(fixtures: Fixtures, require_account: bool) -> Self {
        Self {
            fixtures: Arc::new(fixtures),
            owners: Arc::default(),
            require_account,
        }
    }

    pub(crate) fn fixtures(&self) -> &Fixtures {
        &self.fixtures
    }

    pub(crate) fn set_owner(&self, key_id: &str, user_id: i64) {
        self.owners.write().insert(key_id.to_owned(), user_id);
    }

    pub(crate) fn remove_owner(&self, key_id: &str) {
        self.owners.write().remove(key_id);
    }

    fn user_of(&self, key_id: &str) -> Option<&MeResponse> {
        let owners = self.owners.read();
        let user_id = *owners.get(key_id)?;
        self.fixtures.user(user_id)
    }

    /// The account context of a verified request, or the error Armor gives.
    pub(crate) fn account_context(&self, parts: &Parts) -> Result<AccountContext, ApiError> {
        let identity = parts.extensions.get::<Identity>().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "request reached the API without a verified identity",
            )
        })?;
        let me = self
            .user_of(identity.key_id())
            .ok_or_else(|| ApiError::forbidden("KeyHasNoUser", "The API key belongs to no user"))?;
        let context = match parts.headers.get(ACCOUNT_CONTEXT) {
            // As Armor's own clients meet it: the primary account, and `/me`
            // (how a client finds its accounts) always.
            None if !self.require_account || parts.uri.path() == "/me" => me.accounts.first(),
            None => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "MissingAccountContext",
                    "The X-Account-Context header is required",
                ));
            }
            Some(value) => {
                let id = value
                    .to_str()
                    .ok()
                    .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|text| text.parse::<i64>().ok())
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "InvalidAccountContext",
                            "X-Account-Context must be an account id (digits)",
                        )
                    })?;
                let account = me.accounts.iter().find(|account| account.id == id);
                if account.is_none() {
                    return Err(ApiError::forbidden(
                        "AccountContextForbidden",
                        format!("The user has no access to account {id}"),
                    ));
                }
                account
            }
        };
        let account = context.cloned().ok_or_else(|| {
            ApiError::forbidden("AccountContextForbidden", "The user has no account")
        })?;
        Ok(AccountContext {
            user_id: me.user.links.user_id,
            account,
        })
    }
}

/// Resolves the account context and hands it to the route, or answers with
/// Armor's error.
async fn account_context(
    State(directory): State<Directory>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    match directory.account_context(&parts) {
        Ok(context) => {
            parts.extensions.insert(context);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => error.into_response(),
    }
}

async fn me(State(directory): State<Directory>, context: AccountContext) -> Response {
    match directory.fixtures().user(context.user_id) {
        Some(me) => Json(me.clone()).into_response(),
        None => ApiError::not_found("/me").into_response(),
    }
}

async fn accounts(State(directory): State<Directory>, context: AccountContext) -> Response {
    match directory.fixtures().user(context.user_id) {
        Some(me) => Json(&me.accounts).into_response(),
        None => ApiError::not_found("/accounts").into_response(),
    }
}

async fn account(
    State(directory): State<Directory>,
    context: AccountContext,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    // Not UTF-8 once decoded (`/accounts/%FF`): no such account either.
    let Ok(Path(id)) = id else {
        return ApiError::not_found("/accounts/{id}").into_response();
    };
    let Ok(id) = id.parse::<i64>() else {
        return ApiError::not_found(&format!("/accounts/{id}")).into_response();
    };
    let me = directory.fixtures().user(context.user_id);
    match me.and_then(|me| me.accounts.iter().find(|account| account.id == id)) {
        Some(account) => Json(account).into_response(),
        None => ApiError::forbidden(
            "AccountForbidden",
            format!("The user has no access to account {id}"),
        )
        .into_response(),
    }
}

/// 405 in Armor's envelope, with `Allow`, for the built-in routes (all
/// `GET`).
async fn only_get(request: Request) -> Response {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!(
            "{} is not allowed on {}; allowed: GET",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response();
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("GET"),
    );
    response
}

async fn psk_forbidden() -> ApiError {
    ApiError::forbidden(
        "PskNotAllowed",
        "This endpoint cannot be called with ARMOR-PSK authentication",
    )
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(request.uri().path())
}

/// The API's routes with the test's own, the account-context check on both,
/// the forbidden endpoints and the 404 fallback. Authentication goes around
/// it.
pub(crate) fn router(
    directory: Directory,
    custom: Router,
    operations: Option<std::sync::Arc<super::openapi::Operations>>,
) -> Router {
    let fallback = move |request: Request| {
        let operations = operations.clone();
        async move {
            match operations {
                Some(operations) => match super::openapi::serve(operations, request).await {
                    Ok(response) => response,
                    Err(request) => no_such_operation(request),
                },
                None => not_found(request).await.into_response(),
            }
        }
    };
    Router::new()
        .route("/me", get(me).fallback(only_get))
        .route("/accounts", get(accounts).fallback(only_get))
        .route("/accounts/{id}", get(account).fallback(only_get))
        .with_state(directory.clone())
        .merge(custom)
        .route_layer(axum::middleware::from_fn_with_state(
            directory,
            account_context,
        ))
        .route("/users/{id}/keys", any(psk_forbidden))
        .route("/users/{id}/keys/{*rest}", any(psk_forbidden))
        .route("/users/resetpassword", any(psk_forbidden))
        .route("/users/setpassword", any(psk_forbidden))
        .route("/usersecurity", any(psk_forbidden))
        .route("/usersecurity/{*rest}", any(psk_forbidden))
        .fallback(fallback)
}

/// 404 for a path that neither a built-in route, a stub nor a loaded
/// document has.
fn no_such_operation(request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "error": "no_such_operation",
            "Message": format!("no loaded document has an operation at {path}"),
            "path": path,
        })),
    )
        .into_response();
    response
        .extensions_mut()
        .insert(ErrorCode("no_such_operation"));
    response
}
