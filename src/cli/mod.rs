//! `eddy cli`: the interactive SQL shell, a client of the server's REST API.
//!
//! Reads statements with rustyline (history in `~/.eddy_history`, Emacs or Vi keys, tab
//! completion and highlighting from [`helper`]); a statement ends at `;` and may span lines
//! (the `     > ` prompt continues it). Shell commands: `EXIT`/`QUIT` (or Ctrl-D), `SET
//! 'prop'='value'` / `UNSET 'prop'` (kept for the session and sent with every request, as
//! ksqlDB's CLI does), `OUTPUT JSON|TABULAR`, `RUN SCRIPT 'file.sql'`. `SELECT` and `PRINT`
//! go to `/query` and stream as table rows (tombstones marked) until the limit, the end, or
//! Ctrl-C, which closes the query on the server and returns to the prompt; everything else
//! goes to `/ksql` and is shown as tables ([`render`]). An unreachable server or a bad
//! statement gives a message and the prompt back. `--execute` and `--file` run statements
//! without a prompt and exit non-zero if one failed. Layout: [`client`] (HTTP), [`render`]
//! (output), [`helper`] (line editing).

pub mod client;
pub mod helper;
pub mod render;

use std::io::Write;

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Config, EditMode, Editor};
use serde_json::{Map, Value, json};

use client::{CliError, Client, QueryEvent};
use helper::ShellHelper;
use render::OutputFormat;

/// How the shell was started.
#[derive(Debug, Clone)]
pub struct CliOptions {
    /// The server's URL.
    pub url: String,
    /// Run these statements and exit.
    pub execute: Option<String>,
    /// Run this file's statements and exit.
    pub file: Option<std::path::PathBuf>,
    /// Vi key bindings instead of Emacs'.
    pub vi: bool,
    /// Output format.
    pub output: OutputFormat,
    /// User and password for a server with Basic authentication.
    pub credentials: Option<(String, String)>,
}

/// The shell's session.
struct Shell {
    client: Client,
    properties: Map<String, Value>,
    output: OutputFormat,
    helper: ShellHelper,
    out: Box<dyn Write>,
    /// At a prompt: the names offered by completion are kept up to date.
    interactive: bool,
}

/// Runs the shell; returns whether every statement succeeded.
pub async fn run(options: CliOptions) -> bool {
    let mut shell = Shell {
        client: Client::with_credentials(
            &options.url,
            (options.credentials.as_ref()).map(|(u, p)| (u.as_str(), p.as_str())),
        ),
        properties: Map::new(),
        output: options.output,
        helper: ShellHelper {
            colour: std::io::IsTerminal::is_terminal(&std::io::stdout())
                && std::env::var_os("NO_COLOR").is_none(),
            ..ShellHelper::default()
        },
        out: Box::new(std::io::stdout()),
        interactive: false,
    };
    if let Some(sql) = &options.execute {
        return shell.run_script(sql).await;
    }
    if let Some(file) = &options.file {
        return match std::fs::read_to_string(file) {
            Ok(sql) => shell.run_script(&sql).await,
            Err(e) => {
                shell.print(&format!("Error: {}: {e}\n", file.display()));
                false
            }
        };
    }
    shell.interactive = true;
    shell.banner().await;
    shell.refresh_names().await;
    shell.interactive(options.vi).await;
    true
}

/// Splits `text` at `;` outside quotes: complete statements (with their `;`) and the rest.
pub fn split_statements(text: &str) -> (Vec<String>, String) {
    let mut statements = Vec::new();
    let (mut current, mut quote) = (String::new(), None::<char>);
    for c in text.chars() {
        current.push(c);
        match (quote, c) {
            (None, '\'' | '"' | '`') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => statements.push(std::mem::take(&mut current).trim().to_string()),
            _ => {}
        }
    }
    (statements, current)
}

impl Shell {
    fn print(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    async fn banner(&mut self) {
        let text = match self.client.info().await {
            Ok(info) => {
                let i = &info["KsqlServerInfo"];
                format!(
                    "Eddy CLI {}, server {} (version {}, service id {}, {})\nType EXIT or press Ctrl-D to leave; statements end with ';'.\n\n",
                    env!("CARGO_PKG_VERSION"),
                    self.client.url,
                    i["version"].as_str().unwrap_or("?"),
                    i["ksqlServiceId"].as_str().unwrap_or("?"),
                    i["serverStatus"].as_str().unwrap_or("?"),
                )
            }
            Err(e) => format!(
                "Eddy CLI {}\nWarning: {e}\nStatements will fail until the server is up.\n\n",
                env!("CARGO_PKG_VERSION")
            ),
        };
        self.print(&text);
    }

    /// Asks the server for its streams, tables and columns, for completion.
    async fn refresh_names(&mut self) {
        let Ok(entities) = self
            .client
            .ksql("SHOW STREAMS; SHOW TABLES;", &self.properties)
            .await
        else {
            return;
        };
        let mut names = helper::Names::default();
        for entity in &entities {
            for key in ["streams", "tables"] {
                for source in entity[key].as_array().into_iter().flatten() {
                    if let Some(name) = source["name"].as_str() {
                        names.sources.push(name.to_string());
                    }
                }
            }
        }
        if !names.sources.is_empty() {
            let describe: String = names
                .sources
                .iter()
                .map(|s| format!("DESCRIBE `{s}`; "))
                .collect();
            if let Ok(descriptions) = self.client.ksql(&describe, &self.properties).await {
                for d in &descriptions {
                    for field in d["sourceDescription"]["fields"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        if let Some(name) = field["name"].as_str() {
                            names.columns.push(name.to_string());
                        }
                    }
                }
            }
        }
        if let Ok(mut shared) = self.helper.names.lock() {
            *shared = names;
        }
    }

    async fn interactive(&mut self, vi: bool) {
        let config = Config::builder()
            .edit_mode(if vi { EditMode::Vi } else { EditMode::Emacs })
            .auto_add_history(false)
            .completion_type(rustyline::CompletionType::List)
            .build();
        let Ok(mut editor) = Editor::<ShellHelper, DefaultHistory>::with_config(config) else {
            self.print("Error: cannot open the terminal\n");
            return;
        };
        editor.set_helper(Some(self.helper.clone()));
        let history =
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".eddy_history"));
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        let mut pending = String::new();
        loop {
            let prompt = if pending.trim().is_empty() {
                "eddy> "
            } else {
                "    > "
            };
            match editor.readline(prompt) {
                Ok(line) => {
                    pending.push_str(&line);
                    pending.push('\n');
                    if is_exit(&pending) {
                        break;
                    }
                    let (statements, rest) = split_statements(&pending);
                    if !statements.is_empty() {
                        let _ = editor.add_history_entry(pending.trim());
                    }
                    pending = rest;
                    for statement in statements {
                        self.statement(&statement).await;
                    }
                }
                Err(ReadlineError::Interrupted) => pending.clear(),
                Err(_) => break,
            }
        }
        if let Some(path) = &history {
            let _ = editor.save_history(path);
        }
    }

    /// Runs a script's statements in order; false if one failed.
    async fn run_script(&mut self, sql: &str) -> bool {
        let (statements, rest) = split_statements(sql);
        let mut ok = true;
        for statement in statements
            .iter()
            .map(String::as_str)
            .chain(Some(rest.trim()).filter(|r| !r.is_empty()))
        {
            ok &= Box::pin(self.statement(statement)).await;
        }
        ok
    }

    /// Runs one statement; false if it failed.
    async fn statement(&mut self, statement: &str) -> bool {
        let words: Vec<String> = statement
            .trim_end_matches(';')
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        match words.first().map(String::as_str) {
            None => true,
            Some("SET") | Some("UNSET") => self.set(statement, words[0] == "SET"),
            Some("OUTPUT") => {
                self.output = match words.get(1).map(String::as_str) {
                    Some("JSON") => OutputFormat::Json,
                    _ => OutputFormat::Tabular,
                };
                true
            }
            Some("RUN") if words.get(1).map(String::as_str) == Some("SCRIPT") => {
                let path = statement.split('\'').nth(1).unwrap_or_default().to_string();
                match std::fs::read_to_string(&path) {
                    Ok(sql) => Box::pin(self.run_script(&sql)).await,
                    Err(e) => {
                        self.print(&format!("Error: {path}: {e}\n"));
                        false
                    }
                }
            }
            Some("SELECT") | Some("PRINT") => self.query(statement).await,
            _ => self.ksql(statement).await,
        }
    }

    /// `SET 'name' = 'value'` / `UNSET 'name'`: session properties.
    fn set(&mut self, statement: &str, set: bool) -> bool {
        let quoted: Vec<&str> = statement.split('\'').skip(1).step_by(2).collect();
        match (set, quoted.as_slice()) {
            (true, [name, value, ..]) => {
                self.properties.insert(name.to_string(), json!(value));
                self.print(&format!(
                    "Successfully changed local property '{name}' to '{value}'.\n"
                ));
                true
            }
            (false, [name, ..]) => {
                self.properties.remove(*name);
                self.print(&format!("Successfully unset local property '{name}'.\n"));
                true
            }
            _ => {
                self.print("Error: use SET 'property' = 'value'; or UNSET 'property';\n");
                false
            }
        }
    }

    async fn ksql(&mut self, statement: &str) -> bool {
        match self.client.ksql(statement, &self.properties).await {
            Ok(entities) => {
                let text: String = match self.output {
                    OutputFormat::Json => format!(
                        "{}\n",
                        serde_json::to_string_pretty(&entities).unwrap_or_default()
                    ),
                    OutputFormat::Tabular => entities.iter().map(render::entity).collect(),
                };
                self.print(&text);
                if self.interactive {
                    self.refresh_names().await;
                }
                true
            }
            Err(e) => {
                self.error(&e, statement);
                false
            }
        }
    }

    fn error(&mut self, error: &CliError, statement: &str) {
        let text = match error {
            CliError::Server { message, .. } => render::error(message, Some(statement)),
            other => format!("Error: {other}\n"),
        };
        self.print(&text);
    }

    /// A push or pull query (or PRINT): rows as they come, until the end or Ctrl-C.
    async fn query(&mut self, statement: &str) -> bool {
        let client = self.client.clone();
        let properties = self.properties.clone();
        let output = self.output;
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<QueryEvent>();
        let sql = statement.to_string();
        let request = tokio::spawn(async move {
            client
                .query(&sql, &properties, &mut |event| sender.send(event).is_ok())
                .await
        });
        let mut widths = Vec::new();
        let mut query_id = None;
        let mut rows = 0usize;
        loop {
            tokio::select! {
                event = receiver.recv() => {
                    let Some(event) = event else { break };
                    if let QueryEvent::Header { query_id: id, .. } = &event {
                        query_id = Some(id.clone());
                    }
                    rows += usize::from(matches!(event, QueryEvent::Row { .. }));
                    let text = show_event(&event, &mut widths, output);
                    self.print(&text);
                }
                _ = tokio::signal::ctrl_c() => {
                    request.abort();
                    if let Some(id) = &query_id {
                        let _ = self.client.close(id).await;
                    }
                    self.print(&format!("{}\nQuery terminated ({rows} rows).\n", render::border(&widths)));
                    return true;
                }
            }
        }
        match request.await {
            Ok(Ok(())) => {
                if !widths.is_empty() {
                    self.print(&format!("{}\n", render::border(&widths)));
                }
                true
            }
            Ok(Err(e)) => {
                self.error(&e, statement);
                false
            }
            Err(_) => false,
        }
    }
}

fn is_exit(pending: &str) -> bool {
    let word = pending.trim().trim_end_matches(';').to_ascii_uppercase();
    word == "EXIT" || word == "QUIT"
}

/// One streamed element as text: the header (which fixes the column widths), a row, the
/// final message or a PRINT line.
fn show_event(event: &QueryEvent, widths: &mut Vec<usize>, output: OutputFormat) -> String {
    match (event, output) {
        (QueryEvent::Header { columns, .. }, OutputFormat::Tabular) => {
            let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
            *widths = render::stream_widths(&names);
            let rule = render::border(widths);
            format!("{rule}\n{}\n{rule}\n", render::line(&names, widths))
        }
        (QueryEvent::Row { values, tombstone }, OutputFormat::Tabular) => {
            let mut cells: Vec<String> = values.iter().map(render::cell).collect();
            if *tombstone {
                cells.push("<TOMBSTONE>".into());
            }
            format!("{}\n", render::line(&cells, widths))
        }
        (QueryEvent::Header { columns, query_id }, OutputFormat::Json) => {
            format!("{}\n", json!({"queryId": query_id, "columns": columns}))
        }
        (QueryEvent::Row { values, tombstone }, OutputFormat::Json) => {
            format!("{}\n", json!({"row": values, "tombstone": tombstone}))
        }
        (QueryEvent::Final(message), _) => {
            let rule = if widths.is_empty() {
                String::new()
            } else {
                format!("{}\n", render::border(widths))
            };
            widths.clear();
            format!("{rule}{message}\n")
        }
        (QueryEvent::Line(line), _) => format!("{line}\n"),
        (QueryEvent::Error(message), _) => render::error(message, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_end_at_semicolons_outside_quotes() {
        let (done, rest) = split_statements("SELECT 'a;b' FROM t; SHOW\nSTREAMS; SELECT");
        assert_eq!(done, vec!["SELECT 'a;b' FROM t;", "SHOW\nSTREAMS;"]);
        assert_eq!(rest, " SELECT");
    }
}
