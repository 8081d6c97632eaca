//! Tests of SQL files in ksql-test-runner's form: statements from `.sql` files, input records
//! from a file `{"inputs": [...]}` and expected output records from `{"outputs": [...]}`
//! (records as in ksqlDB's functional tests: `topic`, `key`, `value`, `timestamp`, `window`),
//! run on the in-memory driver exactly as [`super::qtt`] runs ksqlDB's cases.
//!
//! `eddy test --sql A.sql [--sql B.sql] --input in.json --output out.json` runs one test;
//! `eddy test queries PATH...` finds the tests of a folder of queries: every `X.sql` with an
//! `X.input.json` and an `X.output.json` beside it is run after the folder's declarations
//! (its `00-*.sql` files, in name order). It does not talk to Kafka.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::qtt::Case;

/// One test: the SQL files to run in order, and the record files.
#[derive(Debug, Clone)]
pub struct SqlTest {
    /// Statements, file by file.
    pub sql: Vec<PathBuf>,
    /// `{"inputs": [...]}`
    pub input: PathBuf,
    /// `{"outputs": [...]}`
    pub output: PathBuf,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_json(path: &Path) -> Result<Value, String> {
    serde_json::from_str(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

impl SqlTest {
    /// The test as a case of the functional-test runner.
    pub fn case(&self) -> Result<Case, String> {
        let statements = self
            .sql
            .iter()
            .map(|p| read(p))
            .collect::<Result<Vec<_>, _>>()?;
        let inputs = read_json(&self.input)?;
        let outputs = read_json(&self.output)?;
        let tested = self.sql.last().ok_or("no SQL file to test")?;
        let name = tested.display().to_string();
        Ok(Case {
            file: name.clone(),
            name: name.clone(),
            statements,
            spec: json!({
                "name": name,
                "inputs": inputs["inputs"],
                "outputs": outputs["outputs"],
            }),
        })
    }
}

/// The tests under `paths` (folders searched recursively), in path order.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<SqlTest>, String> {
    let mut tests = Vec::new();
    for path in paths {
        if path.is_dir() {
            discover_dir(path, &mut tests)?;
        } else {
            return Err(format!("{}: not a folder of queries", path.display()));
        }
    }
    Ok(tests)
}

fn discover_dir(dir: &Path, tests: &mut Vec<SqlTest>) -> Result<(), String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let is_sql = |p: &PathBuf| p.extension().is_some_and(|e| e == "sql");
    let declares = |p: &PathBuf| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("00-"))
    };
    let declarations: Vec<PathBuf> = entries
        .iter()
        .filter(|p| is_sql(p) && declares(p))
        .cloned()
        .collect();
    for entry in &entries {
        if entry.is_dir() {
            discover_dir(entry, tests)?;
        } else if is_sql(entry) && !declares(entry) {
            let input = entry.with_extension("input.json");
            let output = entry.with_extension("output.json");
            if input.exists() && output.exists() {
                let mut sql = declarations.clone();
                sql.push(entry.clone());
                tests.push(SqlTest { sql, input, output });
            }
        }
    }
    Ok(())
}

/// The `.sql` files under `dir` that have no tests (declaration files excepted).
pub fn untested(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let tested: Vec<PathBuf> = discover(&[dir.to_path_buf()])?
        .into_iter()
        .filter_map(|t| t.sql.last().cloned())
        .collect();
    let all = crate::check::sql_files(&[dir.to_path_buf()]).map_err(|e| e.to_string())?;
    Ok(all
        .into_iter()
        .filter(|p| {
            !tested.contains(p)
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("00-"))
        })
        .collect())
}
