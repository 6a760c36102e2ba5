//! The cohort-sync sender against a real webhook receiver on 127.0.0.1 that records every
//! request and answers with scripted statuses.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use mixpanel_emulator::scenario::{BasicAuth, Destination, Member, SenderSettings};
use mixpanel_emulator::sender::{CohortSnapshot, RunOutcome, Sender, SenderError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const DESTINATION: &str = "acme-webhook";

#[tokio::test]
async fn first_run_sends_the_whole_cohort_as_members_pages_sharing_one_session() {
    let (receiver, sender) = start(settings(3)).await;

    let outcome = run(&sender, &["u1", "u2", "u3", "u4", "u5", "u6", "u7"]).await;

    assert_eq!(outcome, synced(true, 3, 7, 0));
    let requests = receiver.take_requests();
    assert_eq!(
        pages(&requests),
        [
            page("members", 1, 3, &["u1", "u2", "u3"]),
            page("members", 2, 3, &["u4", "u5", "u6"]),
            page("members", 3, 3, &["u7"]),
        ]
    );
    assert_one_session(&requests);
    let parameters = &requests[0].body["parameters"];
    assert_eq!(parameters["mixpanel_project_id"], json!("2301456"));
    assert_eq!(parameters["mixpanel_cohort_id"], json!("51234"));
    assert_eq!(parameters["mixpanel_cohort_name"], json!("Trial users"));
    assert_eq!(
        parameters["mixpanel_cohort_description"],
        json!("Day 3, no purchase")
    );
    assert_eq!(
        requests[0].content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(requests[0].authorization, None);
    let state = sender.state(DESTINATION).unwrap();
    assert_eq!(state.snapshot_members, Some(7));
    assert!(state.last_success_at.is_some());
    assert_eq!((state.runs, state.last_outcome), (1, Some(outcome)));
}

#[tokio::test]
async fn empty_cohort_is_sent_as_one_empty_members_page() {
    let (receiver, sender) = start(settings(3)).await;

    assert_eq!(run(&sender, &[]).await, synced(true, 1, 0, 0));

    assert_eq!(
        pages(&receiver.take_requests()),
        [page("members", 1, 1, &[])]
    );
    assert_eq!(sender.state(DESTINATION).unwrap().snapshot_members, Some(0));
}

#[tokio::test]
async fn changed_membership_is_sent_as_add_batches_then_remove_batches() {
    let (receiver, sender) = start(settings(2)).await;
    let mut before = cohort(&["u1", "u2", "u3", "u4", "u5"]);
    before.members[1] = Arc::new(
        Member::new("u2")
            .with("$first_name", "Li")
            .with("plan", "trial"),
    );
    sender.run(DESTINATION, before).await.unwrap();
    let first_session = session_id(&receiver.take_requests()[0]);

    let outcome = run(&sender, &["u1", "u3", "u6", "u7", "u8"]).await;

    assert_eq!(outcome, synced(false, 4, 3, 3));
    let requests = receiver.take_requests();
    assert_eq!(
        pages(&requests),
        [
            page("add_members", 1, 2, &["u6", "u7"]),
            page("add_members", 2, 2, &["u8"]),
            page("remove_members", 1, 2, &["u2", "u4"]),
            page("remove_members", 2, 2, &["u5"]),
        ]
    );
    assert_one_session(&requests);
    assert_ne!(session_id(&requests[0]), first_session);
    let removed_u2 = &requests[2].body["parameters"]["members"][0];
    assert_eq!(
        removed_u2["first_name"],
        json!("Li"),
        "last known properties"
    );
    assert_eq!(removed_u2["plan"], json!("trial"));
    assert_eq!(sender.state(DESTINATION).unwrap().snapshot_members, Some(5));
}

#[tokio::test]
async fn unchanged_membership_sends_one_empty_add_and_one_empty_remove() {
    let (receiver, sender) = start(settings(2)).await;
    run(&sender, &["u1", "u2", "u3"]).await;
    receiver.take_requests();

    assert_eq!(
        run(&sender, &["u1", "u2", "u3"]).await,
        synced(false, 2, 0, 0)
    );

    let requests = receiver.take_requests();
    assert_eq!(
        pages(&requests),
        [
            page("add_members", 1, 1, &[]),
            page("remove_members", 1, 1, &[])
        ]
    );
    assert_one_session(&requests);
}

#[tokio::test]
async fn rate_limited_request_is_retried_and_the_run_succeeds() {
    let (receiver, sender) = start(settings(10)).await;
    receiver.reply(429, "slow down");

    assert_eq!(run(&sender, &["u1"]).await, synced(true, 1, 1, 0));

    let requests = receiver.take_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].body, requests[1].body,
        "the same page is resent"
    );
    let attempts: Vec<_> = sender
        .deliveries(DESTINATION)
        .into_iter()
        .map(|d| (d.attempt, d.status, d.error))
        .collect();
    assert_eq!(
        attempts,
        [
            (0, Some(429), Some("slow down".into())),
            (1, Some(200), None)
        ]
    );
}

#[tokio::test]
async fn server_errors_beyond_the_retries_give_up_and_the_next_run_repeats_the_same_diff() {
    let (receiver, sender) = start(settings(10)).await;
    run(&sender, &["u1", "u2"]).await;
    receiver.take_requests();
    let synced_at = sender.state(DESTINATION).unwrap().last_success_at;
    receiver.reply_times(
        3,
        503,
        r#"{"status":"failure","error":{"message":"db down","code":503}}"#,
    );

    let outcome = run(&sender, &["u2", "u3"]).await;

    let gave_up = RunOutcome::GaveUp {
        status: Some(503),
        error: "db down".into(),
    };
    assert_eq!(outcome, gave_up);
    assert_eq!(
        pages(&receiver.take_requests()),
        vec![page("add_members", 1, 1, &["u3"]); 3],
        "first try and two retries; the remove batch is never sent"
    );
    let attempts: Vec<_> = sender.deliveries(DESTINATION)[1..]
        .iter()
        .map(|d| d.attempt)
        .collect();
    assert_eq!(attempts, [0, 1, 2]);
    let state = sender.state(DESTINATION).unwrap();
    assert_eq!(
        (state.snapshot_members, state.last_success_at),
        (Some(2), synced_at)
    );
    assert_eq!(state.paused, None);

    assert_eq!(run(&sender, &["u2", "u3"]).await, synced(false, 2, 1, 1));
    assert_eq!(
        pages(&receiver.take_requests()),
        [
            page("add_members", 1, 1, &["u3"]),
            page("remove_members", 1, 1, &["u1"])
        ]
    );
}

#[tokio::test]
async fn a_first_sync_failing_midway_is_retried_from_the_top_as_a_full_sync() {
    let (receiver, sender) = start(settings(2)).await;
    receiver.reply(200, "ok");
    receiver.reply_times(3, 500, "");
    let members = ["u1", "u2", "u3", "u4", "u5"];

    let outcome = run(&sender, &members).await;

    let error = "500 Internal Server Error".to_owned();
    assert_eq!(
        outcome,
        RunOutcome::GaveUp {
            status: Some(500),
            error
        }
    );
    let failed = receiver.take_requests();
    assert_eq!(
        failed.len(),
        4,
        "page 1 once, page 2 three times, page 3 never"
    );
    assert_eq!(sender.state(DESTINATION).unwrap().snapshot_members, None);

    assert_eq!(run(&sender, &members).await, synced(true, 3, 5, 0));
    let retried = receiver.take_requests();
    assert_eq!(pages(&retried)[0], page("members", 1, 3, &["u1", "u2"]));
    assert_ne!(session_id(&retried[0]), session_id(&failed[0]));
}

#[tokio::test]
async fn rejected_credentials_pause_the_sync_until_it_is_resumed() {
    let (receiver, sender) = start(settings(2)).await;
    receiver.reply(
        401,
        r#"{"action":"members","status":"failure","error":{"message":"Bad creds","code":401}}"#,
    );
    let members = ["u1", "u2", "u3"];

    let outcome = run(&sender, &members).await;

    assert_eq!(
        outcome,
        RunOutcome::Paused {
            status: 401,
            message: "Bad creds".into()
        }
    );
    assert_eq!(receiver.take_requests().len(), 1, "no retry, no later page");
    let pause = sender.state(DESTINATION).unwrap().paused.unwrap();
    assert_eq!((pause.status, pause.message.as_str()), (401, "Bad creds"));

    assert_eq!(run(&sender, &members).await, RunOutcome::SkippedPaused);
    assert!(receiver.take_requests().is_empty());

    assert!(sender.resume(DESTINATION));
    assert_eq!(run(&sender, &members).await, synced(true, 2, 3, 0));
    let state = sender.state(DESTINATION).unwrap();
    assert_eq!((state.paused, state.runs), (None, 3));
    assert!(!sender.resume("unknown"));
}

#[tokio::test]
async fn other_client_errors_pause_with_the_body_text_as_message() {
    let (receiver, sender) = start(settings(2)).await;
    receiver.reply(422, "members must not be empty");

    let outcome = run(&sender, &[]).await;

    let message = "members must not be empty".to_owned();
    assert_eq!(
        outcome,
        RunOutcome::Paused {
            status: 422,
            message
        }
    );
    assert_eq!(receiver.take_requests().len(), 1);
}

#[tokio::test]
async fn long_error_bodies_are_cut_to_500_characters() {
    let (receiver, sender) = start(settings(2)).await;
    receiver.reply(400, &"é".repeat(600));

    run(&sender, &["u1"]).await;

    let pause = sender.state(DESTINATION).unwrap().paused.unwrap();
    assert_eq!(pause.message, "é".repeat(500));
}

#[tokio::test]
async fn basic_auth_credentials_are_sent_and_kept_out_of_debug_output() {
    let (receiver, sender) = start(settings(2)).await;
    let mut destination = destination(&receiver.url);
    destination.basic_auth = Some(BasicAuth {
        username: "mixpanel".into(),
        password: "s3cret:pw".into(),
    });
    sender.add_destination(destination);

    run(&sender, &["u1"]).await;

    let expected = base64::engine::general_purpose::STANDARD.encode("mixpanel:s3cret:pw");
    let requests = receiver.take_requests();
    assert_eq!(requests[0].authorization, Some(format!("Basic {expected}")));
    let debug = format!("{sender:?} {:?}", sender.state(DESTINATION));
    assert!(!debug.contains("s3cret"), "{debug}");
}

#[tokio::test]
async fn ids_are_sent_as_json_numbers_when_configured() {
    let (receiver, sender) = start(SenderSettings {
        ids_as_numbers: true,
        ..settings(2)
    })
    .await;

    run(&sender, &["u1"]).await;

    let parameters = &receiver.take_requests()[0].body["parameters"];
    assert_eq!(parameters["mixpanel_project_id"], json!(2301456));
    assert_eq!(parameters["mixpanel_cohort_id"], json!(51234));
    assert_eq!(
        parameters["members"][0]["mixpanel_distinct_id"],
        json!("u1")
    );
}

#[tokio::test]
async fn expired_snapshot_forces_a_full_sync() {
    let (receiver, sender) = start(settings(2)).await;
    assert!(!sender.expire_snapshot(DESTINATION), "no snapshot yet");
    run(&sender, &["u1", "u2"]).await;
    receiver.take_requests();

    assert!(sender.expire_snapshot(DESTINATION));
    assert_eq!(run(&sender, &["u2", "u3"]).await, synced(true, 1, 2, 0));

    assert_eq!(
        pages(&receiver.take_requests()),
        [page("members", 1, 1, &["u2", "u3"])]
    );
    assert_eq!(run(&sender, &["u2", "u3"]).await, synced(false, 2, 0, 0));
}

#[tokio::test]
async fn snapshot_older_than_the_ttl_forces_a_full_sync() {
    let (receiver, sender) = start(SenderSettings {
        snapshot_ttl_hours: 0,
        ..settings(2)
    })
    .await;
    run(&sender, &["u1"]).await;

    assert_eq!(run(&sender, &["u1"]).await, synced(true, 1, 1, 0));
    assert_eq!(pages(&receiver.take_requests())[1].action, "members");
}

#[tokio::test]
async fn members_carry_the_standard_fields_and_custom_properties() {
    let (receiver, sender) = start(settings(10)).await;
    let full = Member::new("u_123")
        .with("$email", "ana@example.com")
        .with("$first_name", "Ana")
        .with("$last_name", "Lopez")
        .with("$phone", "+34600000001")
        .with("$city", "Madrid")
        .with("reference_id", "ref_9")
        .with("plan", "trial");
    let bare = Member::new("u_456");
    let cohort = CohortSnapshot {
        members: vec![Arc::new(full), Arc::new(bare)],
        ..cohort(&[])
    };

    sender.run(DESTINATION, cohort).await.unwrap();

    let members = &receiver.take_requests()[0].body["parameters"]["members"];
    let expected = json!([
        { "mixpanel_distinct_id": "u_123", "email": "ana@example.com", "first_name": "Ana",
          "last_name": "Lopez", "phone_number": "+34600000001", "reference_id": "ref_9",
          "plan": "trial" },
        { "mixpanel_distinct_id": "u_456", "email": null, "first_name": null, "last_name": null },
    ]);
    assert_eq!(members, &expected);
}

#[tokio::test]
async fn a_distinct_id_listed_twice_is_sent_and_remembered_once() {
    let (receiver, sender) = start(settings(10)).await;

    assert_eq!(
        run(&sender, &["u1", "u2", "u1"]).await,
        synced(true, 1, 2, 0)
    );

    assert_eq!(
        pages(&receiver.take_requests()),
        [page("members", 1, 1, &["u1", "u2"])]
    );
    assert_eq!(sender.state(DESTINATION).unwrap().snapshot_members, Some(2));
}

#[tokio::test]
async fn running_an_unknown_destination_is_an_error() {
    let sender = Sender::new(settings(2));

    let result = sender.run("nope", cohort(&[])).await;

    assert!(matches!(result, Err(SenderError::UnknownDestination(id)) if id == "nope"));
    assert!(sender.state("nope").is_none() && sender.deliveries("nope").is_empty());
}

#[tokio::test]
async fn concurrent_runs_of_one_destination_wait_for_each_other() {
    let (receiver, sender) = start(settings(2)).await;

    let (first, second) = tokio::join!(
        sender.run(DESTINATION, cohort(&["u1", "u2", "u3"])),
        sender.run(DESTINATION, cohort(&["u1", "u2", "u3"])),
    );

    assert_eq!(first.unwrap(), synced(true, 2, 3, 0));
    assert_eq!(
        second.unwrap(),
        synced(false, 2, 0, 0),
        "diffed against the first run"
    );
    let actions: Vec<String> = pages(&receiver.take_requests())
        .into_iter()
        .map(|p| p.action)
        .collect();
    assert_eq!(
        actions,
        ["members", "members", "add_members", "remove_members"]
    );
}

#[tokio::test]
async fn unreachable_receiver_gives_up_without_a_status() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook?token=hunter2", closed.local_addr().unwrap());
    drop(closed);
    let sender = Sender::new(SenderSettings {
        retries: 1,
        ..settings(2)
    });
    sender.add_destination(destination(&url));

    let outcome = run(&sender, &["u1"]).await;

    let RunOutcome::GaveUp {
        status: None,
        error,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(!error.is_empty() && !error.contains("hunter2"), "{error}");
    let statuses: Vec<_> = sender
        .deliveries(DESTINATION)
        .iter()
        .map(|d| d.status)
        .collect();
    assert_eq!(statuses, [None, None]);
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_is_retried() {
    let (receiver, sender) = start(SenderSettings {
        request_timeout_ms: 100,
        ..settings(2)
    })
    .await;
    receiver.hang_once();

    assert_eq!(run(&sender, &["u1"]).await, synced(true, 1, 1, 0));

    let first = &sender.deliveries(DESTINATION)[0];
    assert_eq!(
        (first.status, first.error.as_deref()),
        (None, Some("timed out after 100 ms"))
    );
}

#[tokio::test]
async fn replacing_a_destination_forgets_its_snapshot_and_log() {
    let (receiver, sender) = start(settings(2)).await;
    run(&sender, &["u1"]).await;

    sender.add_destination(destination(&receiver.url));

    let state = sender.state(DESTINATION).unwrap();
    assert_eq!((state.snapshot_members, state.runs), (None, 0));
    assert!(sender.deliveries(DESTINATION).is_empty());
    assert_eq!(sender.destinations().len(), 1);
    assert_eq!(sender.destination(DESTINATION).unwrap().url, receiver.url);
    assert_eq!(run(&sender, &["u1"]).await, synced(true, 1, 1, 0));
}

#[tokio::test]
async fn members_pages_hold_every_member_once_in_order_for_any_size() {
    let receiver = Receiver::start().await;
    for page_size in 1..=4 {
        let sender = Sender::new(settings(page_size));
        for size in 0..=9_usize {
            sender.add_destination(destination(&receiver.url));
            let ids: Vec<String> = (1..=size).map(|n| format!("u{n}")).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();

            run(&sender, &ids).await;

            let sent = pages(&receiver.take_requests());
            let total = size.div_ceil(page_size).max(1);
            assert_eq!(sent.len(), total, "size {size}, page size {page_size}");
            for (index, page) in sent.iter().enumerate() {
                assert_eq!((page.page_count, page.total_pages), (index + 1, total));
                assert!(page.ids.len() <= page_size);
            }
            assert_eq!(sent.concat_ids(), ids);
        }
    }
}

#[tokio::test]
async fn diff_batches_turn_the_previous_membership_into_the_current_one() {
    let receiver = Receiver::start().await;
    let mut rng = StdRng::seed_from_u64(51234);
    for _ in 0..25 {
        let page_size = rng.gen_range(1..=4);
        let sender = Sender::new(settings(page_size));
        sender.add_destination(destination(&receiver.url));
        let previous = random_ids(&mut rng);
        let current = random_ids(&mut rng);
        run(
            &sender,
            &previous.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await;
        receiver.take_requests();

        run(
            &sender,
            &current.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await;

        let sent = pages(&receiver.take_requests());
        let (adds, removes): (Vec<Page>, Vec<Page>) =
            sent.into_iter().partition(|p| p.action == "add_members");
        assert!(removes.iter().all(|p| p.action == "remove_members"));
        assert!(adds
            .iter()
            .chain(&removes)
            .all(|p| p.ids.len() <= page_size));
        let mut membership: BTreeSet<String> = previous.into_iter().collect();
        membership.extend(adds.concat_ids());
        for id in removes.concat_ids() {
            assert!(membership.remove(&id), "{id} removed but never a member");
        }
        assert_eq!(membership, current.into_iter().collect());
    }
}

// ---- helpers -------------------------------------------------------------------------------

fn settings(page_size: usize) -> SenderSettings {
    SenderSettings {
        page_size,
        retries: 2,
        backoff_initial_ms: 5,
        request_timeout_ms: 2_000,
        ..SenderSettings::default()
    }
}

fn destination(url: &str) -> Destination {
    Destination {
        id: DESTINATION.into(),
        project_id: 2301456,
        cohort_id: 51234,
        url: url.into(),
        basic_auth: None,
    }
}

fn cohort(ids: &[&str]) -> CohortSnapshot {
    CohortSnapshot {
        project_id: 2301456,
        cohort_id: 51234,
        name: "Trial users".into(),
        description: "Day 3, no purchase".into(),
        members: ids
            .iter()
            .map(|id| Arc::new(Member::new(*id).with("$email", format!("{id}@example.com"))))
            .collect(),
    }
}

fn random_ids(rng: &mut StdRng) -> Vec<String> {
    (1..=12)
        .filter(|_| rng.gen_bool(0.5))
        .map(|n| format!("u{n}"))
        .collect()
}

async fn start(settings: SenderSettings) -> (Receiver, Sender) {
    let receiver = Receiver::start().await;
    let sender = Sender::new(settings);
    sender.add_destination(destination(&receiver.url));
    (receiver, sender)
}

async fn run(sender: &Sender, ids: &[&str]) -> RunOutcome {
    sender.run(DESTINATION, cohort(ids)).await.unwrap()
}

fn synced(full: bool, requests: usize, added: usize, removed: usize) -> RunOutcome {
    RunOutcome::Synced {
        full,
        requests,
        added,
        removed,
    }
}

/// What a test cares about in one request: action, `page_info` and distinct ids.
#[derive(Debug, Clone, PartialEq)]
struct Page {
    action: String,
    page_count: usize,
    total_pages: usize,
    ids: Vec<String>,
}

fn page(action: &str, page_count: usize, total_pages: usize, ids: &[&str]) -> Page {
    Page {
        action: action.into(),
        page_count,
        total_pages,
        ids: ids.iter().map(|id| id.to_string()).collect(),
    }
}

fn pages(requests: &[Received]) -> Vec<Page> {
    requests
        .iter()
        .map(|request| {
            let parameters = &request.body["parameters"];
            let number = |key: &str| parameters["page_info"][key].as_u64().unwrap() as usize;
            Page {
                action: request.body["action"].as_str().unwrap().into(),
                page_count: number("page_count"),
                total_pages: number("total_pages"),
                ids: parameters["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["mixpanel_distinct_id"].as_str().unwrap().into())
                    .collect(),
            }
        })
        .collect()
}

trait ConcatIds {
    fn concat_ids(&self) -> Vec<String>;
}

impl ConcatIds for [Page] {
    fn concat_ids(&self) -> Vec<String> {
        self.iter().flat_map(|p| p.ids.clone()).collect()
    }
}

fn session_id(request: &Received) -> String {
    request.body["parameters"]["mixpanel_session_id"]
        .as_str()
        .unwrap()
        .into()
}

fn assert_one_session(requests: &[Received]) {
    let sessions: BTreeSet<String> = requests.iter().map(session_id).collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert!(!sessions.first().unwrap().is_empty());
}

/// A webhook receiver that records requests and answers with scripted replies, then 200.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

#[derive(Default)]
struct ReceiverState {
    requests: Mutex<Vec<Received>>,
    replies: Mutex<VecDeque<Reply>>,
}

#[derive(Debug, Clone)]
struct Received {
    body: Value,
    authorization: Option<String>,
    content_type: Option<String>,
}

enum Reply {
    Status(u16, String),
    Hang,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let state = Arc::new(ReceiverState::default());
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    fn reply(&self, status: u16, body: &str) {
        self.reply_times(1, status, body);
    }

    fn reply_times(&self, times: usize, status: u16, body: &str) {
        let mut replies = self.state.replies.lock().unwrap();
        replies.extend((0..times).map(|_| Reply::Status(status, body.into())));
    }

    fn hang_once(&self) {
        self.state.replies.lock().unwrap().push_back(Reply::Hang);
    }

    fn take_requests(&self) -> Vec<Received> {
        std::mem::take(&mut *self.state.requests.lock().unwrap())
    }
}

async fn hook(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let action = body["action"].clone();
    state.requests.lock().unwrap().push(Received {
        body,
        authorization: header(AUTHORIZATION),
        content_type: header(CONTENT_TYPE),
    });
    let reply = state.replies.lock().unwrap().pop_front();
    match reply {
        None => Json(json!({ "action": action, "status": "success" })).into_response(),
        Some(Reply::Status(status, body)) => {
            (StatusCode::from_u16(status).unwrap(), body).into_response()
        }
        Some(Reply::Hang) => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK.into_response()
        }
    }
}
