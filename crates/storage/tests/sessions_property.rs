//! Property: however the pages of one full-sync session arrive (any order, any page
//! repeated), applying the session yields exactly the snapshot's membership, and no
//! membership changes before the last missing page arrives.

use std::collections::BTreeSet;

use proptest::prelude::*;
use uj_domain::audiences::{LedgerEntry, LedgerOutcome};
use uj_domain::cohort_sync::SyncedMember;
use uj_domain::ids::LedgerEntryId;
use uj_storage::testing::TestDatabase;
use uj_storage::{PageRequest, Store};

fn member(id: String) -> SyncedMember {
    SyncedMember {
        provider_member_id: id,
        reference_id: None,
        traits: Default::default(),
    }
}

async fn active(store: &dyn Store, audience: &uj_domain::ids::AudienceId) -> BTreeSet<String> {
    let page = PageRequest {
        limit: 1000,
        starting_after: None,
    };
    store
        .audience_members(audience, false, &page)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.provider_member_id)
        .collect()
}

/// Delivers `order` (page numbers, repeats allowed, every page at least once) of a session
/// whose pages hold `snapshot` split in `page_size`, on top of `before`, to a new database:
/// SQLite's, or PostgreSQL's when `postgres` (none when no PostgreSQL is reachable and none
/// is required).
async fn deliver(
    postgres: bool,
    before: Vec<String>,
    snapshot: Vec<String>,
    page_size: usize,
    order: Vec<usize>,
) {
    let db = if postgres {
        match TestDatabase::postgres().await {
            Some(db) => db,
            None => return,
        }
    } else {
        TestDatabase::sqlite()
    };
    let store = uj_storage::connect(&db.url).await.unwrap();
    let owner = store
        .create_account(uj_storage::NewAccount {
            email: "a@example.com".into(),
            password_hash: "x".into(),
        })
        .await
        .unwrap();
    let project = store
        .create_project(&owner.id, "P", "uj_pk_p", 100, None)
        .await
        .unwrap()
        .expect("under the cap");
    let now = chrono::Utc::now();
    let audience = store
        .upsert_audience(&project.id, "1", "C", "", now)
        .await
        .unwrap()
        .id;
    store
        .add_audience_members(
            &audience,
            &before.iter().cloned().map(member).collect::<Vec<_>>(),
            now,
        )
        .await
        .unwrap();
    let initial = active(store.as_ref(), &audience).await;

    let pages: Vec<Vec<SyncedMember>> = if snapshot.is_empty() {
        vec![Vec::new()]
    } else {
        snapshot
            .chunks(page_size)
            .map(|c| c.iter().cloned().map(member).collect())
            .collect()
    };
    let total = pages.len() as i64;
    let mut received = BTreeSet::new();
    let mut applied = false;
    for index in order.into_iter().map(|i| i % pages.len()) {
        let entry = LedgerEntry {
            id: LedgerEntryId::generate(),
            audience_id: None,
            action: "members".into(),
            session_id: Some("session".into()),
            page: Some(index as i64 + 1),
            total_pages: Some(total),
            members: pages[index].len() as i64,
            added: 0,
            removed: 0,
            outcome: LedgerOutcome::Staged,
            error: None,
            received_at: now,
            mixpanel_cohort_id: None,
            mixpanel_cohort_name: None,
        };
        let page = uj_storage::SyncPage {
            session_id: "session",
            page: index as i64 + 1,
            total_pages: total,
            members: &pages[index],
        };
        let cohort = uj_storage::SyncCohort {
            mixpanel_project_id: Some("10"),
            mixpanel_cohort_id: "1",
            name: "C",
            description: Some(""),
            accepted_with: None,
        };
        let outcome = store
            .receive_sync_page(&project.id, &cohort, &page, entry)
            .await
            .unwrap()
            .outcome;
        let first_time = received.insert(index);
        assert_eq!(
            outcome == LedgerOutcome::Duplicate,
            !first_time,
            "a page is a duplicate exactly when seen before"
        );
        if outcome == LedgerOutcome::Applied {
            assert!(
                !applied && received.len() == pages.len(),
                "applied once, by the page that completes the session"
            );
            applied = true;
        } else if !applied {
            assert_eq!(
                active(store.as_ref(), &audience).await,
                initial,
                "an unfinished session changes nothing"
            );
        }
    }
    // Every page arrived at least once (the strategy guarantees it).
    let expected: BTreeSet<String> = snapshot.into_iter().collect();
    assert_eq!(active(store.as_ref(), &audience).await, expected);
}

fn ids(max: usize) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set("[a-e][0-9]{1,2}", 0..max).prop_map(|s| s.into_iter().collect())
}

/// Every page of a session once, in an order derived from `seed`, with `repeats` spliced in.
fn order_of(
    snapshot: &[String],
    page_size: usize,
    repeats: Vec<proptest::sample::Index>,
    seed: u64,
) -> Vec<usize> {
    let pages = if snapshot.is_empty() {
        1
    } else {
        snapshot.len().div_ceil(page_size)
    };
    let mut order: Vec<usize> = (0..pages).collect();
    let mut state = seed;
    for i in (1..order.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    for index in repeats {
        let at = index.index(order.len() + 1);
        let page = index.index(pages);
        order.insert(at, page);
    }
    order
}

fn run(
    postgres: bool,
    before: Vec<String>,
    snapshot: Vec<String>,
    page_size: usize,
    order: Vec<usize>,
) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(deliver(postgres, before, snapshot, page_size, order));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn any_order_and_duplication_of_a_sessions_pages_gives_the_snapshot(
        before in ids(20),
        snapshot in ids(40),
        page_size in 1usize..8,
        shuffle in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
        seed in any::<u64>(),
    ) {
        let order = order_of(&snapshot, page_size, shuffle, seed);
        run(false, before, snapshot, page_size, order);
    }
}

proptest! {
    // A database each: fewer cases on PostgreSQL.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn any_order_and_duplication_of_a_sessions_pages_gives_the_snapshot_on_postgres(
        before in ids(20),
        snapshot in ids(40),
        page_size in 1usize..8,
        shuffle in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
        seed in any::<u64>(),
    ) {
        let order = order_of(&snapshot, page_size, shuffle, seed);
        run(true, before, snapshot, page_size, order);
    }
}
