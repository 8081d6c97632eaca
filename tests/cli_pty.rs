//! The shell driven through a pseudo-terminal, as a person would use it, against a server on
//! the real broker: create a stream, insert, a push query with LIMIT, a push query stopped
//! with Ctrl-C, tab completion of a keyword and of a stream's name, a statement over two
//! lines, an error with its position, EXIT.
//!
//! Needs the broker the project starts (`docker/kafka.sh start`).

// Test helpers outside #[test] functions: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, free_port, now_ms};
use rexpect::session::PtySession;

fn shell(port: u16) -> PtySession {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_eddy"));
    command
        .args(["cli", &format!("http://127.0.0.1:{port}")])
        .env("NO_COLOR", "1")
        .env("HOME", std::env::temp_dir());
    rexpect::session::spawn_command(command, Some(60_000)).unwrap()
}

/// Types `line` once the prompt is back (the editor drops what is typed before it), and
/// waits for each of `expected` in the output, then for the next prompt.
fn type_line(p: &mut PtySession, line: &str, expected: &[&str]) {
    p.send_line(line).unwrap();
    for text in expected {
        p.exp_string(text).unwrap();
    }
    p.exp_string("eddy> ").unwrap();
}

#[test]
fn a_person_uses_the_shell() {
    let run = now_ms();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("eddy-cli-pty-{run}.log"));
    let server = Server::start_rest(&format!("cli{run}_"), port, &log);
    let stream = format!("CLICKS_{run}");
    let mut p = shell(port);
    p.exp_string("service id").unwrap();
    p.exp_string("eddy> ").unwrap();
    let create = format!(
        "CREATE STREAM {stream} (user VARCHAR KEY, n INT) WITH (kafka_topic='{stream}', value_format='JSON', partitions=1);"
    );
    type_line(&mut p, &create, &["Stream created"]);
    let insert = format!("INSERT INTO {stream} (user, n) VALUES ('ann', 7);");
    type_line(&mut p, &insert, &["VALUES ('ann', 7);"]);
    let set = "SET 'auto.offset.reset' = 'earliest';";
    type_line(&mut p, set, &["Successfully changed local property"]);

    // A push query with LIMIT: a header, the row, the end.
    let limited = format!("SELECT user, n FROM {stream} EMIT CHANGES LIMIT 1;");
    p.send_line(&limited).unwrap();
    p.exp_string("| USER").unwrap();
    p.exp_regex(r"\| ann +\| 7 ").unwrap();
    p.exp_string("Limit Reached").unwrap();
    p.exp_string("eddy> ").unwrap();

    // A push query without end, stopped by Ctrl-C.
    p.send_line(&format!("SELECT * FROM {stream} EMIT CHANGES;"))
        .unwrap();
    p.exp_regex(r"\| ann +\| 7 ").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("Query terminated").unwrap();
    p.exp_string("eddy> ").unwrap();

    // Completion of a keyword and of the stream's name (in the case typed).
    p.send("SHOW QUER").unwrap();
    p.send("\t").unwrap();
    type_line(&mut p, ";", &["Query ID"]);
    p.send(&format!("DESCRIBE {}", &stream[..9])).unwrap();
    p.send("\t").unwrap();
    type_line(&mut p, ";", &["STRING (key)"]);

    // Two lines make one statement; an error shows where it is.
    p.send_line("SHOW").unwrap();
    p.exp_string("    > ").unwrap();
    type_line(&mut p, "TABLES;", &["Windowed"]);
    type_line(&mut p, "SELEC 1;", &["Error: line 1:1", "^"]);

    p.send_line("EXIT").unwrap();
    p.exp_eof().unwrap();
    assert!(server.stop().success());
}
