//! Spider's four hardness levels (easy, medium, hard, extra), computed with the official rules.
//!
//! The official script (`evaluation.py` of test-suite-sql-eval) does not look at SQL text: it
//! counts parts of the structure that `process_sql.py` (`get_sql`) builds. So this module does the
//! same in two steps, with one structure ([`SpiderSql`]) and one rules function
//! ([`Components::of`] then [`Components::level`]) shared by both entry points:
//!
//! * [`hardness`] reads SQL text with a small recursive-descent parser that builds the structure
//!   `get_sql` builds. No schema is needed: columns and tables are kept as names, because only the
//!   shape counts.
//! * [`hardness_from_parsed`] reads the structure Spider ships already parsed (the `sql` field of
//!   `dev.json`).
//!
//! The parser mirrors `get_sql`'s quirks where they change counts:
//!
//! * In the select list an aggregate belongs to the select item (`count(*)` is `(count, val_unit)`);
//!   everywhere else it belongs to the column unit.
//! * `JOIN .. ON` conditions of all joins form one list, joined with `and`; a subquery in `FROM` is
//!   a table unit, not a nested query.
//! * When a condition's value is a column, `get_sql` skips every token up to the next `,`, `)`,
//!   `and`, clause keyword or `join`/`on`/`as`: so in `a = T2.b OR c = 1` the `OR c = 1` vanishes,
//!   and with it the `or` the rules would count. We skip the same tokens.
//! * `A UNION B UNION C` is `A` with `union = (B UNION C)`.
//! * Tokens left over after a complete query are ignored (`ORDER BY count(*) >= 5` is read as
//!   `ORDER BY count(*)`), since `get_sql` ignores them too and Spider's levels follow from that.
//!
//! Where `get_sql` would crash (it asserts on anything outside Spider's grammar) the parser either
//! accepts a common form whose counts are obvious or returns an error; it never panics. Accepted
//! beyond `get_sql`: `FROM a, b` and `LEFT`/`INNER`/... joins (both as joins), table and subquery
//! aliases without `AS`, select-item aliases, `<>`, `IN (1, 2)` lists, `IS [NOT] NULL`,
//! `[NOT] EXISTS (..)` (a nested query), signed numbers, literals where a column is expected,
//! `UNION ALL`, and `LIMIT n OFFSET m`.
//!
//! The files follow those steps: `ast.rs` is the structure, `parse.rs` reads SQL text into it,
//! `json.rs` reads Spider's parsed form into it, and `rules.rs` holds the official counts and levels.

mod ast;
mod json;
mod parse;
mod rules;
#[cfg(test)]
mod tests;

use serde_json::Value as Json;

pub use ast::{
    Agg, ColUnit, Column, CondUnit, Condition, Connector, FromClause, OrderBy, SpiderSql,
    TableUnit, UnitOp, Val, ValUnit, WhereOp,
};
pub use parse::parse;
pub use rules::{Components, Hardness};

/// Why a hardness level could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HardnessError {
    #[error(
        "cannot read the SQL at byte {offset} (`{found}`): expected {expected} \
         (hardness reads Spider's SQL subset; see `exspin::sql::hardness`)"
    )]
    Unexpected {
        offset: usize,
        found: String,
        expected: &'static str,
    },
    #[error("the SQL ends too early: expected {expected}")]
    UnexpectedEnd { expected: &'static str },
    #[error(
        "the SQL nests subqueries or set operations more than {limit} levels deep; \
         no Spider query comes close, so this is refused rather than risk the stack"
    )]
    TooDeep { limit: usize },
    #[error("the parsed Spider SQL is malformed at {path}: {problem}")]
    BadParsed { path: String, problem: String },
}

type Result<T> = std::result::Result<T, HardnessError>;

/// Deeper nesting than this is refused (Spider's deepest query nests 3 levels).
pub const MAX_DEPTH: usize = 100;

/// Spider's hardness level of a SQL query, from its text.
pub fn hardness(sql: &str) -> Result<Hardness> {
    Ok(Components::of(&parse(sql)?).level())
}

/// Spider's hardness level from the official parsed form (the `sql` field of Spider's JSON).
pub fn hardness_from_parsed(sql: &Json) -> Result<Hardness> {
    Ok(Components::of(&SpiderSql::from_parsed(sql)?).level())
}
