//! One suite, two databases: every case runs against SQLite and PostgreSQL.
//!
//! PostgreSQL cases need a server (`UJ_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); without one they are skipped, unless
//! `UJ_REQUIRE_POSTGRES=1` (as in CI) makes that a failure.

use std::sync::Arc;

use chrono::{Duration, Utc};
use uj_domain::accounts::Role;
use uj_domain::audiences::{CohortSyncConfig, LedgerEntry, LedgerOutcome};
use uj_domain::cohort_sync::SyncedMember;
use uj_domain::ids::LedgerEntryId;
use uj_domain::ids::{AudienceId, ProjectId, SecretKeyId};
use uj_domain::mixpanel::{ConnectAttempt, ConnectionStatus, MixpanelCohort, MixpanelConnection};
use uj_storage::testing::TestDatabase;
use uj_storage::{
    CohortSyncStore, InviteStore, MembershipsRead, NewAccount, NewInvitation, PageRequest, Store,
    StoreError, WithMemberships,
};

/// A user's invites as the server reads them (`user_history`, as the SDK path does), for
/// the tests' assertions.
#[async_trait::async_trait]
trait UserInvites {
    /// Newest first.
    async fn invites_of_user(
        &self,
        project: &ProjectId,
        reference_id: &str,
    ) -> Result<Vec<uj_domain::invites::Invite>, StoreError>;
    /// The issued, unexpired one.
    async fn pending_invite(
        &self,
        project: &ProjectId,
        reference_id: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<Option<uj_domain::invites::Invite>, StoreError>;
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> UserInvites for S {
    async fn invites_of_user(
        &self,
        project: &ProjectId,
        reference_id: &str,
    ) -> Result<Vec<uj_domain::invites::Invite>, StoreError> {
        Ok(self
            .user_history(project, reference_id, WithMemberships::No)
            .await?
            .0)
    }

    async fn pending_invite(
        &self,
        project: &ProjectId,
        reference_id: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<Option<uj_domain::invites::Invite>, StoreError> {
        let invites = self.invites_of_user(project, reference_id).await?;
        Ok(invites
            .into_iter()
            .find(|i| i.state == uj_domain::invites::InviteState::Issued && i.expires_at > now))
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let db = uj_storage::testing::TestDatabase::sqlite();
                    // As the server opens it: with the SDK reads' key filter.
                    let store =
                        uj_storage::connect_as_server(&db.url).await.expect("open SQLite");
                    super::$case(store, &db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(db) = uj_storage::testing::TestDatabase::postgres().await else { return };
                    let store = uj_storage::connect(&db.url).await.expect("open PostgreSQL");
                    super::$case(store, &db).await;
                }
            )*
        }
    };
}

conformance!(
    a_pending_audience_invite_needs_only_its_own_audience_read,
    two_finishers_of_one_audience_deletion_take_turns,
    a_users_invites_are_paged_newest_first,
    a_rules_invites_are_paged_newest_first,
    a_cohort_first_seen_without_a_name_is_named_by_its_id,
    first_run_setup_happens_exactly_once,
    concurrent_setups_have_exactly_one_winner,
    emails_are_unique,
    projects_list_their_members_and_roles,
    removing_a_member_withdraws_their_open_invitations_to_that_project,
    an_account_joins_only_by_an_invitation_to_its_email,
    rotating_the_public_key_retires_the_old_one,
    secret_keys_are_found_by_hash_until_revoked,
    secret_keys_of_one_project_are_invisible_to_another,
    secret_key_listing_pages_in_creation_order,
    sessions_expire_and_can_be_deleted,
    a_new_password_ends_every_session,
    an_upgraded_password_hash_keeps_the_sessions,
    invitations_are_accepted_once_and_expire,
    open_invitations_and_owned_projects_are_capped_under_concurrency,
    unrevoked_secret_keys_are_capped_under_concurrency,
    a_form_sent_at_once_makes_one_project_and_one_secret_key,
    stored_times_read_back_exactly,
    concurrent_writes_all_succeed,
    migrations_run_again_without_harm,
    statements_prepared_before_a_migration_adds_columns_still_run,
    a_mixpanel_connection_is_saved_replaced_checked_and_deleted,
    connect_attempts_expire_and_belong_to_their_project,
    a_new_or_removed_connection_forgets_what_the_old_one_read,
    a_disconnect_racing_a_read_leaves_nothing_behind,
    the_first_key_fingerprint_recorded_stays,
    one_holder_at_a_time_across_connections,
    cohorts_are_replaced_and_event_names_recorded_per_project,
    a_cohort_sync_config_is_found_by_webhook_and_replaced,
    audiences_are_one_per_cohort_and_follow_its_name,
    diffs_add_and_remove_members_idempotently_and_keep_history,
    a_lookup_pages_through_the_members_listed_under_one_id,
    diffs_beside_full_sessions_keep_membership_and_its_count_exact,
    a_full_session_replaces_membership_only_once_complete,
    a_newer_session_supersedes_an_unfinished_one_and_stale_staging_goes,
    a_session_rerun_with_another_page_count_starts_afresh,
    a_member_a_diff_added_beside_an_earlier_run_leaves_when_the_rerun_omits_them,
    pages_staged_longer_ago_than_staging_is_kept_never_complete_a_run,
    members_of_an_unfinished_session_are_seen_nowhere_until_it_completes,
    a_first_sync_that_lists_a_member_twice_keeps_the_later_listing,
    members_who_leave_lose_their_issued_invites_of_that_audience_only,
    a_member_whose_reference_id_changes_loses_the_old_users_invite_at_once,
    a_diff_relisting_a_member_under_another_reference_id_withdraws_the_old_users_invite,
    the_ledger_lists_deliveries_newest_first,
    old_ledger_entries_are_deleted,
    old_ledger_entries_are_deleted_past_one_batch,
    an_audience_is_deleted_whole_unless_a_live_rule_targets_it,
    a_big_audience_is_deleted_in_batches_and_a_deletion_left_part_way_is_finished,
    a_delivery_is_applied_only_while_the_settings_it_was_accepted_under_hold,
    a_database_without_this_servers_schema_is_not_ready,
    the_trait_allowlist_round_trips,
    traits_off_the_allowlist_are_erased_from_members_and_invites_of_the_project,
    studies_and_rules_round_trip_and_stay_in_their_project,
    rule_stats_count_invites_by_state_and_suppressions_add_up,
    a_users_memberships_and_invites_are_read_for_the_sdk,
    a_users_history_is_their_newest_five_hundred_invites_and_the_older_that_decide,
    only_an_issued_invite_of_the_project_can_be_withdrawn,
    an_invite_issued_while_the_open_one_is_dismissed_answers_one_of_them,
    an_expired_invite_is_neither_dismissed_nor_withdrawn,
    each_projects_study_list_holds_only_its_own_studies,
    another_projects_code_dismisses_nothing,
    issuing_again_answers_the_users_open_invite_of_that_project,
    a_stopped_rule_or_study_leaves_its_answered_invites_as_they_were,
    a_start_of_one_study_does_not_refuse_another_study_of_the_project,
    a_stale_stop_of_a_rule_or_study_writes_nothing_and_takes_back_nothing,
    an_invite_is_expired_from_its_exact_expiry_time,
    a_rules_schedule_is_closed_from_its_exact_end,
    no_start_once_its_rule_or_study_stopped_or_its_schedule_moved,
    study_limits_hold_at_accept_and_reset_on_monday_and_the_first,
    every_write_that_gives_a_user_rows_reaches_the_sdk_reads,
    app_events_add_up_in_the_catalog_in_batches,
    app_event_names_not_sent_for_a_while_are_forgotten,
    counts_flushed_at_once_in_any_order_add_up,
    mixpanel_reads_and_flushes_adding_the_same_new_names_at_once_all_land,
    batches_issued_at_once_in_any_order_give_each_user_one_invite,
    a_study_stopped_while_its_audience_shrinks_withdraws_its_invites_once,
    a_disconnect_beside_a_flush_of_the_apps_counts_keeps_every_count,
    late_pages_of_a_replaced_or_applied_run_change_nothing,
    changes_that_waited_for_the_audience_never_move_its_times_back,
    a_first_syncs_middle_page_that_waited_never_enters_members_before_the_last_change,
    a_diff_lands_whole_or_not_at_all,
    erasing_traits_while_diffs_rewrite_the_members_never_deadlocks,
    an_idempotency_record_lands_with_its_create_once_per_key_and_project,
    creates_racing_with_one_idempotency_key_make_one,
);

fn account(email: &str) -> NewAccount {
    NewAccount {
        email: email.into(),
        password_hash: "$argon2id$fake".into(),
    }
}

async fn owner_with_project(
    store: &Arc<dyn Store>,
    email: &str,
) -> (uj_domain::accounts::Account, ProjectId) {
    let owner = store.create_account(account(email)).await.unwrap();
    let project = store
        .create_project(
            &owner.id,
            "Shop",
            &uj_domain::keys::generate_public_key(),
            100,
            None,
        )
        .await
        .unwrap()
        .expect("under the cap");
    (owner, project.id)
}

async fn first_run_setup_happens_exactly_once(store: Arc<dyn Store>, _: &TestDatabase) {
    assert!(!store.is_set_up().await.unwrap());
    let (owner, project) = store
        .set_up(account("ada@example.com"), "Shop", "uj_pk_one")
        .await
        .unwrap();
    assert!(store.is_set_up().await.unwrap());
    assert_eq!(owner.email, "ada@example.com");
    assert_eq!(project.name, "Shop");
    assert_eq!(
        store.role(&owner.id, &project.id).await.unwrap(),
        Some(Role::Owner)
    );

    let again = store
        .set_up(account("eve@example.com"), "Other", "uj_pk_two")
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict("installation"))),
        "{again:?}"
    );
    // The failed attempt left nothing behind.
    assert!(store
        .account_by_email("eve@example.com")
        .await
        .unwrap()
        .is_none());
    assert!(store
        .project_by_public_key("uj_pk_two")
        .await
        .unwrap()
        .is_none());
}

async fn concurrent_setups_have_exactly_one_winner(store: Arc<dyn Store>, _: &TestDatabase) {
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .set_up(
                    account(&format!("owner{i}@example.com")),
                    "Shop",
                    &format!("uj_pk_{i}"),
                )
                .await
        })
    });
    let mut wins = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(wins, 1);
}

async fn emails_are_unique(store: Arc<dyn Store>, _: &TestDatabase) {
    let created = store
        .create_account(account("ada@example.com"))
        .await
        .unwrap();
    let again = store.create_account(account("ada@example.com")).await;
    assert!(
        matches!(again, Err(StoreError::Conflict("account"))),
        "{again:?}"
    );
    let found = store
        .account_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    assert!(store
        .account_by_email("bob@example.com")
        .await
        .unwrap()
        .is_none());
}

async fn projects_list_their_members_and_roles(store: Arc<dyn Store>, _: &TestDatabase) {
    let (ada, shop) = owner_with_project(&store, "ada@example.com").await;
    let second = store
        .create_project(&ada.id, "Blog", "uj_pk_blog", 100, None)
        .await
        .unwrap()
        .expect("under the cap");
    let bob = store
        .create_account(account("bob@example.com"))
        .await
        .unwrap();
    let invitation = NewInvitation {
        project_id: shop.clone(),
        email: "bob@example.com".into(),
        token_hash: "tok-bob".into(),
        invited_by: ada.id.clone(),
        expires_at: Utc::now() + Duration::days(1),
    };
    store
        .create_invitation(invitation, 100)
        .await
        .unwrap()
        .expect("under the cap");
    assert_eq!(
        store
            .join_by_invitation("tok-bob", &bob.id, Utc::now())
            .await
            .unwrap(),
        Some(shop.clone())
    );

    let adas: Vec<_> = store.memberships(&ada.id).await.unwrap();
    assert_eq!(
        adas.iter()
            .map(|m| (m.project.name.as_str(), m.role))
            .collect::<Vec<_>>(),
        vec![("Shop", Role::Owner), ("Blog", Role::Owner)]
    );
    let bobs = store.memberships(&bob.id).await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].project.id, shop);
    assert_eq!(store.role(&bob.id, &second.id).await.unwrap(), None);

    let members = store.members(&shop).await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| (m.email.as_str(), m.role))
            .collect::<Vec<_>>(),
        vec![
            ("ada@example.com", Role::Owner),
            ("bob@example.com", Role::Member)
        ]
    );

    // A member can be removed, from that project only; an owner cannot.
    assert!(!store.remove_member(&second.id, &bob.id).await.unwrap());
    assert!(!store.remove_member(&shop, &ada.id).await.unwrap());
    assert!(store.remove_member(&shop, &bob.id).await.unwrap());
    assert!(!store.remove_member(&shop, &bob.id).await.unwrap(), "once");
    assert_eq!(store.role(&bob.id, &shop).await.unwrap(), None);
    assert!(store.memberships(&bob.id).await.unwrap().is_empty());
    assert_eq!(store.members(&shop).await.unwrap().len(), 1);
}

/// Removing a member withdraws the project's open invitations to their address (one sent
/// while they accepted an older link let them back in for its week); other projects' and
/// other addresses' stay, and an owner's, who cannot be removed, too.
async fn removing_a_member_withdraws_their_open_invitations_to_that_project(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (ada, shop) = owner_with_project(&store, "ada@example.com").await;
    let blog = store
        .create_project(&ada.id, "Blog", "uj_pk_blog", 100, None)
        .await
        .unwrap()
        .expect("under the cap")
        .id;
    let bob = store
        .create_account(account("bob@example.com"))
        .await
        .unwrap();
    let invite = |token: &'static str, email: &'static str, project: &ProjectId| {
        let store = store.clone();
        let invitation = NewInvitation {
            project_id: project.clone(),
            email: email.into(),
            token_hash: token.into(),
            invited_by: ada.id.clone(),
            expires_at: Utc::now() + Duration::days(1),
        };
        async move {
            store
                .create_invitation(invitation, 100)
                .await
                .unwrap()
                .expect("under the cap");
        }
    };
    invite("first", "bob@example.com", &shop).await;
    let joined = store
        .join_by_invitation("first", &bob.id, Utc::now())
        .await
        .unwrap();
    assert_eq!(joined, Some(shop.clone()));
    // Sent again while Bob accepted the first link, then the ones that must stay.
    invite("again", "bob@example.com", &shop).await;
    invite("to-blog", "bob@example.com", &blog).await;
    invite("to-cy", "cy@example.com", &shop).await;
    invite("to-ada", "ada@example.com", &shop).await;
    let open = |project: ProjectId| {
        let store = store.clone();
        async move {
            let mut emails: Vec<String> = store
                .open_invitations(&project, Utc::now())
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.email)
                .collect();
            emails.sort();
            emails
        }
    };
    assert!(!store.remove_member(&shop, &ada.id).await.unwrap());
    assert_eq!(
        open(shop.clone()).await,
        ["ada@example.com", "bob@example.com", "cy@example.com"]
    );

    assert!(store.remove_member(&shop, &bob.id).await.unwrap());
    assert_eq!(
        open(shop.clone()).await,
        ["ada@example.com", "cy@example.com"]
    );
    assert_eq!(
        store
            .join_by_invitation("again", &bob.id, Utc::now())
            .await
            .unwrap(),
        None,
        "the withdrawn link let Bob back in"
    );
    assert_eq!(store.role(&bob.id, &shop).await.unwrap(), None);
    assert_eq!(open(blog.clone()).await, ["bob@example.com"]);
    assert_eq!(
        store
            .join_by_invitation("to-blog", &bob.id, Utc::now())
            .await
            .unwrap(),
        Some(blog)
    );
}

/// An existing account joins only through an open invitation sent to its own email (an
/// account for any address can be made by anyone, so the link is the consent); joining a
/// project it is in already keeps its role.
async fn an_account_joins_only_by_an_invitation_to_its_email(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (ada, shop) = owner_with_project(&store, "ada@example.com").await;
    let (bob, _) = owner_with_project(&store, "bob@example.com").await;
    let now = Utc::now();
    // The expired one to another project: a second invitation to Shop would replace Bob's.
    let blog = store
        .create_project(&ada.id, "Blog", "uj_pk_blog", 100, None)
        .await
        .unwrap()
        .expect("under the cap");
    for (token, email, expires_at, project) in [
        ("to-bob", "bob@example.com", now + Duration::days(1), &shop),
        ("to-ada", "ada@example.com", now + Duration::days(1), &shop),
        (
            "stale",
            "bob@example.com",
            now - Duration::seconds(1),
            &blog.id,
        ),
    ] {
        let invitation = NewInvitation {
            project_id: project.clone(),
            email: email.into(),
            token_hash: token.into(),
            invited_by: ada.id.clone(),
            expires_at,
        };
        store
            .create_invitation(invitation, 100)
            .await
            .unwrap()
            .expect("under the cap");
    }
    let join = |token: &'static str, account: uj_domain::ids::AccountId| {
        let store = store.clone();
        async move {
            store
                .join_by_invitation(token, &account, now)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        join("to-ada", bob.id.clone()).await,
        None,
        "another email's"
    );
    assert_eq!(join("stale", bob.id.clone()).await, None, "expired");
    assert_eq!(store.role(&bob.id, &shop).await.unwrap(), None);
    assert_eq!(join("to-bob", bob.id.clone()).await, Some(shop.clone()));
    assert_eq!(
        store.role(&bob.id, &shop).await.unwrap(),
        Some(Role::Member)
    );
    assert_eq!(join("to-bob", bob.id.clone()).await, None, "once");
    assert_eq!(join("to-ada", ada.id.clone()).await, Some(shop.clone()));
    assert_eq!(store.role(&ada.id, &shop).await.unwrap(), Some(Role::Owner));
}

async fn rotating_the_public_key_retires_the_old_one(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let old = store.project(&shop).await.unwrap().unwrap().public_key;
    assert_eq!(
        store.project_by_public_key(&old).await.unwrap().unwrap().id,
        shop
    );

    let rotated = store
        .set_public_key(&shop, &old, "uj_pk_new")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.public_key, "uj_pk_new");
    assert!(store.project_by_public_key(&old).await.unwrap().is_none());
    assert_eq!(
        store
            .project_by_public_key("uj_pk_new")
            .await
            .unwrap()
            .unwrap()
            .id,
        shop
    );
    // A rotation from a key the project no longer has (another rotation came first) writes
    // nothing: the key it would replace is not the one it read.
    assert!(store
        .set_public_key(&shop, &old, "uj_pk_lost")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.project(&shop).await.unwrap().unwrap().public_key,
        "uj_pk_new"
    );
    let unknown = ProjectId::from_string("prj_missing");
    assert!(store
        .set_public_key(&unknown, &old, "uj_pk_x")
        .await
        .unwrap()
        .is_none());
}

async fn secret_keys_are_found_by_hash_until_revoked(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let key = store
        .create_secret_key(
            &shop,
            "CI",
            "uj_live_abc123",
            "hash-1",
            "ada@example.com",
            10,
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.name, "CI");
    assert_eq!(key.prefix, "uj_live_abc123");
    assert_eq!(key.created_by.as_deref(), Some("ada@example.com"));
    assert!(key.revoked_at.is_none() && key.last_used_at.is_none());

    let found = store.active_secret_key("hash-1").await.unwrap().unwrap();
    assert_eq!(
        (found.id.clone(), found.project_id.clone()),
        (key.id.clone(), shop.clone())
    );
    assert_eq!(found.created_by, key.created_by);
    assert!(store.active_secret_key("hash-2").await.unwrap().is_none());

    store.touch_secret_key(&key.id).await.unwrap();
    let touched = store.active_secret_key("hash-1").await.unwrap().unwrap();
    assert!(touched.last_used_at.is_some());

    let revoked = store
        .revoke_secret_key(&shop, &key.id)
        .await
        .unwrap()
        .unwrap();
    let revoked_at = revoked.revoked_at.expect("revoked");
    assert!(store.active_secret_key("hash-1").await.unwrap().is_none());
    // Revoking again keeps the first revocation time.
    let again = store
        .revoke_secret_key(&shop, &key.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(revoked_at));
}

async fn secret_keys_of_one_project_are_invisible_to_another(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let key = store
        .create_secret_key(
            &shop,
            "CI",
            "uj_live_abc123",
            "hash-1",
            "ada@example.com",
            10,
            None,
        )
        .await
        .unwrap()
        .unwrap();

    assert!(store
        .revoke_secret_key(&blog, &key.id)
        .await
        .unwrap()
        .is_none());
    assert!(store.active_secret_key("hash-1").await.unwrap().is_some());
    let listed = store.secret_keys(&blog, &first_page(10)).await.unwrap();
    assert!(listed.items.is_empty());
    let missing = SecretKeyId::from_string("key_missing");
    assert!(store
        .revoke_secret_key(&shop, &missing)
        .await
        .unwrap()
        .is_none());
}

async fn secret_key_listing_pages_in_creation_order(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let mut created = Vec::new();
    for i in 0..5 {
        let key = store
            .create_secret_key(
                &shop,
                &format!("key {i}"),
                "uj_live_x",
                &format!("hash-{i}"),
                "ada@example.com",
                10,
                None,
            )
            .await
            .unwrap()
            .unwrap();
        created.push(key.id);
    }
    let first = store.secret_keys(&shop, &first_page(2)).await.unwrap();
    assert_eq!(
        first.items.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        created[..2]
    );
    assert!(first.has_more);
    let rest = store
        .secret_keys(
            &shop,
            &PageRequest {
                limit: 10,
                starting_after: Some(created[1].to_string()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        created[2..]
    );
    assert!(!rest.has_more);
    let names: Vec<_> = rest.items.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["key 2", "key 3", "key 4"]);
}

async fn sessions_expire_and_can_be_deleted(store: Arc<dyn Store>, _: &TestDatabase) {
    let (ada, _) = owner_with_project(&store, "ada@example.com").await;
    let now = Utc::now();
    store
        .create_session(
            "live",
            &ada.id,
            now + Duration::hours(1),
            &ada.password_hash,
        )
        .await
        .unwrap();
    store
        .create_session(
            "old",
            &ada.id,
            now - Duration::seconds(1),
            &ada.password_hash,
        )
        .await
        .unwrap();

    let found = store.session_account("live", now).await.unwrap().unwrap();
    assert_eq!(found.id, ada.id);
    assert!(store.session_account("old", now).await.unwrap().is_none());
    assert!(store
        .session_account("live", now + Duration::hours(2))
        .await
        .unwrap()
        .is_none());
    // Sub-second precision counts: a session expiring half a second from now is live.
    store
        .create_session(
            "short",
            &ada.id,
            now + Duration::milliseconds(500),
            &ada.password_hash,
        )
        .await
        .unwrap();
    assert!(store.session_account("short", now).await.unwrap().is_some());
    assert!(store
        .session_account("short", now + Duration::milliseconds(501))
        .await
        .unwrap()
        .is_none());

    // Expired from its exact expiry time, to the microsecond (found by the mutation audit).
    let edge = uj_now() + Duration::hours(1);
    store
        .create_session("edge", &ada.id, edge, &ada.password_hash)
        .await
        .unwrap();
    let just_before = edge - Duration::microseconds(1);
    assert!(store
        .session_account("edge", just_before)
        .await
        .unwrap()
        .is_some());
    assert!(store.session_account("edge", edge).await.unwrap().is_none());
    store.delete_session("edge").await.unwrap();

    assert_eq!(store.delete_expired_sessions(now).await.unwrap(), 1);
    store.delete_session("live").await.unwrap();
    assert!(store.session_account("live", now).await.unwrap().is_none());

    // An account keeps its newest sessions only; another account's stay.
    let (bob, _) = owner_with_project(&store, "bob@example.com").await;
    let later = now + Duration::hours(1);
    store
        .create_session("bob's", &bob.id, later, &bob.password_hash)
        .await
        .unwrap();
    let kept = uj_storage::MAX_SESSIONS_PER_ACCOUNT as usize;
    for n in 0..kept + 5 {
        let token = format!("ada-{n}");
        store
            .create_session(&token, &ada.id, later, &ada.password_hash)
            .await
            .unwrap();
    }
    for n in 0..kept + 5 {
        let live = store
            .session_account(&format!("ada-{n}"), now)
            .await
            .unwrap()
            .is_some();
        assert_eq!(live, n >= 5, "session {n}");
    }
    assert!(store.session_account("bob's", now).await.unwrap().is_some());
}

/// Keys created at once cannot pass the cap on a project's unrevoked keys; revoked ones
/// and another project's do not count.
async fn unrevoked_secret_keys_are_capped_under_concurrency(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let create = |project: &ProjectId, n: usize| {
        let (store, project) = (store.clone(), project.clone());
        tokio::spawn(async move {
            store
                .create_secret_key(
                    &project,
                    "k",
                    "uj_live_x",
                    &format!("{project}-{n}"),
                    "ops",
                    5,
                    None,
                )
                .await
                .unwrap()
        })
    };
    let revoked = create(&shop, 0).await.unwrap().expect("under the cap");
    store.revoke_secret_key(&shop, &revoked.id).await.unwrap();
    let attempts: Vec<_> = (1..=20).map(|n| create(&shop, n)).collect();
    let mut created = 0;
    for attempt in attempts {
        created += usize::from(attempt.await.unwrap().is_some());
    }
    assert_eq!(created, 5);
    let page = PageRequest {
        limit: 100,
        starting_after: None,
    };
    let keys = store.secret_keys(&shop, &page).await.unwrap().items;
    assert_eq!(keys.len(), 6, "nothing written for a refused key");
    assert!(create(&blog, 1).await.unwrap().is_some());
    let one = keys.iter().find(|key| key.revoked_at.is_none()).unwrap();
    store.revoke_secret_key(&shop, &one.id).await.unwrap();
    assert!(create(&shop, 21).await.unwrap().is_some());
}

/// A dashboard form's key (`once`) sent with creates at once makes one project (its record
/// the new project's, found among the account's projects) and one secret key (its record the
/// project's); the others make nothing. Another account's same key is its own.
async fn a_form_sent_at_once_makes_one_project_and_one_secret_key(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (ada, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_domain::now();
    let new_project = |account: &uj_domain::ids::AccountId, n: usize| {
        let (store, account) = (store.clone(), account.clone());
        tokio::spawn(async move {
            let id = ProjectId::generate();
            let once = answer_record(&id, "form p", "fp-project", id.as_str(), now);
            let key = format!("uj_pk_once_{account}_{n}");
            store
                .create_project(&account, "Blog", &key, 100, Some(&once))
                .await
                .unwrap()
        })
    };
    let attempts: Vec<_> = (0..10).map(|n| new_project(&ada.id, n)).collect();
    let mut made = Vec::new();
    for attempt in attempts {
        made.extend(attempt.await.unwrap());
    }
    assert_eq!(made.len(), 1, "one project");
    assert_eq!(store.memberships(&ada.id).await.unwrap().len(), 2);
    let found = store
        .account_idempotency_record(&ada.id, "form p", now)
        .await
        .unwrap()
        .expect("kept in the project it made");
    assert_eq!(
        (found.project_id.as_str(), found.resource_id.as_str()),
        (made[0].id.as_str(), made[0].id.as_str())
    );
    assert!(store
        .account_idempotency_record(&ada.id, "form p", now + Duration::hours(25))
        .await
        .unwrap()
        .is_none());
    let (bob, _) = owner_with_project(&store, "bob@example.com").await;
    assert!(store
        .account_idempotency_record(&bob.id, "form p", now)
        .await
        .unwrap()
        .is_none());
    assert!(new_project(&bob.id, 0).await.unwrap().is_some());

    let new_key = |n: usize| {
        let (store, shop) = (store.clone(), shop.clone());
        tokio::spawn(async move {
            let id = SecretKeyId::generate();
            let once = answer_record(&shop, "form k", "fp-key", id.as_str(), now);
            let made = store
                .create_secret_key(
                    &shop,
                    "k",
                    "uj_live_x",
                    &format!("once-{n}"),
                    "ops",
                    100,
                    Some(&once),
                )
                .await
                .unwrap();
            made.map(|key| (key, id))
        })
    };
    let attempts: Vec<_> = (0..10).map(new_key).collect();
    let mut made = Vec::new();
    for attempt in attempts {
        made.extend(attempt.await.unwrap());
    }
    assert_eq!(made.len(), 1, "one key");
    let (key, named) = &made[0];
    assert_eq!(&key.id, named, "the key the record names");
    let listed = store.secret_keys(&shop, &first_page(10)).await.unwrap();
    assert_eq!(listed.items.len(), 1);
}

/// A cap counted in the creating transaction: requests at once cannot pass it (a probe's
/// 200 invitations at once left 130 open under a cap of 100, the newest 100 listed).
async fn open_invitations_and_owned_projects_are_capped_under_concurrency(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (ada, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = Utc::now();
    let invite = |email: String, expires_at| NewInvitation {
        project_id: shop.clone(),
        email,
        token_hash: uj_domain::ids::InvitationId::generate().to_string(),
        invited_by: ada.id.clone(),
        expires_at,
    };
    // An expired one does not count.
    store
        .create_invitation(
            invite("old@example.com".into(), now - Duration::seconds(1)),
            5,
        )
        .await
        .unwrap()
        .expect("under the cap");
    let attempts: Vec<_> = (0..20)
        .map(|n| {
            let store = store.clone();
            let invitation = invite(format!("p{n}@example.com"), now + Duration::days(7));
            tokio::spawn(async move { store.create_invitation(invitation, 5).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        created += usize::from(attempt.await.unwrap().is_some());
    }
    assert_eq!(created, 5);
    let open = store.open_invitations(&shop, now).await.unwrap();
    assert_eq!(open.len(), 5);
    // At the cap, inviting an address invited before replaces its invitation.
    let again = invite(open[0].email.clone(), now + Duration::days(7));
    let replaced = store.create_invitation(again, 5).await.unwrap();
    assert!(replaced.is_some());
    assert_eq!(store.open_invitations(&shop, now).await.unwrap().len(), 5);
    let other = invite("new@example.com".into(), now + Duration::days(7));
    assert!(store.create_invitation(other, 5).await.unwrap().is_none());

    // Ada owns one project; three more at most, whatever comes at once.
    let attempts: Vec<_> = (0..12)
        .map(|n| {
            let store = store.clone();
            let ada = ada.id.clone();
            tokio::spawn(async move {
                let key = format!("uj_pk_cap_{n}");
                store
                    .create_project(&ada, "More", &key, 4, None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut made = 0;
    for attempt in attempts {
        made += usize::from(attempt.await.unwrap().is_some());
    }
    assert_eq!(made, 3);
    assert_eq!(store.memberships(&ada.id).await.unwrap().len(), 4);
    // Another account's count is its own.
    let (bob, _) = owner_with_project(&store, "bob@example.com").await;
    let bobs = store
        .create_project(&bob.id, "Bob's", "uj_pk_cap_bob", 4, None)
        .await;
    assert!(bobs.unwrap().is_some());
}

async fn invitations_are_accepted_once_and_expire(store: Arc<dyn Store>, _: &TestDatabase) {
    let (ada, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = Utc::now();
    let invite = |token: &str, email: &str, expires_at| NewInvitation {
        project_id: shop.clone(),
        email: email.into(),
        token_hash: token.into(),
        invited_by: ada.id.clone(),
        expires_at,
    };
    // A second invitation to one email replaces the first: its link stops working.
    let first = store
        .create_invitation(
            invite("first", "bob@example.com", now + Duration::days(7)),
            100,
        )
        .await
        .unwrap()
        .expect("under the cap");
    let created = store
        .create_invitation(
            invite("tok", "bob@example.com", now + Duration::days(7)),
            100,
        )
        .await
        .unwrap()
        .expect("under the cap");
    assert!(store.open_invitation("first", now).await.unwrap().is_none());
    store
        .create_invitation(
            invite("stale", "carol@example.com", now - Duration::seconds(1)),
            100,
        )
        .await
        .unwrap()
        .expect("under the cap");
    let dave = store
        .create_invitation(
            invite("dave", "dave@example.com", now + Duration::days(7)),
            100,
        )
        .await
        .unwrap()
        .expect("under the cap");
    // Open ones are listed (not the expired one), and one can be withdrawn.
    let listed: Vec<_> = store
        .open_invitations(&shop, now)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.email)
        .collect();
    assert_eq!(listed, ["dave@example.com", "bob@example.com"]);
    assert!(
        !store
            .withdraw_invitation(&shop, first.id.as_str())
            .await
            .unwrap(),
        "gone already"
    );
    assert!(store
        .withdraw_invitation(&shop, dave.id.as_str())
        .await
        .unwrap());
    assert!(store.open_invitation("dave", now).await.unwrap().is_none());
    assert_eq!(created.email, "bob@example.com");

    let open = store.open_invitation("tok", now).await.unwrap().unwrap();
    assert_eq!(open.id, created.id);
    assert!(store.open_invitation("stale", now).await.unwrap().is_none());
    assert!(store
        .accept_invitation("stale", "$argon2id$fake", now)
        .await
        .unwrap()
        .is_none());

    let bob = store
        .accept_invitation("tok", "$argon2id$bob", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.email, "bob@example.com");
    assert_eq!(
        store.role(&bob.id, &shop).await.unwrap(),
        Some(Role::Member)
    );
    assert!(store.open_invitation("tok", now).await.unwrap().is_none());
    // Nor listed once accepted (found by the mutation audit).
    assert!(store.open_invitations(&shop, now).await.unwrap().is_empty());
    assert!(store
        .accept_invitation("tok", "$argon2id$again", now)
        .await
        .unwrap()
        .is_none());
}

async fn stored_times_read_back_exactly(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let key = store
        .create_secret_key(&shop, "CI", "uj_live_x", "hash", "ops", 10, None)
        .await
        .unwrap()
        .unwrap();
    let read = store.active_secret_key("hash").await.unwrap().unwrap();
    assert_eq!(read.created_at, key.created_at);
    let age = Utc::now() - read.created_at;
    assert!(
        age >= Duration::zero() && age < Duration::seconds(30),
        "{age}"
    );
}

async fn concurrent_writes_all_succeed(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let writers = (0..40).map(|i| {
        let store = store.clone();
        let shop = shop.clone();
        tokio::spawn(async move {
            let key = store
                .create_secret_key(&shop, "k", "uj_live_x", &format!("h{i}"), "ops", 100, None)
                .await?
                .expect("room for every key");
            store.revoke_secret_key(&shop, &key.id).await?;
            store.touch_secret_key(&key.id).await
        })
    });
    for writer in writers {
        writer
            .await
            .unwrap()
            .expect("no write fails under concurrency");
    }
    let all = store.secret_keys(&shop, &first_page(100)).await.unwrap();
    assert_eq!(all.items.len(), 40);
    assert!(all.items.iter().all(|k| k.revoked_at.is_some()));
}

async fn migrations_run_again_without_harm(store: Arc<dyn Store>, db: &TestDatabase) {
    let (ada, _) = owner_with_project(&store, "ada@example.com").await;
    let reopened = uj_storage::connect(&db.url).await.expect("reopen");
    assert_eq!(reopened.memberships(&ada.id).await.unwrap().len(), 1);
}

/// A rolling upgrade: processes of the older release keep serving while a newer one migrates.
/// A column added to every table must not break the statements they prepared before
/// (PostgreSQL refuses a prepared `SELECT *` whose result changed: "cached plan must not
/// change result type").
async fn statements_prepared_before_a_migration_adds_columns_still_run(
    store: Arc<dyn Store>,
    db: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    store
        .save_mixpanel_connection(&connection(&shop, "10"), "v1.x")
        .await
        .unwrap();
    let (study, rule) = study_with_event_rule(&store, &shop, now).await;
    let record = uj_domain::idempotency::IdempotencyRecord {
        project_id: shop.clone(),
        key: "create-once".into(),
        fingerprint: "f".into(),
        resource_id: study.id.to_string(),
        status: 201,
        body: b"{}".to_vec(),
        created_at: now,
    };
    let mut second = study.clone();
    second.id = uj_domain::ids::StudyId::generate();
    second.public_code = "stats7Qx2q".into();
    assert!(store.create_study(&second, Some(&record)).await.unwrap());

    // Every statement that reads or returns whole rows, run by the older release's process.
    let run_each = |round: u32| {
        let (store, shop, study, rule) = (store.clone(), shop.clone(), study.clone(), rule.clone());
        async move {
            let at = uj_now();
            assert!(store.mixpanel_connection(&shop).await.unwrap().is_some());
            assert!(!store.mixpanel_connections().await.unwrap().is_empty());
            assert!(store.study(&shop, &study.id).await.unwrap().is_some());
            assert_eq!(
                store
                    .studies(&shop, &first_page(10))
                    .await
                    .unwrap()
                    .items
                    .len(),
                2
            );
            assert!(store
                .idempotency_record(&shop, "create-once", at)
                .await
                .unwrap()
                .is_some());
            assert!(store.launch_rule(&shop, &rule.id).await.unwrap().is_some());
            let rules = store
                .launch_rules_of_study(&shop, &study.id, &first_page(10))
                .await
                .unwrap();
            assert_eq!(rules.items.len(), 1);
            assert_eq!(store.live_launch_rules(&shop).await.unwrap().len(), 1);

            let user = format!("user-{round}");
            let accepted = store
                .issue_invite(&event_invite(&rule, &format!("a{round}"), &user, at), at)
                .await
                .unwrap();
            let dismissed = store
                .issue_invite(
                    &event_invite(&rule, &format!("d{round}"), &format!("other-{round}"), at),
                    at,
                )
                .await
                .unwrap();
            let newest = store
                .rule_invites_page(&shop, &rule.id, &first_page(1))
                .await
                .unwrap();
            let after = PageRequest {
                limit: 1,
                starting_after: Some(newest.items[0].code.clone()),
            };
            assert_eq!(
                store
                    .rule_invites_page(&shop, &rule.id, &after)
                    .await
                    .unwrap()
                    .items
                    .len(),
                1
            );
            let page = store
                .user_invites_page(&shop, &user, &first_page(5))
                .await
                .unwrap();
            assert_eq!(page.items.len(), 1);
            assert_eq!(
                store
                    .user_history(&shop, &user, WithMemberships::All)
                    .await
                    .unwrap()
                    .0
                    .len(),
                1
            );
            assert!(store.invite(&shop, &accepted.code).await.unwrap().is_some());
            assert!(store
                .invite_by_code(&accepted.code)
                .await
                .unwrap()
                .is_some());
            assert!(store
                .study_by_public_code(&study.public_code)
                .await
                .unwrap()
                .is_some());
            assert!(matches!(
                store
                    .accept_invite(&shop, &accepted.code, at)
                    .await
                    .unwrap(),
                Some(uj_domain::invites::AcceptOutcome::Accepted(_))
            ));
            let gone = store
                .dismiss_invite(&shop, &dismissed.code, at)
                .await
                .unwrap();
            assert_eq!(
                gone.map(|i| i.state),
                Some(uj_domain::invites::InviteState::Dismissed)
            );

            let audience = store
                .upsert_audience(&shop, "1", "A", "", at)
                .await
                .unwrap();
            assert_eq!(
                store
                    .audiences(&shop, &first_page(10))
                    .await
                    .unwrap()
                    .items
                    .len(),
                1
            );
            assert!(store.audience(&shop, &audience.id).await.unwrap().is_some());
        }
    };
    // Twice, so that the statements are prepared on the connections the pool keeps.
    run_each(1).await;
    run_each(2).await;

    // The same statements on either database's pool.
    macro_rules! add_a_column_to_every_table {
        ($pool:expr, $tables:expr) => {{
            let pool = $pool;
            let tables: Vec<String> = sqlx::query_scalar($tables).fetch_all(&pool).await.unwrap();
            for table in tables {
                let alter = format!("ALTER TABLE \"{table}\" ADD COLUMN added_later INTEGER");
                sqlx::query(&alter).execute(&pool).await.unwrap();
            }
        }};
    }
    if db.url.starts_with("postgres") {
        add_a_column_to_every_table!(
            sqlx::PgPool::connect(&db.url).await.unwrap(),
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        );
    } else {
        add_a_column_to_every_table!(
            sqlx::SqlitePool::connect(&db.url).await.unwrap(),
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        );
    }
    run_each(3).await;
}

#[tokio::test]
async fn a_closed_sqlite_store_reports_unavailable() {
    let db = TestDatabase::sqlite();
    // A server's store answers most SDK reads from its key filter: closed, those fail too.
    let store = uj_storage::SqliteStore::connect_as_server(&db.url)
        .await
        .unwrap();
    store.close().await;
    let error = store.ping().await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    // The SDK path's inline reads too.
    let project = ProjectId::generate();
    let error = store.invites_of_user(&project, "ref").await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let error = store
        .audience_memberships(&project, "ref")
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

/// The file name is as sqlx reads the URL (percent-decoded, options after `?`): the SDK's
/// inline reads open that same file.
#[tokio::test]
async fn the_sdk_reads_open_the_file_the_url_names() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/my%20data.db?mode=rwc", dir.path().display());
    let store: Arc<dyn Store> = Arc::new(
        uj_storage::SqliteStore::connect_as_server(&url)
            .await
            .unwrap(),
    );
    assert!(dir.path().join("my data.db").exists());
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    store
        .add_audience_members(&audience, &[synced("a", Some("app-a"))], t0)
        .await
        .unwrap();
    assert_eq!(
        store
            .audience_memberships(&shop, "app-a")
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .invites_of_user(&shop, "app-a")
        .await
        .unwrap()
        .is_empty());
}

/// WAL checkpoints run off the writer's path (`sqlite_checkpoint.rs`): the writer's own
/// automatic checkpoint waits for 10,000 pages (40 MB), yet the WAL stays small under a
/// steady trickle of writes because another thread checkpoints it every 100 ms.
#[tokio::test]
async fn the_wal_is_checkpointed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/uj.db", dir.path().display());
    let store: Arc<dyn Store> = Arc::new(uj_storage::SqliteStore::connect(&url).await.unwrap());
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    let wal = dir.path().join("uj.db-wal");
    let mut largest = 0;
    for batch in 0..30 {
        let ids: Vec<String> = (0..1000).map(|n| format!("member-{batch}-{n}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        store
            .add_audience_members(&audience, &members(&ids), t0)
            .await
            .unwrap();
        largest = largest.max(std::fs::metadata(&wal).unwrap().len());
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    // 30,000 members wrote well over 4 MB to the WAL in all.
    assert!(
        largest < 4 * 1024 * 1024,
        "the WAL grew to {largest} bytes: nobody checkpointed it"
    );
}

/// Readiness is this server's schema answering, not any database: one dropped and made
/// anew, or restored from an older backup under a running server, is not ready (found by
/// the observability probe: `/readyz` said ready while every request failed).
async fn a_database_without_this_servers_schema_is_not_ready(
    store: Arc<dyn Store>,
    db: &TestDatabase,
) {
    store.ping().await.unwrap();
    let undo =
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)";
    if db.url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query(undo).execute(&pool).await.unwrap();
    } else {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::query(undo).execute(&pool).await.unwrap();
    }
    let error = store.ping().await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(
        std::error::Error::source(&error)
            .unwrap()
            .to_string()
            .contains("schema"),
        "{error:?}"
    );
}

/// A database that refuses writes (a standby, or one set read-only) is not ready, and is
/// again once it takes them.
#[tokio::test]
async fn a_read_only_postgres_is_not_ready() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let store = uj_storage::PgStore::connect(&db.url).await.unwrap();
    store.ping().await.unwrap();
    let name = db.url.rsplit_once('/').unwrap().1.to_owned();
    let admin = sqlx::PgPool::connect(&db.url.replace(&name, "postgres"))
        .await
        .unwrap();
    let set = |on: bool| {
        let admin = admin.clone();
        let name = name.clone();
        async move {
            sqlx::query(&format!(
                "ALTER DATABASE {name} SET default_transaction_read_only = {on}"
            ))
            .execute(&admin)
            .await
            .unwrap();
            // Sessions read the setting when they start: the store's reconnect.
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&name)
            .execute(&admin)
            .await
            .unwrap();
        }
    };
    set(true).await;
    let mut refused = None;
    for _ in 0..20 {
        match store.ping().await {
            Err(StoreError::Unavailable(why)) if why.to_string().contains("refuses writes") => {
                refused = Some(why);
                break;
            }
            // The terminated connections' errors, before the pool reconnects.
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    assert!(refused.is_some(), "read-only is not ready");
    set(false).await;
    let mut ready = false;
    for _ in 0..20 {
        if store.ping().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "ready again once it takes writes");
}

#[tokio::test]
async fn a_closed_postgres_store_reports_unavailable() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let store = uj_storage::PgStore::connect(&db.url).await.unwrap();
    store.close().await;
    let error = store.ping().await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

/// A server that cannot reach PostgreSQL at startup says why (the pool's own error is only
/// "pool timed out while waiting for an open connection"), without the URL's password.
#[tokio::test]
async fn an_unreachable_postgres_says_why() {
    let error = uj_storage::PgStore::connect("postgres://app:hunter2@127.0.0.1:1/uj")
        .await
        .unwrap_err();
    // As the server prints it: the error and its causes.
    let mut said = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(error) = cause {
        said += &format!(": {error}");
        cause = error.source();
    }
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(said.contains("refused"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
}

/// PostgreSQL refuses a NUL in text (SQLSTATE 22021). That is the caller's bug, not a
/// database to retry: read as a SQLite code (22021 & 0xff is SQLITE_BUSY) it was
/// "unavailable", and every API answered such input 503.
#[tokio::test]
async fn a_postgres_error_is_not_read_as_a_sqlite_code() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let store = uj_storage::PgStore::connect(&db.url).await.unwrap();
    let error = store.invite_by_code("a\0b").await.unwrap_err();
    assert!(matches!(error, StoreError::Database(_)), "{error:?}");
}

/// A statement PostgreSQL gives up on, past the database's `lock_timeout` or
/// `statement_timeout` (a table locked by a migration or an operator), is the database being
/// busy, for the caller to retry: it was read as our bug (500s on every API; found by the
/// PostgreSQL probe).
#[tokio::test]
async fn a_postgres_timeout_is_the_database_being_busy() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    // Migrated first, so the settings below hold for the store's own connections alone.
    let store = uj_storage::connect(&db.url).await.unwrap();
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut locker = admin.begin().await.unwrap();
    sqlx::query("LOCK TABLE studies IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .unwrap();
    let name = db.url.rsplit('/').next().unwrap();
    for setting in ["lock_timeout", "statement_timeout"] {
        sqlx::query(&format!("ALTER DATABASE {name} SET {setting} = '100ms'"))
            .execute(&admin)
            .await
            .unwrap();
        // Fresh connections, which take the setting.
        let store = uj_storage::connect(&db.url).await.unwrap();
        let error = store.studies(&shop, &first_page(10)).await.unwrap_err();
        assert!(
            matches!(error, StoreError::Unavailable(_)),
            "{setting}: {error:?}"
        );
        sqlx::query(&format!("ALTER DATABASE {name} RESET {setting}"))
            .execute(&admin)
            .await
            .unwrap();
    }
    locker.rollback().await.unwrap();
}

/// The hourly expiry of stale staging takes each audience's lock, as a page does, and
/// looks again under it: a page of the session arriving meanwhile keeps the session. It
/// discarded the session under such a page, which then left the members it wrote in place.
#[tokio::test]
async fn stale_staging_expiry_waits_for_a_page_in_flight() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let store = uj_storage::connect(&db.url).await.unwrap();
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now() - Duration::days(2);
    let audience = audience_a(&store, &shop, t0).await;
    receive(&store, &shop, &audience, "s", 1, 3, &members(&["x"]), t0).await;

    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut page = pool.begin().await.unwrap();
    sqlx::query("UPDATE audiences SET member_count = member_count WHERE id = $1")
        .bind(audience.as_str())
        .execute(&mut *page)
        .await
        .unwrap();
    let expiry = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .delete_stale_staging(uj_now() - Duration::hours(24))
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !expiry.is_finished(),
        "the expiry waits for the page's lock"
    );
    sqlx::query(
        "INSERT INTO sync_staging (audience_id, session_id, page, total_pages, received_at)
         VALUES ($1, 's', 2, 3, $2)",
    )
    .bind(audience.as_str())
    .bind(Utc::now())
    .execute(&mut *page)
    .await
    .unwrap();
    page.commit().await.unwrap();
    assert_eq!(expiry.await.unwrap().unwrap(), 0);
    let staged = store.staged_session(&audience).await.unwrap().unwrap();
    assert_eq!(staged.missing_pages(100), vec![3]);
}

fn connection(project: &ProjectId, mixpanel_project: &str) -> MixpanelConnection {
    let now = uj_now();
    MixpanelConnection {
        project_id: project.clone(),
        username: "acme.mp-service-account".into(),
        mixpanel_project_id: mixpanel_project.into(),
        mixpanel_project_name: "Acme Web".into(),
        organization: "Acme Inc".into(),
        region: "eu".into(),
        timezone: "Europe/Berlin".into(),
        workspace_id: Some("3190001".into()),
        status: ConnectionStatus::Connected,
        status_detail: None,
        connected_at: now,
        last_verified_at: now,
    }
}

/// Now at the microsecond precision both databases keep.
/// Connects the project to Mixpanel and records `names` as read through that connection.
async fn connected_with_names(
    store: &Arc<dyn Store>,
    project: &ProjectId,
    names: &[String],
    seen_at: chrono::DateTime<Utc>,
) {
    let connected = connection(project, "2");
    store
        .save_mixpanel_connection(&connected, "v1.x")
        .await
        .unwrap();
    assert!(store
        .record_mixpanel_event_names(project, connected.connected_at, names, seen_at)
        .await
        .unwrap());
}

fn uj_now() -> chrono::DateTime<Utc> {
    use chrono::DurationRound;
    Utc::now()
        .duration_trunc(Duration::microseconds(1))
        .unwrap()
}

async fn a_mixpanel_connection_is_saved_replaced_checked_and_deleted(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    assert!(store.mixpanel_connection(&shop).await.unwrap().is_none());

    let first = connection(&shop, "111");
    store
        .save_mixpanel_connection(&first, "v1.cipher-one")
        .await
        .unwrap();
    let stored = store.mixpanel_connection(&shop).await.unwrap().unwrap();
    assert_eq!(stored.connection, first);
    assert_eq!(stored.secret_ciphertext, "v1.cipher-one");
    assert!(
        store.mixpanel_connection(&blog).await.unwrap().is_none(),
        "other projects see nothing"
    );

    // Another Mixpanel project takes a disconnect first: checked in the write, as two
    // connects or picks may race.
    let elsewhere = connection(&shop, "222");
    assert!(!store
        .save_mixpanel_connection(&elsewhere, "v1.cipher-two")
        .await
        .unwrap());
    let stored = store.mixpanel_connection(&shop).await.unwrap().unwrap();
    assert_eq!(
        (stored.connection, stored.secret_ciphertext.as_str()),
        (first.clone(), "v1.cipher-one")
    );
    let replaced = MixpanelConnection {
        username: "other.mp-service-account".into(),
        ..connection(&shop, "111")
    };
    assert!(store
        .save_mixpanel_connection(&replaced, "v1.cipher-two")
        .await
        .unwrap());
    let stored = store.mixpanel_connection(&shop).await.unwrap().unwrap();
    assert_eq!(
        (stored.connection, stored.secret_ciphertext.as_str()),
        (replaced.clone(), "v1.cipher-two")
    );
    assert_eq!(store.mixpanel_connections().await.unwrap().len(), 1);

    let later = uj_now() + Duration::minutes(5);
    // A check of the connection replaced meanwhile records nothing.
    assert!(!store
        .set_mixpanel_connection_status(
            &shop,
            replaced.connected_at - Duration::seconds(1),
            ConnectionStatus::CredentialsRejected,
            Some("401"),
            Some(later)
        )
        .await
        .unwrap());
    assert_eq!(
        store
            .mixpanel_connection(&shop)
            .await
            .unwrap()
            .unwrap()
            .connection
            .status,
        ConnectionStatus::Connected
    );
    assert!(store
        .set_mixpanel_connection_status(
            &shop,
            replaced.connected_at,
            ConnectionStatus::CredentialsRejected,
            Some("401"),
            Some(later)
        )
        .await
        .unwrap());
    let stored = store
        .mixpanel_connection(&shop)
        .await
        .unwrap()
        .unwrap()
        .connection;
    assert_eq!(
        (stored.status, stored.status_detail.as_deref()),
        (ConnectionStatus::CredentialsRejected, Some("401"))
    );
    assert_eq!(stored.last_verified_at, later);
    // Unreachable keeps the last time Mixpanel did answer.
    store
        .set_mixpanel_connection_status(
            &shop,
            replaced.connected_at,
            ConnectionStatus::Unreachable,
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .mixpanel_connection(&shop)
            .await
            .unwrap()
            .unwrap()
            .connection
            .last_verified_at,
        later
    );
    assert!(!store
        .set_mixpanel_connection_status(
            &blog,
            replaced.connected_at,
            ConnectionStatus::Connected,
            None,
            None,
        )
        .await
        .unwrap());

    assert!(!store.delete_mixpanel_connection(&blog).await.unwrap());
    assert!(store.delete_mixpanel_connection(&shop).await.unwrap());
    assert!(store.mixpanel_connection(&shop).await.unwrap().is_none());
}

/// What was read through a connection goes with it: a new connection (another Mixpanel
/// project, say) or none at all shows neither the old project's cohorts nor its event
/// names; names the app sent stay in the catalog. A read through the old connection that
/// ends after it was replaced or removed writes nothing.
async fn a_new_or_removed_connection_forgets_what_the_old_one_read(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    // Whether the cohorts and the event names were written.
    let read_through = |store: Arc<dyn Store>, shop: ProjectId, connected_at| async move {
        let cohort = MixpanelCohort {
            cohort_id: "7".into(),
            name: "Buyers".into(),
            description: String::new(),
            member_count: 3,
            is_visible: true,
            fetched_at: now,
        };
        let cohorts = store
            .replace_mixpanel_cohorts(&shop, connected_at, now, &[cohort])
            .await
            .unwrap();
        let names = ["Order Completed".to_owned(), "App Opened".to_owned()];
        let names = store
            .record_mixpanel_event_names(&shop, connected_at, &names, now)
            .await
            .unwrap();
        (cohorts, names)
    };
    let first = connection(&shop, "111");
    store
        .save_mixpanel_connection(&first, "v1.one")
        .await
        .unwrap();
    assert_eq!(
        read_through(store.clone(), shop.clone(), first.connected_at).await,
        (true, true)
    );
    let sent = uj_storage::AppEventCount {
        project: shop.clone(),
        name: "App Opened".into(),
        count: 2,
        first: now,
        last: now,
    };
    store.record_app_events(&[sent]).await.unwrap();
    let forgotten = |store: Arc<dyn Store>, shop: ProjectId| async move {
        assert!(store.mixpanel_cohorts(&shop).await.unwrap().is_empty());
        let catalog = store.event_catalog(&shop).await.unwrap();
        let kept: Vec<(&str, bool, i64)> = catalog
            .iter()
            .map(|e| {
                (
                    e.name.as_str(),
                    e.seen_in_mixpanel_at.is_some(),
                    e.app_count,
                )
            })
            .collect();
        assert_eq!(kept, [("App Opened", false, 2)]);
    };
    let second = MixpanelConnection {
        connected_at: first.connected_at + Duration::seconds(1),
        ..connection(&shop, "111")
    };
    store
        .save_mixpanel_connection(&second, "v1.two")
        .await
        .unwrap();
    forgotten(store.clone(), shop.clone()).await;
    assert_eq!(
        read_through(store.clone(), shop.clone(), first.connected_at).await,
        (false, false),
        "a read through the replaced connection"
    );
    forgotten(store.clone(), shop.clone()).await;
    assert_eq!(
        read_through(store.clone(), shop.clone(), second.connected_at).await,
        (true, true)
    );
    assert!(store.delete_mixpanel_connection(&shop).await.unwrap());
    forgotten(store.clone(), shop.clone()).await;
    assert_eq!(
        read_through(store.clone(), shop.clone(), second.connected_at).await,
        (false, false),
        "a read through the removed connection"
    );
    forgotten(store.clone(), shop.clone()).await;
}

async fn the_first_key_fingerprint_recorded_stays(store: Arc<dyn Store>, db: &TestDatabase) {
    // Read as `serve` reads it before opening (and migrating) the database.
    assert_eq!(uj_storage::recorded_key_fingerprint(&db.url).await, None);
    assert_eq!(store.claim_key_fingerprint("aaaa").await.unwrap(), "aaaa");
    assert_eq!(
        uj_storage::recorded_key_fingerprint(&db.url)
            .await
            .as_deref(),
        Some("aaaa")
    );
    assert_eq!(store.claim_key_fingerprint("aaaa").await.unwrap(), "aaaa");
    assert_eq!(store.claim_key_fingerprint("bbbb").await.unwrap(), "aaaa");
    store.adopt_key_fingerprint("bbbb").await.unwrap();
    assert_eq!(store.claim_key_fingerprint("cccc").await.unwrap(), "bbbb");
}

async fn a_new_password_ends_every_session(store: Arc<dyn Store>, _: &TestDatabase) {
    let (ada, _) = owner_with_project(&store, "ada@example.com").await;
    let (bob, _) = owner_with_project(&store, "bob@example.com").await;
    let later = Utc::now() + Duration::days(1);
    for (token, account) in [("s1", &ada), ("s2", &ada), ("s3", &bob)] {
        let started = store
            .create_session(token, &account.id, later, &account.password_hash)
            .await
            .unwrap();
        assert!(started);
    }
    assert!(store
        .change_password(&ada.id, &ada.password_hash, "new-hash")
        .await
        .unwrap());
    // A change or a sign-in that checked the old password, coming second, does nothing.
    assert!(!store
        .change_password(&ada.id, &ada.password_hash, "other-hash")
        .await
        .unwrap());
    assert!(!store
        .create_session("s4", &ada.id, later, &ada.password_hash)
        .await
        .unwrap());
    assert!(store
        .session_account("s4", Utc::now())
        .await
        .unwrap()
        .is_none());
    for token in ["s1", "s2"] {
        assert!(store
            .session_account(token, Utc::now())
            .await
            .unwrap()
            .is_none());
    }
    let bobs = store.session_account("s3", Utc::now()).await.unwrap();
    assert_eq!(bobs.map(|a| a.id), Some(bob.id), "another account's stays");
    let ada = store
        .account_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ada.password_hash, "new-hash");
}

async fn an_upgraded_password_hash_keeps_the_sessions(store: Arc<dyn Store>, _: &TestDatabase) {
    let (ada, _) = owner_with_project(&store, "ada@example.com").await;
    let later = Utc::now() + Duration::days(1);
    assert!(store
        .create_session("s1", &ada.id, later, &ada.password_hash)
        .await
        .unwrap());
    assert!(store
        .upgrade_password_hash(&ada.id, &ada.password_hash, "rehashed")
        .await
        .unwrap());
    // One that read the hash before, coming second, changes nothing.
    assert!(!store
        .upgrade_password_hash(&ada.id, &ada.password_hash, "other")
        .await
        .unwrap());
    let signed_in = store.session_account("s1", Utc::now()).await.unwrap();
    assert_eq!(
        signed_in.map(|a| a.password_hash).as_deref(),
        Some("rehashed")
    );
}

/// `exclusive` holds every other store on the database (another process) until dropped.
async fn one_holder_at_a_time_across_connections(store: Arc<dyn Store>, db: &TestDatabase) {
    let other = uj_storage::connect(&db.url).await.unwrap();
    let held = store.exclusive().await.unwrap();
    let waiting = tokio::spawn(async move { other.exclusive().await.map(|_| ()) });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a second holder waits");
    drop(held);
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("the second holder gets its turn")
        .unwrap()
        .unwrap();
}

/// A read through a connection being recorded while the connection is removed: whichever
/// commits first, nothing read through it is left once it is gone.
async fn a_disconnect_racing_a_read_leaves_nothing_behind(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let cohorts: Vec<MixpanelCohort> = (0..50)
        .map(|n| MixpanelCohort {
            cohort_id: n.to_string(),
            name: format!("Cohort {n}"),
            description: String::new(),
            member_count: 3,
            is_visible: true,
            fetched_at: uj_now(),
        })
        .collect();
    for _ in 0..20 {
        let connected = connection(&shop, "111");
        store
            .save_mixpanel_connection(&connected, "v1.one")
            .await
            .unwrap();
        let read = tokio::spawn({
            let (store, shop, cohorts) = (store.clone(), shop.clone(), cohorts.clone());
            async move {
                store
                    .replace_mixpanel_cohorts(&shop, connected.connected_at, uj_now(), &cohorts)
                    .await
                    .unwrap()
            }
        });
        assert!(store.delete_mixpanel_connection(&shop).await.unwrap());
        read.await.unwrap();
        assert_eq!(store.mixpanel_cohorts(&shop).await.unwrap(), []);
    }
}

async fn connect_attempts_expire_and_belong_to_their_project(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let now = uj_now();
    let attempt = ConnectAttempt {
        project_id: shop.clone(),
        username: "acme".into(),
        secret_ciphertext: "v1.x".into(),
        candidates: "[]".into(),
        expires_at: now + Duration::minutes(15),
    };
    store.save_connect_attempt("tok", &attempt).await.unwrap();
    let found = store
        .connect_attempt(&shop, "tok", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.username.as_str(), found.candidates.as_str()),
        ("acme", "[]")
    );
    assert!(store
        .connect_attempt(&blog, "tok", now)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .connect_attempt(&shop, "tok", now + Duration::minutes(16))
        .await
        .unwrap()
        .is_none());
    store.delete_connect_attempts(&shop).await.unwrap();
    assert!(store
        .connect_attempt(&shop, "tok", now)
        .await
        .unwrap()
        .is_none());
}

async fn cohorts_are_replaced_and_event_names_recorded_per_project(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let now = uj_now();
    let cohort = |id: &str, name: &str| MixpanelCohort {
        cohort_id: id.into(),
        name: name.into(),
        description: String::new(),
        member_count: 3,
        is_visible: true,
        fetched_at: now,
    };
    let connected = connection(&shop, "1");
    store
        .save_mixpanel_connection(&connected, "v1.x")
        .await
        .unwrap();
    let at = connected.connected_at;
    assert!(store
        .replace_mixpanel_cohorts(
            &shop,
            at,
            now,
            &[cohort("1", "Buyers"), cohort("2", "Churn")]
        )
        .await
        .unwrap());
    assert!(store
        .replace_mixpanel_cohorts(&shop, at, now, &[cohort("2", "Churn risk")])
        .await
        .unwrap());
    let listed = store.mixpanel_cohorts(&shop).await.unwrap();
    assert_eq!(listed, [cohort("2", "Churn risk")]);
    // A read that finished after a later one (two refreshes at once) changes nothing, even
    // when the later one listed no cohorts.
    let later = now + Duration::seconds(5);
    assert!(store
        .replace_mixpanel_cohorts(&shop, at, later, &[])
        .await
        .unwrap());
    assert!(store
        .replace_mixpanel_cohorts(&shop, at, now, &[cohort("1", "Buyers")])
        .await
        .unwrap());
    assert_eq!(store.mixpanel_cohorts(&shop).await.unwrap(), []);
    assert!(store
        .replace_mixpanel_cohorts(&shop, at, later, &[cohort("2", "Churn risk")])
        .await
        .unwrap());
    assert_eq!(store.mixpanel_cohorts(&shop).await.unwrap(), listed);
    // New credentials start the list anew: their first read lands whatever its time.
    store
        .save_mixpanel_connection(&connected, "v1.y")
        .await
        .unwrap();
    assert!(store
        .replace_mixpanel_cohorts(&shop, at, now, &[cohort("1", "Buyers")])
        .await
        .unwrap());
    assert_eq!(
        store.mixpanel_cohorts(&shop).await.unwrap(),
        [cohort("1", "Buyers")]
    );
    assert!(store
        .replace_mixpanel_cohorts(&shop, at, later, &[cohort("2", "Churn risk")])
        .await
        .unwrap());
    // Another project, with no connection of its own, gets nothing written.
    assert!(!store
        .replace_mixpanel_cohorts(&blog, at, now, &[cohort("9", "Theirs")])
        .await
        .unwrap());
    assert!(store.mixpanel_cohorts(&blog).await.unwrap().is_empty());

    let names = vec![
        "Order Completed".to_owned(),
        "App Opened".to_owned(),
        "Signed Up".to_owned(),
    ];
    assert!(store
        .record_mixpanel_event_names(&shop, at, &names, now)
        .await
        .unwrap());
    let sent = uj_storage::AppEventCount {
        project: shop.clone(),
        name: "Signed Up".into(),
        count: 1,
        first: now,
        last: now,
    };
    store.record_app_events(&[sent]).await.unwrap();
    // A later read replaces the names: those Mixpanel no longer lists leave, unless the
    // app sent them (a renamed event stayed for good).
    assert!(store
        .record_mixpanel_event_names(&shop, at, &names[..1], now + Duration::hours(1))
        .await
        .unwrap());
    assert!(!store
        .record_mixpanel_event_names(&blog, at, &names, now)
        .await
        .unwrap());
    let catalog = store.event_catalog(&shop).await.unwrap();
    assert_eq!(
        catalog.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["Order Completed", "Signed Up"]
    );
    assert_eq!(
        catalog[0].seen_in_mixpanel_at,
        Some(now + Duration::hours(1))
    );
    assert_eq!(
        (catalog[1].app_count, catalog[1].seen_in_mixpanel_at),
        (1, None)
    );
    assert!(store.event_catalog(&blog).await.unwrap().is_empty());
    // A read that finished after a later one changes nothing, even when the later one
    // listed no names (no name then kept the later read's time).
    let (earlier, latest) = (now + Duration::hours(2), now + Duration::hours(3));
    assert!(store
        .record_mixpanel_event_names(&shop, at, &[], latest)
        .await
        .unwrap());
    assert!(store
        .record_mixpanel_event_names(&shop, at, &names[1..2], earlier)
        .await
        .unwrap());
    let catalog = store.event_catalog(&shop).await.unwrap();
    assert_eq!(
        catalog
            .iter()
            .map(|e| (e.name.as_str(), e.seen_in_mixpanel_at))
            .collect::<Vec<_>>(),
        [("Signed Up", None)]
    );
    // New credentials start the names anew: their first read lands whatever its time.
    store
        .save_mixpanel_connection(&connected, "v1.z")
        .await
        .unwrap();
    assert!(store
        .record_mixpanel_event_names(&shop, at, &names[1..2], earlier)
        .await
        .unwrap());
    let catalog = store.event_catalog(&shop).await.unwrap();
    assert_eq!(
        catalog
            .iter()
            .map(|e| (e.name.as_str(), e.seen_in_mixpanel_at))
            .collect::<Vec<_>>(),
        [("App Opened", Some(earlier)), ("Signed Up", None)]
    );

    // Deleting the connection forgets the cohorts read through it.
    store.delete_mixpanel_connection(&shop).await.unwrap();
    assert!(store.mixpanel_cohorts(&shop).await.unwrap().is_empty());
}

fn synced(id: &str, reference: Option<&str>) -> SyncedMember {
    SyncedMember {
        provider_member_id: id.into(),
        reference_id: reference.map(Into::into),
        traits: serde_json::json!({"plan": "pro"})
            .as_object()
            .unwrap()
            .clone(),
    }
}

/// Cohort "1"'s audience "A" in `project`, created at `at`.
async fn audience_a(
    store: &Arc<dyn Store>,
    project: &ProjectId,
    at: chrono::DateTime<Utc>,
) -> uj_domain::ids::AudienceId {
    store
        .upsert_audience(project, "1", "A", "", at)
        .await
        .unwrap()
        .id
}

/// The first page of at most `limit` items.
fn first_page(limit: u32) -> PageRequest {
    PageRequest {
        limit,
        starting_after: None,
    }
}

fn members(ids: &[&str]) -> Vec<SyncedMember> {
    ids.iter().map(|id| synced(id, None)).collect()
}

/// Receives page `page` of `total` of full-sync session `session` at `at` for cohort "1"
/// (audience "A", which must be `audience`): the ledger entry.
#[allow(clippy::too_many_arguments)]
async fn receive(
    store: &Arc<dyn Store>,
    project: &ProjectId,
    audience: &uj_domain::ids::AudienceId,
    session: &str,
    page: i64,
    total: i64,
    members: &[SyncedMember],
    at: chrono::DateTime<Utc>,
) -> LedgerEntry {
    try_receive(store, project, audience, session, page, total, members, at)
        .await
        .unwrap()
}

/// [`receive`], or the store's refusal.
#[allow(clippy::too_many_arguments)]
async fn try_receive(
    store: &Arc<dyn Store>,
    project: &ProjectId,
    audience: &uj_domain::ids::AudienceId,
    session: &str,
    page: i64,
    total: i64,
    members: &[SyncedMember],
    at: chrono::DateTime<Utc>,
) -> Result<LedgerEntry, StoreError> {
    let entry = LedgerEntry {
        id: LedgerEntryId::generate(),
        audience_id: None,
        action: "members".into(),
        session_id: Some(session.into()),
        page: Some(page),
        total_pages: Some(total),
        members: members.len() as i64,
        added: 0,
        removed: 0,
        outcome: LedgerOutcome::Staged,
        error: None,
        received_at: at,
        mixpanel_cohort_id: None,
        mixpanel_cohort_name: None,
    };
    let sync_page = uj_storage::SyncPage {
        session_id: session,
        page,
        total_pages: total,
        members,
    };
    let cohort = uj_storage::SyncCohort {
        mixpanel_project_id: Some("10"),
        mixpanel_cohort_id: "1",
        name: "A",
        description: Some(""),
        accepted_with: None,
    };
    let entry = store
        .receive_sync_page(project, &cohort, &sync_page, entry)
        .await?;
    assert_eq!(
        entry.audience_id.as_ref(),
        Some(audience),
        "the cohort's audience"
    );
    Ok(entry)
}

/// The members, current or past, whose provider id or match key is `id`.
async fn found(
    store: &Arc<dyn Store>,
    audience: &uj_domain::ids::AudienceId,
    id: &str,
) -> Vec<uj_domain::audiences::AudienceMember> {
    let page = PageRequest {
        limit: 100,
        starting_after: None,
    };
    let page = store
        .find_audience_members(audience, id, true, &page)
        .await
        .unwrap();
    assert!(!page.has_more);
    page.items
}

async fn current(store: &Arc<dyn Store>, audience: &uj_domain::ids::AudienceId) -> Vec<String> {
    let page = PageRequest {
        limit: 100,
        starting_after: None,
    };
    let mut ids: Vec<String> = store
        .audience_members(audience, false, &page)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.provider_member_id)
        .collect();
    ids.sort();
    ids
}

async fn a_cohort_sync_config_is_found_by_webhook_and_replaced(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let mut config = CohortSyncConfig {
        project_id: shop.clone(),
        webhook_id: "whk_one".into(),
        username: "mixpanel".into(),
        secret_hash: "hash-1".into(),
        created_at: now,
        secret_rotated_at: now,
        last_delivery_at: None,
        enabled: true,
    };
    assert!(store.create_cohort_sync_config(&config).await.unwrap());
    // A second set-up (two racing) writes nothing: the first one's secret keeps working.
    let second = CohortSyncConfig {
        webhook_id: "whk_second".into(),
        secret_hash: "hash-second".into(),
        ..config.clone()
    };
    assert!(!store.create_cohort_sync_config(&second).await.unwrap());
    assert!(store
        .webhook_receiver("whk_second")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.webhook_receiver("whk_one").await.unwrap().unwrap(),
        uj_storage::WebhookReceiver {
            config: config.clone(),
            trait_allowlist: vec![],
            connected_project: None,
        }
    );
    // The receiver brings the project's allowlist and connection along.
    let keys = vec!["plan".to_owned(), "country".to_owned()];
    store
        .set_trait_allowlist(&shop, &keys, uj_domain::now())
        .await
        .unwrap();
    store
        .save_mixpanel_connection(&connection(&shop, "111"), "v1.cipher")
        .await
        .unwrap();
    let receiver = store.webhook_receiver("whk_one").await.unwrap().unwrap();
    assert_eq!(
        (receiver.trait_allowlist, receiver.connected_project),
        (keys, Some(("111".to_owned(), "Acme Web".to_owned())))
    );
    let rotated = store
        .rotate_cohort_sync_secret(&shop, "hash-2", now + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(rotated.as_deref(), Some("whk_one"));
    let stored = store.cohort_sync_config(&shop).await.unwrap().unwrap();
    assert_eq!(
        (stored.secret_hash.as_str(), stored.created_at),
        ("hash-2", now)
    );
    assert!(store.webhook_receiver("whk_other").await.unwrap().is_none());

    // The last delivery is the latest of the project's audiences since the webhook was set up.
    assert_eq!(stored.last_delivery_at, None);
    let delivered = now + Duration::minutes(2);
    store
        .upsert_audience(&shop, "1", "A", "", delivered)
        .await
        .unwrap();
    store
        .upsert_audience(&shop, "2", "B", "", now + Duration::minutes(1))
        .await
        .unwrap();
    let config_of = |store: Arc<dyn Store>, project: ProjectId| async move {
        store.cohort_sync_config(&project).await.unwrap().unwrap()
    };
    assert_eq!(
        config_of(store.clone(), shop.clone())
            .await
            .last_delivery_at,
        Some(delivered)
    );
    let receiver = store.webhook_receiver("whk_one").await.unwrap().unwrap();
    assert_eq!(receiver.config.last_delivery_at, Some(delivered));

    // Off keeps the webhook and its secret; the receiver says it is off.
    assert!(store.disable_cohort_sync(&shop).await.unwrap());
    assert!(store.disable_cohort_sync(&shop).await.unwrap(), "off twice");
    let receiver = store.webhook_receiver("whk_one").await.unwrap().unwrap();
    assert!(!receiver.config.enabled);
    assert_eq!(receiver.config.secret_hash, "hash-2");
    // A secret rotated while off leaves it off.
    let rotated = store
        .rotate_cohort_sync_secret(&shop, "hash-3", now)
        .await
        .unwrap();
    assert_eq!(rotated.as_deref(), Some("whk_one"));
    assert!(!config_of(store.clone(), shop.clone()).await.enabled);
    // On again: once, with the same webhook.
    assert_eq!(
        store.enable_cohort_sync(&shop).await.unwrap().as_deref(),
        Some("whk_one")
    );
    assert_eq!(
        store.enable_cohort_sync(&shop).await.unwrap(),
        None,
        "on already"
    );
    let stored = config_of(store.clone(), shop.clone()).await;
    assert_eq!(
        (
            stored.enabled,
            stored.webhook_id.as_str(),
            stored.secret_hash.as_str()
        ),
        (true, "whk_one", "hash-3")
    );
    // A second set-up still writes nothing.
    config.webhook_id = "whk_two".into();
    assert!(!store.create_cohort_sync_config(&config).await.unwrap());
    // A project without cohort sync has nothing to turn on or off.
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    assert!(!store.disable_cohort_sync(&blog).await.unwrap());
    assert_eq!(store.enable_cohort_sync(&blog).await.unwrap(), None);
}

async fn audiences_are_one_per_cohort_and_follow_its_name(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let now = uj_now();
    let first = store
        .upsert_audience(&shop, "51234", "Trial", "Day 3", now)
        .await
        .unwrap();
    let again = store
        .upsert_audience(&shop, "51234", "Trial users", "Day 3, no purchase", now)
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(
        (again.name.as_str(), again.description.as_str()),
        ("Trial users", "Day 3, no purchase")
    );
    assert_eq!(again.last_delivery_at, Some(now));
    let other = store
        .upsert_audience(&blog, "51234", "Theirs", "", now)
        .await
        .unwrap();
    assert_ne!(
        other.id, first.id,
        "the same cohort id in another project is another audience"
    );
    assert!(store.audience(&blog, &first.id).await.unwrap().is_none());
    let listed = store.audiences(&shop, &first_page(10)).await.unwrap();
    assert_eq!(listed.items.len(), 1);
}

async fn a_lookup_pages_through_the_members_listed_under_one_id(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    let listed = [
        synced("p1", Some("same")),
        synced("p2", Some("same")),
        synced("p3", Some("same")),
        synced("same", None),
        synced("other", Some("else")),
    ];
    store
        .add_audience_members(&audience, &listed, t0)
        .await
        .unwrap();
    store
        .remove_audience_members(&audience, &["p2".into()], t0 + Duration::seconds(1))
        .await
        .unwrap();
    let page = |include_exited: bool, after: Option<&str>| {
        let (store, audience) = (store.clone(), audience.clone());
        let starting_after = after.map(str::to_owned);
        async move {
            let page = store
                .find_audience_members(
                    &audience,
                    "same",
                    include_exited,
                    &PageRequest {
                        limit: 2,
                        starting_after,
                    },
                )
                .await
                .unwrap();
            let ids: Vec<String> = page
                .items
                .into_iter()
                .map(|m| m.provider_member_id)
                .collect();
            (ids, page.has_more)
        }
    };
    assert_eq!(
        page(true, None).await,
        (vec!["p1".into(), "p2".into()], true)
    );
    assert_eq!(
        page(true, Some("p2")).await,
        (vec!["p3".into(), "same".into()], false)
    );
    assert_eq!(
        page(false, None).await,
        (vec!["p1".into(), "p3".into()], true)
    );
    assert_eq!(page(false, Some("p3")).await, (vec!["same".into()], false));
    assert_eq!(page(false, Some("same")).await, (vec![], false));
}

async fn diffs_add_and_remove_members_idempotently_and_keep_history(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    let change = store
        .add_audience_members(
            &audience,
            &[
                synced("a", Some("app-a")),
                synced("b", None),
                synced("b", None),
            ],
            t0,
        )
        .await
        .unwrap();
    assert_eq!(
        (change.added, change.removed, change.member_count),
        (2, 0, 2)
    );
    let replay = store
        .add_audience_members(&audience, &members(&["a", "b"]), t0 + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!((replay.added, replay.member_count), (0, 2));
    let a = found(&store, &audience, "a").await;
    assert_eq!(a[0].entered_at, t0, "staying members keep their entry time");

    let t1 = t0 + Duration::minutes(30);
    let removed = store
        .remove_audience_members(&audience, &["a".into(), "zzz".into()], t1)
        .await
        .unwrap();
    assert_eq!(
        (removed.added, removed.removed, removed.member_count),
        (0, 1, 1)
    );
    let again = store
        .remove_audience_members(&audience, &["a".into()], t1)
        .await
        .unwrap();
    assert_eq!(again.removed, 0);
    assert_eq!(current(&store, &audience).await, ["b"]);
    let history = store
        .audience_members(&audience, true, &first_page(10))
        .await
        .unwrap();
    let a = history
        .items
        .iter()
        .find(|m| m.provider_member_id == "a")
        .unwrap();
    assert_eq!(a.exited_at, Some(t1));

    let t2 = t1 + Duration::minutes(30);
    store
        .add_audience_members(&audience, &members(&["a"]), t2)
        .await
        .unwrap();
    let back = found(&store, &audience, "a").await;
    assert_eq!(
        (back[0].entered_at, back[0].exited_at),
        (t2, None),
        "a returning member enters anew"
    );
    assert_eq!(
        found(&store, &audience, "app-a").await.len(),
        0,
        "reference id dropped on re-add without it"
    );
    let audience_row = store.audience(&shop, &audience).await.unwrap().unwrap();
    assert_eq!(
        (audience_row.member_count, audience_row.last_synced_at),
        (2, Some(t2))
    );
}

/// Diffs that touch rows a full-sync session wrote in place: of the applied session
/// (current) and of an unfinished one (not current yet, but listed by it).
async fn diffs_beside_full_sessions_keep_membership_and_its_count_exact(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    let count = |store: Arc<dyn Store>| {
        let (shop, audience) = (shop.clone(), audience.clone());
        async move {
            let listed = current(&store, &audience).await.len() as i64;
            let counted = store
                .audience(&shop, &audience)
                .await
                .unwrap()
                .unwrap()
                .member_count;
            assert_eq!(counted, listed, "the stored count is the members listed");
            counted
        }
    };
    receive(
        &store,
        &shop,
        &audience,
        "s1",
        1,
        1,
        &members(&["a", "b"]),
        t0,
    )
    .await;
    let t1 = t0 + Duration::minutes(1);
    receive(
        &store,
        &shop,
        &audience,
        "s2",
        1,
        2,
        &members(&["c", "d"]),
        t1,
    )
    .await;
    assert_eq!(count(store.clone()).await, 2);

    // b is current (s1's row), c and d are s2's rows, not current yet; e is new.
    let t2 = t1 + Duration::minutes(1);
    let added = store
        .add_audience_members(&audience, &members(&["b", "c", "e", "e"]), t2)
        .await
        .unwrap();
    assert_eq!((added.added, added.removed, added.member_count), (2, 0, 4));
    assert_eq!(count(store.clone()).await, 4);
    assert_eq!(current(&store, &audience).await, ["a", "b", "c", "e"]);

    let t3 = t2 + Duration::minutes(1);
    let removed = store
        .remove_audience_members(&audience, &["a".into(), "d".into(), "zzz".into()], t3)
        .await
        .unwrap();
    assert_eq!(
        (removed.added, removed.removed, removed.member_count),
        (0, 1, 3)
    );
    assert_eq!(count(store.clone()).await, 3);

    // s2 completes: it listed c, d and a; b and e leave.
    let t4 = t3 + Duration::minutes(1);
    let applied = receive(&store, &shop, &audience, "s2", 2, 2, &members(&["a"]), t4).await;
    assert_eq!(applied.outcome, LedgerOutcome::Applied);
    assert_eq!(current(&store, &audience).await, ["a", "c", "d"]);
    assert_eq!(count(store.clone()).await, 3);
    assert_eq!((applied.added, applied.removed), (2, 2));
}

async fn a_full_session_replaces_membership_only_once_complete(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    store
        .add_audience_members(&audience, &members(&["old1", "keep"]), t0)
        .await
        .unwrap();

    let s1 = |page: i64, listed: Vec<SyncedMember>, at| {
        let (store, shop, audience) = (store.clone(), shop.clone(), audience.clone());
        async move { receive(&store, &shop, &audience, "s1", page, 3, &listed, at).await }
    };
    let first = s1(2, members(&["c", "d"]), t0).await;
    assert_eq!(first.outcome, LedgerOutcome::Staged);
    let again = s1(2, members(&["c", "d"]), t0).await;
    assert_eq!(
        again.outcome,
        LedgerOutcome::Duplicate,
        "a repeated page is a duplicate"
    );
    let listed = vec![synced("keep", Some("app-keep")), synced("b", None)];
    let second = s1(1, listed, t0).await;
    assert_eq!(second.outcome, LedgerOutcome::Staged);
    assert_eq!(
        current(&store, &audience).await,
        ["keep", "old1"],
        "an incomplete session changes nothing"
    );
    let staged = store.staged_session(&audience).await.unwrap().unwrap();
    assert_eq!(
        (staged.session_id.as_str(), staged.missing_pages(100)),
        ("s1", vec![3])
    );

    let t1 = t0 + Duration::minutes(1);
    // "b" again, on another page of the session: the later listing counts.
    let last = s1(3, vec![synced("e", None), synced("b", Some("app-b"))], t1).await;
    assert_eq!(
        (last.outcome, last.added, last.removed),
        (LedgerOutcome::Applied, 4, 1),
        "the last page applies the session"
    );
    assert_eq!(
        store
            .audience(&shop, &audience)
            .await
            .unwrap()
            .unwrap()
            .member_count,
        5
    );
    let ledger = store
        .sync_ledger(&shop, Some(&audience), &first_page(10))
        .await
        .unwrap();
    let outcomes: Vec<LedgerOutcome> = ledger.items.iter().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        [
            LedgerOutcome::Applied,
            LedgerOutcome::Staged,
            LedgerOutcome::Duplicate,
            LedgerOutcome::Staged
        ],
        "every page is in the ledger, newest first"
    );
    let (_, other) = owner_with_project(&store, "bob@example.com").await;
    let foreign = store
        .sync_ledger(&other, Some(&audience), &first_page(10))
        .await
        .unwrap();
    assert!(
        foreign.items.is_empty(),
        "another project reads none of this audience's history"
    );
    assert_eq!(
        current(&store, &audience).await,
        ["b", "c", "d", "e", "keep"]
    );
    assert!(
        store.staged_session(&audience).await.unwrap().is_none(),
        "staging is cleared"
    );
    let b = found(&store, &audience, "app-b").await;
    assert_eq!(
        b.len(),
        1,
        "a member listed on two pages counts with the later listing"
    );
    let keep = found(&store, &audience, "app-keep").await;
    assert_eq!(
        (keep.len(), keep[0].entered_at),
        (1, t0),
        "found by its match key, entry time kept"
    );
}

/// Everything that reads members: the listing (with and without exited members), the
/// lookup, the SDK's memberships and the audience's count.
async fn seen(
    store: &Arc<dyn Store>,
    project: &ProjectId,
    audience: &uj_domain::ids::AudienceId,
    id: &str,
) -> (bool, bool, bool, bool, i64) {
    let page = PageRequest {
        limit: 100,
        starting_after: None,
    };
    let page = &page;
    let listed = |all: bool| async move {
        store
            .audience_members(audience, all, page)
            .await
            .unwrap()
            .items
            .iter()
            .any(|m| m.provider_member_id == id)
    };
    let looked_up = !found(store, audience, id).await.is_empty();
    let member_of = store
        .audience_memberships(project, id)
        .await
        .unwrap()
        .iter()
        .any(|(a, _)| a == audience.as_str());
    let count = store
        .audience(project, audience)
        .await
        .unwrap()
        .unwrap()
        .member_count;
    (
        listed(false).await,
        listed(true).await,
        looked_up,
        member_of,
        count,
    )
}

/// A first sync whose middle pages list one member twice: on SQLite the second listing
/// leaves the first-sync shortcut (`sqlite_pages.rs`) for the shared path mid-session.
async fn a_first_sync_that_lists_a_member_twice_keeps_the_later_listing(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    let pages = [
        members(&["a", "b"]),
        vec![synced("b", Some("app-b")), synced("c", None)],
        members(&["d"]),
        members(&["e"]),
    ];
    for (n, listed) in pages.iter().enumerate() {
        let page = n as i64 + 1;
        let entry = receive(&store, &shop, &audience, "s1", page, 4, listed, t0).await;
        let expected = if page < 4 {
            LedgerOutcome::Staged
        } else {
            LedgerOutcome::Applied
        };
        assert_eq!(entry.outcome, expected, "page {page}");
    }
    assert_eq!(current(&store, &audience).await, ["a", "b", "c", "d", "e"]);
    let b = found(&store, &audience, "app-b").await;
    assert_eq!(
        b.len(),
        1,
        "b is found by the reference id of its later listing"
    );
    assert_eq!(b[0].provider_member_id, "b");
    let count = store
        .audience(&shop, &audience)
        .await
        .unwrap()
        .unwrap()
        .member_count;
    assert_eq!(count, 5);
}

async fn members_of_an_unfinished_session_are_seen_nowhere_until_it_completes(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    store
        .add_audience_members(&audience, &members(&["kept", "leaves"]), t0)
        .await
        .unwrap();
    let stage = |session: &'static str, page: i64, total: i64, ids: &'static [&'static str], at| {
        let (store, shop, audience) = (store.clone(), shop.clone(), audience.clone());
        async move {
            receive(
                &store,
                &shop,
                &audience,
                session,
                page,
                total,
                &members(ids),
                at,
            )
            .await
        }
    };

    stage("s1", 1, 2, &["kept", "new"], t0).await;
    assert_eq!(
        seen(&store, &shop, &audience, "new").await,
        (false, false, false, false, 2),
        "a member staged by an unfinished session"
    );
    assert!(store
        .audience_member(&audience, "new")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        seen(&store, &shop, &audience, "leaves").await,
        (true, true, true, true, 2)
    );
    // A newer session supersedes s1: what s1 staged never shows, not even once the newer
    // session completes.
    stage("s2", 1, 2, &["kept", "other"], t0).await;
    let t1 = t0 + Duration::minutes(1);
    let applied = stage("s2", 2, 2, &["third"], t1).await;
    assert_eq!(
        (applied.outcome, applied.added, applied.removed),
        (LedgerOutcome::Applied, 2, 1)
    );
    assert_eq!(
        seen(&store, &shop, &audience, "new").await,
        (false, false, false, false, 3),
        "a superseded session's member"
    );
    assert_eq!(
        seen(&store, &shop, &audience, "other").await,
        (true, true, true, true, 3)
    );
    assert_eq!(
        seen(&store, &shop, &audience, "leaves").await,
        (false, true, true, false, 3),
        "a member absent from the full sync exits and stays in the history"
    );
    let entered = found(&store, &audience, "third").await[0].entered_at;

    // The next full sync: members of the previous one stay, keep their entry time, or exit;
    // an unfinished session's member stays unseen after its staging went stale.
    stage("s3", 1, 2, &["kept", "third", "staged"], t0).await;
    assert_eq!(
        seen(&store, &shop, &audience, "staged").await,
        (false, false, false, false, 3)
    );
    for current in ["kept", "third", "other"] {
        assert_eq!(
            seen(&store, &shop, &audience, current).await,
            (true, true, true, true, 3),
            "{current}: a member of the applied sync stays one while the next is unfinished"
        );
    }
    store
        .delete_stale_staging(t1 + Duration::seconds(1))
        .await
        .unwrap();
    let t2 = t1 + Duration::minutes(1);
    let applied = stage("s4", 1, 1, &["kept", "third"], t2).await;
    assert_eq!(
        (applied.outcome, applied.added, applied.removed),
        (LedgerOutcome::Applied, 0, 1)
    );
    assert_eq!(
        seen(&store, &shop, &audience, "staged").await,
        (false, false, false, false, 2)
    );
    assert_eq!(
        seen(&store, &shop, &audience, "other").await,
        (false, true, true, false, 2)
    );
    let third = found(&store, &audience, "third").await;
    assert_eq!(
        (third.len(), third[0].entered_at, third[0].exited_at),
        (1, entered, None),
        "a member of both full syncs keeps the entry time of the first"
    );
    let kept = found(&store, &audience, "kept").await;
    assert_eq!((kept[0].entered_at, kept[0].exited_at), (t0, None));
}

async fn a_newer_session_supersedes_an_unfinished_one_and_stale_staging_goes(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    receive(&store, &shop, &audience, "old", 1, 2, &members(&["x"]), t0).await;
    let newer = receive(&store, &shop, &audience, "new", 1, 2, &members(&["y"]), t0).await;
    assert_eq!(newer.outcome, LedgerOutcome::Staged);
    let staged = store.staged_session(&audience).await.unwrap().unwrap();
    assert_eq!(
        (staged.session_id.as_str(), staged.missing_pages(100)),
        ("new", vec![2])
    );
    let last = receive(&store, &shop, &audience, "new", 2, 2, &[], t0).await;
    assert_eq!(last.outcome, LedgerOutcome::Applied);
    assert_eq!(current(&store, &audience).await, ["y"]);

    receive(
        &store,
        &shop,
        &audience,
        "later",
        1,
        2,
        &members(&["z"]),
        t0,
    )
    .await;
    assert_eq!(
        store
            .delete_stale_staging(t0 - Duration::hours(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_stale_staging(t0 + Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
    assert!(store.staged_session(&audience).await.unwrap().is_none());
}

/// A session's pages announcing another page count than its earlier pages start it
/// afresh (Mixpanel restarts a failed run from the top; the cohort may have grown): the
/// earlier run's pages neither complete it early nor make the new run's pages repeats.
async fn a_session_rerun_with_another_page_count_starts_afresh(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    for (page, id) in [(1, "x"), (2, "y")] {
        let entry = receive(&store, &shop, &audience, "s", page, 3, &members(&[id]), t0).await;
        assert_eq!(entry.outcome, LedgerOutcome::Staged);
    }
    let first = receive(&store, &shop, &audience, "s", 1, 2, &members(&["x"]), t0).await;
    assert_eq!(first.outcome, LedgerOutcome::Staged, "not a repeat");
    let staged = store.staged_session(&audience).await.unwrap().unwrap();
    assert_eq!(
        (staged.total_pages, staged.missing_pages(100)),
        (2, vec![2])
    );
    let last = receive(&store, &shop, &audience, "s", 2, 2, &members(&["z"]), t0).await;
    assert_eq!(last.outcome, LedgerOutcome::Applied);
    assert_eq!(current(&store, &audience).await, ["x", "z"]);
    assert!(store.staged_session(&audience).await.unwrap().is_none());
}

/// A run's staging older than `STAGING_KEPT_FOR` is dropped when its next page comes, as
/// the hourly job drops it, whichever way the page is written (SQLite writes a first sync's
/// middle pages on its own path): the page is then answered as after the job, a late page
/// of a dropped run (refused for Mixpanel to give the run up while nothing was applied since,
/// a duplicate once something was). (Within the hour before the job, a run's last page
/// applied pages two days old, shrinking the audience.)
async fn pages_staged_longer_ago_than_staging_is_kept_never_complete_a_run(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let t0 = uj_now();
    let late = t0 + uj_domain::cohort_sync::STAGING_KEPT_FOR + Duration::minutes(1);
    // The same deliveries, once with the hourly job run before the late page, once without.
    let mut answers = Vec::new();
    for (owner, job_ran) in [("ada@example.com", false), ("bea@example.com", true)] {
        let (_, shop) = owner_with_project(&store, owner).await;
        let audience = audience_a(&store, &shop, t0).await;
        receive(&store, &shop, &audience, "s1", 1, 3, &members(&["x"]), t0).await;
        receive(&store, &shop, &audience, "s1", 2, 3, &members(&["y"]), t0).await;
        if job_ran {
            store
                .delete_stale_staging(late - uj_domain::cohort_sync::STAGING_KEPT_FOR)
                .await
                .unwrap();
        }
        let last = try_receive(&store, &shop, &audience, "s1", 3, 3, &members(&["z"]), late).await;
        assert!(
            current(&store, &audience).await.is_empty(),
            "job ran: {job_ran}"
        );
        answers.push(
            last.map(|entry| entry.outcome)
                .map_err(|e| format!("{e:?}")),
        );
        // A new run goes through.
        let next = receive(&store, &shop, &audience, "s2", 1, 1, &members(&["w"]), late).await;
        assert_eq!(next.outcome, LedgerOutcome::Applied);

        // Once something was applied since the stale run began, its late pages are
        // duplicates.
        receive(&store, &shop, &audience, "s3", 1, 2, &members(&["a"]), late).await;
        store
            .add_audience_members(&audience, &members(&["d"]), late + Duration::minutes(1))
            .await
            .unwrap();
        let later = late + uj_domain::cohort_sync::STAGING_KEPT_FOR + Duration::minutes(2);
        if job_ran {
            store
                .delete_stale_staging(later - uj_domain::cohort_sync::STAGING_KEPT_FOR)
                .await
                .unwrap();
        }
        let last = receive(
            &store,
            &shop,
            &audience,
            "s3",
            2,
            2,
            &members(&["b"]),
            later,
        )
        .await;
        answers.push(Ok(last.outcome));
        assert_eq!(current(&store, &audience).await, ["d", "w"]);
    }
    assert_eq!(
        answers[0], answers[2],
        "the same answer whether or not the job ran"
    );
    assert_eq!(answers[1], answers[3]);
    assert!(
        matches!(&answers[0], Err(e) if e.contains("RunReplaced")),
        "{answers:?}"
    );
    assert_eq!(answers[1], Ok(LedgerOutcome::Duplicate));
}

/// A member an unfinished run listed, then added by a diff, counts as listed by that run;
/// when the run is rerun (another page count) without them, they leave as it completes.
/// (The earlier run's mark stayed on the row, and the member stayed for good.)
async fn a_member_a_diff_added_beside_an_earlier_run_leaves_when_the_rerun_omits_them(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    let staged = receive(&store, &shop, &audience, "s", 1, 2, &members(&["y"]), t0).await;
    assert_eq!(staged.outcome, LedgerOutcome::Staged);
    let t1 = t0 + Duration::minutes(1);
    store
        .add_audience_members(&audience, &members(&["y"]), t1)
        .await
        .unwrap();
    assert_eq!(current(&store, &audience).await, ["y"]);
    let t2 = t1 + Duration::minutes(1);
    let rerun = receive(&store, &shop, &audience, "s", 1, 1, &members(&["z"]), t2).await;
    assert_eq!(rerun.outcome, LedgerOutcome::Applied);
    assert_eq!(current(&store, &audience).await, ["z"]);
    let counted = store.audience(&shop, &audience).await.unwrap().unwrap();
    assert_eq!(counted.member_count, 1);
}

/// Mixpanel delivers at least once, and a page can arrive late (retried after a 503, or
/// still in flight in another process): a page of a run that was applied, or replaced by
/// a run applied since, is a duplicate. It neither discards the newer run being staged
/// (which then never completed) nor applies an older membership again. A page of a run
/// replaced unfinished with nothing applied since is refused (`RunReplaced`): Mixpanel
/// should not go on from a membership never applied.
async fn late_pages_of_a_replaced_or_applied_run_change_nothing(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    let outcome = |session: &'static str, page, total, ids: &'static [&'static str]| {
        let (store, shop, audience) = (Arc::clone(&store), shop.clone(), audience.clone());
        async move {
            let received = try_receive(
                &store,
                &shop,
                &audience,
                session,
                page,
                total,
                &members(ids),
                t0,
            )
            .await;
            match received {
                Ok(entry) => Some(entry.outcome),
                Err(StoreError::RunReplaced) => None,
                Err(other) => panic!("{other}"),
            }
        }
    };
    assert_eq!(
        outcome("old", 1, 2, &["x"]).await,
        Some(LedgerOutcome::Staged)
    );
    assert_eq!(
        outcome("new", 1, 3, &["y"]).await,
        Some(LedgerOutcome::Staged)
    );
    // The replaced session's last page, nothing applied since: refused.
    assert_eq!(outcome("old", 2, 2, &["w"]).await, None);
    // The session rerun with two pages, then a late page of its first run: refused too (which
    // run is newer cannot be told; the rerun may be an older run's late first page).
    assert_eq!(
        outcome("new", 1, 2, &["y"]).await,
        Some(LedgerOutcome::Staged)
    );
    assert_eq!(outcome("new", 3, 3, &["w"]).await, None);
    let staged = store.staged_session(&audience).await.unwrap().unwrap();
    assert_eq!(
        (
            staged.session_id.as_str(),
            staged.total_pages,
            staged.missing_pages(100)
        ),
        ("new", 2, vec![2])
    );
    assert_eq!(
        outcome("new", 2, 2, &["z"]).await,
        Some(LedgerOutcome::Applied)
    );
    assert_eq!(current(&store, &audience).await, ["y", "z"]);
    // Applied since: the replaced runs' pages are duplicates now.
    assert_eq!(
        outcome("old", 2, 2, &["w"]).await,
        Some(LedgerOutcome::Duplicate)
    );
    // A later session applied, then the one before it delivered again.
    assert_eq!(
        outcome("next", 1, 1, &["q"]).await,
        Some(LedgerOutcome::Applied)
    );
    for page in [1, 2] {
        assert_eq!(
            outcome("new", page, 2, &["y", "z"]).await,
            Some(LedgerOutcome::Duplicate)
        );
    }
    assert_eq!(current(&store, &audience).await, ["q"]);
    assert!(store.staged_session(&audience).await.unwrap().is_none());

    // A first sync's run dropped as stale, then its last page.
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let first = audience_a(&store, &blog, t0).await;
    let early = receive(&store, &blog, &first, "early", 1, 2, &members(&["x"]), t0).await;
    assert_eq!(early.outcome, LedgerOutcome::Staged);
    let stale = store
        .delete_stale_staging(t0 + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(stale, 1);
    let late = try_receive(&store, &blog, &first, "early", 2, 2, &members(&["y"]), t0).await;
    assert!(matches!(late, Err(StoreError::RunReplaced)), "{late:?}");
    assert!(store.staged_session(&first).await.unwrap().is_none());
    assert!(current(&store, &first).await.is_empty());
}

/// A first sync's middle page (SQLite's own write path) that waited for the audience behind
/// a diff timed later enters its members no earlier than that diff, as every other page
/// does (it entered them at its own time; found by the SQLite parity review).
async fn a_first_syncs_middle_page_that_waited_never_enters_members_before_the_last_change(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    let (t1, t2, t3) = (
        t0 + Duration::seconds(1),
        t0 + Duration::seconds(2),
        t0 + Duration::seconds(3),
    );
    receive(&store, &shop, &audience, "s", 1, 3, &members(&["a"]), t0).await;
    store
        .add_audience_members(&audience, &members(&["d"]), t3)
        .await
        .unwrap();
    let staged = receive(&store, &shop, &audience, "s", 2, 3, &members(&["b"]), t1).await;
    assert_eq!(staged.outcome, LedgerOutcome::Staged);
    assert_eq!(staged.received_at, t1, "the delivery keeps its own time");
    receive(&store, &shop, &audience, "s", 3, 3, &members(&["c"]), t2).await;
    // "a" came before the diff, at its own time.
    for id in ["b", "c"] {
        let member = store.audience_member(&audience, id).await.unwrap().unwrap();
        assert!(member.entered_at >= t3, "{id}: {}", member.entered_at);
    }
}

/// Deliveries are timed when they arrive and may then wait for the audience (another
/// delivery, another process): a change that waited is recorded no earlier than the change
/// before it, so a member never leaves before entering and the audience's last sync never
/// goes back.
async fn changes_that_waited_for_the_audience_never_move_its_times_back(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    let (t1, t2) = (t0 + Duration::seconds(1), t0 + Duration::seconds(2));
    // The add came second but got the audience first; the removal waited for it.
    store
        .add_audience_members(&audience, &members(&["m"]), t2)
        .await
        .unwrap();
    store
        .remove_audience_members(&audience, &["m".to_owned()], t1)
        .await
        .unwrap();
    let member = store
        .audience_member(&audience, "m")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(member.entered_at, t2);
    assert_eq!(member.exited_at, Some(t2), "not before it entered");
    // Back, with a change timed earlier still.
    store
        .add_audience_members(&audience, &members(&["m"]), t0)
        .await
        .unwrap();
    let member = store
        .audience_member(&audience, "m")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((member.entered_at, member.exited_at), (t2, None));
    let synced = store.audience(&shop, &audience).await.unwrap().unwrap();
    assert_eq!(synced.last_synced_at, Some(t2));
    // A full session's page that waited as well.
    let applied = receive(&store, &shop, &audience, "s", 1, 1, &members(&["n"]), t1).await;
    assert_eq!(applied.outcome, LedgerOutcome::Applied);
    let left = store
        .audience_member(&audience, "m")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left.exited_at, Some(t2));
    let entered = store
        .audience_member(&audience, "n")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entered.entered_at, t2);
    // A delivery timed before the last one does not make it older.
    receive(&store, &shop, &audience, "t", 1, 2, &members(&["o"]), t0).await;
    let audience = store.audience(&shop, &audience).await.unwrap().unwrap();
    assert_eq!(audience.last_delivery_at, Some(t1));
}

/// The trait erase rewrites an audience's members in key order while diffs rewrite them too
/// (listed in any order, here backwards): on PostgreSQL each locks rows as it writes them,
/// and two writers locking in opposite orders deadlock (a soak test had deliveries answered
/// 503 for it). Every write here must land.
async fn erasing_traits_while_diffs_rewrite_the_members_never_deadlocks(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    store
        .set_trait_allowlist(&shop, &["plan".to_owned()], t0)
        .await
        .unwrap();
    let ids: Vec<String> = (0..300).map(|n| format!("m{n:04}")).collect();
    let traits = serde_json::json!({"plan": "pro", "email": "a@example.com"});
    // Backwards, with the key taken off the allowlist (as a delivery read before the save).
    let backwards: Vec<SyncedMember> = ids
        .iter()
        .rev()
        .map(|id| SyncedMember {
            provider_member_id: id.clone(),
            reference_id: None,
            traits: traits.as_object().unwrap().clone(),
        })
        .collect();
    let diff = move |store: Arc<dyn Store>, shop: ProjectId, members: Vec<SyncedMember>| async move {
        let cohort = uj_storage::SyncCohort {
            mixpanel_project_id: Some("10"),
            mixpanel_cohort_id: "1",
            name: "A",
            description: Some(""),
            accepted_with: None,
        };
        let entry = LedgerEntry {
            id: LedgerEntryId::generate(),
            audience_id: None,
            action: "add_members".into(),
            session_id: None,
            page: Some(1),
            total_pages: Some(1),
            members: members.len() as i64,
            added: 0,
            removed: 0,
            outcome: LedgerOutcome::Applied,
            error: None,
            received_at: t0,
            mixpanel_cohort_id: None,
            mixpanel_cohort_name: None,
        };
        store
            .receive_sync_diff(&shop, &cohort, &members, false, entry)
            .await
    };
    let audience = diff(store.clone(), shop.clone(), backwards.clone())
        .await
        .unwrap()
        .audience_id
        .unwrap();
    let diffs = tokio::spawn({
        let (store, shop) = (store.clone(), shop.clone());
        async move {
            for _ in 0..20 {
                diff(store.clone(), shop.clone(), backwards.clone())
                    .await
                    .expect("a diff lands");
            }
        }
    });
    let mut passes = 0;
    while !diffs.is_finished() {
        let mut after = None;
        while let Some(last) = store
            .erase_member_traits(&shop, &audience, after, 50)
            .await
            .expect("an erase batch lands")
        {
            after = Some(last);
        }
        passes += 1;
    }
    diffs.await.unwrap();
    assert!(passes > 1, "the erase ran beside the diffs");
}

/// A diff (`add_members`, `remove_members`) is one transaction: its audience, its members
/// and its ledger entry all land, or none of them does. (They were three: a failure after
/// the members changed left them changed with no entry, answered 5xx.)
async fn a_diff_lands_whole_or_not_at_all(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let cohort = |id| uj_storage::SyncCohort {
        mixpanel_project_id: Some("10"),
        mixpanel_cohort_id: id,
        name: "Nine",
        description: Some(""),
        accepted_with: None,
    };
    let entry = |action: &str| LedgerEntry {
        id: LedgerEntryId::generate(),
        audience_id: None,
        action: action.into(),
        session_id: None,
        page: Some(1),
        total_pages: Some(1),
        members: 1,
        added: 0,
        removed: 0,
        outcome: LedgerOutcome::Applied,
        error: None,
        received_at: t0,
        mixpanel_cohort_id: None,
        mixpanel_cohort_name: None,
    };
    let first = entry("add_members");
    let added = store
        .receive_sync_diff(
            &shop,
            &cohort("9"),
            &members(&["a", "b"]),
            false,
            first.clone(),
        )
        .await
        .unwrap();
    assert_eq!((added.added, added.removed), (2, 0));
    let audience = added.audience_id.clone().unwrap();
    assert_eq!(current(&store, &audience).await, ["a", "b"]);
    // An entry that cannot be recorded (its id is taken): the members stay as they were,
    // and a new cohort's audience is not created.
    let taken = LedgerEntry {
        action: "remove_members".into(),
        ..first.clone()
    };
    assert!(store
        .receive_sync_diff(&shop, &cohort("9"), &members(&["a"]), true, taken.clone())
        .await
        .is_err());
    assert_eq!(current(&store, &audience).await, ["a", "b"]);
    assert!(store
        .receive_sync_diff(&shop, &cohort("10"), &members(&["c"]), false, first.clone())
        .await
        .is_err());
    assert_eq!(
        store
            .audiences(&shop, &first_page(10))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let left = store
        .receive_sync_diff(
            &shop,
            &cohort("9"),
            &members(&["b"]),
            true,
            entry("remove_members"),
        )
        .await
        .unwrap();
    assert_eq!((left.added, left.removed), (0, 1));
    assert_eq!(current(&store, &audience).await, ["a"]);
    let ledger = store
        .sync_ledger(&shop, Some(&audience), &first_page(10))
        .await
        .unwrap();
    assert_eq!(ledger.items.len(), 2);
}

async fn the_ledger_lists_deliveries_newest_first(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let now = uj_now();
    let audience = audience_a(&store, &shop, now).await;
    let entry = |action: &str, audience_id| LedgerEntry {
        id: LedgerEntryId::generate(),
        audience_id,
        action: action.into(),
        session_id: Some("s".into()),
        page: Some(1),
        total_pages: Some(1),
        members: 3,
        added: 3,
        removed: 0,
        outcome: LedgerOutcome::Applied,
        error: None,
        received_at: now,
        mixpanel_cohort_id: None,
        mixpanel_cohort_name: None,
    };
    let first = entry("members", Some(audience.clone()));
    let second = entry("add_members", Some(audience.clone()));
    let rejected = LedgerEntry {
        outcome: LedgerOutcome::Rejected,
        error: Some("wrong project".into()),
        ..entry("members", None)
    };
    for e in [&first, &second, &rejected] {
        store.record_sync(&shop, e, None).await.unwrap();
    }
    let all = store
        .sync_ledger(&shop, None, &first_page(2))
        .await
        .unwrap();
    assert_eq!(all.items, [rejected.clone(), second.clone()]);
    assert!(all.has_more);
    let rest = store
        .sync_ledger(
            &shop,
            None,
            &PageRequest {
                limit: 2,
                starting_after: Some(second.id.to_string()),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items, std::slice::from_ref(&first));
    let audience_only = store
        .sync_ledger(&shop, Some(&audience), &first_page(10))
        .await
        .unwrap();
    assert_eq!(audience_only.items.len(), 2);
    assert!(store
        .sync_ledger(&blog, None, &first_page(10))
        .await
        .unwrap()
        .items
        .is_empty());
}

async fn an_audience_is_deleted_whole_unless_a_live_rule_targets_it(
    store: Arc<dyn Store>,
    db: &TestDatabase,
) {
    use uj_storage::AudienceDeletion;
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let now = uj_now();
    let audience = audience_a(&store, &shop, now).await;
    store
        .add_audience_members(&audience, &members(&["a", "b"]), now)
        .await
        .unwrap();
    // An unfinished full sync staged, and its page in the history.
    receive(&store, &shop, &audience, "s1", 1, 2, &members(&["c"]), now).await;
    let (_, event_rule) = study_with_event_rule(&store, &shop, now).await;
    let rule = uj_domain::studies::LaunchRule {
        id: uj_domain::ids::LaunchRuleId::generate(),
        trigger: uj_domain::pacing::Trigger::Audience(audience.to_string()),
        ..event_rule
    };
    store.create_launch_rule(&rule, None).await.unwrap();
    let delete = |project: ProjectId| {
        let (store, audience) = (store.clone(), audience.clone());
        async move { store.delete_audience(&project, &audience).await.unwrap() }
    };
    assert_eq!(delete(blog.clone()).await, AudienceDeletion::NotFound);
    assert_eq!(delete(shop.clone()).await, AudienceDeletion::InUse(1));
    let archived = uj_domain::studies::LaunchRule {
        status: uj_domain::pacing::RuleStatus::Archived,
        updated_at: now + Duration::seconds(1),
        ..rule.clone()
    };
    assert!(store
        .update_launch_rule(&archived, rule.updated_at)
        .await
        .unwrap()
        .is_some());
    assert_eq!(delete(shop.clone()).await, AudienceDeletion::Deleted);
    assert!(store.audience(&shop, &audience).await.unwrap().is_none());
    assert_eq!(delete(shop.clone()).await, AudienceDeletion::NotFound);
    for table in [
        "audience_members",
        "sync_staging",
        "sync_staged_members",
        "sync_ledger",
    ] {
        let rows = format!("SELECT COUNT(*) FROM {table} WHERE audience_id = '{audience}'");
        let left: i64 = if db.url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query_scalar(&rows).fetch_one(&pool).await.unwrap()
        } else {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query_scalar(&rows).fetch_one(&pool).await.unwrap()
        };
        assert_eq!(left, 0, "{table}");
    }
    // A rule made on it now finds it gone (it was checked before the delete).
    let late = uj_domain::studies::LaunchRule {
        id: uj_domain::ids::LaunchRuleId::generate(),
        ..rule
    };
    let refused = store.create_launch_rule(&late, None).await.unwrap_err();
    assert!(
        matches!(refused, StoreError::Gone("audience")),
        "{refused:?}"
    );
}

/// A delivery carries the secret it was accepted with: its transaction applies it only while
/// sync is on with that secret and the project is connected to the delivery's Mixpanel
/// project. (Checked before it waited for the writer only, it was applied after a Disable,
/// a Disconnect or a Regenerate secret had answered.)
async fn a_delivery_is_applied_only_while_the_settings_it_was_accepted_under_hold(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    store
        .save_mixpanel_connection(&connection(&shop, "10"), "v1.x")
        .await
        .unwrap();
    let config = CohortSyncConfig {
        project_id: shop.clone(),
        webhook_id: "whk_one".into(),
        username: "mixpanel".into(),
        secret_hash: "hash-1".into(),
        created_at: now,
        secret_rotated_at: now,
        last_delivery_at: None,
        enabled: true,
    };
    assert!(store.create_cohort_sync_config(&config).await.unwrap());
    let diff = |secret: &'static str, from: &'static str, member: &'static str| {
        let (store, shop) = (store.clone(), shop.clone());
        async move {
            let cohort = uj_storage::SyncCohort {
                mixpanel_project_id: Some(from),
                mixpanel_cohort_id: "1",
                name: "A",
                description: Some(""),
                accepted_with: Some(secret),
            };
            let entry = delivery_entry("add_members", None, 1, 1, now);
            store
                .receive_sync_diff(&shop, &cohort, &members(&[member]), false, entry)
                .await
        }
    };
    let page = |secret: &'static str| sync_page(&store, &shop, secret, "1", 1, 1);
    let gone = |result: Result<LedgerEntry, StoreError>| {
        matches!(result, Err(StoreError::Gone("cohort sync settings")))
    };
    let audience = diff("hash-1", "10", "a")
        .await
        .unwrap()
        .audience_id
        .unwrap();
    assert!(gone(diff("hash-0", "10", "b").await), "an older secret");
    assert!(
        gone(diff("hash-1", "11", "b").await),
        "another Mixpanel project"
    );
    store
        .rotate_cohort_sync_secret(&shop, "hash-2", now)
        .await
        .unwrap();
    assert!(
        gone(diff("hash-1", "10", "b").await),
        "the secret regenerated"
    );
    assert!(gone(page("hash-1").await), "a page too");
    // A page of a first full sync (SQLite writes those its own way; it did not look).
    sync_page(&store, &shop, "hash-2", "5", 1, 3).await.unwrap();
    assert!(
        gone(sync_page(&store, &shop, "hash-1", "5", 2, 3).await),
        "a first sync's page"
    );
    assert!(store.disable_cohort_sync(&shop).await.unwrap());
    assert!(gone(diff("hash-2", "10", "b").await), "sync turned off");
    store.enable_cohort_sync(&shop).await.unwrap();
    assert!(store.delete_mixpanel_connection(&shop).await.unwrap());
    assert!(gone(diff("hash-2", "10", "b").await), "disconnected");
    let current = store
        .audience_members(&audience, false, &first_page(10))
        .await
        .unwrap();
    assert_eq!(current.items.len(), 1, "only the first applied");
    store
        .save_mixpanel_connection(&connection(&shop, "10"), "v1.x")
        .await
        .unwrap();
    diff("hash-2", "10", "b").await.unwrap();
    page("hash-2").await.unwrap();
}

/// A delivery's ledger entry as the webhook hands it to the store: `action` of session
/// `session`, page `page` of `total`, one member, received `at`.
fn delivery_entry(
    action: &str,
    session: Option<&str>,
    page: i64,
    total: i64,
    at: chrono::DateTime<Utc>,
) -> LedgerEntry {
    LedgerEntry {
        id: LedgerEntryId::generate(),
        audience_id: None,
        action: action.into(),
        session_id: session.map(Into::into),
        page: Some(page),
        total_pages: Some(total),
        members: 1,
        added: 0,
        removed: 0,
        outcome: LedgerOutcome::Applied,
        error: None,
        received_at: at,
        mixpanel_cohort_id: None,
        mixpanel_cohort_name: None,
    }
}

/// Page `page` of `total` of session "s" of cohort `cohort` (of Mixpanel project "10"),
/// with member "p<page>", accepted with the secret whose hash is `secret`.
async fn sync_page(
    store: &Arc<dyn Store>,
    shop: &ProjectId,
    secret: &str,
    cohort: &str,
    page: i64,
    total: i64,
) -> Result<LedgerEntry, StoreError> {
    let cohort = uj_storage::SyncCohort {
        mixpanel_project_id: Some("10"),
        mixpanel_cohort_id: cohort,
        name: "A",
        description: Some(""),
        accepted_with: Some(secret),
    };
    let entry = delivery_entry("members", Some("s"), page, total, uj_now());
    let member = format!("p{page}");
    let page = uj_storage::SyncPage {
        session_id: "s",
        page,
        total_pages: total,
        members: &members(&[&member]),
    };
    store.receive_sync_page(shop, &cohort, &page, entry).await
}

/// Runs `sql` on the test's database outside the store (as another process would), and
/// answers its first column as a count when it has one.
async fn raw_sql(db: &TestDatabase, sql: &str) -> Option<i64> {
    if db.url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql).fetch_optional(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql).fetch_optional(&pool).await.unwrap()
    }
}

/// An audience of more members than one deletion batch goes whole, its history with it. A
/// deletion a stopped process began (its mark set, part of its members gone) refuses new
/// rules on the audience and deliveries for its cohort, and is finished by the next delete
/// of it or by the housekeeping that finds it.
async fn a_big_audience_is_deleted_in_batches_and_a_deletion_left_part_way_is_finished(
    store: Arc<dyn Store>,
    db: &TestDatabase,
) {
    use uj_storage::AudienceDeletion;
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let count = |audience: &uj_domain::ids::AudienceId| {
        let sql = format!("SELECT COUNT(*) FROM audience_members WHERE audience_id = '{audience}'");
        async move { raw_sql(db, &sql).await.unwrap() }
    };
    let big = audience_a(&store, &shop, now).await;
    let ids: Vec<String> = (0..12_001).map(|i| format!("m{i:05}")).collect();
    for chunk in ids.chunks(1000) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        store
            .add_audience_members(&big, &members(&chunk), now)
            .await
            .unwrap();
    }
    receive(&store, &shop, &big, "s1", 1, 2, &members(&["x"]), now).await;
    assert_eq!(count(&big).await, 12_002);
    assert_eq!(
        store.delete_audience(&shop, &big).await.unwrap(),
        AudienceDeletion::Deleted
    );
    assert!(store.audience(&shop, &big).await.unwrap().is_none());
    assert_eq!(count(&big).await, 0);
    let history = format!("SELECT COUNT(*) FROM sync_ledger WHERE audience_id = '{big}'");
    assert_eq!(raw_sql(db, &history).await, Some(0));

    // Left part-way by a process that stopped: marked, a member deleted.
    let left = store
        .upsert_audience(&shop, "2", "B", "", now)
        .await
        .unwrap()
        .id;
    store
        .add_audience_members(&left, &members(&["a", "b"]), now)
        .await
        .unwrap();
    let since = if db.url.starts_with("postgres") {
        "now()"
    } else {
        "'2026-01-01T00:00:00Z'"
    };
    raw_sql(
        db,
        &format!("UPDATE audiences SET deleting_since = {since} WHERE id = '{left}'"),
    )
    .await;
    raw_sql(db, &format!("DELETE FROM audience_members WHERE audience_id = '{left}' AND provider_member_id = 'a'")).await;
    let (_, event_rule) = study_with_event_rule(&store, &shop, now).await;
    let rule = uj_domain::studies::LaunchRule {
        id: uj_domain::ids::LaunchRuleId::generate(),
        trigger: uj_domain::pacing::Trigger::Audience(left.to_string()),
        ..event_rule
    };
    let refused = store.create_launch_rule(&rule, None).await.unwrap_err();
    assert!(
        matches!(refused, StoreError::Gone("audience")),
        "{refused:?}"
    );
    // A delivery for its cohort is refused, to be retried once it is gone (it landed in it,
    // and went with it: Mixpanel never sends a diff again).
    let cohort = uj_storage::SyncCohort {
        mixpanel_project_id: None,
        mixpanel_cohort_id: "2",
        name: "B",
        description: None,
        accepted_with: None,
    };
    let entry = delivery_entry("add_members", None, 1, 1, now);
    let refused = store
        .receive_sync_diff(&shop, &cohort, &members(&["c"]), false, entry.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::Gone("audience being deleted")),
        "{refused:?}"
    );
    let first = uj_storage::SyncPage {
        session_id: "s9",
        page: 1,
        total_pages: 3,
        members: &members(&["c"]),
    };
    let refused = store
        .receive_sync_page(&shop, &cohort, &first, entry)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::Gone("audience being deleted")),
        "{refused:?}"
    );
    assert_eq!(count(&left).await, 1, "nothing landed");
    assert_eq!(
        store.delete_audience(&shop, &left).await.unwrap(),
        AudienceDeletion::Deleted
    );
    assert!(store.audience(&shop, &left).await.unwrap().is_none());
    assert_eq!(count(&left).await, 0);

    // And by the housekeeping, which finds only those begun.
    let other = store
        .upsert_audience(&shop, "3", "C", "", now)
        .await
        .unwrap()
        .id;
    let kept = store
        .upsert_audience(&shop, "4", "D", "", now)
        .await
        .unwrap()
        .id;
    store
        .add_audience_members(&other, &members(&["c"]), now)
        .await
        .unwrap();
    raw_sql(
        db,
        &format!("UPDATE audiences SET deleting_since = {since} WHERE id = '{other}'"),
    )
    .await;
    assert_eq!(store.finish_audience_deletions().await.unwrap(), 1);
    assert!(store.audience(&shop, &other).await.unwrap().is_none());
    assert_eq!(count(&other).await, 0);
    assert!(store.audience(&shop, &kept).await.unwrap().is_some());
    assert_eq!(store.finish_audience_deletions().await.unwrap(), 0);
}

async fn old_ledger_entries_are_deleted(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let now = uj_now();
    let audience = audience_a(&store, &shop, now).await;
    let entry = |days_ago: i64, audience_id| LedgerEntry {
        id: LedgerEntryId::generate(),
        audience_id,
        action: "add_members".into(),
        session_id: None,
        page: None,
        total_pages: None,
        members: 1,
        added: 1,
        removed: 0,
        outcome: LedgerOutcome::Applied,
        error: None,
        received_at: now - Duration::days(days_ago),
        mixpanel_cohort_id: None,
        mixpanel_cohort_name: None,
    };
    let old = entry(91, Some(audience.clone()));
    let kept = entry(89, Some(audience.clone()));
    let new = entry(0, Some(audience.clone()));
    let other_old = LedgerEntry {
        outcome: LedgerOutcome::Rejected,
        error: Some("wrong credentials".into()),
        ..entry(120, None)
    };
    for e in [&old, &kept, &new] {
        store.record_sync(&shop, e, None).await.unwrap();
    }
    store.record_sync(&blog, &other_old, None).await.unwrap();
    let removed = store
        .delete_old_ledger_entries(now - Duration::days(90))
        .await
        .unwrap();
    assert_eq!(removed, 2, "one of each project");
    let shop_ledger = store
        .sync_ledger(&shop, None, &first_page(10))
        .await
        .unwrap();
    assert_eq!(shop_ledger.items, [new.clone(), kept.clone()]);
    let blog_ledger = store
        .sync_ledger(&blog, None, &first_page(10))
        .await
        .unwrap();
    assert!(blog_ledger.items.is_empty());
    // Nothing more to delete: a second pass removes nothing.
    assert_eq!(
        store
            .delete_old_ledger_entries(now - Duration::days(90))
            .await
            .unwrap(),
        0
    );
}

/// Old entries past one batch (5,000 a statement) are all deleted, batch after batch.
async fn old_ledger_entries_are_deleted_past_one_batch(store: Arc<dyn Store>, db: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let when = match db.url.starts_with("postgres") {
        true => "CAST('2020-01-01T00:00:00Z' AS TIMESTAMPTZ)",
        false => "'2020-01-01T00:00:00.000000Z'",
    };
    let fill = format!(
        "INSERT INTO sync_ledger (id, project_id, action, members, added, removed, outcome, received_at)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12001)
         SELECT 'led_old_' || i, '{shop}', 'add_members', 1, 1, 0, 'applied', {when} FROM n"
    );
    let left = "SELECT COUNT(*) FROM sync_ledger";
    let count: i64 = if db.url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query(&fill).execute(&pool).await.unwrap();
        sqlx::query_scalar(left).fetch_one(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::query(&fill).execute(&pool).await.unwrap();
        sqlx::query_scalar(left).fetch_one(&pool).await.unwrap()
    };
    assert_eq!(count, 12_001);
    let removed = store
        .delete_old_ledger_entries(uj_now() - Duration::days(90))
        .await
        .unwrap();
    assert_eq!(removed, 12_001);
    assert!(store
        .sync_ledger(&shop, None, &first_page(10))
        .await
        .unwrap()
        .items
        .is_empty());
}

async fn the_trait_allowlist_round_trips(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    assert!(
        store.trait_allowlist(&shop).await.unwrap().is_empty(),
        "empty by default"
    );
    let both = vec!["plan".to_owned(), "email".to_owned()];
    let keys = vec!["plan".to_owned()];
    assert!(store.trait_erase_due(&shop).await.unwrap().is_none());
    assert!(store.trait_erases_due().await.unwrap().is_empty());
    let first = uj_domain::now();
    // A list that grows drops nothing: no erase is due.
    assert!(!store
        .set_trait_allowlist(&shop, &both, first)
        .await
        .unwrap());
    assert_eq!(store.trait_allowlist(&shop).await.unwrap(), both);
    assert!(store.trait_erase_due(&shop).await.unwrap().is_none());
    assert!(store
        .set_trait_allowlist(&shop, &keys, first)
        .await
        .unwrap());
    assert_eq!(store.trait_allowlist(&shop).await.unwrap(), keys);
    // A save that drops a key marks an erase due; only that save's erase marks it done.
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    assert_eq!(store.trait_erase_due(&shop).await.unwrap(), Some(first));
    assert!(store.trait_erase_due(&blog).await.unwrap().is_none());
    assert_eq!(store.trait_erases_due().await.unwrap(), vec![shop.clone()]);
    let second = first + Duration::seconds(1);
    // The same list again drops nothing, and leaves the erase due as it was.
    assert!(!store
        .set_trait_allowlist(&shop, &keys, second)
        .await
        .unwrap());
    assert_eq!(store.trait_erase_due(&shop).await.unwrap(), Some(first));
    assert!(store.set_trait_allowlist(&shop, &[], second).await.unwrap());
    assert!(
        !store.trait_erase_done(&shop, first).await.unwrap(),
        "an erase that began before the last save is not the last save's"
    );
    assert!(!store.trait_erase_done(&blog, second).await.unwrap());
    assert_eq!(store.trait_erases_due().await.unwrap(), vec![shop.clone()]);
    assert!(store.trait_erase_done(&shop, second).await.unwrap());
    assert!(store.trait_erase_due(&shop).await.unwrap().is_none());
    assert!(store.trait_erases_due().await.unwrap().is_empty());
    assert!(!store
        .set_trait_allowlist(&ProjectId::from_string("prj_missing"), &keys, second)
        .await
        .unwrap());
}

/// Taking keys off the allowlist erases them, in batches, from the stored traits of the
/// project's members (current and past) and its invites' attribution records; another
/// project's are untouched.
async fn traits_off_the_allowlist_are_erased_from_members_and_invites_of_the_project(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let t0 = uj_now();
    let traits = serde_json::json!({"plan": "pro", "email": "a@example.com"});
    let member = |id: &str| SyncedMember {
        provider_member_id: id.into(),
        reference_id: None,
        traits: traits.as_object().unwrap().clone(),
    };
    let mut audiences = Vec::new();
    for (project, cohort) in [(&shop, "1"), (&shop, "2"), (&blog, "1")] {
        let audience = store
            .upsert_audience(project, cohort, "A", "", t0)
            .await
            .unwrap()
            .id;
        let listed: Vec<SyncedMember> = ["a", "b", "c"].map(member).into();
        store
            .add_audience_members(&audience, &listed, t0)
            .await
            .unwrap();
        audiences.push(audience);
    }
    store
        .remove_audience_members(&audiences[0], &["c".into()], t0)
        .await
        .unwrap();
    let mut codes = Vec::new();
    let (study, rule) = study_with_event_rule(&store, &shop, t0).await;
    let blog_study = uj_domain::studies::Study {
        id: uj_domain::ids::StudyId::generate(),
        project_id: blog.clone(),
        public_code: "blog7Qx2pL".into(),
        public_link: true,
        ..study
    };
    store.create_study(&blog_study, None).await.unwrap();
    let blog_rule = uj_domain::studies::LaunchRule {
        id: uj_domain::ids::LaunchRuleId::generate(),
        project_id: blog.clone(),
        study_id: blog_study.id.clone(),
        ..rule.clone()
    };
    store.create_launch_rule(&blog_rule, None).await.unwrap();
    for (tag, rule) in [("shop", &rule), ("blog", &blog_rule)] {
        for user in ["u1", "u2", "u3"] {
            let code = format!("{tag}-{user}-traits");
            let mut invite = event_invite(rule, &code, user, t0);
            invite.traits = traits.as_object().unwrap().clone();
            store.issue_invite(&invite, t0).await.unwrap();
            codes.push(code);
        }
    }

    // A full sync under way on the first audience stages "a", a current member, with the
    // traits it lists: copied into the audience when the sync applies.
    receive(
        &store,
        &shop,
        &audiences[0],
        "s1",
        1,
        2,
        &["a"].map(member),
        t0,
    )
    .await;
    store
        .set_trait_allowlist(&shop, &["email".to_owned(), "plan".to_owned()], t0)
        .await
        .unwrap();
    let erase_all = |store: Arc<dyn Store>, batch: i64| {
        let audiences = audiences.clone();
        let shop = shop.clone();
        async move {
            let mut batches = 0;
            for audience in &audiences {
                let mut after = None;
                loop {
                    after = store
                        .erase_member_traits(&shop, audience, after, batch)
                        .await
                        .unwrap();
                    batches += 1;
                    if after.is_none() {
                        break;
                    }
                }
                let mut after = None;
                while let Some(last) = store
                    .erase_staged_traits(&shop, audience, after, batch)
                    .await
                    .unwrap()
                {
                    after = Some(last);
                }
            }
            let mut after = None;
            while let Some(last) = store
                .erase_invite_traits(&shop, after, batch)
                .await
                .unwrap()
            {
                after = Some(last);
            }
            batches
        }
    };
    // Every key on the allowlist: nothing changes.
    erase_all(store.clone(), 2).await;
    let stored = store
        .audience_member(&audiences[0], "a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(serde_json::Value::Object(stored.traits), traits);

    store
        .set_trait_allowlist(&shop, &["plan".to_owned()], t0)
        .await
        .unwrap();
    let batches = erase_all(store.clone(), 2).await;
    assert_eq!(
        batches, 7,
        "three members per audience in batches of two (3 calls each); none read of another \
         project's audience (1 call)"
    );
    // The sync applies: the staged traits it copies were erased too.
    receive(
        &store,
        &shop,
        &audiences[0],
        "s1",
        2,
        2,
        &[synced("b", None)],
        t0,
    )
    .await;
    let plan_only = serde_json::json!({"plan": "pro"});
    for (audience, erased) in [
        (&audiences[0], true),
        (&audiences[1], true),
        (&audiences[2], false),
    ] {
        for id in ["a", "b", "c"] {
            let stored = store.audience_member(audience, id).await.unwrap().unwrap();
            let expected = if erased { &plan_only } else { &traits };
            assert_eq!(
                &serde_json::Value::Object(stored.traits),
                expected,
                "member {id} of {audience} (past members too)"
            );
        }
    }
    for (i, code) in codes.iter().enumerate() {
        let stored = store.invite_by_code(code).await.unwrap().unwrap();
        let expected = if i < 3 { &plan_only } else { &traits };
        assert_eq!(
            &serde_json::Value::Object(stored.traits),
            expected,
            "{code}"
        );
    }
}

async fn studies_and_rules_round_trip_and_stay_in_their_project(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::ids::{LaunchRuleId, StudyId};
    use uj_domain::pacing::{RuleStatus, StudyStatus, Trigger};
    use uj_domain::studies::{LaunchMode, LaunchRule, PromptCopy, Study, Surface};
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let now = uj_now();
    let mut study = Study {
        id: StudyId::generate(),
        project_id: shop.clone(),
        name: "Checkout interviews".into(),
        status: StudyStatus::Active,
        interview_url: "https://research.example.com/i/checkout".into(),
        launch_mode: LaunchMode::InApp,
        weekly_limit: Some(20),
        monthly_limit: None,
        public_code: "ck7Qx2pLm9".into(),
        public_link: true,
        created_at: now,
        updated_at: now,
    };
    store.create_study(&study, None).await.unwrap();
    assert_eq!(store.study(&shop, &study.id).await.unwrap().unwrap(), study);
    assert!(store.study(&blog, &study.id).await.unwrap().is_none());
    let clash = Study {
        id: StudyId::generate(),
        ..study.clone()
    };
    assert!(matches!(
        store.create_study(&clash, None).await,
        Err(StoreError::Conflict(_))
    ));
    study.status = StudyStatus::Paused;
    study.updated_at = now + Duration::seconds(1);
    assert!(store.update_study(&study, now).await.unwrap());
    // Written over the row as read only: a change made from an older read writes nothing.
    let stale = Study {
        status: StudyStatus::Active,
        updated_at: now + Duration::seconds(2),
        ..study.clone()
    };
    assert!(!store.update_study(&stale, now).await.unwrap());
    assert_eq!(
        store.study(&shop, &study.id).await.unwrap().unwrap().status,
        StudyStatus::Paused
    );
    assert!(!store
        .update_study(
            &Study {
                project_id: blog.clone(),
                ..study.clone()
            },
            study.updated_at
        )
        .await
        .unwrap());

    let mut rule = LaunchRule {
        id: LaunchRuleId::generate(),
        project_id: shop.clone(),
        study_id: study.id.clone(),
        name: "After checkout".into(),
        status: RuleStatus::Draft,
        trigger: Trigger::AppEvent("Order Completed".into()),
        surface: Surface::SdkPrompt,
        prompt: PromptCopy {
            title: "Got 5 minutes?".into(),
            ..PromptCopy::default()
        },
        priority: 3,
        cooldown_seconds: 86400,
        max_starts: Some(50),
        sampling_percent: 25,
        starts_at: Some(now),
        ends_at: None,
        created_at: now,
        updated_at: now,
    };
    store.create_launch_rule(&rule, None).await.unwrap();
    assert_eq!(
        store.launch_rule(&shop, &rule.id).await.unwrap().unwrap(),
        rule
    );
    assert!(store.launch_rule(&blog, &rule.id).await.unwrap().is_none());
    rule.status = RuleStatus::Archived;
    rule.trigger = Trigger::Audience("aud_x".into());
    rule.updated_at = now + Duration::seconds(1);
    let stale = now - Duration::seconds(1);
    assert_eq!(store.update_launch_rule(&rule, stale).await.unwrap(), None);
    assert!(store
        .update_launch_rule(&rule, now)
        .await
        .unwrap()
        .is_some());
    let stored = store.launch_rule(&shop, &rule.id).await.unwrap().unwrap();
    assert_eq!(stored.status, RuleStatus::Archived);
    assert_eq!(
        stored.trigger,
        Trigger::AppEvent("Order Completed".into()),
        "the trigger is never rewritten"
    );
    let listed = store
        .launch_rules_of_study(&shop, &study.id, &first_page(10))
        .await
        .unwrap();
    assert_eq!((listed.items.len(), listed.has_more), (1, false));
    // Pages of a study's rules, oldest first, one after the other.
    let mut ids = vec![rule.id.clone()];
    for n in 0..2 {
        // With the stored trigger: a new rule's audience must exist.
        let more = LaunchRule {
            id: uj_domain::ids::LaunchRuleId::generate(),
            name: format!("More {n}"),
            trigger: stored.trigger.clone(),
            ..rule.clone()
        };
        store.create_launch_rule(&more, None).await.unwrap();
        ids.push(more.id);
    }
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let first = store
        .launch_rules_of_study(&shop, &study.id, &first_page(2))
        .await
        .unwrap();
    assert!(first.has_more);
    let next = store
        .launch_rules_of_study(
            &shop,
            &study.id,
            &uj_storage::PageRequest {
                limit: 2,
                starting_after: Some(first.items[1].id.to_string()),
            },
        )
        .await
        .unwrap();
    assert!(!next.has_more);
    let paged: Vec<_> = first
        .items
        .iter()
        .chain(&next.items)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(paged, ids);
    assert!(
        store.live_launch_rules(&shop).await.unwrap().is_empty(),
        "archived rules are not live"
    );
    let page = store.studies(&shop, &first_page(10)).await.unwrap();
    assert_eq!(page.items.len(), 1);

    assert_eq!(store.sdk_contacted_at(&shop).await.unwrap(), None);
    store.mark_sdk_contact(&shop, now).await.unwrap();
    store
        .mark_sdk_contact(&shop, now + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        store.sdk_contacted_at(&shop).await.unwrap(),
        Some(now),
        "the first contact is kept"
    );
    assert_eq!(store.sdk_contacted_at(&blog).await.unwrap(), None);

    assert_eq!(
        store.contact_limit_days(&shop).await.unwrap(),
        None,
        "off by default"
    );
    let limit = |days| uj_storage::SettingsChange {
        trait_allowlist: None,
        contact_limit_days: Some(days),
    };
    assert_eq!(
        store
            .change_settings(&shop, &limit(Some(14)), now)
            .await
            .unwrap(),
        Some(false)
    );
    assert_eq!(store.contact_limit_days(&shop).await.unwrap(), Some(14));
    assert_eq!(store.contact_limit_days(&blog).await.unwrap(), None);
    store
        .change_settings(&shop, &limit(None), now)
        .await
        .unwrap();
    assert_eq!(store.contact_limit_days(&shop).await.unwrap(), None);
    // Both settings at once, in one write; an unknown project has none.
    let keys = ["plan".to_owned()];
    let both = uj_storage::SettingsChange {
        trait_allowlist: Some(&keys[..]),
        contact_limit_days: Some(Some(30)),
    };
    assert_eq!(
        store.change_settings(&shop, &both, now).await.unwrap(),
        Some(false)
    );
    assert_eq!(store.trait_allowlist(&shop).await.unwrap(), keys);
    assert_eq!(store.contact_limit_days(&shop).await.unwrap(), Some(30));
    let unknown = ProjectId::from_string("prj_missing");
    assert_eq!(
        store.change_settings(&unknown, &both, now).await.unwrap(),
        None
    );
}

/// An active in-app study with an active app-event rule (`Order Completed`), stored.
async fn study_with_event_rule(
    store: &Arc<dyn Store>,
    shop: &ProjectId,
    now: chrono::DateTime<Utc>,
) -> (uj_domain::studies::Study, uj_domain::studies::LaunchRule) {
    use uj_domain::ids::{LaunchRuleId, StudyId};
    use uj_domain::pacing::{RuleStatus, StudyStatus, Trigger};
    use uj_domain::studies::{LaunchMode, LaunchRule, PromptCopy, Study, Surface};
    let study = Study {
        id: StudyId::generate(),
        project_id: shop.clone(),
        name: "Checkout".into(),
        status: StudyStatus::Active,
        interview_url: "https://research.example.com/i/checkout".into(),
        launch_mode: LaunchMode::InApp,
        weekly_limit: None,
        monthly_limit: None,
        public_code: "stats7Qx2p".into(),
        public_link: true,
        created_at: now,
        updated_at: now,
    };
    store.create_study(&study, None).await.unwrap();
    let rule = LaunchRule {
        id: LaunchRuleId::generate(),
        project_id: shop.clone(),
        study_id: study.id.clone(),
        name: "After checkout".into(),
        status: RuleStatus::Active,
        trigger: Trigger::AppEvent("Order Completed".into()),
        surface: Surface::SdkPrompt,
        prompt: PromptCopy::default(),
        priority: 0,
        cooldown_seconds: 0,
        max_starts: None,
        sampling_percent: 100,
        starts_at: None,
        ends_at: None,
        created_at: now,
        updated_at: now,
    };
    store.create_launch_rule(&rule, None).await.unwrap();
    (study, rule)
}

/// A study's weekly limit counts starts since Monday 00:00 UTC and its monthly limit since
/// the first of the month, both checked in the accept's transaction: a start past either is
/// refused with `study_limit` (the invite withdrawn), and each resets on its boundary.
async fn study_limits_hold_at_accept_and_reset_on_monday_and_the_first(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use chrono::TimeZone;
    use uj_domain::invites::AcceptOutcome;
    use uj_domain::pacing::Reason;
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let at = |day: u32, hour: u32, minute: u32| {
        let (month, day) = if day > 30 { (12, day - 30) } else { (11, day) };
        Utc.with_ymd_and_hms(2026, month, day, hour, minute, 0)
            .unwrap()
    };
    // Monday 30 November 2026; December starts on the Tuesday.
    let created = at(1, 0, 0);
    let (study, rule) = study_with_event_rule(&store, &shop, created).await;
    let limited = uj_domain::studies::Study {
        weekly_limit: Some(1),
        monthly_limit: Some(2),
        updated_at: created + Duration::seconds(1),
        ..study.clone()
    };
    assert!(store.update_study(&limited, created).await.unwrap());
    let starts = [
        ("Mon 30 Nov", at(30, 10, 0), None),
        (
            "Sun 6 Dec, 23:59, the same week",
            at(36, 23, 59),
            Some(Reason::StudyLimit),
        ),
        ("Mon 7 Dec, 00:00: the week resets", at(37, 0, 0), None),
        ("Sun 13 Dec", at(43, 12, 0), Some(Reason::StudyLimit)),
        ("Mon 14 Dec: December's second", at(44, 0, 0), None),
        (
            "Mon 21 Dec: a new week, December full",
            at(51, 9, 0),
            Some(Reason::StudyLimit),
        ),
    ];
    for (n, (when, now, refused)) in starts.into_iter().enumerate() {
        let code = format!("limit-{n}");
        let invite = event_invite(&rule, &code, &format!("u{n}"), now);
        store.issue_invite(&invite, now).await.unwrap();
        let outcome = store.accept_invite(&shop, &code, now).await.unwrap();
        let got = match outcome {
            Some(AcceptOutcome::Accepted(_)) => None,
            Some(AcceptOutcome::Refused(_, reason)) => Some(reason),
            other => panic!("{when}: {other:?}"),
        };
        assert_eq!(got, refused, "{when}");
    }
    let now = at(51, 9, 0);
    assert_eq!(
        store
            .study_starts_since(&study.id, uj_domain::pacing::week_start(now))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .study_starts_since(&study.id, uj_domain::pacing::month_start(now))
            .await
            .unwrap(),
        2
    );
    // The SDK's snapshot reads the same counts for all the live rules at once.
    let live = store
        .live_starts(
            &shop,
            uj_domain::pacing::week_start(now),
            uj_domain::pacing::month_start(now),
        )
        .await
        .unwrap();
    assert_eq!(live.rules, [(rule.id.to_string(), 3)].into());
    let studies: Vec<_> = live
        .studies
        .iter()
        .map(|(s, week, month)| (s.id.clone(), s.weekly_limit, *week, *month))
        .collect();
    assert_eq!(studies, [(study.id.clone(), Some(1), 0, 2)]);
    // Another project's, and an archived rule's, are not among them.
    let (_, other) = owner_with_project(&store, "bob@example.com").await;
    let live = store.live_starts(&other, now, now).await.unwrap();
    assert!(live.rules.is_empty() && live.studies.is_empty());
    let archived = uj_domain::studies::LaunchRule {
        status: uj_domain::pacing::RuleStatus::Archived,
        updated_at: now,
        ..rule.clone()
    };
    assert!(store
        .update_launch_rule(&archived, rule.updated_at)
        .await
        .unwrap()
        .is_some());
    let live = store.live_starts(&shop, now, now).await.unwrap();
    assert!(live.rules.is_empty() && live.studies.is_empty());
}

/// A decision made from a snapshot read before a pause (a second old, or another
/// process's) issues an invite or resolves a direct link after it: the start is refused in
/// the transaction that would make it, with the reason, and nothing is counted. A rule
/// moved to a direct link or to a later start takes back the prompts it offered.
async fn no_start_once_its_rule_or_study_stopped_or_its_schedule_moved(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::invites::AcceptOutcome;
    use uj_domain::pacing::{Reason, RuleStatus, StudyStatus};
    use uj_domain::studies::Surface;
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let (study, rule) = study_with_event_rule(&store, &shop, now).await;
    let refused = |outcome: Option<AcceptOutcome>| match outcome {
        Some(AcceptOutcome::Refused(_, reason)) => Some(reason),
        _ => None,
    };
    let mut version = 0;
    let mut change_rule = |store: Arc<dyn Store>, changed: uj_domain::studies::LaunchRule| {
        version += 1;
        let read_at = rule.updated_at + Duration::seconds(version - 1);
        async move {
            let changed = uj_domain::studies::LaunchRule {
                updated_at: read_at + Duration::seconds(1),
                ..changed
            };
            assert!(store
                .update_launch_rule(&changed, read_at)
                .await
                .unwrap()
                .is_some());
        }
    };

    let paused = uj_domain::studies::LaunchRule {
        status: RuleStatus::Paused,
        ..rule.clone()
    };
    change_rule(store.clone(), paused).await;
    store
        .issue_invite(&event_invite(&rule, "late-1", "u1", now), now)
        .await
        .unwrap();
    let accepted = store.accept_invite(&shop, "late-1", now).await.unwrap();
    assert_eq!(refused(accepted), Some(Reason::RulePaused));
    let late = store.invite(&shop, "late-1").await.unwrap().unwrap();
    assert_eq!(
        (late.state, late.withdrawn_at),
        (uj_domain::invites::InviteState::Withdrawn, Some(now)),
        "withdrawn when its start was refused, and when"
    );
    let direct = |code: &str| event_invite(&rule, code, "u2", now);
    let started = store.start_invite(&direct("link-1"), now).await.unwrap();
    assert_eq!(refused(Some(started)), Some(Reason::RulePaused));

    // The rule active again; its study paused.
    change_rule(store.clone(), rule.clone()).await;
    let paused_study = uj_domain::studies::Study {
        status: StudyStatus::Paused,
        updated_at: now + Duration::seconds(1),
        ..study.clone()
    };
    assert!(store.update_study(&paused_study, now).await.unwrap());
    let started = store.start_invite(&direct("link-2"), now).await.unwrap();
    assert_eq!(refused(Some(started)), Some(Reason::StudyPaused));
    let active_study = uj_domain::studies::Study {
        updated_at: now + Duration::seconds(2),
        ..study.clone()
    };
    assert!(store
        .update_study(&active_study, now + Duration::seconds(1))
        .await
        .unwrap());

    // The schedule window: not yet open, or closed.
    let mut issued = Vec::new();
    for (n, (starts_at, ends_at)) in [
        (Some(now + Duration::days(30)), None),
        (None, Some(now - Duration::seconds(1))),
    ]
    .into_iter()
    .enumerate()
    {
        let code = format!("open-{n}");
        store
            .issue_invite(&event_invite(&rule, &code, &format!("s{n}"), now), now)
            .await
            .unwrap();
        issued.push(code.clone());
        let moved = uj_domain::studies::LaunchRule {
            starts_at,
            ends_at,
            ..rule.clone()
        };
        change_rule(store.clone(), moved).await;
        let withdrawn = store.invite(&shop, &code).await.unwrap().unwrap();
        assert_eq!(
            withdrawn.state,
            uj_domain::invites::InviteState::Withdrawn,
            "a rule scheduled elsewhere takes back its prompts"
        );
        assert!(
            withdrawn.withdrawn_at.is_some_and(|at| at > now),
            "at the rule's change: {withdrawn:?}"
        );
        let started = store
            .start_invite(&direct(&format!("link-s{n}")), now)
            .await
            .unwrap();
        assert_eq!(refused(Some(started)), Some(Reason::OutsideSchedule));
        change_rule(store.clone(), rule.clone()).await;
    }

    // A rule moved to a direct link takes back its prompts too.
    store
        .issue_invite(&event_invite(&rule, "prompt-1", "u5", now), now)
        .await
        .unwrap();
    let linked = uj_domain::studies::LaunchRule {
        surface: Surface::DirectLink,
        ..rule.clone()
    };
    change_rule(store.clone(), linked).await;
    let withdrawn = store.invite(&shop, "prompt-1").await.unwrap().unwrap();
    assert_eq!(withdrawn.state, uj_domain::invites::InviteState::Withdrawn);
    // A prompt issued after the move (from another process's older snapshot) cannot start.
    store
        .issue_invite(&event_invite(&rule, "prompt-2", "u6", now), now)
        .await
        .unwrap();
    let accepted = store.accept_invite(&shop, "prompt-2", now).await.unwrap();
    assert!(
        matches!(&accepted, Some(AcceptOutcome::NotPending(i)) if i.state == uj_domain::invites::InviteState::Withdrawn),
        "{accepted:?}"
    );
    let withdrawn = store.invite(&shop, "prompt-2").await.unwrap().unwrap();
    assert_eq!(
        (withdrawn.state, withdrawn.withdrawn_at),
        (uj_domain::invites::InviteState::Withdrawn, Some(now))
    );

    // Nothing started, nothing counted; once all holds again, a start is made.
    let stats = store.rule_stats(&rule.id, now).await.unwrap();
    assert_eq!(stats.accepted, 0);
    for code in ["link-1", "link-2", "link-s0", "link-s1"] {
        assert!(store.invite(&shop, code).await.unwrap().is_none(), "{code}");
    }
    let started = store.start_invite(&direct("link-ok"), now).await.unwrap();
    assert!(matches!(started, AcceptOutcome::Accepted(_)));

    // Moved back to a prompt rule: a link decided from an older snapshot (another
    // process's) starts nothing.
    change_rule(store.clone(), rule.clone()).await;
    let started = store
        .start_invite(&event_invite(&rule, "link-late", "u7", now), now)
        .await
        .unwrap();
    assert_eq!(refused(Some(started)), Some(Reason::NotTriggered));
    assert!(store.invite(&shop, "link-late").await.unwrap().is_none());
    assert_eq!(store.rule_stats(&rule.id, now).await.unwrap().accepted, 1);
}

/// A user's invites page newest first by issue time, after a code of theirs; after any other
/// code, nothing; another project sees none.
async fn a_users_invites_are_paged_newest_first(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, other) = owner_with_project(&store, "bob@example.com").await;
    let t0 = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, t0).await;
    // Five over eight days (each expired before the next), and another user's.
    for n in 0..5 {
        let issued = t0 - Duration::days(8 - 2 * n);
        // Codes sort against issue time: the order must come from the time.
        let invite = event_invite(&rule, &format!("c{}", 4 - n), "u1", issued);
        store.issue_invite(&invite, issued).await.unwrap();
    }
    let theirs = event_invite(&rule, "c-u2", "u2", t0);
    store.issue_invite(&theirs, t0).await.unwrap();
    let page = |after: Option<&str>| PageRequest {
        limit: 2,
        starting_after: after.map(str::to_owned),
    };
    let codes = |page: &uj_storage::Page<uj_domain::invites::Invite>| {
        (
            page.items
                .iter()
                .map(|i| i.code.clone())
                .collect::<Vec<_>>(),
            page.has_more,
        )
    };
    let read = |project: ProjectId, after: Option<&'static str>| {
        let store = store.clone();
        let page = page(after);
        async move {
            store
                .user_invites_page(&project, "u1", &page)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        codes(&read(shop.clone(), None).await),
        (vec!["c0".into(), "c1".into()], true)
    );
    assert_eq!(
        codes(&read(shop.clone(), Some("c1")).await),
        (vec!["c2".into(), "c3".into()], true)
    );
    assert_eq!(
        codes(&read(shop.clone(), Some("c3")).await),
        (vec!["c4".into()], false)
    );
    for after in ["unknown", "c-u2"] {
        assert_eq!(
            codes(&read(shop.clone(), Some(after)).await),
            (vec![], false),
            "{after}"
        );
    }
    assert_eq!(
        codes(&read(other, None).await),
        (vec![], false),
        "another project's"
    );
}

/// A rule's invites (its attribution records) page newest first by code, whoever they were
/// for; another rule's are not among them, and another project reads none.
async fn a_rules_invites_are_paged_newest_first(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, other) = owner_with_project(&store, "bob@example.com").await;
    let t0 = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, t0).await;
    let elsewhere = uj_domain::studies::LaunchRule {
        id: uj_domain::ids::LaunchRuleId::generate(),
        ..rule.clone()
    };
    store.create_launch_rule(&elsewhere, None).await.unwrap();
    for n in 0..5 {
        let issued = t0 - Duration::days(10 - 2 * n);
        let invite = event_invite(&rule, &format!("c{n}"), &format!("u{n}"), issued);
        store.issue_invite(&invite, issued).await.unwrap();
    }
    let not_this = event_invite(&elsewhere, "c9", "u9", t0);
    store.issue_invite(&not_this, t0).await.unwrap();
    let read = |project: ProjectId, after: Option<&'static str>| {
        let store = store.clone();
        let rule = rule.id.clone();
        async move {
            let page = PageRequest {
                limit: 2,
                starting_after: after.map(str::to_owned),
            };
            let page = store
                .rule_invites_page(&project, &rule, &page)
                .await
                .unwrap();
            let codes: Vec<String> = page.items.iter().map(|i| i.code.clone()).collect();
            (codes, page.has_more)
        }
    };
    assert_eq!(
        read(shop.clone(), None).await,
        (vec!["c4".into(), "c3".into()], true)
    );
    assert_eq!(
        read(shop.clone(), Some("c3")).await,
        (vec!["c2".into(), "c1".into()], true)
    );
    assert_eq!(
        read(shop.clone(), Some("c1")).await,
        (vec!["c0".into()], false)
    );
    assert_eq!(
        read(other.clone(), None).await,
        (vec![], false),
        "another project's"
    );
    // Nor after a code of the rule's (found by the mutation audit).
    assert_eq!(
        read(other, Some("c3")).await,
        (vec![], false),
        "another project's, after a code"
    );
}

/// A cohort first delivered without a name gets one from its id (an empty name was a link no
/// one could click); its name once sent replaces it, and a later empty one keeps it.
async fn a_cohort_first_seen_without_a_name_is_named_by_its_id(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let audience = store
        .upsert_audience(&shop, "77", "", "", now)
        .await
        .unwrap();
    assert_eq!(audience.name, "Cohort 77");
    let named = store
        .upsert_audience(&shop, "77", "Fans", "", now)
        .await
        .unwrap();
    assert_eq!(
        (named.id.clone(), named.name.as_str()),
        (audience.id.clone(), "Fans")
    );
    let kept = store
        .upsert_audience(&shop, "77", "", "", now)
        .await
        .unwrap();
    assert_eq!(kept.name, "Fans");
}

/// An issued invite of `rule` (an app-event rule) for `user`, with some metadata.
fn event_invite(
    rule: &uj_domain::studies::LaunchRule,
    code: &str,
    user: &str,
    issued_at: chrono::DateTime<Utc>,
) -> uj_domain::invites::Invite {
    uj_domain::invites::Invite {
        code: code.into(),
        project_id: rule.project_id.clone(),
        rule_id: rule.id.clone(),
        study_id: rule.study_id.clone(),
        reference_id: user.into(),
        source: "app_event",
        audience_id: None,
        audience_member_id: None,
        event_name: Some("Order Completed".into()),
        metadata: serde_json::json!({"screen": "cart"})
            .as_object()
            .unwrap()
            .clone(),
        traits: Default::default(),
        state: uj_domain::invites::InviteState::Issued,
        issued_at,
        expires_at: issued_at + Duration::hours(24),
        accepted_at: None,
        dismissed_at: None,
        withdrawn_at: None,
    }
}

async fn members_who_leave_lose_their_issued_invites_of_that_audience_only(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::invites::{Invite, InviteState};
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, t0).await;
    let a = audience_a(&store, &shop, t0).await;
    let b = store
        .upsert_audience(&shop, "2", "B", "", t0)
        .await
        .unwrap()
        .id;
    store
        .add_audience_members(&a, &members(&["x", "y"]), t0)
        .await
        .unwrap();
    store
        .add_audience_members(&b, &members(&["z"]), t0)
        .await
        .unwrap();
    let of_audience = |code: &str, audience: &uj_domain::ids::AudienceId, member: &str| Invite {
        source: "audience",
        audience_id: Some(audience.to_string()),
        audience_member_id: Some(member.into()),
        event_name: None,
        ..event_invite(&rule, code, member, t0)
    };
    for invite in [
        of_audience("c-x", &a, "x"),
        of_audience("c-y", &a, "y"),
        of_audience("c-z", &b, "z"),
        event_invite(&rule, "c-w", "w", t0),
    ] {
        store.issue_invite(&invite, t0).await.unwrap();
    }
    let t1 = t0 + Duration::minutes(1);
    // z is not a member of A: nothing of theirs changes.
    store
        .remove_audience_members(&a, &["x".into(), "z".into()], t1)
        .await
        .unwrap();
    let mut states = Vec::new();
    for code in ["c-x", "c-y", "c-z", "c-w"] {
        let invite = store.invite(&shop, code).await.unwrap().unwrap();
        states.push((code, invite.state));
    }
    assert_eq!(
        states,
        [
            ("c-x", InviteState::Withdrawn),
            ("c-y", InviteState::Issued),
            ("c-z", InviteState::Issued),
            ("c-w", InviteState::Issued),
        ]
    );
}

/// Two processes finishing one audience deletion at once (a delete sent twice, or beside
/// the housekeeping) both end well and leave nothing: on PostgreSQL the one that waited for
/// the other's batch found its rows gone, took the table for empty, and deleted the rest in
/// one statement through the cascade, which could deadlock with the other's batches.
async fn two_finishers_of_one_audience_deletion_take_turns(
    store: Arc<dyn Store>,
    db: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let big = audience_a(&store, &shop, now).await;
    let ids: Vec<String> = (0..30_001).map(|i| format!("m{i:05}")).collect();
    for chunk in ids.chunks(1000) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        store
            .add_audience_members(&big, &members(&chunk), now)
            .await
            .unwrap();
    }
    let since = if db.url.starts_with("postgres") {
        "now()"
    } else {
        "'2026-01-01T00:00:00Z'"
    };
    raw_sql(
        db,
        &format!("UPDATE audiences SET deleting_since = {since} WHERE id = '{big}'"),
    )
    .await;
    let finishers: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.finish_audience_deletions().await })
        })
        .collect();
    for finisher in finishers {
        finisher.await.unwrap().expect("each finisher ends well");
    }
    assert!(store.audience(&shop, &big).await.unwrap().is_none());
    let left = format!("SELECT COUNT(*) FROM audience_members WHERE audience_id = '{big}'");
    assert_eq!(raw_sql(db, &left).await, Some(0));
}

/// A user with an invite pending from an audience, loaded again, needs only whether they
/// are still in that audience: the store may answer just that (SQLite does; PostgreSQL
/// reads every membership in the same round trip anyway), and the answer is the one the
/// full list gives. Without an invite pending, or one not from an audience, all are read.
async fn a_pending_audience_invite_needs_only_its_own_audience_read(
    store: Arc<dyn Store>,
    db: &TestDatabase,
) {
    use uj_domain::invites::Invite;
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, t0).await;
    let a = audience_a(&store, &shop, t0).await;
    let b = store
        .upsert_audience(&shop, "2", "B", "", t0)
        .await
        .unwrap()
        .id;
    for audience in [&a, &b] {
        store
            .add_audience_members(audience, &members(&["x", "y"]), t0)
            .await
            .unwrap();
    }
    let pending = Invite {
        source: "audience",
        audience_id: Some(a.to_string()),
        audience_member_id: Some("x".into()),
        event_name: None,
        ..event_invite(&rule, "c-x", "x", t0)
    };
    store.issue_invite(&pending, t0).await.unwrap();
    store
        .issue_invite(&event_invite(&rule, "c-y", "y", t0), t0)
        .await
        .unwrap();
    // Whether `read` says the user is in `audience`, if it tells.
    let in_audience = |read: &MembershipsRead, audience: &uj_domain::ids::AudienceId| match read {
        MembershipsRead::All(all) => Some(all.iter().any(|(of, _)| of == audience.as_str())),
        MembershipsRead::OfPendingInvite {
            audience: of,
            member,
        } => (of == audience.as_str()).then_some(*member),
        MembershipsRead::NotRead => None,
    };
    let read = |user: &'static str, at| {
        let (store, shop) = (store.clone(), shop.clone());
        async move {
            let (invites, read) = store
                .user_history(&shop, user, WithMemberships::UnlessPending(at))
                .await
                .unwrap();
            (invites.len(), read)
        }
    };
    let (invites, memberships) = read("x", t0).await;
    assert_eq!(invites, 1);
    assert_eq!(in_audience(&memberships, &a), Some(true), "{memberships:?}");
    if !db.url.starts_with("postgres") {
        assert!(
            matches!(memberships, MembershipsRead::OfPendingInvite { .. }),
            "SQLite reads the one membership: {memberships:?}"
        );
    }
    // An invite pending not from an audience: every membership.
    let (_, memberships) = read("y", t0).await;
    assert!(
        matches!(&memberships, MembershipsRead::All(all) if all.len() == 2),
        "{memberships:?}"
    );
    // Past its expiry it is pending no more: every membership.
    let (_, memberships) = read("x", pending.expires_at).await;
    assert!(
        matches!(&memberships, MembershipsRead::All(all) if all.len() == 2),
        "{memberships:?}"
    );
    // Out of the audience (as a removal's withdrawal would not yet have followed): no
    // longer in it, either way the store reads it.
    raw_sql(
        db,
        &format!(
            "UPDATE audience_members SET exited_at = entered_at
             WHERE audience_id = '{a}' AND provider_member_id = 'x'"
        ),
    )
    .await;
    let (_, memberships) = read("x", t0).await;
    assert_eq!(
        in_audience(&memberships, &a),
        Some(false),
        "{memberships:?}"
    );
    let (_, all) = store
        .user_history(&shop, "x", WithMemberships::All)
        .await
        .unwrap();
    assert_eq!(
        all,
        MembershipsRead::All(vec![(b.to_string(), "x".to_owned())])
    );
}

/// A full sync that lists a member under another `reference_id` withdraws the invite the old
/// one was issued (the user the SDK knew left the audience; it stayed `issued` until that
/// user's next SDK call or its expiry; found by the cohort-sync review).
async fn a_member_whose_reference_id_changes_loses_the_old_users_invite_at_once(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::invites::{Invite, InviteState};
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, t0).await;
    let a = audience_a(&store, &shop, t0).await;
    let listed = |d: &str| vec![synced("d", Some(d)), synced("e", Some("re"))];
    receive(&store, &shop, &a, "s1", 1, 1, &listed("r1"), t0).await;
    for (code, member, user) in [("c-d", "d", "r1"), ("c-e", "e", "re")] {
        let invite = Invite {
            source: "audience",
            audience_id: Some(a.to_string()),
            audience_member_id: Some(member.into()),
            event_name: None,
            ..event_invite(&rule, code, user, t0)
        };
        store.issue_invite(&invite, t0).await.unwrap();
    }
    let t1 = t0 + Duration::minutes(1);
    let applied = receive(&store, &shop, &a, "s2", 1, 1, &listed("r2"), t1).await;
    assert_eq!(applied.outcome, LedgerOutcome::Applied);
    let mut states = Vec::new();
    for code in ["c-d", "c-e"] {
        states.push((
            code,
            store.invite(&shop, code).await.unwrap().unwrap().state,
        ));
    }
    assert_eq!(
        states,
        [
            ("c-d", InviteState::Withdrawn),
            ("c-e", InviteState::Issued)
        ]
    );
}

/// A diff re-adding a member under another `reference_id` withdraws the old user's
/// unaccepted invite of that audience in the same write, as a full sync does (it stayed
/// `issued` until that user's next SDK call or its expiry).
async fn a_diff_relisting_a_member_under_another_reference_id_withdraws_the_old_users_invite(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::invites::{Invite, InviteState};
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, t0).await;
    let a = audience_a(&store, &shop, t0).await;
    let listed = [synced("d", Some("r1")), synced("e", Some("re"))];
    store.add_audience_members(&a, &listed, t0).await.unwrap();
    for (code, member, user) in [("c-d", "d", "r1"), ("c-e", "e", "re")] {
        let invite = Invite {
            source: "audience",
            audience_id: Some(a.to_string()),
            audience_member_id: Some(member.into()),
            event_name: None,
            ..event_invite(&rule, code, user, t0)
        };
        store.issue_invite(&invite, t0).await.unwrap();
    }
    let t1 = t0 + Duration::minutes(1);
    // "e" listed again as it was, "d" under another reference_id.
    let relisted = [synced("d", Some("r2")), synced("e", Some("re"))];
    let change = store.add_audience_members(&a, &relisted, t1).await.unwrap();
    assert_eq!((change.added, change.member_count), (0, 2));
    let mut states = Vec::new();
    for code in ["c-d", "c-e"] {
        states.push((
            code,
            store.invite(&shop, code).await.unwrap().unwrap().state,
        ));
    }
    assert_eq!(
        states,
        [
            ("c-d", InviteState::Withdrawn),
            ("c-e", InviteState::Issued)
        ]
    );
}

/// The two reads every SDK request makes: the user's memberships by match key and their
/// invites, newest first, each within its project.
async fn a_users_memberships_and_invites_are_read_for_the_sdk(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::invites::{Invite, InviteState};
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, other) = owner_with_project(&store, "bob@example.com").await;
    let t0 = uj_now();
    let mut audiences = Vec::new();
    for (project, cohort) in [(&shop, "1"), (&shop, "2"), (&other, "1")] {
        let audience = store
            .upsert_audience(project, cohort, "A", "", t0)
            .await
            .unwrap()
            .id;
        store
            .add_audience_members(
                &audience,
                &[synced("a", Some("app-a")), synced("b", None)],
                t0,
            )
            .await
            .unwrap();
        audiences.push(audience);
    }
    let mut found = store.audience_memberships(&shop, "app-a").await.unwrap();
    found.sort_by(|x, y| x.0.cmp(&y.0));
    let mut expected: Vec<String> = audiences[..2].iter().map(|a| a.to_string()).collect();
    expected.sort();
    assert_eq!(
        found.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>(),
        expected,
        "one membership per audience of the project, none of another project"
    );
    assert!(found.iter().all(|(_, member_id)| member_id == "a"));
    // The member itself, by its key, for an invite's attribution.
    let audience = AudienceId::from_string(found[0].0.clone());
    let member = store
        .audience_member(&audience, "a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            member.provider_member_id.as_str(),
            member.reference_id.as_deref(),
            member.traits.get("plan").and_then(|v| v.as_str()),
            member.entered_at,
            member.exited_at
        ),
        ("a", Some("app-a"), Some("pro"), t0, None)
    );
    assert!(store
        .audience_member(&audience, "app-a")
        .await
        .unwrap()
        .is_none());
    assert!(
        store
            .audience_memberships(&shop, "a")
            .await
            .unwrap()
            .is_empty(),
        "a member with a reference id is matched by it, not by the distinct id"
    );
    assert_eq!(
        store.audience_memberships(&shop, "b").await.unwrap().len(),
        2
    );
    store
        .remove_audience_members(&audiences[0], &["a".into()], t0 + Duration::minutes(1))
        .await
        .unwrap();
    let left = store.audience_memberships(&shop, "app-a").await.unwrap();
    assert_eq!(
        left.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        [audiences[1].as_str()],
        "a member who left is no longer found"
    );
    let past = store.audience_member(&audiences[0], "a").await.unwrap();
    assert_eq!(
        past.map(|m| m.exited_at),
        Some(Some(t0 + Duration::minutes(1))),
        "by its key, a member who left is still found, with the time they left"
    );

    let (_, rule) = study_with_event_rule(&store, &shop, t0).await;
    let invite = |code: &str, user: &str, issued_at| event_invite(&rule, code, user, issued_at);
    let older = invite("c-older", "u1", t0 - Duration::days(2));
    let newer = invite("c-newer", "u1", t0);
    for i in [&older, &newer, &invite("c-u2", "u2", t0)] {
        store.issue_invite(i, i.issued_at).await.unwrap();
    }
    store.accept_invite(&shop, "c-newer", t0).await.unwrap();
    let history = store.invites_of_user(&shop, "u1").await.unwrap();
    let accepted = Invite {
        state: InviteState::Accepted,
        accepted_at: Some(t0),
        ..newer
    };
    let expired = Invite {
        state: InviteState::Expired,
        ..older
    };
    assert_eq!(history, [accepted, expired], "newest first, as stored");
    assert!(store
        .invites_of_user(&other, "u1")
        .await
        .unwrap()
        .is_empty());
    assert!(store.invites_of_user(&shop, "u3").await.unwrap().is_empty());

    // Both reads at once: the same answers, on both databases (one round trip on PostgreSQL,
    // one read transaction on SQLite), whether the user has invites, memberships, both or
    // neither.
    store
        .issue_invite(&invite("c-app-a", "app-a", t0), t0)
        .await
        .unwrap();
    let sorted = |mut memberships: Vec<(String, String)>| {
        memberships.sort();
        memberships
    };
    for (project, user, invites, memberships) in [
        (&shop, "app-a", 1, 1),
        (&shop, "b", 0, 2),
        (&shop, "u1", 2, 0),
        (&shop, "u3", 0, 0),
        (&other, "app-a", 0, 1),
    ] {
        let history = store.invites_of_user(project, user).await.unwrap();
        let current = sorted(store.audience_memberships(project, user).await.unwrap());
        assert_eq!(
            (history.len(), current.len()),
            (invites, memberships),
            "{user}"
        );
        let (alone, none) = store
            .user_history(project, user, WithMemberships::No)
            .await
            .unwrap();
        assert_eq!(
            (&alone, none),
            (&history, MembershipsRead::NotRead),
            "{user}: invites alone"
        );
        let (with, read) = store
            .user_history(project, user, WithMemberships::All)
            .await
            .unwrap();
        assert_eq!(with, history, "{user}: invites with memberships");
        let MembershipsRead::All(read) = read else {
            panic!("{user}: all memberships asked for, {read:?} read")
        };
        assert_eq!(sorted(read), current, "{user}: memberships");
    }
}

/// Every write that gives a user rows reaches the SDK's two reads at once, however the rows
/// came: a first full sync, a later one (staged, applied with its last page), a diff, a
/// reference id that arrives later (a new match key), and invites issued alone, in a batch,
/// or started directly. (A SQLite server's store skips these reads for keys it has not
/// seen written, `key_filter.rs`: this is the write side of that promise.)
async fn every_write_that_gives_a_user_rows_reaches_the_sdk_reads(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&store, &shop, t0).await;
    let memberships = |key: &'static str| {
        let (store, shop) = (&store, &shop);
        async move { store.audience_memberships(shop, key).await.unwrap().len() }
    };
    // A first full sync of two pages (on SQLite, written in place page by page).
    let first = [synced("first", Some("ref-first"))];
    receive(&store, &shop, &audience, "s1", 1, 2, &first, t0).await;
    let second = [synced("second", None)];
    receive(&store, &shop, &audience, "s1", 2, 2, &second, t0).await;
    assert_eq!(
        (memberships("ref-first").await, memberships("second").await),
        (1, 1),
        "a first full sync"
    );
    let t1 = t0 + Duration::minutes(1);
    let page_1 = [synced("first", Some("ref-first")), synced("later", None)];
    receive(&store, &shop, &audience, "s2", 1, 2, &page_1, t1).await;
    let page_2 = [synced("staged", Some("ref-staged"))];
    receive(&store, &shop, &audience, "s2", 2, 2, &page_2, t1).await;
    assert_eq!(
        (memberships("later").await, memberships("ref-staged").await),
        (1, 1),
        "a later full sync, once complete"
    );
    let t2 = t0 + Duration::minutes(2);
    store
        .add_audience_members(&audience, &[synced("diff", None)], t2)
        .await
        .unwrap();
    assert_eq!(memberships("diff").await, 1, "a diff");
    store
        .add_audience_members(&audience, &[synced("diff", Some("ref-diff"))], t2)
        .await
        .unwrap();
    assert_eq!(
        memberships("ref-diff").await,
        1,
        "a reference id that came later"
    );
    assert_eq!(memberships("nobody").await, 0);

    let (_, rule) = study_with_event_rule(&store, &shop, t0).await;
    store
        .issue_invite(&event_invite(&rule, "c-alone", "alone", t0), t0)
        .await
        .unwrap();
    store
        .issue_new_invites(&[event_invite(&rule, "c-batch", "batch", t0)])
        .await
        .unwrap();
    let link = uj_domain::studies::LaunchRule {
        id: uj_domain::ids::LaunchRuleId::generate(),
        surface: uj_domain::studies::Surface::DirectLink,
        ..rule.clone()
    };
    store.create_launch_rule(&link, None).await.unwrap();
    let started = store
        .start_invite(&event_invite(&link, "c-started", "started", t0), t0)
        .await
        .unwrap();
    assert!(
        matches!(started, uj_domain::invites::AcceptOutcome::Accepted(_)),
        "{started:?}"
    );
    for user in ["alone", "batch", "started"] {
        let invites = store.invites_of_user(&shop, user).await.unwrap();
        assert_eq!(invites.len(), 1, "{user}'s invite");
    }
    assert!(store
        .invites_of_user(&shop, "nobody")
        .await
        .unwrap()
        .is_empty());
}

/// The pacing engine sees a user's 500 newest invites, newest first, however they were
/// stored; of older ones, those that still decide: an accepted invite (a started study is
/// never offered again) and each rule's newest (its cooldown).
async fn a_users_history_is_their_newest_five_hundred_invites_and_the_older_that_decide(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let t0 = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, t0).await;
    let other = uj_domain::studies::LaunchRule {
        id: uj_domain::ids::LaunchRuleId::generate(),
        ..rule.clone()
    };
    store.create_launch_rule(&other, None).await.unwrap();
    // Older than all below: a start of the other rule, and a later dismissed invite of it.
    let started_at = t0 - Duration::hours(600);
    let started = event_invite(&other, "started", "u1", started_at);
    store.issue_invite(&started, started_at).await.unwrap();
    assert!(matches!(
        store
            .accept_invite(&shop, "started", started_at)
            .await
            .unwrap(),
        Some(uj_domain::invites::AcceptOutcome::Accepted(_))
    ));
    let later_at = t0 - Duration::hours(550);
    let later = event_invite(&other, "later", "u1", later_at);
    store.issue_invite(&later, later_at).await.unwrap();
    store
        .dismiss_invite(&shop, "later", later_at)
        .await
        .unwrap()
        .unwrap();
    // 502 dismissed invites, stored in shuffled order of issue time (k * 193 mod 502 visits
    // every k once).
    for n in 0..502 {
        let k = n * 193 % 502;
        let issued_at = t0 - Duration::hours(502 - k);
        let invite = event_invite(&rule, &format!("c-{k:03}"), "u1", issued_at);
        let issued = store.issue_invite(&invite, issued_at).await.unwrap();
        assert_eq!(issued.code, invite.code);
        store
            .dismiss_invite(&shop, &invite.code, issued_at)
            .await
            .unwrap()
            .unwrap();
    }
    let history = store.invites_of_user(&shop, "u1").await.unwrap();
    let codes: Vec<String> = history.iter().map(|i| i.code.clone()).collect();
    let newest: Vec<String> = (2..502)
        .rev()
        .map(|k| format!("c-{k:03}"))
        .chain(["later".to_owned(), "started".to_owned()])
        .collect();
    assert_eq!(
        codes, newest,
        "the 500 newest, then the older that decide, newest first"
    );
    let (history, _) = store
        .user_history(&shop, "u1", WithMemberships::All)
        .await
        .unwrap();
    let codes: Vec<String> = history.iter().map(|i| i.code.clone()).collect();
    assert_eq!(codes, newest, "the same when read with the memberships");
}

/// Withdrawing (the user left the invite's audience) takes an issued invite out of play, and
/// only that: an answered invite or another project's code is left alone.
async fn only_an_issued_invite_of_the_project_can_be_withdrawn(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::invites::InviteState;
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, other) = owner_with_project(&store, "bob@example.com").await;
    let now = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, now).await;
    for (code, user) in [("c-open", "u1"), ("c-took", "u2")] {
        let invite = event_invite(&rule, code, user, now);
        store.issue_invite(&invite, now).await.unwrap();
    }
    store.accept_invite(&shop, "c-took", now).await.unwrap();

    assert!(!store.withdraw_invite(&other, "c-open", now).await.unwrap());
    assert!(!store.withdraw_invite(&shop, "c-took", now).await.unwrap());
    assert!(!store.withdraw_invite(&shop, "c-none", now).await.unwrap());
    let state = |code: &'static str| {
        let store = store.clone();
        let shop = shop.clone();
        async move { store.invite(&shop, code).await.unwrap().unwrap().state }
    };
    assert_eq!(state("c-open").await, InviteState::Issued);
    assert_eq!(state("c-took").await, InviteState::Accepted);

    assert!(store.withdraw_invite(&shop, "c-open", now).await.unwrap());
    assert_eq!(state("c-open").await, InviteState::Withdrawn);
    let withdrawn = store.invite(&shop, "c-open").await.unwrap().unwrap();
    assert_eq!(withdrawn.withdrawn_at, Some(now), "the time is recorded");
    assert!(
        !store.withdraw_invite(&shop, "c-open", now).await.unwrap(),
        "once"
    );
    // The user may be invited again: no issued invite holds their place.
    let again = event_invite(&rule, "c-again", "u1", now);
    assert_eq!(
        store.issue_invite(&again, now).await.unwrap().code,
        "c-again"
    );
}

/// A user's open invite is dismissed while another load issues them one (an accept or a
/// withdrawal closes it the same way): the load answers the open invite or its own, never
/// an error. (On PostgreSQL the load's insert could lose to the open invite, which the
/// dismissal then closed before the load read it back: no issued invite to answer, a 500.)
async fn an_invite_issued_while_the_open_one_is_dismissed_answers_one_of_them(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, now).await;
    for round in 0..1000 {
        let user = format!("u{round}");
        let (open, next) = (format!("open-{round}"), format!("next-{round}"));
        store
            .issue_invite(&event_invite(&rule, &open, &user, now), now)
            .await
            .unwrap();
        let dismiss = {
            let (store, shop, open) = (store.clone(), shop.clone(), open.clone());
            // Delayed 0 to 800 µs, so the dismissal lands at every point of the load (a
            // few round trips); spun, as timers are only as fine as a millisecond.
            let delay = std::time::Duration::from_micros((round * 7) % 800);
            tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                while started.elapsed() < delay {
                    std::hint::spin_loop();
                }
                tokio::runtime::Handle::current().block_on(store.dismiss_invite(&shop, &open, now))
            })
        };
        let issued = store
            .issue_invite(&event_invite(&rule, &next, &user, now), now)
            .await
            .unwrap_or_else(|error| panic!("round {round}: {error}"));
        assert!(
            issued.code == open || issued.code == next,
            "round {round}: {}",
            issued.code
        );
        dismiss.await.unwrap().unwrap();
    }
}

/// An invite left open past its expiry is expired: dismissing or withdrawing it, one by
/// one or with its rule or study stopping, leaves it so (it counted as withdrawn or
/// dismissed in the rule's stats instead, and got a `dismissed_at` nobody sent).
async fn an_expired_invite_is_neither_dismissed_nor_withdrawn(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::invites::InviteState;
    use uj_domain::pacing::{RuleStatus, StudyStatus};
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let (study, rule) = study_with_event_rule(&store, &shop, now).await;
    let old = now - Duration::days(2);
    for (code, user, at) in [
        ("c-old", "u1", old),
        ("c-old2", "u2", old),
        ("c-new", "u3", now),
    ] {
        store
            .issue_invite(&event_invite(&rule, code, user, at), at)
            .await
            .unwrap();
    }
    let state = |code: &'static str| {
        let store = store.clone();
        let shop = shop.clone();
        async move { store.invite(&shop, code).await.unwrap().unwrap() }
    };
    assert!(!store.withdraw_invite(&shop, "c-old", now).await.unwrap());
    let dismissed = store.dismiss_invite(&shop, "c-old2", now).await.unwrap();
    assert_eq!(dismissed.map(|i| i.state), Some(InviteState::Issued));
    let later = now + Duration::seconds(1);
    let paused = uj_domain::studies::LaunchRule {
        status: RuleStatus::Paused,
        updated_at: later,
        ..rule.clone()
    };
    // The pause says how many it withdrew: the open invite, not the expired ones.
    assert_eq!(
        store
            .update_launch_rule(&paused, rule.updated_at)
            .await
            .unwrap(),
        Some(1)
    );
    let stopped = uj_domain::studies::Study {
        status: StudyStatus::Archived,
        updated_at: later,
        ..study.clone()
    };
    assert!(store
        .update_study(&stopped, study.updated_at)
        .await
        .unwrap());
    for code in ["c-old", "c-old2"] {
        let invite = state(code).await;
        assert_eq!(
            (invite.state, invite.dismissed_at),
            (InviteState::Issued, None),
            "{code}"
        );
    }
    assert_eq!(state("c-new").await.state, InviteState::Withdrawn);
    let stats = store.rule_stats(&rule.id, later).await.unwrap();
    assert_eq!((stats.expired, stats.withdrawn, stats.dismissed), (2, 1, 0));
}

/// A project's list of studies holds its own studies only, whoever else has some (found by
/// the mutation audit).
async fn each_projects_study_list_holds_only_its_own_studies(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let now = uj_now();
    let shops = new_study(&shop, "shop7Qx2pL", now);
    let blogs = new_study(&blog, "blog7Qx2pL", now);
    for study in [&shops, &blogs] {
        store.create_study(study, None).await.unwrap();
    }
    for (project, own) in [(&shop, &shops), (&blog, &blogs)] {
        let listed: Vec<_> = store
            .studies(project, &first_page(10))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(listed, std::slice::from_ref(&own.id), "{project}");
    }
}

/// Dismissing by a code of another project's invite finds nothing and leaves the invite
/// open, as withdrawing it does (found by the mutation audit).
async fn another_projects_code_dismisses_nothing(store: Arc<dyn Store>, _: &TestDatabase) {
    use uj_domain::invites::InviteState;
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, other) = owner_with_project(&store, "bob@example.com").await;
    let now = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, now).await;
    store
        .issue_invite(&event_invite(&rule, "c-open", "u1", now), now)
        .await
        .unwrap();
    assert_eq!(
        store.dismiss_invite(&other, "c-open", now).await.unwrap(),
        None
    );
    let open = store.invite(&shop, "c-open").await.unwrap().unwrap();
    assert_eq!((open.state, open.dismissed_at), (InviteState::Issued, None));
    let dismissed = store.dismiss_invite(&shop, "c-open", now).await.unwrap();
    assert_eq!(
        dismissed.map(|i| (i.state, i.dismissed_at)),
        Some((InviteState::Dismissed, Some(now)))
    );
}

/// One reference id with an open invite in each of two projects: issuing them another in
/// either project answers that project's open invite, never the other's (found by the
/// mutation audit).
async fn issuing_again_answers_the_users_open_invite_of_that_project(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let now = uj_now();
    let (_, shops) = study_with_event_rule(&store, &shop, now).await;
    let blog_study = new_study(&blog, "blog7Qx2pL", now);
    store.create_study(&blog_study, None).await.unwrap();
    let blogs = uj_domain::studies::LaunchRule {
        id: uj_domain::ids::LaunchRuleId::generate(),
        project_id: blog.clone(),
        study_id: blog_study.id.clone(),
        ..shops.clone()
    };
    store.create_launch_rule(&blogs, None).await.unwrap();
    for (rule, code) in [(&shops, "shop-open"), (&blogs, "blog-open")] {
        let issued = store
            .issue_invite(&event_invite(rule, code, "u1", now), now)
            .await
            .unwrap();
        assert_eq!(issued.code, code);
    }
    let later = now + Duration::minutes(1);
    for (rule, again, open) in [
        (&shops, "shop-again", "shop-open"),
        (&blogs, "blog-again", "blog-open"),
    ] {
        let answered = store
            .issue_invite(&event_invite(rule, again, "u1", later), later)
            .await
            .unwrap();
        assert_eq!(
            (answered.code.as_str(), &answered.project_id),
            (open, &rule.project_id)
        );
        assert!(store
            .invite(&rule.project_id, again)
            .await
            .unwrap()
            .is_none());
    }
}

/// A rule that pauses, and then its study that is archived, take back the invites still
/// open only: an accepted invite stays accepted (and counted as a start in the rule's
/// stats), a dismissed one stays dismissed (found by the mutation audit).
async fn a_stopped_rule_or_study_leaves_its_answered_invites_as_they_were(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::invites::InviteState;
    use uj_domain::pacing::{RuleStatus, StudyStatus};
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let (study, rule) = study_with_event_rule(&store, &shop, now).await;
    for (code, user) in [("c-took", "u1"), ("c-no", "u2"), ("c-open", "u3")] {
        store
            .issue_invite(&event_invite(&rule, code, user, now), now)
            .await
            .unwrap();
    }
    store.accept_invite(&shop, "c-took", now).await.unwrap();
    store.dismiss_invite(&shop, "c-no", now).await.unwrap();
    let answered = |store: Arc<dyn Store>, shop: ProjectId| async move {
        let took = store.invite(&shop, "c-took").await.unwrap().unwrap();
        let no = store.invite(&shop, "c-no").await.unwrap().unwrap();
        assert_eq!(
            (took.state, took.accepted_at, took.withdrawn_at),
            (InviteState::Accepted, Some(now), None)
        );
        assert_eq!(
            (no.state, no.dismissed_at, no.withdrawn_at),
            (InviteState::Dismissed, Some(now), None)
        );
    };
    let later = now + Duration::seconds(1);
    let paused = uj_domain::studies::LaunchRule {
        status: RuleStatus::Paused,
        updated_at: later,
        ..rule.clone()
    };
    assert!(store
        .update_launch_rule(&paused, rule.updated_at)
        .await
        .unwrap()
        .is_some());
    answered(store.clone(), shop.clone()).await;
    let stats = store.rule_stats(&rule.id, later).await.unwrap();
    assert_eq!(
        (stats.accepted, stats.dismissed, stats.withdrawn),
        (1, 1, 1),
        "only the open one was taken back"
    );
    let archived = uj_domain::studies::Study {
        status: StudyStatus::Archived,
        updated_at: later,
        ..study.clone()
    };
    assert!(store
        .update_study(&archived, study.updated_at)
        .await
        .unwrap());
    answered(store.clone(), shop.clone()).await;
    let stats = store.rule_stats(&rule.id, later).await.unwrap();
    assert_eq!(
        (stats.accepted, stats.dismissed, stats.withdrawn),
        (1, 1, 1)
    );
}

/// "Already started" is of one study: a user who started a study of the project can still
/// start another of its studies, by an invite or a direct link (found by the mutation audit).
async fn a_start_of_one_study_does_not_refuse_another_study_of_the_project(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::invites::{AcceptOutcome, InviteState};
    use uj_domain::pacing::Reason;
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let (_, first) = study_with_event_rule(&store, &shop, now).await;
    let second_study = new_study(&shop, "second7Qx2", now);
    store.create_study(&second_study, None).await.unwrap();
    let second = uj_domain::studies::LaunchRule {
        id: uj_domain::ids::LaunchRuleId::generate(),
        study_id: second_study.id.clone(),
        ..first.clone()
    };
    store.create_launch_rule(&second, None).await.unwrap();
    let accepted = |outcome: Option<AcceptOutcome>| match outcome {
        Some(AcceptOutcome::Accepted(i)) => Some(i.state),
        other => panic!("{other:?}"),
    };
    for user in ["u1", "u2"] {
        let code = format!("first-{user}");
        store
            .issue_invite(&event_invite(&first, &code, user, now), now)
            .await
            .unwrap();
        let outcome = store.accept_invite(&shop, &code, now).await.unwrap();
        assert_eq!(accepted(outcome), Some(InviteState::Accepted), "{user}");
    }
    // u1 by an invite of the second study, u2 by its direct link.
    store
        .issue_invite(&event_invite(&second, "second-u1", "u1", now), now)
        .await
        .unwrap();
    let outcome = store.accept_invite(&shop, "second-u1", now).await.unwrap();
    assert_eq!(accepted(outcome), Some(InviteState::Accepted));
    let second_link = uj_domain::studies::LaunchRule {
        id: uj_domain::ids::LaunchRuleId::generate(),
        surface: uj_domain::studies::Surface::DirectLink,
        ..second.clone()
    };
    store.create_launch_rule(&second_link, None).await.unwrap();
    let outcome = store
        .start_invite(&event_invite(&second_link, "second-u2", "u2", now), now)
        .await
        .unwrap();
    assert_eq!(accepted(Some(outcome)), Some(InviteState::Accepted));
    // The same study a second time is still refused.
    let outcome = store
        .start_invite(
            &event_invite(&second_link, "second-u1-again", "u1", now),
            now,
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, AcceptOutcome::Refused(_, Reason::AlreadyStarted)),
        "{outcome:?}"
    );
}

/// A pause of a rule, or an archive of a study, written over an older read than the row's
/// is refused as a whole: it takes back none of their open invites (found by the mutation
/// audit).
async fn a_stale_stop_of_a_rule_or_study_writes_nothing_and_takes_back_nothing(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::invites::InviteState;
    use uj_domain::pacing::{RuleStatus, StudyStatus};
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let (study, rule) = study_with_event_rule(&store, &shop, now).await;
    store
        .issue_invite(&event_invite(&rule, "c-open", "u1", now), now)
        .await
        .unwrap();
    let stale = now - Duration::seconds(1);
    let later = now + Duration::seconds(1);
    let paused = uj_domain::studies::LaunchRule {
        status: RuleStatus::Paused,
        updated_at: later,
        ..rule.clone()
    };
    assert_eq!(
        store.update_launch_rule(&paused, stale).await.unwrap(),
        None
    );
    let archived = uj_domain::studies::Study {
        status: StudyStatus::Archived,
        updated_at: later,
        ..study.clone()
    };
    assert!(!store.update_study(&archived, stale).await.unwrap());
    let open = store.invite(&shop, "c-open").await.unwrap().unwrap();
    assert_eq!((open.state, open.withdrawn_at), (InviteState::Issued, None));
    assert_eq!(
        store
            .launch_rule(&shop, &rule.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        RuleStatus::Active
    );
    assert_eq!(
        store.study(&shop, &study.id).await.unwrap().unwrap().status,
        StudyStatus::Active
    );
}

/// An invite is open until its `expires_at`, exclusive, to the microsecond: issuing the
/// user another at exactly that time gives them the new one, and the rule's stats read then
/// count it expired, not pending (found by the mutation audit).
async fn an_invite_is_expired_from_its_exact_expiry_time(store: Arc<dyn Store>, _: &TestDatabase) {
    use uj_domain::invites::InviteState;
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, now).await;
    let first = event_invite(&rule, "c-first", "u1", now);
    let other = event_invite(&rule, "c-other", "u2", now);
    for invite in [&first, &other] {
        store.issue_invite(invite, now).await.unwrap();
    }
    let end = first.expires_at;
    let a_moment_before = end - Duration::microseconds(1);
    let stats = store.rule_stats(&rule.id, a_moment_before).await.unwrap();
    assert_eq!((stats.pending, stats.expired), (2, 0));
    let stats = store.rule_stats(&rule.id, end).await.unwrap();
    assert_eq!((stats.pending, stats.expired), (0, 2));

    let again = event_invite(&rule, "c-again", "u1", end);
    let issued = store.issue_invite(&again, end).await.unwrap();
    assert_eq!(issued.code, "c-again");
    assert_eq!(
        store.invite(&shop, "c-first").await.unwrap().unwrap().state,
        InviteState::Expired
    );
    let stats = store.rule_stats(&rule.id, end).await.unwrap();
    assert_eq!((stats.issued, stats.pending, stats.expired), (3, 1, 2));
}

/// A rule's schedule holds up to its `ends_at`, exclusive, to the microsecond: an invite
/// accepted, or a direct link started, at exactly that time is refused as outside the
/// schedule; a microsecond before, it starts (found by the mutation audit).
async fn a_rules_schedule_is_closed_from_its_exact_end(store: Arc<dyn Store>, _: &TestDatabase) {
    use uj_domain::invites::AcceptOutcome;
    use uj_domain::pacing::Reason;
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, now).await;
    let end = now + Duration::hours(1);
    let scheduled = uj_domain::studies::LaunchRule {
        ends_at: Some(end),
        updated_at: now + Duration::seconds(1),
        ..rule.clone()
    };
    assert!(store
        .update_launch_rule(&scheduled, rule.updated_at)
        .await
        .unwrap()
        .is_some());
    for (code, user) in [("c-before", "u1"), ("c-end", "u2")] {
        store
            .issue_invite(&event_invite(&scheduled, code, user, now), now)
            .await
            .unwrap();
    }
    let before = end - Duration::microseconds(1);
    let outcome = store
        .accept_invite(&shop, "c-before", before)
        .await
        .unwrap();
    assert!(
        matches!(outcome, Some(AcceptOutcome::Accepted(_))),
        "{outcome:?}"
    );
    let outcome = store.accept_invite(&shop, "c-end", end).await.unwrap();
    assert!(
        matches!(
            outcome,
            Some(AcceptOutcome::Refused(_, Reason::OutsideSchedule))
        ),
        "{outcome:?}"
    );
    let outcome = store
        .start_invite(&event_invite(&scheduled, "link-end", "u3", now), end)
        .await
        .unwrap();
    assert!(
        matches!(outcome, AcceptOutcome::Refused(_, Reason::OutsideSchedule)),
        "{outcome:?}"
    );
}

async fn rule_stats_count_invites_by_state_and_suppressions_add_up(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::ids::LaunchRuleId;
    use uj_domain::invites::{Invite, InviteState};
    use uj_domain::studies::{LaunchRule, Surface};
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, now).await;
    let invite = |code: &str, user: &str, issued_at| event_invite(&rule, code, user, issued_at);
    for (code, user) in [("c-open", "u1"), ("c-took", "u2"), ("c-no", "u3")] {
        store
            .issue_invite(&invite(code, user, now), now)
            .await
            .unwrap();
    }
    let old = now - Duration::days(2);
    store
        .issue_invite(&invite("c-old", "u4", old), old)
        .await
        .unwrap();
    store.accept_invite(&shop, "c-took", now).await.unwrap();
    store.dismiss_invite(&shop, "c-no", now).await.unwrap();

    store
        .add_suppressions(&[
            (rule.id.to_string(), "cooldown".into(), 3),
            (rule.id.to_string(), "sampled_out".into(), 1),
            ("rul_deleted".into(), "cooldown".into(), 9),
        ])
        .await
        .unwrap();
    store
        .add_suppressions(&[(rule.id.to_string(), "cooldown".into(), 2)])
        .await
        .unwrap();
    let stats = store.rule_stats(&rule.id, now).await.unwrap();
    assert_eq!(
        stats,
        uj_storage::RuleStats {
            issued: 4,
            pending: 1,
            accepted: 1,
            dismissed: 1,
            expired: 1,
            withdrawn: 0,
            suppressions: vec![("cooldown".into(), 5), ("sampled_out".into(), 1)],
        },
        "an open invite past its expiry counts as expired; counts add up"
    );
    assert_eq!(
        store
            .rule_stats(&LaunchRuleId::generate(), now)
            .await
            .unwrap(),
        uj_storage::RuleStats::default()
    );

    // A direct link starts at once, within the cap, beside the user's open invite.
    let capped = LaunchRule {
        id: LaunchRuleId::generate(),
        max_starts: Some(1),
        surface: Surface::DirectLink,
        ..rule.clone()
    };
    store.create_launch_rule(&capped, None).await.unwrap();
    let direct = |code: &str, user: &str| Invite {
        rule_id: capped.id.clone(),
        ..invite(code, user, now)
    };
    let first = store.start_invite(&direct("d-1", "u1"), now).await.unwrap();
    assert!(
        matches!(&first, uj_domain::invites::AcceptOutcome::Accepted(i) if i.state == InviteState::Accepted)
    );
    let second = store.start_invite(&direct("d-2", "u3"), now).await.unwrap();
    assert!(matches!(
        second,
        uj_domain::invites::AcceptOutcome::Refused(_, uj_domain::pacing::Reason::MaxStartsReached)
    ));
    // u2 started the study through their invite: no second start, whatever the cap.
    let again = store.start_invite(&direct("d-3", "u2"), now).await.unwrap();
    assert!(matches!(
        again,
        uj_domain::invites::AcceptOutcome::Refused(_, uj_domain::pacing::Reason::AlreadyStarted)
    ));
    assert!(
        store.invite(&shop, "d-2").await.unwrap().is_none(),
        "nothing stored at the cap"
    );
    assert_eq!(
        store.invite(&shop, "d-1").await.unwrap().unwrap().state,
        InviteState::Accepted
    );
    assert_eq!(
        store
            .pending_invite(&shop, "u1", now)
            .await
            .unwrap()
            .unwrap()
            .code,
        "c-open",
        "u1's open invite stays"
    );
    let stats = store.rule_stats(&capped.id, now).await.unwrap();
    assert_eq!((stats.issued, stats.accepted), (1, 1));

    // A batch: one invite per user; a user with an issued invite (u1) or listed twice (u9,
    // the first wins) gets no second one.
    let batch = [
        invite("b-1", "u9", now),
        invite("b-2", "u1", now),
        invite("b-3", "u9", now),
        invite("b-4", "u8", now),
    ];
    let issued: Vec<Option<String>> = store
        .issue_new_invites(&batch)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.map(|i| i.code))
        .collect();
    assert_eq!(issued, [Some("b-1".into()), None, None, Some("b-4".into())]);
    let pending = store
        .pending_invite(&shop, "u9", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.code, "b-1");
    assert_eq!(
        store.issue_new_invites(&[batch[0].clone()]).await.unwrap(),
        [None],
        "issuing again is a no-op"
    );
    assert!(store.issue_new_invites(&[]).await.unwrap().is_empty());
    // A batch of new users only: all written.
    let fresh = [invite("f-1", "u20", now), invite("f-2", "u21", now)];
    let issued = store.issue_new_invites(&fresh).await.unwrap();
    assert_eq!(issued, [Some(fresh[0].clone()), Some(fresh[1].clone())]);
    assert_eq!(
        store.pending_invite(&shop, "u21", now).await.unwrap(),
        Some(fresh[1].clone())
    );
    // A batch that cannot be written as a whole writes nothing: here its last invite's
    // rule does not exist.
    let orphan = uj_domain::invites::Invite {
        rule_id: LaunchRuleId::from_string("rul_missing"),
        ..invite("x-2", "u31", now)
    };
    assert!(store
        .issue_new_invites(&[invite("x-1", "u30", now), orphan])
        .await
        .is_err());
    assert_eq!(store.invite(&shop, "x-1").await.unwrap(), None);
    assert_eq!(store.pending_invite(&shop, "u30", now).await.unwrap(), None);
}

/// Names the app stopped sending leave the catalog (one Mixpanel lists stays, as seen in
/// Mixpanel), and free their place under the cap: a catalog filled once stayed full for good.
async fn app_event_names_not_sent_for_a_while_are_forgotten(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let t0 = uj_now() - Duration::days(100);
    let recent = uj_now();
    connected_with_names(&store, &shop, &["Listed".to_owned()], recent).await;
    let count = |project: &ProjectId, name: &str, at| uj_storage::AppEventCount {
        project: project.clone(),
        name: name.into(),
        count: 2,
        first: at,
        last: at,
    };
    store
        .record_app_events(&[
            count(&shop, "Junk", t0),
            count(&shop, "Listed", t0),
            count(&shop, "Still sent", t0),
            count(&blog, "Old", t0),
        ])
        .await
        .unwrap();
    store
        .record_app_events(&[count(&shop, "Still sent", recent)])
        .await
        .unwrap();
    let forgotten = store
        .forget_old_app_events(recent - Duration::days(90))
        .await
        .unwrap();
    assert_eq!(forgotten, 3, "Junk, Listed's sightings and Old");
    let catalog = store.event_catalog(&shop).await.unwrap();
    let seen: Vec<_> = catalog
        .iter()
        .map(|e| {
            (
                e.name.as_str(),
                e.app_count,
                e.seen_in_mixpanel_at.is_some(),
            )
        })
        .collect();
    assert_eq!(seen, [("Listed", 0, true), ("Still sent", 4, false)]);
    assert_eq!(catalog[0].app_first_seen_at, None);
    assert!(store.event_catalog(&blog).await.unwrap().is_empty());
    assert_eq!(
        store
            .forget_old_app_events(recent - Duration::days(90))
            .await
            .unwrap(),
        0
    );
}

async fn app_events_add_up_in_the_catalog_in_batches(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let t0 = uj_now();
    let t1 = t0 + Duration::minutes(5);
    let count = |project: &ProjectId, name: &str, count, first, last| uj_storage::AppEventCount {
        project: project.clone(),
        name: name.into(),
        count,
        first,
        last,
    };
    store
        .record_app_events(&[
            count(&shop, "Order Completed", 3, t0, t0),
            count(&blog, "Post Read", 1, t0, t0),
            count(&ProjectId::generate(), "Ghost", 1, t0, t0),
        ])
        .await
        .unwrap();
    store
        .record_app_events(&[count(&shop, "Order Completed", 2, t1, t1)])
        .await
        .unwrap();
    let catalog = store.event_catalog(&shop).await.unwrap();
    assert_eq!(catalog.len(), 1, "one project's events only");
    let order = &catalog[0];
    assert_eq!(
        (
            order.name.as_str(),
            order.app_count,
            order.app_first_seen_at,
            order.app_last_seen_at
        ),
        ("Order Completed", 5, Some(t0), Some(t1))
    );
    assert_eq!(store.event_catalog(&blog).await.unwrap().len(), 1);
    // A batch counted earlier that commits later (another flush, another process) widens
    // first and last seen; it does not move them back.
    let (early, between) = (t0 - Duration::minutes(1), t0 + Duration::minutes(2));
    store
        .record_app_events(&[count(&shop, "Order Completed", 1, early, between)])
        .await
        .unwrap();
    let order = &store.event_catalog(&shop).await.unwrap()[0];
    assert_eq!(
        (
            order.app_count,
            order.app_first_seen_at,
            order.app_last_seen_at
        ),
        (6, Some(early), Some(t1))
    );

    // The public key sends event names: a project keeps at most MAX_APP_EVENT_NAMES of
    // them, so junk names cannot grow the catalog without end. Known names still count.
    // Names read from Mixpanel are not the app's: they take no room.
    let from_mixpanel: Vec<String> = (0..10).map(|n| format!("mixpanel {n}")).collect();
    connected_with_names(&store, &blog, &from_mixpanel, t1).await;
    let junk: Vec<_> = (0..uj_storage::MAX_APP_EVENT_NAMES + 5)
        .map(|n| count(&blog, &format!("junk {n:05}"), 1, t1, t1))
        .collect();
    store.record_app_events(&junk).await.unwrap();
    store
        .record_app_events(&[count(&blog, "Post Read", 1, t1, t1)])
        .await
        .unwrap();
    let catalog = store.event_catalog(&blog).await.unwrap();
    assert_eq!(catalog.len(), uj_storage::MAX_APP_EVENT_NAMES + 10);
    let post = catalog.iter().find(|e| e.name == "Post Read").unwrap();
    assert_eq!(post.app_count, 2);

    // A batch that passes the cap keeps the names first seen, not those sorting first:
    // "zz" names sent first, then more "aa" names than there is room for.
    let (_, news) = owner_with_project(&store, "cy@example.com").await;
    let mut batch: Vec<_> = (0..5)
        .map(|n| count(&news, &format!("zz {n}"), 1, t0, t0))
        .collect();
    batch.extend(
        (0..uj_storage::MAX_APP_EVENT_NAMES)
            .map(|n| count(&news, &format!("aa {n:05}"), 1, t1, t1)),
    );
    store.record_app_events(&batch).await.unwrap();
    let catalog = store.event_catalog(&news).await.unwrap();
    assert_eq!(catalog.len(), uj_storage::MAX_APP_EVENT_NAMES);
    let early = catalog.iter().filter(|e| e.name.starts_with("zz")).count();
    assert_eq!(early, 5, "the names sent first are kept");

    // Names Mixpanel listed take room once the app sends them, in the same order: room for
    // 10, Mixpanel's names sorting first but sent last, 12 names sent first.
    let (_, mixed) = owner_with_project(&store, "dee@example.com").await;
    let listed: Vec<String> = (0..5).map(|n| format!("aa listed {n}")).collect();
    connected_with_names(&store, &mixed, &listed, t0).await;
    let full: Vec<_> = (0..uj_storage::MAX_APP_EVENT_NAMES - 10)
        .map(|n| count(&mixed, &format!("mm {n:05}"), 1, t0, t0))
        .collect();
    store.record_app_events(&full).await.unwrap();
    let mut batch: Vec<_> = listed.iter().map(|n| count(&mixed, n, 1, t1, t1)).collect();
    batch.extend((0..12).map(|n| count(&mixed, &format!("zz {n:02}"), 1, t0, t0)));
    store.record_app_events(&batch).await.unwrap();
    let catalog = store.event_catalog(&mixed).await.unwrap();
    let sent: Vec<&str> = catalog
        .iter()
        .filter(|e| e.app_first_seen_at.is_some() && !e.name.starts_with("mm"))
        .map(|e| e.name.as_str())
        .collect();
    let first_ten: Vec<String> = (0..10).map(|n| format!("zz {n:02}")).collect();
    assert_eq!(sent, first_ten, "the names sent first are kept");
}

/// Two processes flush their counts at the same moment, each in its own order (a hash
/// map's), while a third records the names Mixpanel lists (in Mixpanel's order): all land.
/// (On PostgreSQL, rows updated in opposite orders by two transactions deadlocked; one
/// flush failed and waited for the next interval.)
async fn counts_flushed_at_once_in_any_order_add_up(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, now).await;
    let events: Vec<_> = (0..40)
        .map(|n| uj_storage::AppEventCount {
            project: shop.clone(),
            name: format!("Event {n:02}"),
            count: 1,
            first: now,
            last: now,
        })
        .collect();
    let suppressions: Vec<_> = uj_domain::pacing::Reason::ALL
        .iter()
        .map(|reason| (rule.id.to_string(), reason.code().to_owned(), 1))
        .collect();
    let connected = connection(&shop, "2");
    store
        .save_mixpanel_connection(&connected, "v1.x")
        .await
        .unwrap();
    let mut from_mixpanel: Vec<String> = events.iter().map(|e| e.name.clone()).collect();
    from_mixpanel.reverse();
    const ROUNDS: i64 = 30;
    for round in 0..ROUNDS {
        let mut flushes = vec![tokio::spawn({
            let (store, shop, names) = (Arc::clone(&store), shop.clone(), from_mixpanel.clone());
            let connected_at = connected.connected_at;
            async move {
                let recorded = store
                    .record_mixpanel_event_names(&shop, connected_at, &names, now)
                    .await?;
                assert!(recorded, "the connection is current");
                Ok(())
            }
        })];
        for reversed in [false, true] {
            let (store, mut events, mut suppressions) =
                (Arc::clone(&store), events.clone(), suppressions.clone());
            if reversed {
                events.reverse();
                suppressions.reverse();
            }
            flushes.push(tokio::spawn(async move {
                store.record_app_events(&events).await?;
                store.add_suppressions(&suppressions).await
            }));
        }
        for flush in flushes {
            flush
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        }
    }
    let catalog = store.event_catalog(&shop).await.unwrap();
    assert_eq!(catalog.len(), events.len());
    assert!(catalog
        .iter()
        .all(|e| e.app_count == 2 * ROUNDS && e.seen_in_mixpanel_at == Some(now)));
    let stats = store.rule_stats(&rule.id, now).await.unwrap();
    assert_eq!(stats.suppressions.len(), suppressions.len());
    assert!(stats.suppressions.iter().all(|(_, n)| *n == 2 * ROUNDS));
}

/// A read of Mixpanel's names and two flushes of the app's counts add the same new names at
/// the same moment: all land. (On PostgreSQL the read locked the rows there first and then
/// inserted, a flush inserted first and then updated: each waited for the other's row;
/// found by the diff review.) Each read replaces the one before.
async fn mixpanel_reads_and_flushes_adding_the_same_new_names_at_once_all_land(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let connected = connection(&shop, "2");
    store
        .save_mixpanel_connection(&connected, "v1.x")
        .await
        .unwrap();
    const ROUNDS: i64 = 30;
    for round in 0..ROUNDS {
        let names: Vec<String> = (0..10).map(|n| format!("R{round:02} {n}")).collect();
        let seen_at = now + Duration::seconds(round);
        let mut writes = vec![tokio::spawn({
            let (store, shop, mut names) = (Arc::clone(&store), shop.clone(), names.clone());
            names.reverse();
            let connected_at = connected.connected_at;
            async move {
                let recorded = store
                    .record_mixpanel_event_names(&shop, connected_at, &names, seen_at)
                    .await?;
                assert!(recorded, "the connection is current");
                Ok(())
            }
        })];
        for reversed in [false, true] {
            // And a name both touch that sorts after the new ones: the flush takes it after
            // inserting them, the read found it there before inserting them.
            let mut events: Vec<_> = names
                .iter()
                .chain([&"Zz common".to_owned()])
                .map(|name| uj_storage::AppEventCount {
                    project: shop.clone(),
                    name: name.clone(),
                    count: 1,
                    first: now,
                    last: now,
                })
                .collect();
            if reversed {
                events.reverse();
            }
            let store = Arc::clone(&store);
            writes.push(tokio::spawn(async move {
                store.record_app_events(&events).await
            }));
        }
        for write in writes {
            write
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        }
    }
    let mut catalog = store.event_catalog(&shop).await.unwrap();
    let common = catalog.pop().unwrap();
    assert_eq!(
        (common.name.as_str(), common.app_count),
        ("Zz common", 2 * ROUNDS)
    );
    assert_eq!(catalog.len(), 10 * ROUNDS as usize);
    assert!(catalog.iter().all(|e| e.app_count == 2));
    let last = now + Duration::seconds(ROUNDS - 1);
    for event in &catalog {
        let listed_last = event.name.starts_with(&format!("R{:02} ", ROUNDS - 1));
        assert_eq!(
            event.seen_in_mixpanel_at,
            listed_last.then_some(last),
            "{}",
            event.name
        );
    }
    // A read older than the last one, landing after it, changes nothing.
    let older = vec!["R00 0".to_owned(), "Stale".to_owned()];
    assert!(store
        .record_mixpanel_event_names(&shop, connected.connected_at, &older, now)
        .await
        .unwrap());
    catalog.push(common);
    assert_eq!(store.event_catalog(&shop).await.unwrap(), catalog);
}

/// Two processes' invite writers issue batches for the same users at the same moment, in
/// opposite orders: both batches are written, and each user gets one invite. (On
/// PostgreSQL the two inserts waited for each other's users and one deadlocked.)
async fn batches_issued_at_once_in_any_order_give_each_user_one_invite(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let (_, rule) = study_with_event_rule(&store, &shop, now).await;
    for round in 0..30 {
        let mut batches = Vec::new();
        for (side, reversed) in [("a", false), ("b", true)] {
            let mut batch: Vec<_> = (0..40)
                .map(|n| {
                    event_invite(
                        &rule,
                        &format!("{side}-{round}-{n}"),
                        &format!("u{round}-{n}"),
                        now,
                    )
                })
                .collect();
            if reversed {
                batch.reverse();
            }
            let store = Arc::clone(&store);
            batches.push(tokio::spawn(async move {
                let issued = store.issue_new_invites(&batch).await;
                (batch, issued)
            }));
        }
        let mut winners = std::collections::HashMap::new();
        for batch in batches {
            let (batch, issued) = batch.await.unwrap();
            let issued = issued.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            for (invite, issued) in batch.iter().zip(issued) {
                if let Some(issued) = issued {
                    assert_eq!(issued.code, invite.code);
                    let first = winners.insert(invite.reference_id.clone(), issued.code);
                    assert_eq!(first, None, "round {round}: two invites for one user");
                }
            }
        }
        assert_eq!(winners.len(), 40, "round {round}: a user without an invite");
        for (user, code) in winners {
            let pending = store.pending_invite(&shop, &user, now).await.unwrap();
            assert_eq!(pending.map(|i| i.code), Some(code));
        }
    }
}

/// A study with two rules on one audience is paused while members leave that audience:
/// both withdraw the same invites, each found through its own index. Both commit, and every
/// invite ends withdrawn, while other leaving members get invites one by one. (On
/// PostgreSQL each took the rows in its index's order, so the two could wait for each
/// other; later, each locked the rows it had found, then withdrew what a second statement
/// found, which could include an invite committed in between, locked out of order.)
async fn a_study_stopped_while_its_audience_shrinks_withdraws_its_invites_once(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::ids::{LaunchRuleId, StudyId};
    use uj_domain::invites::{Invite, InviteState};
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let (template, rule) = study_with_event_rule(&store, &shop, now).await;
    const USERS: usize = 400;
    // Members who get their invites while the study stops and they leave, with codes that
    // come before the others'.
    const LATE: usize = 100;
    for round in 0..32 {
        let study = uj_domain::studies::Study {
            id: StudyId::generate(),
            public_code: format!("round{round:05}"),
            public_link: true,
            ..template.clone()
        };
        store.create_study(&study, None).await.unwrap();
        let mut rules = Vec::new();
        for _ in 0..2 {
            let rule = uj_domain::studies::LaunchRule {
                id: LaunchRuleId::generate(),
                study_id: study.id.clone(),
                ..rule.clone()
            };
            store.create_launch_rule(&rule, None).await.unwrap();
            rules.push(rule);
        }
        let audience = store
            .upsert_audience(&shop, &format!("c{round}"), "A", "", now)
            .await
            .unwrap()
            .id;
        let ids: Vec<String> = (0..USERS + LATE)
            .map(|n| format!("m{round}-{n:04}"))
            .collect();
        let listed: Vec<&str> = ids.iter().map(String::as_str).collect();
        store
            .add_audience_members(&audience, &members(&listed), now)
            .await
            .unwrap();
        // The rules' invites interleaved, which one comes first changing with the round.
        let invites: Vec<Invite> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| {
                let code = if n < USERS {
                    format!("w{round}-{n:04}")
                } else {
                    format!("a{round}-{n:04}")
                };
                (n, id, code)
            })
            .map(|(n, id, code)| Invite {
                source: "audience",
                audience_id: Some(audience.to_string()),
                audience_member_id: Some(id.clone()),
                event_name: None,
                ..event_invite(&rules[(n + round) % 2], &code, id, now)
            })
            .collect();
        let (invites, late) = invites.split_at(USERS);
        store.issue_new_invites(invites).await.unwrap();
        let paused = uj_domain::studies::Study {
            status: uj_domain::pacing::StudyStatus::Paused,
            updated_at: now + Duration::seconds(1),
            ..study.clone()
        };
        // The pause starts 0–3 ms later, so that the two withdrawals overlap in some round.
        let delay = std::time::Duration::from_micros((round as u64 * 397) % 3000);
        let pause = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                tokio::task::spawn_blocking(move || std::thread::sleep(delay))
                    .await
                    .unwrap();
                store.update_study(&paused, now).await
            }
        });
        let leave = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store
                    .remove_audience_members(&audience, &ids, now + Duration::seconds(1))
                    .await
            }
        });
        let issue = tokio::spawn({
            let (store, late) = (Arc::clone(&store), late.to_vec());
            async move {
                for invite in late {
                    store.issue_new_invites(&[invite]).await?;
                }
                Ok::<_, StoreError>(())
            }
        });
        let paused = pause.await.unwrap();
        let left = leave.await.unwrap();
        let issued = issue.await.unwrap();
        assert!(
            matches!(paused, Ok(true)) && left.is_ok() && issued.is_ok(),
            "round {round}: {paused:?} / {left:?} / {issued:?}"
        );
        for invite in invites {
            let stored = store.invite(&shop, &invite.code).await.unwrap().unwrap();
            assert_eq!(stored.state, InviteState::Withdrawn, "round {round}");
        }
    }
}

/// One server per SQLite file (its key filter must see every write): a second waits for
/// the first to let go, up to `LOCK_WAIT`, then gives up with a message that says why.
/// Admin commands and tests open the file beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_has_one_server_at_a_time() {
    let db = TestDatabase::sqlite();
    let first = uj_storage::connect_as_server(&db.url).await.unwrap();
    let beside = uj_storage::connect(&db.url).await.unwrap();
    assert!(!beside.is_set_up().await.unwrap());
    // The second one names the file through a symbolic link: the lock is the file's.
    let path = db.url.strip_prefix("sqlite://").unwrap();
    let link = format!("{path}-link");
    std::os::unix::fs::symlink(path, &link).unwrap();
    let started = std::time::Instant::now();
    let Err(error) = uj_storage::connect_as_server(&format!("sqlite://{link}")).await else {
        panic!("a second server opened the file");
    };
    assert!(started.elapsed() >= uj_storage::SqliteStore::LOCK_WAIT);
    let why = std::error::Error::source(&error).map(ToString::to_string);
    assert!(
        matches!(error, StoreError::Unavailable(_))
            && why
                .as_deref()
                .is_some_and(|why| why.contains("another userjourneys server is serving")),
        "{error:?}"
    );
    // A server stopping while the next one waits: the next one takes over.
    let next = tokio::spawn({
        let url = db.url.clone();
        async move { uj_storage::connect_as_server(&url).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    drop(first);
    let next = next.await.unwrap().expect("the next server takes over");
    assert!(!next.is_set_up().await.unwrap());
}

/// A server's key filter starts from what the file holds: rows written before it opened
/// (by an earlier server, or beside it) are read, and so are members an earlier server
/// staged in an unfinished full sync that this one completes, under their new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_server_reads_what_was_written_before_it_opened() {
    let db = TestDatabase::sqlite();
    let earlier = uj_storage::connect_as_server(&db.url).await.unwrap();
    let (_, shop) = owner_with_project(&earlier, "ada@example.com").await;
    let t0 = uj_now();
    let audience = audience_a(&earlier, &shop, t0).await;
    earlier
        .add_audience_members(&audience, &[synced("a", Some("app-a"))], t0)
        .await
        .unwrap();
    let (_, rule) = study_with_event_rule(&earlier, &shop, t0).await;
    earlier
        .issue_invite(&event_invite(&rule, "c-1", "app-a", t0), t0)
        .await
        .unwrap();
    // An unfinished full sync stages a member's new reference id (their row keeps the old
    // key until the session completes).
    let t1 = t0 + Duration::minutes(1);
    let first = [synced("c", None)];
    receive(&earlier, &shop, &audience, "s1", 1, 1, &first, t0).await;
    let page_1 = [synced("a", Some("app-a")), synced("c", Some("app-c"))];
    receive(&earlier, &shop, &audience, "s2", 1, 2, &page_1, t1).await;
    drop(earlier);
    let beside = uj_storage::connect(&db.url).await.unwrap();
    beside
        .add_audience_members(&audience, &[synced("b", None)], t0)
        .await
        .unwrap();
    let server = uj_storage::connect_as_server(&db.url).await.unwrap();
    let page_2 = [synced("b", None)];
    receive(&server, &shop, &audience, "s2", 2, 2, &page_2, t1).await;
    for (key, memberships, invites) in [
        ("app-a", 1, 1),
        ("b", 1, 0),
        ("app-c", 1, 0),
        ("nobody", 0, 0),
    ] {
        assert_eq!(
            (
                server.audience_memberships(&shop, key).await.unwrap().len(),
                server.invites_of_user(&shop, key).await.unwrap().len()
            ),
            (memberships, invites),
            "{key}"
        );
    }
}

/// Mixpanel is disconnected (or reconnected) while another process flushes the app's
/// counts for the same names: both commit, every count is kept and nothing stays marked
/// as seen in Mixpanel. (On PostgreSQL forgetting Mixpanel's names deleted the names only
/// Mixpanel knew, then unmarked the rest, while the flush took the same rows by name: a
/// deadlock.)
async fn a_disconnect_beside_a_flush_of_the_apps_counts_keeps_every_count(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    let (owner, _) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    for round in 0..30 {
        let shop = store
            .create_project(
                &owner.id,
                "Shop",
                &uj_domain::keys::generate_public_key(),
                100,
                None,
            )
            .await
            .unwrap()
            .expect("under the cap")
            .id;
        let counts = |names: &mut dyn Iterator<Item = usize>| -> Vec<_> {
            names
                .map(|n| uj_storage::AppEventCount {
                    project: shop.clone(),
                    name: format!("Event {n:02}"),
                    count: 1,
                    first: now,
                    last: now,
                })
                .collect()
        };
        let all = counts(&mut (0..40));
        let names: Vec<String> = all.iter().map(|e| e.name.clone()).collect();
        connected_with_names(&store, &shop, &names, now).await;
        // Half the names the app has sent too; the other half only Mixpanel knows.
        store
            .record_app_events(&counts(&mut (0..40).step_by(2)))
            .await
            .unwrap();
        let forget = tokio::spawn({
            let (store, shop) = (Arc::clone(&store), shop.clone());
            async move {
                if round % 2 == 0 {
                    store.delete_mixpanel_connection(&shop).await.map(|_| ())
                } else {
                    // New credentials for the connected Mixpanel project.
                    let again = connection(&shop, "2");
                    store
                        .save_mixpanel_connection(&again, "v1.y")
                        .await
                        .map(|saved| assert!(saved))
                }
            }
        });
        let flush = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.record_app_events(&all).await }
        });
        for task in [forget, flush] {
            task.await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        }
        let catalog = store.event_catalog(&shop).await.unwrap();
        assert_eq!(catalog.len(), 40, "round {round}");
        for (n, event) in catalog.iter().enumerate() {
            assert_eq!(event.name, format!("Event {n:02}"));
            let sent = if n % 2 == 0 { 2 } else { 1 };
            assert_eq!(event.app_count, sent, "round {round}: {}", event.name);
            assert_eq!(event.seen_in_mixpanel_at, None, "round {round}");
        }
    }
}

/// A study of `project` (public code `code`) created at `now`, not stored.
fn new_study(
    project: &ProjectId,
    code: &str,
    now: chrono::DateTime<Utc>,
) -> uj_domain::studies::Study {
    uj_domain::studies::Study {
        id: uj_domain::ids::StudyId::generate(),
        project_id: project.clone(),
        name: "Checkout".into(),
        status: uj_domain::pacing::StudyStatus::Active,
        interview_url: "https://research.example.com/i/checkout".into(),
        launch_mode: uj_domain::studies::LaunchMode::InApp,
        weekly_limit: None,
        monthly_limit: None,
        public_code: code.into(),
        public_link: true,
        created_at: now,
        updated_at: now,
    }
}

/// The answer of a create sent with `key`, for `resource_id`, made at `at`.
fn answer_record(
    project: &ProjectId,
    key: &str,
    fingerprint: &str,
    resource_id: &str,
    at: chrono::DateTime<Utc>,
) -> uj_domain::idempotency::IdempotencyRecord {
    uj_domain::idempotency::IdempotencyRecord {
        project_id: project.clone(),
        key: key.into(),
        fingerprint: fingerprint.into(),
        resource_id: resource_id.into(),
        status: 201,
        // Bytes as they are, not text.
        body: [
            b"{\"id\":\"".as_slice(),
            resource_id.as_bytes(),
            b"\"}\x00\xff",
        ]
        .concat(),
        created_at: at,
    }
}

/// A create sent with an idempotency key records its answer in the create's transaction:
/// the key then refuses another create of the project (study or rule) for 24 hours, and
/// nothing of a refused or failed create stays; another project's key is its own.
async fn an_idempotency_record_lands_with_its_create_once_per_key_and_project(
    store: Arc<dyn Store>,
    _: &TestDatabase,
) {
    use uj_domain::idempotency::KEY_LIFETIME;
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let (_, blog) = owner_with_project(&store, "bob@example.com").await;
    let now = uj_now();
    let first = new_study(&shop, "idem000001", now);
    let recorded = answer_record(&shop, "k-1", "fp-a", first.id.as_str(), now);
    assert!(store.create_study(&first, Some(&recorded)).await.unwrap());
    assert_eq!(
        store.idempotency_record(&shop, "k-1", now).await.unwrap(),
        Some(recorded.clone())
    );
    assert_eq!(
        store.idempotency_record(&blog, "k-1", now).await.unwrap(),
        None
    );
    assert_eq!(
        store.idempotency_record(&shop, "k-2", now).await.unwrap(),
        None
    );

    // The key is taken: nothing of the second create is written, the record stays.
    let second = new_study(&shop, "idem000002", now);
    let other = answer_record(&shop, "k-1", "fp-b", second.id.as_str(), now);
    assert!(!store.create_study(&second, Some(&other)).await.unwrap());
    assert_eq!(store.study(&shop, &second.id).await.unwrap(), None);
    assert_eq!(
        store.idempotency_record(&shop, "k-1", now).await.unwrap(),
        Some(recorded.clone())
    );
    // Studies and rules share the project's keys.
    let (_, stored_rule) = study_with_event_rule(&store, &shop, now).await;
    let rule = uj_domain::studies::LaunchRule {
        id: uj_domain::ids::LaunchRuleId::generate(),
        ..stored_rule
    };
    let rule_record = answer_record(&shop, "k-1", "fp-c", rule.id.as_str(), now);
    assert!(
        !store
            .create_launch_rule(&rule, Some(&rule_record))
            .await
            .unwrap(),
        "one key space per project, studies and rules alike"
    );
    assert_eq!(store.launch_rule(&shop, &rule.id).await.unwrap(), None);
    let rule_record = answer_record(&shop, "k-rule", "fp-c", rule.id.as_str(), now);
    assert!(store
        .create_launch_rule(&rule, Some(&rule_record))
        .await
        .unwrap());
    assert!(store.launch_rule(&shop, &rule.id).await.unwrap().is_some());
    assert_eq!(
        store
            .idempotency_record(&shop, "k-rule", now)
            .await
            .unwrap(),
        Some(rule_record)
    );

    // Another project's key of the same name is its own.
    let theirs = new_study(&blog, "idem000003", now);
    let their_record = answer_record(&blog, "k-1", "fp-b", theirs.id.as_str(), now);
    assert!(store
        .create_study(&theirs, Some(&their_record))
        .await
        .unwrap());
    assert_eq!(
        store.idempotency_record(&blog, "k-1", now).await.unwrap(),
        Some(their_record)
    );

    // A create that fails records nothing: the same transaction.
    let clash = new_study(&shop, "idem000001", now);
    let clash_record = answer_record(&shop, "k-clash", "fp-d", clash.id.as_str(), now);
    assert!(matches!(
        store.create_study(&clash, Some(&clash_record)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .idempotency_record(&shop, "k-clash", now)
            .await
            .unwrap(),
        None
    );

    // A record answers for 24 hours; then its key makes a new create, replacing it.
    let last_moment = now + KEY_LIFETIME - Duration::microseconds(1);
    assert!(store
        .idempotency_record(&shop, "k-1", last_moment)
        .await
        .unwrap()
        .is_some());
    let later = now + KEY_LIFETIME;
    assert_eq!(
        store.idempotency_record(&shop, "k-1", later).await.unwrap(),
        None
    );
    let again = new_study(&shop, "idem000004", later);
    let again_record = answer_record(&shop, "k-1", "fp-e", again.id.as_str(), later);
    assert!(store
        .create_study(&again, Some(&again_record))
        .await
        .unwrap());
    assert_eq!(
        store.idempotency_record(&shop, "k-1", later).await.unwrap(),
        Some(again_record)
    );

    // The purge drops what is past its lifetime, of every project.
    assert_eq!(
        store
            .delete_stale_idempotency_records(later - KEY_LIFETIME)
            .await
            .unwrap(),
        2,
        "shop's k-rule and blog's k-1; shop's k-1 was replaced"
    );
    assert!(store
        .idempotency_record(&shop, "k-1", later)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.idempotency_record(&blog, "k-1", now).await.unwrap(),
        None
    );
}

/// Creates sent at once with one key: one lands with its record, the others write nothing.
async fn creates_racing_with_one_idempotency_key_make_one(store: Arc<dyn Store>, _: &TestDatabase) {
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let racers = (0..12).map(|n| {
        let store = store.clone();
        let study = new_study(&shop, &format!("idemrace{n:02}"), now);
        let record = answer_record(&shop, "k-race", "fp", study.id.as_str(), now);
        tokio::spawn(async move { store.create_study(&study, Some(&record)).await })
    });
    let mut landed = 0;
    for racer in racers {
        landed += usize::from(racer.await.unwrap().expect("no create fails"));
    }
    assert_eq!(landed, 1);
    let studies = store.studies(&shop, &first_page(100)).await.unwrap();
    assert_eq!(studies.items.len(), 1);
    let record = store
        .idempotency_record(&shop, "k-race", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.resource_id, studies.items[0].id.as_str());
}

/// Waits until `n` sessions of the test's PostgreSQL database wait for a lock.
async fn until_waiting_for_locks(db: &TestDatabase, n: i64) {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    for _ in 0..400 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{n} sessions never waited for a lock");
}

/// The hourly purge never deletes a record that replaced a stale one of its key while the
/// purge waited for it: PostgreSQL checks the deleted row's new version against the outer
/// statement alone (it deleted the new record when only the subquery said how old).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_purge_keeps_a_record_renewed_while_it_waited() {
    use uj_domain::idempotency::KEY_LIFETIME;
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(uj_storage::PgStore::connect(&db.url).await.unwrap());
    let (_, shop) = owner_with_project(&store, "ada@example.com").await;
    let now = uj_now();
    let old = now - KEY_LIFETIME - Duration::hours(1);
    let first = new_study(&shop, "purge00001", old);
    let stale = answer_record(&shop, "k-1", "fp-a", first.id.as_str(), old);
    assert!(store.create_study(&first, Some(&stale)).await.unwrap());

    // A create with the key renews its record, then waits (for a study code another
    // transaction is inserting) with the renewed row uncommitted.
    let pg = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut holder = pg.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO studies (id, project_id, name, status, interview_url, launch_mode,
            public_code, created_at, updated_at)
         VALUES ('held', $1, 'Held', 'active', 'https://x.example', 'in_app', 'purge00002', now(), now())",
    )
    .bind(shop.as_str())
    .execute(&mut *holder)
    .await
    .unwrap();
    let again = new_study(&shop, "purge00002", now);
    let renewed = answer_record(&shop, "k-1", "fp-b", again.id.as_str(), now);
    let create = {
        let (store, again, renewed) = (store.clone(), again.clone(), renewed.clone());
        tokio::spawn(async move { store.create_study(&again, Some(&renewed)).await })
    };
    until_waiting_for_locks(&db, 1).await;
    // The purge reads the stale version and waits for the create's transaction.
    let purge = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .delete_stale_idempotency_records(now - KEY_LIFETIME)
                .await
        })
    };
    until_waiting_for_locks(&db, 2).await;
    holder.rollback().await.unwrap();
    assert!(create.await.unwrap().unwrap());
    assert_eq!(purge.await.unwrap().unwrap(), 0);
    assert_eq!(
        store.idempotency_record(&shop, "k-1", now).await.unwrap(),
        Some(renewed)
    );
}

/// Two processes flushing new app event names into a nearly full catalog at once keep it
/// within [`uj_storage::MAX_APP_EVENT_NAMES`]: each counted the names committed, neither
/// saw the other's, and both filled the room left (990 names and 10 new in each made
/// 1010).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_flushing_new_names_at_once_keep_the_catalogs_cap() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let first: Arc<dyn Store> = Arc::new(uj_storage::PgStore::connect(&db.url).await.unwrap());
    let second: Arc<dyn Store> = Arc::new(uj_storage::PgStore::connect(&db.url).await.unwrap());
    let (_, shop) = owner_with_project(&first, "ada@example.com").await;
    let now = uj_now();
    let count = |name: &str| uj_storage::AppEventCount {
        project: shop.clone(),
        name: name.into(),
        count: 1,
        first: now,
        last: now,
    };
    let cap = uj_storage::MAX_APP_EVENT_NAMES;
    // The room left is 10; "zzz", sorted last, is one of the names there.
    let mut there: Vec<_> = (0..cap - 11).map(|n| count(&format!("e{n:04}"))).collect();
    there.push(count("zzz"));
    first.record_app_events(&there).await.unwrap();
    // Each flush adds its new names, then waits for "zzz", held here, before committing.
    let pg = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut holder = pg.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM event_catalog WHERE project_id = $1 AND name = 'zzz' FOR UPDATE")
        .bind(shop.as_str())
        .execute(&mut *holder)
        .await
        .unwrap();
    let flushes = [(first, "a"), (second, "b")].map(|(store, process)| {
        let mut batch: Vec<_> = (0..10)
            .map(|n| count(&format!("new-{process}-{n}")))
            .collect();
        batch.push(count("zzz"));
        tokio::spawn(async move { store.record_app_events(&batch).await })
    });
    until_waiting_for_locks(&db, 2).await;
    holder.commit().await.unwrap();
    for flush in flushes {
        flush.await.unwrap().unwrap();
    }
    let named: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM event_catalog WHERE project_id = $1 AND app_first_seen_at IS NOT NULL",
    )
    .bind(shop.as_str())
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(named, cap as i64);
}
