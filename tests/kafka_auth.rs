//! HTTP Basic authentication as a user sets it up: a users file in ksqlDB's format, the
//! properties naming it; requests without credentials, with a wrong password or a user
//! without an allowed role are refused with ksqlDB's error body (401 with a
//! `WWW-Authenticate` challenge, 403), the right ones work, skipped paths need none, the
//! embedded Schema Registry asks for the same credentials, and `eddy cli -u -p` connects.
//!
//! Needs the broker the project starts (`docker/kafka.sh start`).

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, free_port, now_ms};
use serde_json::{Value, json};

async fn post(port: u16, credentials: Option<(&str, &str)>) -> (u16, Option<String>, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/ksql"))
        .json(&json!({"ksql": "SHOW STREAMS;"}));
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge =
        (response.headers().get("www-authenticate")).map(|v| v.to_str().unwrap().to_string());
    (status, challenge, response.json().await.unwrap())
}

fn cli(port: u16, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args([
            "cli",
            &format!("http://127.0.0.1:{port}"),
            "-e",
            "SHOW STREAMS;",
        ])
        .args(args)
        .env_remove("EDDY_PASSWORD")
        .output()
        .unwrap()
}

/// The REST API's answers to each kind of credentials.
async fn check_rest(port: u16) {
    let (status, challenge, body) = post(port, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_code"], 40100, "{body}");
    assert_eq!(
        challenge.as_deref(),
        Some("Basic realm=\"KsqlServer-Props\"")
    );
    assert_eq!(post(port, Some(("fred", "wrong"))).await.0, 401);
    let (status, _, body) = post(port, Some(("wilma", "pebbles"))).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (403, json!(40300)),
        "{body}"
    );
    for user in ["fred", "barney"] {
        let (status, _, body) = post(port, Some((user, "letmein"))).await;
        assert_eq!(status, 200, "{user}: {body}");
        assert_eq!(body[0]["@type"], "streams", "{body}");
    }
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthcheck"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_authentication_guards_every_endpoint() {
    let run = now_ms();
    let dir = std::env::temp_dir().join(format!("eddy-auth-{run}"));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.properties");
    // fred's password in plain text, barney's as Jetty's MD5 of "letmein".
    std::fs::write(
        &users,
        "fred: letmein,admin\nbarney: MD5:0d107d09f5bbe40cade3de5c71e9e9b7,user\nwilma: pebbles,guest\n",
    )
    .unwrap();
    let (port, registry) = (free_port(), free_port());
    let file = format!("authentication.basic.users.file={}", users.display());
    let listener = format!("schema.registry.listeners=http://127.0.0.1:{registry}");
    let args = [
        "-p",
        "authentication.method=BASIC",
        "-p",
        &file,
        "-p",
        "authentication.roles=admin,user",
        "-p",
        "authentication.skip.paths=/healthcheck",
        "-p",
        &listener,
    ];
    let server = Server::start_rest_with(&format!("auth{run}_"), port, &dir.join("log"), &args);

    check_rest(port).await;

    let subjects = format!("http://127.0.0.1:{registry}/subjects");
    assert_eq!(
        reqwest::get(&subjects).await.unwrap().status().as_u16(),
        401
    );
    let with = reqwest::Client::new()
        .get(&subjects)
        .basic_auth("fred", Some("letmein"));
    assert_eq!(with.send().await.unwrap().status().as_u16(), 200);

    let refused = tokio::task::spawn_blocking(move || cli(port, &[]))
        .await
        .unwrap();
    assert!(!refused.status.success());
    let out = tokio::task::spawn_blocking(move || cli(port, &["-u", "fred", "-p", "letmein"]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Kafka Topic"));
    server.stop();
}
