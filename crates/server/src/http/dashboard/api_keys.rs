//! Settings → API keys: the public SDK key (copy, rotate) and secret keys (create, shown
//! once; list by name and prefix; revoke).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use secrecy::ExposeSecret;
use serde::Deserialize;
use uj_domain::projects::SecretKey;
use uj_storage::PageRequest;

use super::forms;
use super::pages::{
    render, render_with, when, ConfirmForm, ConfirmPage, ListAfter, Nav, PageError,
};
use super::projects::ProjectContext;
use super::session::{CsrfToken, CurrentUser, VerifiedForm};
use crate::services::api_keys::{self, FormKey};
use crate::services::ServiceError;
use crate::state::AppState;

/// The page lists this many keys at once; "More keys" pages on.
const LISTED_KEYS: u32 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/p/{project_id}/api-keys", get(show).post(create))
        .route("/p/{project_id}/api-keys/{key_id}/revoke", post(revoke))
        .route("/p/{project_id}/public-key/rotate", post(rotate_public_key))
}

struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    created_at: String,
    last_used_at: String,
    /// When it was revoked, if it was.
    revoked: Option<String>,
    /// Who made it, if that was kept.
    created_by: Option<String>,
}

impl From<SecretKey> for KeyRow {
    fn from(key: SecretKey) -> Self {
        Self {
            id: key.id.to_string(),
            name: key.name,
            prefix: key.prefix,
            created_at: when(Some(key.created_at)),
            last_used_at: when(key.last_used_at),
            revoked: key.revoked_at.map(|at| when(Some(at))),
            created_by: key.created_by,
        }
    }
}

struct CreatedKey {
    name: String,
    secret: String,
}

/// The key a create form sent again made when it was sent first, named.
struct MadeAlready {
    name: String,
    prefix: String,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ApiKeysPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    project_id: String,
    public_key: String,
    keys: Vec<KeyRow>,
    /// The last key listed, when more follow (the next page starts after it).
    next: Option<String>,
    /// Not the first page.
    paged: bool,
    created: Option<CreatedKey>,
    /// The form was sent again (the page that showed the secret reloaded, a double click).
    made_already: Option<MadeAlready>,
    error: Option<String>,
    /// The name typed for a key that was refused, to correct.
    typed_name: String,
    /// The create form's key (`forms::new_form_key`): a new one each time the page is shown.
    form_key: String,
    /// Only owners manage keys: members see them without the buttons.
    is_owner: bool,
}

async fn page(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    after: Option<String>,
    created: Option<CreatedKey>,
    error: Option<String>,
) -> Result<ApiKeysPage, PageError> {
    let project = &context.current.project;
    let paged = after.is_some();
    let listed = PageRequest {
        limit: LISTED_KEYS,
        starting_after: after,
    };
    let keys = state.store.secret_keys(&project.id, &listed).await?;
    let next = keys
        .has_more
        .then(|| keys.items.last().map(|k| k.id.to_string()))
        .flatten();
    Ok(ApiKeysPage {
        title: "API keys",
        nav: context.nav(),
        csrf_token,
        project_id: context.project_id(),
        public_key: project.public_key.clone(),
        keys: keys.items.into_iter().map(Into::into).collect(),
        next,
        paged,
        created,
        made_already: None,
        error,
        typed_name: String::new(),
        form_key: forms::new_form_key(),
        is_owner: context.current.role == uj_domain::accounts::Role::Owner,
    })
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    Query(ListAfter { after }): Query<ListAfter>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let page = page(&state, &context, csrf.0, after, None, None).await?;
    Ok(render_with(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct CreateKeyForm {
    name: String,
    /// The form's key (`forms::new_form_key`); none from a page without it.
    #[serde(default)]
    form_key: String,
}

async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<CreateKeyForm>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "manage API keys").await?;
    let project = &context.current.project.id;
    let keyed = forms::keyed_form(
        &form.form_key,
        "/p/{project_id}/api-keys",
        &[],
        &[&form.name],
    );
    let mut made_already = None;
    let (status, created, error) = match api_keys::create_secret_key_once(
        state.store.as_ref(),
        project,
        &form.name,
        api_keys::Maker::Account(&user.account.email),
        keyed.as_ref(),
    )
    .await
    .map_err(forms::reused_form)
    {
        Ok(FormKey::Made(created)) => {
            let shown = CreatedKey {
                name: created.key.name,
                secret: created.secret.expose_secret().to_owned(),
            };
            (StatusCode::CREATED, Some(shown), None)
        }
        // Its secret was shown to the first and is kept nowhere: the page says where it went.
        Ok(FormKey::MadeAlready(key)) => {
            made_already = Some(MadeAlready {
                name: key.name,
                prefix: key.prefix,
            });
            (StatusCode::OK, None, None)
        }
        // Named by the field's label, as the other forms say it.
        Err(ServiceError::Invalid(invalid)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(format!("Name: {}", invalid.message)),
        ),
        Err(ServiceError::Refused { message, .. }) => {
            (StatusCode::UNPROCESSABLE_ENTITY, None, Some(message))
        }
        Err(other) => return Err(other.into()),
    };
    let refused = error.is_some();
    let mut page = page(&state, &context, csrf.0, None, created, error).await?;
    page.made_already = made_already;
    if refused {
        page.typed_name = form.name;
    }
    Ok(render_with(status, &page))
}

async fn revoke(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, key_id)): Path<(String, String)>,
    VerifiedForm(form): VerifiedForm<ConfirmForm>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "manage API keys").await?;
    if !form.confirmed() {
        // Named, as the script's dialog names it (without scripts the page did not say which
        // key, and asked of unknown ones too: found by the API keys review).
        let key = api_keys::secret_key(state.store.as_ref(), &context.current.project.id, &key_id)
            .await?;
        return Ok(render(&ConfirmPage {
            title: "Revoke this key?",
            nav: context.nav(),
            csrf_token: csrf.0,
            message: format!(
                "“{}” ({}…): requests using it will fail at once.",
                key.name, key.prefix
            ),
            action: format!("/p/{project_id}/api-keys/{key_id}/revoke"),
            button: "Revoke key",
            back: format!("/p/{project_id}/api-keys"),
        }));
    }
    api_keys::revoke_secret_key(state.store.as_ref(), &context.current.project.id, &key_id).await?;
    Ok(Redirect::to(&format!("/p/{project_id}/api-keys")).into_response())
}

async fn rotate_public_key(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<ConfirmForm>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "manage API keys").await?;
    if !form.confirmed() {
        return Ok(render(&ConfirmPage {
            title: "Rotate the public key?",
            nav: context.nav(),
            csrf_token: csrf.0,
            message: "Apps using the current key stop working until they ship the new one.".into(),
            action: format!("/p/{project_id}/public-key/rotate"),
            button: "Rotate public key",
            back: format!("/p/{project_id}/api-keys"),
        }));
    }
    match api_keys::rotate_public_key(&state, &context.current.project).await {
        // Lost to a rotation at the same moment (a double click, another tab): that one is
        // what was asked for, and the page shows its key.
        Ok(_) => {}
        Err(ServiceError::Conflict { code, .. }) if code == api_keys::ROTATED_MEANWHILE => {}
        Err(other) => return Err(other.into()),
    }
    Ok(Redirect::to(&format!("/p/{project_id}/api-keys")).into_response())
}
