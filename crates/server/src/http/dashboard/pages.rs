//! Rendering pages, the navigation every signed-in page shares, and error pages.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use uj_domain::projects::Membership;
use uj_storage::StoreError;

use crate::services::ServiceError;

/// A time as the dashboard shows it: to the minute, in UTC.
pub fn minute(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// [`minute`], or "never".
pub fn when(time: Option<chrono::DateTime<chrono::Utc>>) -> String {
    time.map_or_else(|| "never".into(), minute)
}

/// Renders a template as an HTML response.
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => PageError::Internal(error.into()).into_response(),
    }
}

/// Renders a template with a status other than 200.
pub fn render_with(status: StatusCode, template: &impl Template) -> Response {
    let mut response = render(template);
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

pub struct NavProject {
    pub id: String,
    pub name: String,
}

/// The header of signed-in pages: who is signed in, the project switcher, and where the
/// current project's pages are.
pub struct Nav {
    pub email: String,
    pub projects: Vec<NavProject>,
    pub current: Option<NavProject>,
    /// `userjourneys demo`: link the demo panel.
    pub demo: bool,
}

impl Nav {
    pub fn new(email: &str, memberships: &[Membership], current: Option<&Membership>) -> Self {
        let entry = |m: &Membership| NavProject {
            id: m.project.id.to_string(),
            name: m.project.name.clone(),
        };
        Self {
            email: email.to_owned(),
            projects: memberships.iter().map(entry).collect(),
            current: current.map(entry),
            demo: false,
        }
    }
}

/// A page asking to confirm a destructive action before it is posted to `action`.
/// `?after=ID`: the page of a list that starts after that item.
#[derive(serde::Deserialize)]
pub struct ListAfter {
    pub after: Option<String>,
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub title: &'static str,
    pub nav: Option<Nav>,
    pub csrf_token: String,
    pub message: String,
    pub action: String,
    pub button: &'static str,
    pub back: String,
}

/// A destructive button's form: `confirmed=yes` once the person confirmed (in the page's
/// dialog, or on the confirmation page shown without JavaScript).
#[derive(serde::Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    confirmed: String,
}

impl ConfirmForm {
    pub fn confirmed(&self) -> bool {
        self.confirmed == "yes"
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    nav: Option<Nav>,
    csrf_token: String,
    message: &'a str,
    /// A page of the interview links: their visitors have no dashboard to go back to.
    for_respondent: bool,
}

/// Why a page could not be shown; each renders as a page that says what to do.
#[derive(Debug)]
pub enum PageError {
    NotFound,
    Forbidden(String),
    BadRequest(String),
    /// The project's state stands in the way (409, as the API answers).
    Conflict(String),
    /// A 400 with a title of its own.
    Refused {
        title: &'static str,
        message: &'static str,
    },
    CsrfFailed,
    /// A body of another type than a page's form sends.
    NotAForm,
    TooLarge,
    /// How long until the next try is taken.
    TooManyAttempts {
        seconds: u64,
    },
    Unavailable,
    Busy(&'static str),
    Internal(anyhow::Error),
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => PageError::Unavailable,
            other => PageError::Internal(other.into()),
        }
    }
}

impl From<ServiceError> for PageError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Store(store) => store.into(),
            ServiceError::Mixpanel(problem) => PageError::BadRequest(problem.message()),
            ServiceError::NotFound(_) => PageError::NotFound,
            ServiceError::Invalid(invalid) => PageError::BadRequest(invalid.to_string()),
            ServiceError::Conflict { message, .. } => PageError::Conflict(message),
            ServiceError::Refused { message, .. } => PageError::BadRequest(message),
            ServiceError::Busy(message) => PageError::Busy(message),
            ServiceError::Internal(source) => PageError::Internal(source),
        }
    }
}

/// A page with a title and a message, outside any project.
pub fn message(status: StatusCode, title: &str, message: &str) -> Response {
    render_message(status, title, message, false)
}

/// [`message`] for a respondent who followed an interview link: no way to the dashboard.
pub fn respondent_message(status: StatusCode, title: &str, message: &str) -> Response {
    render_message(status, title, message, true)
}

fn render_message(
    status: StatusCode,
    title: &str,
    message: &str,
    for_respondent: bool,
) -> Response {
    let page = ErrorPage {
        title,
        nav: None,
        csrf_token: String::new(),
        message,
        for_respondent,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, message.to_owned()).into_response(),
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            PageError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing here. Check the address, or go back to the dashboard.".to_owned(),
            ),
            PageError::Forbidden(message) => (StatusCode::FORBIDDEN, "Not allowed", message.clone()),
            PageError::BadRequest(message) => (StatusCode::BAD_REQUEST, "Bad request", message.clone()),
            PageError::Conflict(message) => (StatusCode::CONFLICT, "Could not be done", message.clone()),
            PageError::Refused { title, message } => (StatusCode::BAD_REQUEST, *title, (*message).to_owned()),
            PageError::CsrfFailed => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form expired or was sent from another site. Go back, reload the page and try again.".to_owned(),
            ),
            PageError::NotAForm => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Not a form",
                "This address takes the forms of its pages (application/x-www-form-urlencoded). Go back and use the page's button.".to_owned(),
            ),
            PageError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "What you sent is too large.".to_owned(),
            ),
            PageError::TooManyAttempts { seconds } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                format!(
                    "Too many failed sign-ins. Try again in {} minutes.",
                    seconds.div_ceil(60)
                ),
            ),
            PageError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The database is unavailable right now. Try again in a moment.".to_owned(),
            ),
            PageError::Busy(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                (*message).to_owned(),
            ),
            PageError::Internal(error) => {
                tracing::error!(error = crate::telemetry::causes(error), "page failed");
                let id = crate::http::middleware::current_request_id().unwrap_or_default();
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    format!("Something went wrong on our side. If it keeps happening, report request id {id}."),
                )
            }
        };
        let mut response = render_message(status, title, &message, false);
        // When to try again, as the APIs' 429s and 503s say it.
        let retry_after = match &self {
            PageError::TooManyAttempts { seconds } => Some(seconds.max(&1).to_string()),
            PageError::Unavailable | PageError::Busy(_) => Some("5".to_owned()),
            _ => None,
        };
        if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
