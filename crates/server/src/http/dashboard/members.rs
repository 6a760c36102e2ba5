//! A project's members, and inviting someone (owner only).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use secrecy::ExposeSecret;
use serde::Deserialize;
use uj_domain::accounts::Role;

use super::pages::{minute, render, render_with, ConfirmForm, ConfirmPage, Nav, PageError};
use super::projects::ProjectContext;
use super::session::{CsrfToken, CurrentUser, VerifiedForm};
use crate::services::accounts::{self, InviteOutcome};
use crate::services::ServiceError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/p/{project_id}/members", get(show).post(invite))
        .route(
            "/p/{project_id}/members/{account_id}/remove",
            axum::routing::post(remove),
        )
        .route(
            "/p/{project_id}/invitations/{invitation_id}/withdraw",
            axum::routing::post(withdraw),
        )
}

struct InvitationRow {
    id: String,
    email: String,
    expires_at: String,
}

struct MemberRow {
    account_id: String,
    removable: bool,
    email: String,
    role: &'static str,
    joined_at: String,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    project_id: String,
    members: Vec<MemberRow>,
    /// Open invitations, shown to owners.
    invitations: Vec<InvitationRow>,
    is_owner: bool,
    notice: Option<String>,
    invite_link: Option<String>,
    error: Option<String>,
    /// The email an invitation was refused for, shown again to correct it.
    typed_email: String,
    /// The field the error is about (the invitation's email), by its form name.
    error_field: Option<&'static str>,
}

async fn page(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
) -> Result<MembersPage, PageError> {
    let members = state.store.members(&context.current.project.id).await?;
    let is_owner = context.current.role == Role::Owner;
    let invitations = match is_owner {
        true => {
            state
                .store
                .open_invitations(&context.current.project.id, Utc::now())
                .await?
        }
        false => Vec::new(),
    };
    Ok(MembersPage {
        typed_email: String::new(),
        error_field: None,
        title: "Members",
        nav: context.nav(),
        csrf_token,
        project_id: context.project_id(),
        members: members
            .into_iter()
            .map(|m| MemberRow {
                account_id: m.account_id.as_str().to_owned(),
                removable: is_owner && m.role == Role::Member,
                email: m.email,
                role: m.role.as_str(),
                joined_at: minute(m.joined_at),
            })
            .collect(),
        invitations: invitations
            .into_iter()
            .map(|i| InvitationRow {
                id: i.id.as_str().to_owned(),
                email: i.email,
                expires_at: minute(i.expires_at),
            })
            .collect(),
        is_owner,
        notice: None,
        invite_link: None,
        error: None,
    })
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    Ok(render_with(
        StatusCode::OK,
        &page(&state, &context, csrf.0).await?,
    ))
}

#[derive(Deserialize)]
struct InviteForm {
    email: String,
}

async fn invite(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<InviteForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let outcome = accounts::invite(
        state.store.as_ref(),
        &state.public_url,
        &context.current.project.id,
        &user.account.id,
        &form.email,
    )
    .await;
    let (status, notice, link, error) = match outcome {
        Ok(InviteOutcome::AlreadyMember { email }) => (
            StatusCode::OK,
            Some(format!("{email} is already a member.")),
            None,
            None,
        ),
        Ok(InviteOutcome::Invited {
            email,
            link,
            has_account,
        }) => (
            StatusCode::CREATED,
            Some(if has_account {
                format!("{email} is invited. They have an account: they join by opening the link while signed in.")
            } else {
                format!("{email} is invited.")
            }),
            Some(link.expose_secret().to_owned()),
            None,
        ),
        // The form's one field, by its label.
        Err(ServiceError::Invalid(invalid)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            None,
            Some(format!("Email: {}", invalid.message)),
        ),
        // Not the address's fault: the page says it once, above the form, which keeps it.
        Err(ServiceError::Refused { message, .. }) => {
            let mut page = page(&state, &context, csrf.0).await?;
            page.typed_email = form.email;
            page.error = Some(message);
            return Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
        Err(ServiceError::Conflict { message, .. }) => return Err(PageError::Forbidden(message)),
        Err(other) => return Err(other.into()),
    };
    let mut page = page(&state, &context, csrf.0).await?;
    page.notice = notice;
    page.invite_link = link;
    if error.is_some() {
        page.typed_email = form.email;
        page.error_field = Some("email");
    }
    page.error = error;
    Ok(render_with(status, &page))
}

/// An owner removes a member (owners stay): they lose the project at once, their open
/// sessions included; their account stays for their other projects.
async fn remove(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, account_id)): Path<(String, String)>,
    VerifiedForm(form): VerifiedForm<ConfirmForm>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "remove members").await?;
    let project = &context.current.project.id;
    let member = state
        .store
        .members(project)
        .await?
        .into_iter()
        .find(|m| m.account_id.as_str() == account_id && m.role == Role::Member)
        .ok_or(PageError::NotFound)?;
    if !form.confirmed() {
        return Ok(render(&ConfirmPage {
            title: "Remove this member?",
            nav: context.nav(),
            csrf_token: csrf.0,
            message: format!(
                "{} loses access to this project at once. Invite them again to bring them back.",
                member.email
            ),
            action: format!("/p/{project_id}/members/{account_id}/remove"),
            button: "Remove member",
            back: format!("/p/{project_id}/members"),
        }));
    }
    state
        .store
        .remove_member(project, &member.account_id)
        .await?;
    Ok(axum::response::Redirect::to(&format!("/p/{project_id}/members")).into_response())
}

/// An owner withdraws an open invitation: its link stops working at once. Asked first (the
/// link already sent would have to be sent again), as removing a member is.
async fn withdraw(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, invitation_id)): Path<(String, String)>,
    VerifiedForm(form): VerifiedForm<ConfirmForm>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "withdraw invitations").await?;
    let project = &context.current.project.id;
    if !form.confirmed() {
        let invitation = state
            .store
            .open_invitations(project, Utc::now())
            .await?
            .into_iter()
            .find(|i| i.id.as_str() == invitation_id)
            .ok_or(PageError::NotFound)?;
        return Ok(render(&ConfirmPage {
            title: "Withdraw this invitation?",
            nav: context.nav(),
            csrf_token: csrf.0,
            message: format!(
                "The link sent to {} stops working at once. Invite them again for a new link.",
                invitation.email
            ),
            action: format!("/p/{project_id}/invitations/{invitation_id}/withdraw"),
            button: "Withdraw invitation",
            back: format!("/p/{project_id}/members"),
        }));
    }
    if !state
        .store
        .withdraw_invitation(project, &invitation_id)
        .await?
    {
        // Sent twice, or from a page older than its acceptance: the members page says so (it
        // was "Page not found"). The same for an id that is none of the project's.
        let mut page = page(&state, &context, csrf.0).await?;
        page.error = Some(
            "This invitation is not open any more: it was accepted, withdrawn or has expired."
                .into(),
        );
        return Ok(render_with(StatusCode::NOT_FOUND, &page));
    }
    Ok(axum::response::Redirect::to(&format!("/p/{project_id}/members")).into_response())
}
