//! The paper's six query types (ExSPIN, Entropy 2025), plus `Other` for everything outside them.
//!
//! A query is classified from its tokens ([`super::lexer`]), never by executing it. The rules are
//! applied in this order; the first that matches wins:
//!
//! 1. **Nested** ([`QueryType::Nested`]): the query holds a subquery anywhere — a parenthesised
//!    `SELECT` in `WHERE`, `HAVING`, `FROM`, the select list or a set-operation operand.
//!    A subquery decides the type on its own: a `UNION` whose operand contains a subquery is nested.
//! 2. **Set operations** (`UNION`, `INTERSECT`, `EXCEPT`) without any subquery are
//!    [`QueryType::Other`]: they combine several selects, each of which could have its own type,
//!    so no single one of the six describes them.
//! 3. What remains is one `SELECT`. Its *table references* are counted in the `FROM` clause: every
//!    table after `FROM`, after a comma and after `JOIN` (a self-join counts twice). An *aggregate*
//!    is a call of `COUNT`, `SUM`, `AVG`, `MIN` or `MAX` anywhere in the statement.
//!    * ≥ 2 tables, an aggregate and `GROUP BY` → [`QueryType::JoinAggregateGroupBy`];
//!    * ≥ 2 tables, no aggregate and no `GROUP BY` → [`QueryType::JoinNoAggregate`];
//!    * 1 table, an aggregate and `GROUP BY` → [`QueryType::AggregateGroupBy`];
//!    * 1 table, no aggregate, no `GROUP BY`, and the `WHERE` clause holds at least one equality
//!      `column = literal` (either side; `==` too): [`QueryType::EqualityByKey`] when any such
//!      column belongs to its table's primary key (a member of a composite key counts), otherwise
//!      [`QueryType::EqualityByNonKey`]. Other conditions may stand beside the equality.
//!    * everything else — an aggregate without `GROUP BY`, `GROUP BY` without an aggregate,
//!      selects with only `ORDER BY`/`LIMIT`, range or `LIKE` filters, no `FROM` — is
//!      [`QueryType::Other`].
//!
//! A literal is a number (optionally negated), a single-quoted string, or a double-quoted token:
//! Spider's gold SQL writes string literals in double quotes and SQLite reads them as strings when
//! no column has that name, so `name = "Paris"` is an equality on `name`.
//!
//! Columns are resolved to their table through the `FROM` clause: `T1.col` looks `T1` up among the
//! aliases (`singer AS T1`, `singer T1`) and table names; an unqualified column belongs to the only
//! table. Names compare ASCII case-insensitively; `"x"`, `` `x` `` and `[x]` identifiers are unquoted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use super::lexer::{self, Token, TokenKind};

/// The paper's six query types and `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryType {
    /// One table, `WHERE primary_key = literal`.
    #[serde(rename = "equality_key")]
    EqualityByKey,
    /// One table, `WHERE other_column = literal`.
    #[serde(rename = "equality_non_key")]
    EqualityByNonKey,
    /// Two or more tables, no aggregate, no `GROUP BY`.
    #[serde(rename = "join")]
    JoinNoAggregate,
    /// One table, an aggregate and `GROUP BY`.
    AggregateGroupBy,
    /// Two or more tables, an aggregate and `GROUP BY`.
    JoinAggregateGroupBy,
    /// Any subquery.
    Nested,
    /// None of the six.
    Other,
}

impl QueryType {
    /// Every type, the six of the paper first, in the order reports list them.
    pub const ALL: [QueryType; 7] = [
        QueryType::EqualityByKey,
        QueryType::EqualityByNonKey,
        QueryType::JoinNoAggregate,
        QueryType::AggregateGroupBy,
        QueryType::JoinAggregateGroupBy,
        QueryType::Nested,
        QueryType::Other,
    ];

    /// The six types of the paper (all but `Other`).
    pub const SIX: [QueryType; 6] = [
        QueryType::EqualityByKey,
        QueryType::EqualityByNonKey,
        QueryType::JoinNoAggregate,
        QueryType::AggregateGroupBy,
        QueryType::JoinAggregateGroupBy,
        QueryType::Nested,
    ];

    /// The snake_case name used in files and reports (the same as its serde form).
    pub fn name(&self) -> &'static str {
        match self {
            QueryType::EqualityByKey => "equality_key",
            QueryType::EqualityByNonKey => "equality_non_key",
            QueryType::JoinNoAggregate => "join",
            QueryType::AggregateGroupBy => "aggregate_group_by",
            QueryType::JoinAggregateGroupBy => "join_aggregate_group_by",
            QueryType::Nested => "nested",
            QueryType::Other => "other",
        }
    }

    /// The type with this [`name`](Self::name), if any.
    pub fn from_name(name: &str) -> Option<QueryType> {
        QueryType::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for QueryType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reading primary keys out of a SQLite file failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot read primary keys ({source}); is it a SQLite database?", path.display())]
pub struct KeyInfoError {
    pub path: PathBuf,
    pub source: rusqlite::Error,
}

/// Which columns form each table's primary key (names lower-cased).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInfo {
    keys: BTreeMap<String, BTreeSet<String>>,
}

impl KeyInfo {
    /// No keys at all: every equality is then on a non-key column.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `table.column` as (part of) the primary key.
    pub fn insert(&mut self, table: &str, column: &str) {
        self.keys
            .entry(table.to_ascii_lowercase())
            .or_default()
            .insert(column.to_ascii_lowercase());
    }

    /// True when `column` is (part of) the primary key of `table` (case-insensitive).
    pub fn is_key(&self, table: &str, column: &str) -> bool {
        self.keys
            .get(&table.to_ascii_lowercase())
            .is_some_and(|cols| cols.contains(&column.to_ascii_lowercase()))
    }

    /// The primary keys a SQLite file declares (`PRAGMA table_info` pk flags), opened read-only.
    pub fn from_sqlite(path: &Path) -> Result<Self, KeyInfoError> {
        let wrap = |source| KeyInfoError {
            path: path.to_path_buf(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(wrap)?;
        let mut stmt = conn
            .prepare(
                "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p \
                 WHERE m.type = 'table' AND p.pk > 0",
            )
            .map_err(wrap)?;
        let pairs = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(wrap)?;
        let mut info = KeyInfo::new();
        for pair in pairs {
            let (table, column) = pair.map_err(wrap)?;
            info.insert(&table, &column);
        }
        Ok(info)
    }
}

const AGGREGATES: [&str; 5] = ["count", "sum", "avg", "min", "max"];
const SET_OPERATORS: [&str; 3] = ["union", "intersect", "except"];
/// Words that end a `FROM` clause.
const AFTER_FROM: [&str; 7] = [
    "where", "group", "having", "order", "limit", "window", "union",
];
/// Words that cannot be a table alias.
const NOT_ALIAS: [&str; 16] = [
    "on", "using", "join", "left", "right", "full", "inner", "outer", "cross", "natural", "where",
    "group", "having", "order", "limit", "as",
];

/// The type of `sql`; table and column names are resolved against `keys`.
pub fn classify(sql: &str, keys: &KeyInfo) -> QueryType {
    let tokens = lexer::significant(sql);
    let tokens: Vec<Token<'_>> = match tokens.iter().rposition(|t| t.kind != TokenKind::Semicolon) {
        Some(last) => tokens[..=last].to_vec(),
        None => return QueryType::Other,
    };
    if has_subquery(&tokens) {
        return QueryType::Nested;
    }
    if tokens
        .iter()
        .any(|t| SET_OPERATORS.iter().any(|op| t.is_word(op)))
    {
        return QueryType::Other;
    }
    let aggregate = tokens.windows(2).any(|w| {
        AGGREGATES.iter().any(|a| w[0].is_word(a))
            && w[1].kind == TokenKind::Punct
            && w[1].text == "("
    });
    let group_by = tokens
        .windows(2)
        .any(|w| w[0].is_word("group") && w[1].is_word("by"));
    let Some(from) = FromClause::parse(&tokens) else {
        return QueryType::Other;
    };
    match (from.tables.len(), aggregate, group_by) {
        (0, _, _) => QueryType::Other,
        (2.., true, true) => QueryType::JoinAggregateGroupBy,
        (2.., false, false) => QueryType::JoinNoAggregate,
        (1, true, true) => QueryType::AggregateGroupBy,
        (1, false, false) => match where_equality(&tokens, &from, keys) {
            Some(true) => QueryType::EqualityByKey,
            Some(false) => QueryType::EqualityByNonKey,
            None => QueryType::Other,
        },
        _ => QueryType::Other,
    }
}

/// A `(` directly followed by `SELECT` (or `WITH`, a CTE inside parentheses).
fn has_subquery(tokens: &[Token<'_>]) -> bool {
    tokens.windows(2).any(|w| {
        w[0].kind == TokenKind::Punct
            && w[0].text == "("
            && (w[1].is_word("select") || w[1].is_word("with"))
    })
}

/// The tables of a top-level `FROM` clause and the names they can be referred to by.
struct FromClause {
    /// Table names, lower-cased and unquoted, one per reference.
    tables: Vec<String>,
    /// Alias or table name (lower-cased) → table name.
    names: BTreeMap<String, String>,
}

impl FromClause {
    /// Reads the `FROM` clause at parenthesis depth 0; `None` when there is none.
    fn parse(tokens: &[Token<'_>]) -> Option<FromClause> {
        let start = depth_zero(tokens).find(|&i| tokens[i].is_word("from"))?;
        let mut clause = FromClause {
            tables: Vec::new(),
            names: BTreeMap::new(),
        };
        let mut expect_table = true;
        let mut i = start + 1;
        let mut depth = 0usize;
        while i < tokens.len() {
            let t = tokens[i];
            if t.kind == TokenKind::Punct && t.text == "(" {
                depth += 1;
            } else if t.kind == TokenKind::Punct && t.text == ")" {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            } else if depth == 0 {
                if AFTER_FROM.iter().any(|w| t.is_word(w)) {
                    break;
                }
                if t.is_word("join") || (t.kind == TokenKind::Punct && t.text == ",") {
                    expect_table = true;
                } else if expect_table && matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent)
                {
                    let table = ident(t);
                    let mut alias = None;
                    if tokens.get(i + 1).is_some_and(|n| n.is_word("as")) {
                        alias = tokens.get(i + 2).map(|a| ident(*a));
                        i += 2;
                    } else if let Some(next) = tokens.get(i + 1)
                        && matches!(next.kind, TokenKind::Word | TokenKind::QuotedIdent)
                        && !NOT_ALIAS.iter().any(|w| next.is_word(w))
                        && !AFTER_FROM.iter().any(|w| next.is_word(w))
                    {
                        alias = Some(ident(*next));
                        i += 1;
                    }
                    clause.names.insert(table.clone(), table.clone());
                    if let Some(alias) = alias {
                        clause.names.insert(alias, table.clone());
                    }
                    clause.tables.push(table);
                    expect_table = false;
                }
            }
            i += 1;
        }
        Some(clause)
    }

    /// The table a column reference belongs to: its qualifier's table, or the only table.
    fn resolve(&self, qualifier: Option<&str>) -> Option<&str> {
        match qualifier {
            Some(q) => self.names.get(q).map(String::as_str),
            None if self.tables.len() == 1 => Some(&self.tables[0]),
            None => None,
        }
    }
}

/// Indices of the tokens at parenthesis depth 0.
fn depth_zero<'a>(tokens: &'a [Token<'_>]) -> impl Iterator<Item = usize> + 'a {
    let mut depth = 0i32;
    tokens.iter().enumerate().filter_map(move |(i, t)| {
        let at = depth;
        if t.kind == TokenKind::Punct {
            match t.text {
                "(" => depth += 1,
                ")" => depth -= 1,
                _ => {}
            }
        }
        (at == 0 && !(t.kind == TokenKind::Punct && t.text == "(")).then_some(i)
    })
}

/// An identifier without its quotes, lower-cased.
fn ident(t: Token<'_>) -> String {
    let text = t.text;
    let inner = if t.kind == TokenKind::QuotedIdent && text.len() >= 2 {
        &text[1..text.len() - 1]
    } else {
        text
    };
    inner.to_ascii_lowercase()
}

/// Looks for `column = literal` in the top-level `WHERE` clause: `Some(true)` when one of them is
/// on a primary-key column, `Some(false)` when all are on other columns, `None` when there is none.
fn where_equality(tokens: &[Token<'_>], from: &FromClause, keys: &KeyInfo) -> Option<bool> {
    let start = depth_zero(tokens).find(|&i| tokens[i].is_word("where"))?;
    let end = depth_zero(tokens)
        .filter(|&i| i > start)
        .find(|&i| {
            ["group", "having", "order", "limit"]
                .iter()
                .any(|w| tokens[i].is_word(w))
        })
        .unwrap_or(tokens.len());
    let clause = &tokens[start + 1..end];
    let mut found = None;
    for (i, t) in clause.iter().enumerate() {
        if !(t.kind == TokenKind::Punct && (t.text == "=" || t.text == "==")) {
            continue;
        }
        let column = column_before(clause, i)
            .filter(|_| is_literal(&clause[i + 1..]))
            .or_else(|| column_after(clause, i).filter(|_| i > 0 && is_literal_at(clause, i - 1)));
        let Some((qualifier, column)) = column else {
            continue;
        };
        let on_key = from
            .resolve(qualifier.as_deref())
            .is_some_and(|table| keys.is_key(table, &column));
        found = Some(found.unwrap_or(false) || on_key);
    }
    found
}

/// The column reference that ends just before index `op`: `col` or `qualifier.col`.
fn column_before(clause: &[Token<'_>], op: usize) -> Option<(Option<String>, String)> {
    let col = *clause.get(op.checked_sub(1)?)?;
    if !is_column_token(col) {
        return None;
    }
    let qualified = op >= 3 && clause[op - 2].text == "." && is_column_token(clause[op - 3]);
    let qualifier = qualified.then(|| ident(clause[op - 3]));
    Some((qualifier, ident(col)))
}

/// The column reference that starts just after index `op`.
fn column_after(clause: &[Token<'_>], op: usize) -> Option<(Option<String>, String)> {
    let first = *clause.get(op + 1)?;
    if !is_column_token(first) {
        return None;
    }
    match (clause.get(op + 2), clause.get(op + 3)) {
        (Some(dot), Some(col)) if dot.text == "." && is_column_token(*col) => {
            Some((Some(ident(first)), ident(*col)))
        }
        _ => Some((None, ident(first))),
    }
}

/// Words and backtick/bracket identifiers; a double-quoted token is read as a string literal.
fn is_column_token(t: Token<'_>) -> bool {
    match t.kind {
        TokenKind::Word => !["null", "true", "false", "not"]
            .iter()
            .any(|w| t.is_word(w)),
        TokenKind::QuotedIdent => !t.text.starts_with('"'),
        _ => false,
    }
}

/// Whether the tokens start with a literal (`42`, `-3`, `'x'`, `"x"`) that ends the operand.
fn is_literal(rest: &[Token<'_>]) -> bool {
    let (lit, after) = match rest {
        [sign, num, ..] if sign.text == "-" && num.kind == TokenKind::Number => (*num, rest.get(2)),
        [t, ..] => (*t, rest.get(1)),
        [] => return false,
    };
    let literal = matches!(lit.kind, TokenKind::Number | TokenKind::String)
        || (lit.kind == TokenKind::QuotedIdent && lit.text.starts_with('"'));
    // `x = 1 + y` compares with an expression, not a literal.
    literal && after.is_none_or(|t| t.kind != TokenKind::Punct || matches!(t.text, ")" | ","))
}

/// Whether the token at `i` (left of an `=`) is a whole literal operand.
fn is_literal_at(clause: &[Token<'_>], i: usize) -> bool {
    let t = clause[i];
    let literal = matches!(t.kind, TokenKind::Number | TokenKind::String)
        || (t.kind == TokenKind::QuotedIdent && t.text.starts_with('"'));
    let before = i.checked_sub(1).map(|j| clause[j]);
    literal
        && before.is_none_or(|b| {
            b.kind == TokenKind::Word || (b.kind == TokenKind::Punct && b.text == "(")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> KeyInfo {
        let mut k = KeyInfo::new();
        k.insert("Student", "Student_ID");
        k.insert("singer", "singer_id");
        k.insert("concert", "concert_id");
        k.insert("enroll", "student_id");
        k.insert("enroll", "course_id");
        k
    }

    fn t(sql: &str) -> QueryType {
        classify(sql, &keys())
    }

    #[test]
    fn equality_by_key_resolves_case_and_aliases() {
        assert_eq!(
            t("SELECT email FROM student WHERE student_id = 17"),
            QueryType::EqualityByKey
        );
        assert_eq!(
            t("select T1.email from STUDENT as T1 where T1.STUDENT_ID = 17 order by email"),
            QueryType::EqualityByKey
        );
        assert_eq!(
            t("SELECT name FROM singer s WHERE 3 = s.singer_id"),
            QueryType::EqualityByKey
        );
        // A member of a composite key counts, and a second, non-key equality does not matter.
        assert_eq!(
            t("SELECT grade FROM enroll WHERE grade = 'A' AND course_id = 4"),
            QueryType::EqualityByKey
        );
    }

    #[test]
    fn equality_by_non_key() {
        assert_eq!(
            t("SELECT name FROM singer WHERE country = 'France'"),
            QueryType::EqualityByNonKey
        );
        assert_eq!(
            t("SELECT T1.name FROM singer AS T1 WHERE T1.country = \"France\" AND T1.age > 20"),
            QueryType::EqualityByNonKey
        );
        assert_eq!(
            t("SELECT name FROM singer WHERE age == -3"),
            QueryType::EqualityByNonKey
        );
        // A key column of another table with the same name is not this table's key.
        assert_eq!(
            t("SELECT name FROM concert WHERE singer_id = 2"),
            QueryType::EqualityByNonKey
        );
    }

    #[test]
    fn joins_without_aggregate() {
        assert_eq!(
            t(
                "SELECT T1.name, T2.title FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id"
            ),
            QueryType::JoinNoAggregate
        );
        assert_eq!(
            t(
                "SELECT a.name FROM singer a, concert b WHERE a.singer_id = b.singer_id AND b.year = 2014"
            ),
            QueryType::JoinNoAggregate
        );
    }

    #[test]
    fn aggregates_with_group_by() {
        assert_eq!(
            t("SELECT country, count(*) FROM singer GROUP BY country"),
            QueryType::AggregateGroupBy
        );
        assert_eq!(
            t("SELECT country FROM singer GROUP BY country ORDER BY COUNT (*) DESC LIMIT 1"),
            QueryType::AggregateGroupBy
        );
        assert_eq!(
            t(
                "SELECT T2.name, AVG(T1.age) FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id GROUP BY T2.concert_id"
            ),
            QueryType::JoinAggregateGroupBy
        );
    }

    #[test]
    fn nested_wins_over_everything() {
        assert_eq!(
            t("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)"),
            QueryType::Nested
        );
        assert_eq!(
            t("SELECT count(*) FROM (SELECT * FROM singer)"),
            QueryType::Nested
        );
        assert_eq!(
            t(
                "SELECT name FROM singer UNION SELECT name FROM concert WHERE concert_id IN (SELECT concert_id FROM concert)"
            ),
            QueryType::Nested
        );
    }

    #[test]
    fn everything_else_is_other() {
        assert_eq!(t("SELECT count(*) FROM singer"), QueryType::Other);
        assert_eq!(
            t("SELECT name FROM singer ORDER BY age DESC LIMIT 3"),
            QueryType::Other
        );
        assert_eq!(
            t("SELECT name FROM singer WHERE age > 30"),
            QueryType::Other
        );
        assert_eq!(
            t("SELECT name FROM singer WHERE name LIKE '%a%'"),
            QueryType::Other
        );
        assert_eq!(
            t("SELECT country FROM singer GROUP BY country"),
            QueryType::Other
        );
        assert_eq!(
            t(
                "SELECT name FROM singer WHERE age = 3 INTERSECT SELECT name FROM singer WHERE age = 4"
            ),
            QueryType::Other
        );
        assert_eq!(
            t(
                "SELECT count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id"
            ),
            QueryType::Other
        );
        assert_eq!(t("SELECT 1"), QueryType::Other);
        assert_eq!(t(""), QueryType::Other);
        // A comparison with an expression is not `column = literal`.
        assert_eq!(
            t("SELECT name FROM singer WHERE age = 1 + bonus"),
            QueryType::Other
        );
    }

    #[test]
    fn names_round_trip() {
        for ty in QueryType::ALL {
            assert_eq!(QueryType::from_name(ty.name()), Some(ty));
            let json = serde_json::to_string(&ty).unwrap();
            assert_eq!(json, format!("\"{}\"", ty.name()));
        }
    }

    #[test]
    fn keys_from_a_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT);
             CREATE TABLE b (p INTEGER, q INTEGER, y TEXT, PRIMARY KEY (p, q));",
        )
        .unwrap();
        drop(conn);
        let info = KeyInfo::from_sqlite(&path).unwrap();
        assert!(info.is_key("A", "ID"));
        assert!(!info.is_key("a", "x"));
        assert!(info.is_key("b", "p") && info.is_key("b", "q") && !info.is_key("b", "y"));
        let err = KeyInfo::from_sqlite(&dir.path().join("none.sqlite")).unwrap_err();
        assert!(err.to_string().contains("none.sqlite"), "{err}");
    }
}
