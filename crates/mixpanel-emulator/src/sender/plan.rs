//! Working out what one run sends: full `members` pages, or diff batches.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;

use crate::scenario::Member;

pub(super) fn new_session_id(cohort_id: u64) -> String {
    let started = Utc::now().format("%Y%m%dT%H%M%S");
    format!("{cohort_id}-{started}-{:016x}", rand::random::<u64>())
}

/// What one run sends, worked out before anything is sent.
pub(super) struct Plan {
    pub(super) full: bool,
    pub(super) batches: Vec<Batch>,
    pub(super) added: usize,
    pub(super) removed: usize,
    /// The membership to remember once every batch is delivered: sorted by distinct id,
    /// each once.
    pub(super) current: Vec<Arc<Member>>,
}

pub(super) struct Batch {
    pub(super) action: Action,
    pub(super) page_count: usize,
    pub(super) total_pages: usize,
    pub(super) members: Vec<Arc<Member>>,
}

#[derive(Clone, Copy)]
pub(super) enum Action {
    Members,
    AddMembers,
    RemoveMembers,
}

impl Action {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Action::Members => "members",
            Action::AddMembers => "add_members",
            Action::RemoveMembers => "remove_members",
        }
    }
}

impl Plan {
    /// A full sync without a `previous` snapshot, else the diff against it. Members keep the
    /// cohort's order; a repeated distinct id counts once (its first occurrence).
    pub(super) fn new(
        members: &[Arc<Member>],
        previous: Option<&[Arc<Member>]>,
        page_size: usize,
    ) -> Self {
        // The emulator's cohorts come sorted by distinct id, each once: nothing to dedupe
        // or sort then (a million members are not copied into a map).
        let sorted = members
            .windows(2)
            .all(|pair| pair[0].distinct_id < pair[1].distinct_id);
        let (unique, current) = if sorted {
            (members.to_vec(), members.to_vec())
        } else {
            let mut seen = HashSet::new();
            let unique: Vec<Arc<Member>> = members
                .iter()
                .filter(|member| seen.insert(member.distinct_id.as_str()))
                .cloned()
                .collect();
            let mut current = unique.clone();
            current.sort_by(|a, b| a.distinct_id.cmp(&b.distinct_id));
            (unique, current)
        };
        let Some(previous) = previous else {
            return Plan {
                full: true,
                added: unique.len(),
                removed: 0,
                batches: paginate(Action::Members, unique, page_size),
                current,
            };
        };
        let entered: Vec<Arc<Member>> = unique
            .into_iter()
            .filter(|member| !contains(previous, &member.distinct_id))
            .collect();
        let left: Vec<Arc<Member>> = previous
            .iter()
            .filter(|member| !contains(&current, &member.distinct_id))
            .cloned()
            .collect();
        let (added, removed) = (entered.len(), left.len());
        let mut batches = paginate(Action::AddMembers, entered, page_size);
        batches.extend(paginate(Action::RemoveMembers, left, page_size));
        Plan {
            full: false,
            batches,
            added,
            removed,
            current,
        }
    }
}

/// Whether members sorted by distinct id hold `id`.
fn contains(sorted: &[Arc<Member>], id: &str) -> bool {
    sorted
        .binary_search_by(|member| member.distinct_id.as_str().cmp(id))
        .is_ok()
}

/// Splits members into pages numbered from 1, moving them (a million-member cohort is not
/// copied again); no members still make one empty page (§7.2).
pub(super) fn paginate(action: Action, members: Vec<Arc<Member>>, page_size: usize) -> Vec<Batch> {
    let mut pages: Vec<Vec<Arc<Member>>> = Vec::new();
    let mut members = members.into_iter().peekable();
    while members.peek().is_some() {
        pages.push(members.by_ref().take(page_size.max(1)).collect());
    }
    if pages.is_empty() {
        pages.push(Vec::new());
    }
    let total_pages = pages.len();
    pages
        .into_iter()
        .enumerate()
        .map(|(index, members)| Batch {
            action,
            page_count: index + 1,
            total_pages,
            members,
        })
        .collect()
}
