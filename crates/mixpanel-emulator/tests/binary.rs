//! `mixpanel-emulator --scenario FILE --bind ADDR` as the demo runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn the_binary_serves_a_scenario_file_and_prints_the_base_urls() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/example.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mixpanel-emulator"))
        .args(["--scenario", scenario, "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .strip_prefix("Mixpanel emulator on ")
        .unwrap()
        .to_owned();
    let printed: Vec<String> = lines.take(7).map(Result::unwrap).collect();
    assert!(
        printed.contains(&format!("  UJ_MIXPANEL_EU_API={base}/eu")),
        "{printed:?}"
    );
    assert!(
        printed.contains(&format!("  UJ_MIXPANEL_EU_DATA={base}/data-eu")),
        "{printed:?}"
    );

    let me = reqwest::Client::new()
        .get(format!("{base}/eu/api/app/me"))
        .basic_auth(
            "acme-connector.3fa2c1.mp-service-account",
            Some("demo-secret-eu"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);
    let body: serde_json::Value = me.json().await.unwrap();
    assert_eq!(body["results"]["projects"].as_object().unwrap().len(), 3);
    let overview: serde_json::Value = reqwest::get(format!("{base}/_emulator"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        overview["destinations"][0]["basic_auth"]["password"], "********",
        "secrets are never shown"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_bad_scenario_file_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("mpe-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.json");
    std::fs::write(&path, r#"{"projects": [{"id": "not a number"}]}"#).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mixpanel-emulator"))
        .args([
            "--scenario",
            path.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a valid JSON scenario"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
