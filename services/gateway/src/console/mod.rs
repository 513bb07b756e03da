//! The web admin console: a browser front end over the same services as
//! the gRPC API.
//!
//! The console's pages (`services/gateway/console/`, embedded in the
//! binary by `assets`) call the gRPC
//! services' own handlers through a thin JSON layer (`bridge`): `POST
//! /api/<Service>/<Method>` with the request message in proto3 JSON runs
//! that RPC's handler in this process, with its validation, tenancy and
//! errors, and answers its response message in proto3 JSON (a stream as
//! one JSON object per line). There is no second implementation of any
//! rule here: only sessions, CSRF and the HTTP framing.
//!
//! Sessions: an admin signs in once with an API token (`POST
//! /api/session`); the console keeps a session in the store, the browser
//! an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when served over
//! TLS). The session acts for the token's account until it expires, the
//! admin signs out, or the token is revoked. Every request that changes
//! or reads anything carries the session's CSRF token in `X-CSRF-Token`.

mod assets;
mod bridge;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use dirsync_core::token;
use dirsync_store::SessionRecord;

use crate::Gateway;
use crate::error::status_of;
use crate::tenancy::ConsolePrincipal;

/// How the console is served.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Mark the session cookie `Secure`: set when browsers reach the
    /// console over HTTPS (e.g. through a TLS-terminating ingress).
    pub secure_cookies: bool,
    /// How long a session lasts from sign-in.
    pub session_lifetime: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            session_lifetime: Duration::from_secs(8 * 3600),
        }
    }
}

const COOKIE: &str = "dirsync_session";
const CSRF_HEADER: &str = "x-csrf-token";
/// Largest request body, as the gRPC API's.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Content-Security-Policy of every answer: scripts, styles and images
/// from the console itself only, no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

#[derive(Clone)]
struct Console {
    gw: Gateway,
    config: Arc<ConsoleConfig>,
    bridge: Arc<bridge::Bridge>,
}

/// A signed-in session, checked.
struct Session {
    record: SessionRecord,
    csrf: String,
}

impl Gateway {
    /// Serves the admin console on `listener` until `shutdown`.
    pub async fn serve_console(
        self,
        listener: TcpListener,
        config: ConsoleConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr().ok();
        let app = router(Console {
            gw: self,
            config: Arc::new(config),
            bridge: Arc::new(bridge::Bridge::new()?),
        });
        tracing::info!(?addr, "admin console listening");
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        tracing::info!("admin console stopped");
        Ok(())
    }
}

fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/sign-in", get(sign_in_page))
        .route("/assets/{file}", get(asset))
        .route(
            "/api/session",
            get(session_info).post(sign_in).delete(sign_out),
        )
        .route("/api/{service}/{method}", post(rpc))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A request refused, answered as `{"error": {"code", "message"}}`.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The store could not answer.
    fn store(e: dirsync_store::StoreError) -> Self {
        let status = status_of(e);
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            status.message(),
        )
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.status, self.code, &self.message)
    }
}

/// An error answer: `{"error": {"code", "message"}}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn unauthenticated() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "You are not signed in, or your session ended. Sign in again with an API token.",
    )
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn page() -> Response {
    assets::get("index.html").map_or_else(|| StatusCode::NOT_FOUND.into_response(), serve_asset)
}

async fn index(State(c): State<Console>, headers: HeaderMap) -> Response {
    match c.session(&headers).await {
        Ok(Some(_)) => page(),
        Ok(None) => redirect("/sign-in"),
        Err(e) => e.into_response(),
    }
}

async fn sign_in_page(State(c): State<Console>, headers: HeaderMap) -> Response {
    match c.session(&headers).await {
        Ok(Some(_)) => redirect("/"),
        Ok(None) => page(),
        Err(e) => e.into_response(),
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    assets::get(&file).map_or_else(not_found_text, serve_asset)
}

fn serve_asset(a: &'static assets::Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, a.content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        a.body,
    )
        .into_response()
}

fn not_found_text() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found",
    )
        .into_response()
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("{method} {} is not a console API", uri.path()),
        )
    } else {
        not_found_text()
    }
}

/// The session cookie's value, if the request carries one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// A request that changes or reads state through the API must come from
/// the console's own pages: no `Origin` of another site, a JSON body
/// (which a form of another site cannot send without a preflight this
/// server never answers), and, once signed in, the session's CSRF token.
fn same_origin(headers: &HeaderMap) -> Result<(), Refusal> {
    let refused = |why: &str| {
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            why,
        ))
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin = origin.to_str().unwrap_or_default();
        let authority = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        if host.is_none() || authority != host {
            return refused("the request comes from another site's page");
        }
    }
    Ok(())
}

fn json_content(headers: &HeaderMap) -> Result<(), Refusal> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().map(str::trim) == Some("application/json"));
    if json {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "INVALID_ARGUMENT",
            "send the request as Content-Type: application/json",
        ))
    }
}

fn csrf_checked(headers: &HeaderMap, session: &Session) -> Result<(), Refusal> {
    same_origin(headers)?;
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if sent != Some(session.csrf.as_str()) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "the request lacks this session's CSRF token (X-CSRF-Token); reload the console",
        ));
    }
    Ok(())
}

impl Console {
    fn now(&self) -> i64 {
        self.gw.clock.now()
    }

    /// The request's session when it is valid: known, not ended or
    /// expired, its secret right, its API token not revoked.
    async fn session(&self, headers: &HeaderMap) -> Result<Option<Session>, Refusal> {
        let Some((id, secret)) = cookie(headers).and_then(token::parse_session) else {
            return Ok(None);
        };
        let Some(record) = self.gw.store.session(id).await.map_err(Refusal::store)? else {
            return Ok(None);
        };
        if record.secret_hash != token::hash(secret)
            || record.ended_at.is_some()
            || record.expires_at <= self.now()
        {
            return Ok(None);
        }
        let live = self
            .gw
            .store
            .token(&record.token_id)
            .await
            .map_err(Refusal::store)?
            .is_some_and(|t| t.revoked_at.is_none());
        Ok(live.then(|| Session {
            csrf: token::csrf_of(secret),
            record,
        }))
    }

    fn cookie_header(&self, value: &str, max_age_secs: u64) -> HeaderValue {
        let secure = if self.config.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        let text = format!(
            "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

fn session_json(s: &Session) -> serde_json::Value {
    serde_json::json!({
        "account_id": s.record.account_id,
        "csrf_token": s.csrf,
        "expires_at_ms": s.record.expires_at,
    })
}

async fn session_info(State(c): State<Console>, headers: HeaderMap) -> Response {
    match c.session(&headers).await {
        Ok(Some(s)) => json_response(StatusCode::OK, &session_json(&s)),
        Ok(None) => unauthenticated(),
        Err(e) => e.into_response(),
    }
}

/// Sign-in: `{"token": "dst_…"}` opens a session for the token's account.
async fn sign_in(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = same_origin(&headers).and_then(|()| json_content(&headers)) {
        return e.into_response();
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SignIn {
        token: String,
    }
    let Ok(SignIn { token: presented }) = serde_json::from_slice::<SignIn>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "token: send {\"token\": \"dst_…\"}, an API token from `dirsync token create`",
        );
    };
    let refused = || {
        error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "This API token is unknown or revoked. Create one with `dirsync token create --account …`.",
        )
    };
    let Some((id, secret)) = token::parse(presented.trim()) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "This is not a dirsync API token: tokens look like dst_… and come from `dirsync token create`.",
        );
    };
    let record = match c.gw.store.token(id).await {
        Ok(Some(t)) if t.revoked_at.is_none() && t.secret_hash == token::hash(secret) => t,
        Ok(_) => return refused(),
        Err(e) => return Refusal::store(e).into_response(),
    };
    let new = token::generate_session();
    let now = c.now();
    let lifetime = c.config.session_lifetime;
    let record = SessionRecord {
        id: new.id.clone(),
        secret_hash: new.secret_hash.clone(),
        account_id: record.account_id,
        token_id: record.id,
        created_at: now,
        expires_at: now.saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)),
        ended_at: None,
    };
    if let Err(e) = c.gw.store.create_session(&record).await {
        return Refusal::store(e).into_response();
    }
    tracing::info!(account = %record.account_id, session = %record.id, token = %record.token_id, "console session opened");
    let value = new.token.expose_secret();
    let session = Session {
        csrf: token::csrf_of(new.secret()),
        record,
    };
    let mut response = json_response(StatusCode::OK, &session_json(&session));
    response.headers_mut().insert(
        header::SET_COOKIE,
        c.cookie_header(value, lifetime.as_secs()),
    );
    response
}

/// Sign-out: ends the session in the store, so its cookie no longer works
/// anywhere, and clears the cookie.
async fn sign_out(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = match c.session(&headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return unauthenticated(),
        Err(e) => return e.into_response(),
    };
    if let Err(e) = csrf_checked(&headers, &session) {
        return e.into_response();
    }
    if let Err(e) = c.gw.store.end_session(&session.record.id, c.now()).await {
        return Refusal::store(e).into_response();
    }
    tracing::info!(account = %session.record.account_id, session = %session.record.id, "console session ended");
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, c.cookie_header("", 0));
    response
}

/// `POST /api/<Service>/<Method>`: one RPC of the gRPC API, for the
/// session's account.
async fn rpc(
    State(c): State<Console>,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session = match c.session(&headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return unauthenticated(),
        Err(e) => return e.into_response(),
    };
    if let Err(e) = csrf_checked(&headers, &session).and_then(|()| json_content(&headers)) {
        return e.into_response();
    }
    let principal = ConsolePrincipal {
        account_id: session.record.account_id,
    };
    c.bridge
        .call(&c.gw, principal, &service, &method, &body)
        .await
        .unwrap_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("{service}/{method} is not an RPC the console may call"),
            )
        })
}

/// A body that is one JSON value per line, for streamed RPCs.
fn ndjson(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::{cookie, same_origin};

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; dirsync_session=dss_x_y"),
        );
        assert_eq!(cookie(&h), Some("dss_x_y"));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("xdirsync_session=1"),
        );
        assert_eq!(cookie(&h), None);
    }

    #[test]
    fn another_sites_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            same_origin(&h).is_ok(),
            "no Origin: not a cross-site browser request"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(same_origin(&h).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&h).is_err());
    }
}
