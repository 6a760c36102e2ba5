//! The layers every request passes: a request id (generated unless the client sent a safe
//! one, echoed in `x-request-id` and carried by every log line), tracing, panic capture and
//! security headers (HSTS too behind HTTPS).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use super::ApiError;

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request this task is serving, for error messages.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

async fn scope_request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let abandoned = Abandoned::new();
    let response = CURRENT_REQUEST_ID.scope(id, next.run(request)).await;
    abandoned.answered();
    response
}

/// The log line of a request whose client closed its connection before the answer (a
/// timeout shorter than the server's deadlines, an app sent to the background): hyper drops
/// its handling, so without this no line said it came, and a database stall that made a load
/// balancer give up left no trace (found by the telemetry review). In the request's span,
/// as status 499 (the client closed the request, as nginx logs it); the metrics count it
/// in `outermost`.
struct Abandoned {
    span: tracing::Span,
    started: std::time::Instant,
    armed: bool,
}

impl Abandoned {
    fn new() -> Self {
        Self {
            span: tracing::Span::current(),
            started: std::time::Instant::now(),
            armed: true,
        }
    }

    fn answered(mut self) {
        self.armed = false;
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if self.armed {
            let latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.span.in_scope(|| {
                tracing::info!(
                    status = CLIENT_CLOSED,
                    latency_ms,
                    "the connection closed before the answer (the client gave up, or a stopping server cut it)"
                );
            });
        }
    }
}

/// The status a request the client gave up on is logged and counted with.
pub(crate) const CLIENT_CLOSED: u16 = 499;

/// Each answer's log line: its status and latency in whole milliseconds (a number, for log
/// pipelines to add up; tower-http's own wrote `"1002 ms"`).
fn log_answer(response: &Response, latency: std::time::Duration, _: &tracing::Span) {
    let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms,
        "finished processing request"
    );
}

/// Drops a client's request id unless it is a single header of 1–64 `A-Z a-z 0-9 . _ -`: it
/// goes into every log line of the request as it is, so spaces, quotes or `key=value` pairs
/// would forge log lines, and any length would bloat each of them. A fresh id is made
/// instead, as when none is sent.
async fn keep_safe_request_id(mut request: Request) -> Request {
    let sent = request.headers().contains_key(&REQUEST_ID);
    if sent && safe_request_id(request.headers()).is_none() {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The client's own request id, when it sent one that is safe to keep.
pub(crate) fn safe_request_id(headers: &axum::http::HeaderMap) -> Option<HeaderValue> {
    let mut ids = headers.get_all(&REQUEST_ID).iter();
    match (ids.next(), ids.next()) {
        (Some(id), None) if is_safe_request_id(id.as_bytes()) => Some(id.clone()),
        _ => None,
    }
}

fn is_safe_request_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Random (version 4) UUIDs from the thread's generator: tower-http's own asks the
/// operating system, a system call per request.
#[derive(Clone, Copy)]
struct MakeRequestUuid;

impl MakeRequestId for MakeRequestUuid {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        Some(RequestId::new(new_request_id()))
    }
}

/// A fresh request id: a random (version 4) UUID.
pub(crate) fn new_request_id() -> HeaderValue {
    let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buffer = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(uuid.hyphenated().encode_lower(&mut buffer))
        .expect("a UUID is a header value")
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()
}

fn span_for(request: &Request) -> tracing::Span {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // The path only: query strings may carry user identifiers.
    let path = loggable_path(request.uri().path());
    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %path)
}

/// The path as logs may show it: invitation links carry their secret token in the path,
/// and invite and launch routes a respondent code, the credential of a start (docs/api.md).
/// Its characters that could end a field or a span of a text log line (a quote, a backslash,
/// a brace) or break it (a space, a control, a Unicode line separator: anything not ASCII)
/// are percent-encoded, as the client could have sent them: the request line passes them.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
    const ENCODED: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'\\')
        .add(b'{')
        .add(b'}')
        .add(b'`');
    match std::borrow::Cow::from(utf8_percent_encode(path, ENCODED)) {
        std::borrow::Cow::Borrowed(plain) => redacted(plain),
        std::borrow::Cow::Owned(encoded) => redacted(&encoded).into_owned().into(),
    }
}

/// `path` with the secret segment of a link or an invitation replaced.
fn redacted(path: &str) -> std::borrow::Cow<'_, str> {
    const SECRET_SEGMENT_AFTER: [&str; 6] = [
        "/invitations/",
        "/interviews/",
        "/i/",
        "/launch/",
        "/sdk/v1/invites/",
        "/api/v1/invites/",
    ];
    // `//i/{code}` too (a base URL ending in a slash): matched after the extra slashes; and
    // in any case (`/LAUNCH/{code}` is a 404 of a real code).
    let (extra, from) = super::without_extra_slashes(path);
    for prefix in SECRET_SEGMENT_AFTER {
        let Some((head, rest)) = from.split_at_checked(prefix.len()) else {
            continue;
        };
        if head.eq_ignore_ascii_case(prefix) {
            if rest.is_empty() {
                break;
            }
            let tail = rest.find('/').map_or("", |at| &rest[at..]);
            return format!("{extra}{head}[redacted]{tail}").into();
        }
    }
    path.into()
}

fn static_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// Wraps `router` in the common layers. `ServiceBuilder` lists them outermost first; a
/// panic's answer is made innermost, so that it gets every header an answer gets.
/// Behind HTTPS (`https`), browsers are told to come back over HTTPS only for a year; not
/// the subdomains, which may be served by others.
pub fn wrap<S: Clone + Send + Sync + 'static>(router: Router<S>, https: bool) -> Router<S> {
    router.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::map_request(keep_safe_request_id))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(
                // A server error is logged once, with its cause, where it is made
                // (`ApiError`): tower-http's failure line said it again, at error.
                TraceLayer::new_for_http()
                    .make_span_with(span_for)
                    .on_response(log_answer)
                    .on_failure(()),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(axum::middleware::from_fn(scope_request_id))
            .option_layer(
                https.then(|| static_header(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000")),
            )
            .layer(static_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .layer(static_header(header::X_FRAME_OPTIONS, "DENY"))
            .layer(static_header(header::REFERRER_POLICY, "no-referrer"))
            .layer(static_header(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ))
            .layer(CatchPanicLayer::custom(panic_response)),
    )
}

/// Every request's body must have arrived `limit` after its headers: one that stalls or
/// trickles past it ends in an error (its extractor answers, and the connection, its body
/// unread, is closed) instead of holding a connection for as long as the client likes.
pub fn with_body_deadline(router: Router, limit: std::time::Duration) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            use hyper::body::Body as _;
            // Most requests (every GET) have no body: nothing to wait for, nothing to wrap.
            let request = match request.body().is_end_stream() {
                true => request,
                false => {
                    let deadline = tokio::time::Instant::now() + limit;
                    request.map(|body| {
                        Body::new(DeadlineBody {
                            body,
                            deadline,
                            timer: None,
                            expired: false,
                        })
                    })
                }
            };
            next.run(request)
        },
    ))
}

/// A request's body is read before anything looks at who sent it: a key revoked, a public
/// key rotated or a session signed out while a slow body came in refuses the request (its
/// credential was checked on the head alone, so a body trickled in for the body deadline
/// outlived a revocation, and a leaked key could mint its replacement). No route but the
/// webhook's (which checks again once its body is in) takes more than `most` bytes: a longer
/// body is handed on as it comes, for the route's own limit to refuse. The SDK's deadline,
/// inside, no longer counts a slow client's upload as the database's time.
pub(super) async fn body_first(request: Request, next: Next, most: usize) -> Response {
    use http_body_util::BodyExt;
    use hyper::body::Body as _;
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // With no credential at all there is nothing to outlive: refused from its head at once.
    let credentials = [header::AUTHORIZATION, header::COOKIE]
        .iter()
        .any(|name| request.headers().contains_key(name));
    if request.body().is_end_stream()
        || !credentials
        || super::is_webhook_path(request.uri().path())
        || announced.is_some_and(|length| length > most as u64)
    {
        return next.run(request).await;
    }
    let (parts, mut body) = request.into_parts();
    let mut read = Vec::new();
    let failed = loop {
        match body.frame().await {
            None => {
                let whole = Body::from(read);
                return next.run(Request::from_parts(parts, whole)).await;
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
                if read.len() > most {
                    break None;
                }
            }
            Some(Err(error)) => break Some(error),
        }
    };
    let resumed = Body::new(Resumed {
        read: Some(read.into()),
        failed,
        rest: body,
    });
    next.run(Request::from_parts(parts, resumed)).await
}

/// A body whose beginning was read already ([`body_first`]): it, then what stopped the
/// reading (an error), or the rest as it comes.
struct Resumed {
    read: Option<axum::body::Bytes>,
    failed: Option<axum::Error>,
    rest: Body,
}

impl hyper::body::Body for Resumed {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(read) = this.read.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(read))));
        }
        if let Some(error) = this.failed.take() {
            return Poll::Ready(Some(Err(error)));
        }
        std::pin::Pin::new(&mut this.rest).poll_frame(cx)
    }
}

struct DeadlineBody {
    body: Body,
    deadline: tokio::time::Instant,
    /// Started the first time the body keeps the reader waiting.
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    expired: bool,
}

impl hyper::body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            this.expired = true;
            return Poll::Ready(Some(Err(axum::Error::new(
                "the request body did not arrive in time",
            ))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self.expired {
            true => hyper::body::SizeHint::with_exact(0),
            false => self.body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{is_safe_request_id, loggable_path};

    /// A handler's panic is answered 500 with every header an answer gets (the security
    /// headers and HSTS were left off it), and its request id.
    #[tokio::test]
    async fn a_panic_is_answered_with_the_common_headers() {
        async fn boom() -> &'static str {
            panic!("boom")
        }
        let router = axum::Router::new().route("/boom", axum::routing::get(boom));
        let mut service = super::wrap(router, true);
        let request = axum::http::Request::get("/boom")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = tower::Service::call(&mut service, request).await.unwrap();
        assert_eq!(response.status(), 500);
        for name in [
            "x-content-type-options",
            "x-frame-options",
            "referrer-policy",
            "content-security-policy",
            "strict-transport-security",
            "x-request-id",
        ] {
            assert!(response.headers().contains_key(name), "{name}");
        }
    }

    #[test]
    fn request_ids_safe_to_log_are_short_and_plain() {
        let longest = "a".repeat(64);
        for safe in ["trace-me-42", "A.b_c-9", "0", &longest] {
            assert!(is_safe_request_id(safe.as_bytes()), "{safe}");
        }
        let too_long = "a".repeat(65);
        for forged in ["", "a b", "a=b", "a\"b", "caf\u{e9}", "a\tb", &too_long] {
            assert!(!is_safe_request_id(forged.as_bytes()), "{forged:?}");
        }
    }

    #[test]
    fn invitation_tokens_never_reach_the_logs() {
        assert_eq!(
            loggable_path("/invitations/AbC123secret"),
            "/invitations/[redacted]"
        );
        assert_eq!(loggable_path("/api/v1/project"), "/api/v1/project");
        // Respondent codes open a start's interview: never logged either.
        for (path, logged) in [
            ("/interviews/abc123respondent", "/interviews/[redacted]"),
            ("/i/abc123respondent", "/i/[redacted]"),
            // As a base URL ending in a slash sends them.
            ("//i/abc123respondent", "//i/[redacted]"),
            (
                "///sdk/v1/invites/abc123respondent/accept",
                "///sdk/v1/invites/[redacted]/accept",
            ),
            ("/launch/abc123respondent", "/launch/[redacted]"),
            ("/LAUNCH/abc123respondent", "/LAUNCH/[redacted]"),
            ("/Interviews/abc123respondent/", "/Interviews/[redacted]/"),
            (
                "/sdk/v1/invites/abc123respondent/accept",
                "/sdk/v1/invites/[redacted]/accept",
            ),
            (
                "/sdk/v1/invites/abc123respondent/dismiss",
                "/sdk/v1/invites/[redacted]/dismiss",
            ),
            (
                "/api/v1/invites/abc123respondent",
                "/api/v1/invites/[redacted]",
            ),
        ] {
            assert_eq!(loggable_path(path), logged);
        }
        assert_eq!(
            loggable_path("/webhooks/mixpanel/whk_public"),
            "/webhooks/mixpanel/whk_public"
        );
    }

    /// A path is written into text log lines: what could fake a field or a line is
    /// percent-encoded (it was written as sent: `path=/x"}:status=500"`, and a Unicode line
    /// separator started what viewers show as a new line).
    #[test]
    fn a_path_cannot_forge_a_field_or_a_line_of_the_log() {
        for (path, logged) in [
            ("/x\"}:status=500\"", "/x%22%7D:status=500%22"),
            ("/x\u{2028}FAKE-LINE", "/x%E2%80%A8FAKE-LINE"),
            ("/x\u{85}NEL", "/x%C2%85NEL"),
            ("/a\\b{c}`d", "/a%5Cb%7Bc%7D%60d"),
            ("/i/code\"}x/y", "/i/[redacted]/y"),
            ("/api/v1/studies/stu_1?x=1", "/api/v1/studies/stu_1?x=1"),
            ("/caf%C3%A9-already-encoded", "/caf%C3%A9-already-encoded"),
        ] {
            assert_eq!(loggable_path(path), logged, "{path:?}");
        }
    }
}
