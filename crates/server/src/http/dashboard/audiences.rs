//! Audiences: the list (name, members, last sync, state) and each audience's page
//! (description, member count over time, current members a page at a time, member
//! lookup, sync history).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use uj_domain::audiences::{Audience, AudienceMember, LedgerEntry, LedgerOutcome};
use uj_domain::ids::AudienceId;
use uj_storage::PageRequest;

use super::pages::{render, when, ConfirmForm, ConfirmPage, ListAfter, Nav, PageError};
use super::projects::ProjectContext;
use super::session::{CsrfToken, CurrentUser, VerifiedForm};
use crate::services::ServiceError;
use crate::services::{audiences, settings};
use crate::state::AppState;

/// History rows on an audience's page (and points of its chart).
const HISTORY: u32 = 100;

/// Audiences listed per page (each one's sync health is read to show its state).
const AUDIENCES: u32 = 100;

/// Current members listed per page on an audience's page.
const MEMBERS: u32 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/p/{project_id}/audiences", get(list))
        .route("/p/{project_id}/audiences/{audience_id}", get(show))
        .route(
            "/p/{project_id}/audiences/{audience_id}/delete",
            post(delete),
        )
}

/// An owner deletes an audience with its members and sync history, asked first; refused
/// while rules that are not archived target it.
async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, audience_id)): Path<(String, String)>,
    VerifiedForm(form): VerifiedForm<ConfirmForm>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "delete audiences").await?;
    let project = &context.current.project.id;
    let audience = state
        .store
        .audience(project, &AudienceId::from_string(audience_id.clone()))
        .await?
        .ok_or(PageError::NotFound)?;
    if !form.confirmed() {
        return Ok(render(&ConfirmPage {
            title: "Delete this audience?",
            nav: context.nav(),
            csrf_token: csrf.0,
            message: format!(
                "“{}” with its {} current members, its past ones and its sync history is deleted \
                 for good. If Mixpanel still syncs the cohort, remove that sync in Mixpanel first, \
                 or its next delivery makes the audience anew.",
                audience.name, audience.member_count
            ),
            action: format!("/p/{project_id}/audiences/{audience_id}/delete"),
            button: "Delete audience",
            back: format!("/p/{project_id}/audiences/{audience_id}"),
        }));
    }
    match audiences::delete(&state, project, &audience_id).await {
        Ok(()) => {}
        // Said on a page of its own: the rules to archive first.
        Err(ServiceError::Conflict { message, .. }) => return Err(PageError::Conflict(message)),
        Err(other) => return Err(other.into()),
    }
    let listed = axum::response::Redirect::to(&format!("/p/{project_id}/audiences"));
    Ok(axum::response::IntoResponse::into_response(listed))
}

struct AudienceRow {
    id: String,
    name: String,
    description: String,
    mixpanel_cohort_id: String,
    member_count: i64,
    last_synced_at: String,
    state: &'static str,
}

async fn row(
    state: &AppState,
    audience: Audience,
    connected: Option<&str>,
) -> Result<(AudienceRow, Option<String>), PageError> {
    let health = audiences::health(state, &audience, connected).await?;
    let row = AudienceRow {
        id: audience.id.into_string(),
        name: audience.name,
        description: audience.description,
        mixpanel_cohort_id: audience.mixpanel_cohort_id,
        member_count: audience.member_count,
        last_synced_at: when(audience.last_synced_at),
        state: health.state,
    };
    Ok((row, health.warning))
}

#[derive(Template)]
#[template(path = "audiences.html")]
struct AudiencesPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    project_id: String,
    audiences: Vec<AudienceRow>,
    /// Whether this is a later page (it links back to the first).
    paged: bool,
    /// The last audience listed, when more follow (the next page starts after it).
    next: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    Query(ListAfter { after }): Query<ListAfter>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let paged = after.is_some();
    let page = state
        .store
        .audiences(
            &context.current.project.id,
            &PageRequest {
                limit: AUDIENCES,
                starting_after: after,
            },
        )
        .await?;
    let next = page
        .has_more
        .then(|| page.items.last().map(|a| a.id.to_string()))
        .flatten();
    let connected = audiences::connected_project(&state, &context.current.project.id).await?;
    let mut rows = Vec::new();
    for audience in page.items {
        rows.push(row(&state, audience, connected.as_deref()).await?.0);
    }
    Ok(render(&AudiencesPage {
        title: "Audiences",
        nav: context.nav(),
        csrf_token: csrf.0,
        project_id: context.project_id(),
        audiences: rows,
        paged,
        next,
    }))
}

struct HistoryRow {
    received_at: String,
    action: String,
    page: String,
    members: i64,
    added: i64,
    removed: i64,
    outcome: &'static str,
    error: Option<String>,
}

impl From<&LedgerEntry> for HistoryRow {
    fn from(e: &LedgerEntry) -> Self {
        Self {
            received_at: when(Some(e.received_at)),
            action: e.action.clone(),
            page: match (e.page, e.total_pages) {
                (Some(p), Some(t)) => format!("{p} of {t}"),
                _ => String::new(),
            },
            members: e.members,
            added: e.added,
            removed: e.removed,
            outcome: e.outcome.as_str(),
            error: e.error.clone(),
        }
    }
}

struct MemberRow {
    provider_member_id: String,
    reference_id: String,
    entered_at: String,
    exited_at: String,
    traits: String,
}

impl MemberRow {
    /// `m` with the traits `allowlist` names.
    fn new(m: AudienceMember, allowlist: &[String]) -> Self {
        Self {
            provider_member_id: m.provider_member_id,
            reference_id: m.reference_id.unwrap_or_default(),
            entered_at: when(Some(m.entered_at)),
            exited_at: m.exited_at.map(|t| when(Some(t))).unwrap_or_default(),
            traits: serde_json::Value::Object(settings::allowlisted(m.traits, allowlist))
                .to_string(),
        }
    }
}

/// The member count after each applied delivery, oldest first, drawn as an SVG polyline in
/// a 300×60 box between its lowest and highest count (a change of 25 in 3,000 shows), which
/// the page states beside it.
#[derive(Default)]
struct Chart {
    points: String,
    low: i64,
    high: i64,
    /// The count after the oldest delivery drawn, and today's.
    first: i64,
    last: i64,
}

fn chart(history: &[LedgerEntry], current: i64) -> Chart {
    let applied: Vec<&LedgerEntry> = history
        .iter()
        .filter(|e| e.outcome == LedgerOutcome::Applied)
        .collect();
    if applied.len() < 2 {
        return Chart::default();
    }
    // Walk back from today's count: before each delivery the count was `after - added + removed`.
    let mut counts = vec![current];
    for entry in &applied[..applied.len() - 1] {
        let after = *counts.last().unwrap_or(&0);
        counts.push(after - entry.added + entry.removed);
    }
    counts.reverse();
    let low = counts.iter().copied().min().unwrap_or(0);
    let high = counts.iter().copied().max().unwrap_or(0);
    // A flat line sits in the middle.
    let span = (high - low).max(1) as f64;
    let step = 300.0 / (counts.len() - 1) as f64;
    let points = counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let y = if high == low {
                30.0
            } else {
                58.0 - ((c - low) as f64 / span) * 56.0
            };
            format!("{:.1},{y:.1}", i as f64 * step)
        })
        .collect::<Vec<_>>()
        .join(" ");
    Chart {
        points,
        low,
        high,
        first: counts[0],
        last: current,
    }
}

#[derive(Template)]
#[template(path = "audience.html")]
struct AudiencePage {
    title: String,
    nav: Option<Nav>,
    /// Owners may delete the audience.
    is_owner: bool,
    csrf_token: String,
    project_id: String,
    a: AudienceRow,
    warning: Option<String>,
    chart: Chart,
    history: Vec<HistoryRow>,
    /// The history has entries older than those shown.
    older_history: bool,
    lookup: String,
    found: Option<Vec<MemberRow>>,
    /// More members than those found are listed under the id.
    more_found: bool,
    members: Vec<MemberRow>,
    /// The cursor of the next page of members, if there is one.
    next: Option<String>,
    /// A later page is shown: a link back to the first.
    paged: bool,
}

#[derive(Deserialize)]
struct ShowParams {
    member: Option<String>,
    /// The last distinct id of the previous page of members.
    after: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, audience_id)): Path<(String, String)>,
    Query(params): Query<ShowParams>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let project = &context.current.project.id;
    let audience = state
        .store
        .audience(project, &AudienceId::from_string(audience_id))
        .await?
        .ok_or(PageError::NotFound)?;
    let history = state
        .store
        .sync_ledger(
            project,
            Some(&audience.id),
            &PageRequest {
                limit: HISTORY,
                starting_after: None,
            },
        )
        .await?;
    let older_history = history.has_more;
    let history = history.items;
    let allowlist = state.store.trait_allowlist(project).await?;
    let lookup = params.member.unwrap_or_default().trim().to_owned();
    // Current and past members, the first of them: a cohort can list any number of
    // distinct ids under one reference id.
    let (found, more_found) = if lookup.is_empty() {
        (None, false)
    } else {
        let members = state
            .store
            .find_audience_members(
                &audience.id,
                &lookup,
                true,
                &PageRequest {
                    limit: MEMBERS,
                    starting_after: None,
                },
            )
            .await?;
        let rows = members
            .items
            .into_iter()
            .map(|m| MemberRow::new(m, &allowlist));
        (Some(rows.collect()), members.has_more)
    };
    let after = params.after.filter(|after| !after.is_empty());
    let page = state
        .store
        .audience_members(
            &audience.id,
            false,
            &PageRequest {
                limit: MEMBERS,
                starting_after: after.clone(),
            },
        )
        .await?;
    let next = page
        .has_more
        .then(|| page.items.last().map(|m| m.provider_member_id.clone()))
        .flatten();
    let members = page
        .items
        .into_iter()
        .map(|m| MemberRow::new(m, &allowlist))
        .collect();
    let chart = chart(&history, audience.member_count);
    let connected = audiences::connected_project(&state, &context.current.project.id).await?;
    let (a, warning) = row(&state, audience, connected.as_deref()).await?;
    Ok(render(&AudiencePage {
        title: a.name.clone(),
        nav: context.nav(),
        is_owner: context.current.role == uj_domain::accounts::Role::Owner,
        csrf_token: csrf.0,
        project_id: context.project_id(),
        a,
        warning,
        chart,
        history: history.iter().map(Into::into).collect(),
        older_history,
        lookup,
        paged: after.is_some(),
        found,
        more_found,
        members,
        next,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uj_domain::ids::LedgerEntryId;

    fn applied(added: i64, removed: i64) -> LedgerEntry {
        LedgerEntry {
            id: LedgerEntryId::generate(),
            audience_id: None,
            action: "add_members".into(),
            session_id: None,
            page: None,
            total_pages: None,
            members: added + removed,
            added,
            removed,
            outcome: LedgerOutcome::Applied,
            error: None,
            received_at: chrono::Utc::now(),
            mixpanel_cohort_id: None,
            mixpanel_cohort_name: None,
        }
    }

    #[test]
    fn the_chart_walks_back_from_todays_count() {
        // Newest first: +5 -2 (now 13), +10 (was 10), +0 (was 0).
        let history = [applied(5, 2), applied(10, 0), applied(0, 0)];
        let drawn = chart(&history, 13);
        assert_eq!((drawn.low, drawn.high), (0, 13));
        assert_eq!((drawn.first, drawn.last), (0, 13), "oldest first");
        let falling = chart(&[applied(0, 5), applied(3000, 0)], 2995);
        assert_eq!((falling.first, falling.last), (3000, 2995));
        let points = drawn.points;
        let ys: Vec<f64> = points
            .split(' ')
            .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(ys.len(), 3);
        assert!(
            ys[0] > ys[1] && ys[1] > ys[2],
            "rising counts draw a rising line: {points}"
        );
        assert_eq!(chart(&history[..1], 13).points, "", "one point is no chart");
    }
}
