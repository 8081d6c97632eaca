//! `eddy check`: static checks of SQL files, without Kafka.
//!
//! Files (and `.sql` files in folders, in name order) are parsed statement by statement, then
//! their DDL and persistent queries are planned against the catalog the files build, in
//! order, as the server would run them: unknown columns, type errors and statements Eddy
//! cannot run yet are reported with the file, line and column of the statement. Topics are
//! assumed to exist; nothing runs.

use std::path::{Path, PathBuf};

use crate::engine::{Engine, PersistentQuery, Runtime};
use crate::error::Error;
use crate::sql::Statement;
use crate::sql::variables::Variables;

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Files read.
    pub files: Vec<PathBuf>,
    /// Statements that parsed.
    pub statements: usize,
    /// Problems, in file order.
    pub problems: Vec<Problem>,
}

/// A runtime where every topic exists and nothing runs.
#[derive(Debug, Default)]
struct PlanOnly;

impl Runtime for PlanOnly {
    async fn topic_partitions(&self, _topic: &str) -> Result<Option<i32>, Error> {
        Ok(Some(1))
    }
    async fn create_topic(&self, _topic: &str, _partitions: i32) -> Result<(), Error> {
        Ok(())
    }
    async fn start_query(&mut self, _query: PersistentQuery) -> Result<(), Error> {
        Ok(())
    }
    async fn stop_query(&mut self, _id: &str) -> Result<(), Error> {
        Ok(())
    }

    async fn produce(&self, _record: crate::record::Record) -> Result<(), Error> {
        Ok(())
    }

    async fn tail(
        &self,
        _topic: &str,
        _from_beginning: bool,
    ) -> Result<tokio::sync::mpsc::Receiver<crate::record::Record>, Error> {
        Ok(tokio::sync::mpsc::channel(1).1)
    }

    async fn scan(&self, _topic: &str) -> Result<Vec<crate::record::Record>, Error> {
        Ok(Vec::new())
    }
}

/// The `.sql` files named by `paths`: files as given, folders searched recursively.
pub fn sql_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| Error::Io {
                    path: path.display().to_string(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "sql"))
                .collect();
            entries.sort();
            out.extend(sql_files(&entries)?);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// Checks `paths` in order, sharing one catalog.
pub async fn check(paths: &[PathBuf]) -> Result<Report, Error> {
    let mut report = Report {
        files: sql_files(paths)?,
        ..Report::default()
    };
    let mut engine = Engine::new(PlanOnly);
    for file in report.files.clone() {
        let sql = std::fs::read_to_string(&file).map_err(|source| Error::Io {
            path: file.display().to_string(),
            source,
        })?;
        check_file(&file, &sql, &mut engine, &mut report).await;
    }
    Ok(report)
}

async fn check_file(file: &Path, sql: &str, engine: &mut Engine<PlanOnly>, report: &mut Report) {
    let problem = |line, column, message: String| Problem {
        file: file.to_path_buf(),
        line,
        column,
        message,
    };
    let mut variables = Variables::new();
    for piece in crate::sql::variables::split(sql) {
        let statements = match crate::sql::parse_piece(&piece, &mut variables) {
            Ok(s) => s,
            Err(e) => {
                report.problems.push(problem(e.line, e.column, e.message));
                continue;
            }
        };
        report.statements += statements.len();
        for statement in statements.iter().filter(|s| runs_on_the_server(s)) {
            if let Err(e) = engine.execute(statement).await {
                report
                    .problems
                    .push(problem(piece.start.line, piece.start.column, e.to_string()));
            }
        }
    }
}

/// Statements a queries file runs; the others (SET, SHOW, ...) need a session, not a plan.
fn runs_on_the_server(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::CreateSource(_)
            | Statement::CreateAsSelect(_)
            | Statement::InsertInto(_)
            | Statement::Drop(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plan_errors_point_at_the_statement() {
        let dir = std::env::temp_dir().join(format!("eddy-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.sql");
        std::fs::write(
            &file,
            "CREATE STREAM s (k STRING KEY, v INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');\n\n  CREATE TABLE t AS SELECT k, SUM(w) FROM s GROUP BY k;\n",
        )
        .unwrap();
        let report = check(std::slice::from_ref(&dir)).await.unwrap();
        assert_eq!(report.statements, 2);
        assert_eq!(report.problems.len(), 1);
        assert_eq!(
            report.problems[0].to_string(),
            format!("{}:3:3: Column 'W' cannot be resolved.", file.display())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
