//! Repairs of a query that fails to run: the model answers the same prompt again, greedily,
//! with a note after the question that says where the schema really has what the database's
//! error names. The rule for the text lives here, beside [`render`]'s.
//!
//! Why: on the stratified 200 of Spider dev, 54 of Qwen2.5-Coder-0.5B's 88 wrong answers under
//! the rows prompt fail with "no such column": the model puts a column in the wrong table of a
//! join (`c.Song_Name` where `Song_Name` is the singer's). SQLite's message names the column;
//! the schema knows which table has it. That explicit feedback needs no gold answer, so it is
//! fair at inference time. The failed query itself is not shown: shown its answer and the
//! error in a follow-up turn, the 0.5B model repeated its query 15 times in 17.
//!
//! [`render`]: super::render::render

use crate::model::chat::ChatTemplate;
use crate::schema::introspect::DbInfo;
use crate::sql::executor::{ExecutorConfig, Outcome, Sandbox};

use super::render::render;

/// Repairs per question by default (`--repair` of `exspin generate` and `exspin ask`): on the
/// stratified 200 of Spider dev they lift Qwen2.5-Coder-0.5B under the rows prompt from 56.0% to
/// 59.0% (6 questions gained, none lost), and 60.0% with the rewrite after them
/// ([`super::requalify`]; BENCHMARKS.md, "Repairs").
pub const DEFAULT_ROUNDS: usize = 2;

/// The sandbox's verdict on `sql` when it calls for a repair: the error text, or None when the
/// query returned rows (or ran into a limit, which another answer would not fix).
pub fn failure(sandbox: &Sandbox, sql: &str, config: &ExecutorConfig) -> Option<String> {
    match sandbox.run(sql, config) {
        Outcome::Error { message } | Outcome::Rejected { message, .. } => Some(message),
        Outcome::Rows { .. } | Outcome::Timeout { .. } | Outcome::TooManyRows { .. } => None,
    }
}

/// What the model is told about `failed_sql`, which failed with `error` (SQLite's message) on
/// the database `info` describes: one sentence for the note after the question.
pub fn feedback(info: &DbInfo, failed_sql: &str, error: &str) -> String {
    match Failure::parse(error) {
        Failure::NoSuchColumn { qualifier, column } => {
            let owners: Vec<&str> = info
                .tables
                .iter()
                .filter(|t| {
                    t.columns
                        .iter()
                        .any(|c| c.name.eq_ignore_ascii_case(column))
                })
                .map(|t| t.name.as_str())
                .collect();
            let not_of = qualifier
                .and_then(|q| aliased_table(info, failed_sql, q))
                .map(|t| format!(", not of {t}"))
                .unwrap_or_default();
            match owners.as_slice() {
                [] => format!(
                    "no table has a column named {column}; use only the columns of the \
                     CREATE TABLE statements."
                ),
                [one] => match join_hint(info, failed_sql, one) {
                    Some(joins) => format!(
                        "{column} is a column of the table {one}{not_of}; reach it with {joins}."
                    ),
                    None => format!("{column} is a column of the table {one}{not_of}."),
                },
                many => format!(
                    "{column} is a column of the tables {}{not_of}.",
                    many.join(", ")
                ),
            }
        }
        Failure::NoSuchTable(name) => {
            let tables: Vec<&str> = info.tables.iter().map(|t| t.name.as_str()).collect();
            format!(
                "there is no table {name}; the tables are {}.",
                tables.join(", ")
            )
        }
        Failure::Ambiguous(name) => {
            format!("{name} is in more than one table of the query: write it as table.{name}.")
        }
        Failure::Other => format!(
            "a query for this question failed in SQLite with \"{}\"; avoid that error.",
            sqlite_message(error)
        ),
    }
}

/// What SQLite's message says went wrong, for the errors a repair has a rule for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure<'a> {
    /// `no such column: T2.Song_Name` (qualifier `T2`) or `no such column: Song_Name`.
    NoSuchColumn {
        qualifier: Option<&'a str>,
        column: &'a str,
    },
    NoSuchTable(&'a str),
    /// `ambiguous column name: Name`.
    Ambiguous(&'a str),
    Other,
}

impl<'a> Failure<'a> {
    /// Reads rusqlite's text of an error (SQLite's message, then the statement).
    pub fn parse(error: &'a str) -> Failure<'a> {
        let message = sqlite_message(error);
        if let Some(name) = named_after(message, "no such column: ") {
            let (qualifier, column) = match name.rsplit_once('.') {
                Some((q, c)) => (Some(q), c),
                None => (None, name),
            };
            return Failure::NoSuchColumn { qualifier, column };
        }
        if let Some(name) = named_after(message, "no such table: ") {
            return Failure::NoSuchTable(name);
        }
        if let Some(name) = named_after(message, "ambiguous column name: ") {
            return Failure::Ambiguous(name);
        }
        Failure::Other
    }
}

/// The text the model continues for a repair: the prompt of `schema_prompt` with `notes` (one
/// per failed answer so far, [`feedback`]) after the question. The schema comes first as in
/// [`render`], so the prompt's cached schema prefix serves it.
pub fn render_repair(template: &ChatTemplate, schema_prompt: &str, notes: &[String]) -> String {
    let mut text = schema_prompt.trim_end().to_string();
    text.push('\n');
    for note in notes {
        text.push_str(&format!("-- Note: {note}\n"));
    }
    render(template, &text)
}

/// SQLite's own message, without the statement rusqlite appends to it ("… in SELECT … at
/// offset 7").
fn sqlite_message(error: &str) -> &str {
    let end = error.find(" in ").unwrap_or(error.len());
    error[..end].trim()
}

/// The name that follows `prefix` in `message` (up to white space).
fn named_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let at = message.find(prefix)? + prefix.len();
    let name = message[at..].split_whitespace().next()?;
    Some(name.trim_matches(|c| c == '"' || c == '`' || c == '\''))
}

/// The words of `sql` that could be names (identifiers, keywords, aliases).
fn words(sql: &str) -> Vec<&str> {
    sql.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The joins that reach table `owner` from the tables `sql` already uses, along foreign keys
/// (`JOIN b ON a.x = b.y JOIN c ON …`, shortest first): None when `sql` already uses `owner`,
/// uses no table, or no foreign keys lead there.
fn join_hint(info: &DbInfo, sql: &str, owner: &str) -> Option<String> {
    let target = info.table_index(owner)?;
    let mut used: Vec<usize> = words(sql)
        .into_iter()
        .filter_map(|w| info.table_index(w))
        .collect();
    used.sort_unstable();
    used.dedup();
    if used.is_empty() || used.contains(&target) {
        return None;
    }
    // Breadth-first over foreign keys taken in either direction, from every used table.
    let mut came_from: Vec<Option<(usize, usize)>> = vec![None; info.tables.len()];
    let mut seen = vec![false; info.tables.len()];
    let mut queue: std::collections::VecDeque<usize> = used.iter().copied().collect();
    for &t in &used {
        seen[t] = true;
    }
    while let Some(t) = queue.pop_front() {
        if t == target {
            break;
        }
        for (k, fk) in info.foreign_keys.iter().enumerate() {
            let next = if fk.from_table == t {
                fk.to_table
            } else if fk.to_table == t {
                fk.from_table
            } else {
                continue;
            };
            if !seen[next] {
                seen[next] = true;
                came_from[next] = Some((t, k));
                queue.push_back(next);
            }
        }
    }
    let mut steps = Vec::new();
    let mut at = target;
    while let Some((prev, k)) = came_from[at] {
        let fk = info.foreign_keys[k];
        let column = |t: usize, c: usize| {
            format!("{}.{}", info.tables[t].name, info.tables[t].columns[c].name)
        };
        steps.push(format!(
            "JOIN {} ON {} = {}",
            info.tables[at].name,
            column(fk.from_table, fk.from_column),
            column(fk.to_table, fk.to_column)
        ));
        at = prev;
    }
    if steps.is_empty() {
        return None;
    }
    steps.reverse();
    Some(steps.join(" "))
}

/// The table `alias` stands for in `sql` (`FROM concert AS c`, `JOIN concert c`), or the table
/// itself when `alias` is a table's name.
fn aliased_table<'a>(info: &'a DbInfo, sql: &str, alias: &str) -> Option<&'a str> {
    let table = |w: &str| info.table_index(w).map(|t| info.tables[t].name.as_str());
    if let Some(t) = table(alias) {
        return Some(t);
    }
    let words = words(sql);
    words
        .windows(3)
        .find_map(|w| match w {
            [t, a, x] if a.eq_ignore_ascii_case("as") && x.eq_ignore_ascii_case(alias) => table(t),
            _ => None,
        })
        .or_else(|| {
            words.windows(2).find_map(|w| match w {
                [t, x] if x.eq_ignore_ascii_case(alias) => table(t),
                _ => None,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::introspect::{Column, ForeignKey, Table};

    fn column(name: &str) -> Column {
        Column {
            name: name.into(),
            natural: name.to_lowercase(),
            ty: "text".into(),
            primary_key: false,
            description: None,
            values: Vec::new(),
        }
    }

    fn concert_singer() -> DbInfo {
        let table = |name: &str, cols: &[&str]| Table {
            name: name.into(),
            natural: name.into(),
            columns: cols.iter().map(|c| column(c)).collect(),
            rows: 3,
            examples: Vec::new(),
        };
        DbInfo {
            db_id: "concert_singer".into(),
            content_hash: String::new(),
            tables: vec![
                table("singer", &["Singer_ID", "Name", "Song_Name"]),
                table("concert", &["concert_ID", "Name", "Stadium_ID"]),
                table("singer_in_concert", &["concert_ID", "Singer_ID"]),
                table("stadium", &["Stadium_ID", "Capacity"]),
            ],
            // singer_in_concert.concert_ID -> concert, singer_in_concert.Singer_ID -> singer
            foreign_keys: vec![
                ForeignKey {
                    from_table: 2,
                    from_column: 0,
                    to_table: 1,
                    to_column: 0,
                },
                ForeignKey {
                    from_table: 2,
                    from_column: 1,
                    to_table: 0,
                    to_column: 0,
                },
            ],
        }
    }

    #[test]
    fn a_missing_column_is_pointed_to_the_tables_that_have_it() {
        let info = concert_singer();
        // rusqlite's text of a prepare error: the message, then the statement.
        let sql = "SELECT c.Song_Name FROM concert AS c";
        let error = format!("no such column: c.Song_Name in {sql} at offset 7");
        // The way there follows the foreign keys, through the table between them.
        assert_eq!(
            feedback(&info, sql, &error),
            "Song_Name is a column of the table singer, not of concert; reach it with JOIN \
             singer_in_concert ON singer_in_concert.concert_ID = concert.concert_ID JOIN singer \
             ON singer_in_concert.Singer_ID = singer.Singer_ID."
        );
        // An alias without AS, a query that already has the table, no way there, and a name
        // several tables have.
        assert_eq!(
            feedback(
                &info,
                "SELECT x.Song_Name FROM concert x JOIN singer s",
                "no such column: x.Song_Name"
            ),
            "Song_Name is a column of the table singer, not of concert."
        );
        assert_eq!(
            feedback(
                &info,
                "SELECT Capacity FROM concert",
                "no such column: Capacity"
            ),
            "Capacity is a column of the table stadium."
        );
        assert_eq!(
            feedback(&info, "SELECT name FROM t", "no such column: name"),
            "name is a column of the tables singer, concert."
        );
        assert_eq!(
            feedback(&info, "SELECT Year FROM singer", "no such column: Year"),
            "no table has a column named Year; use only the columns of the CREATE TABLE \
             statements."
        );
        assert_eq!(
            feedback(&info, "SELECT 1 FROM singers", "no such table: singers"),
            "there is no table singers; the tables are singer, concert, singer_in_concert, \
             stadium."
        );
        assert_eq!(
            feedback(&info, "", "ambiguous column name: Name"),
            "Name is in more than one table of the query: write it as table.Name."
        );
        assert_eq!(
            feedback(&info, "", "misuse of aggregate: count()"),
            "a query for this question failed in SQLite with \"misuse of aggregate: count()\"; \
             avoid that error."
        );
    }

    #[test]
    fn a_repair_is_the_prompt_with_notes_after_the_question() {
        let schema_prompt = "CREATE TABLE t (x INT);\n-- Question: q\n";
        let notes = [
            "x is a column of the table t.".to_string(),
            "b.".to_string(),
        ];
        for template in [ChatTemplate::ChatMl, ChatTemplate::Plain] {
            let with_notes = "CREATE TABLE t (x INT);\n-- Question: q\n\
                              -- Note: x is a column of the table t.\n-- Note: b.\n";
            assert_eq!(
                render_repair(&template, schema_prompt, &notes),
                render(&template, with_notes)
            );
            assert_eq!(
                render_repair(&template, schema_prompt, &[]),
                render(&template, schema_prompt)
            );
        }
    }
}
