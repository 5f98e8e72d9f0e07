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

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::lexer::{self, Token, TokenKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hardness {
    Easy,
    Medium,
    Hard,
    Extra,
}

impl Hardness {
    pub const ALL: [Hardness; 4] = [
        Hardness::Easy,
        Hardness::Medium,
        Hardness::Hard,
        Hardness::Extra,
    ];

    /// The level's name as Spider writes it (and as serde does).
    pub fn as_str(self) -> &'static str {
        match self {
            Hardness::Easy => "easy",
            Hardness::Medium => "medium",
            Hardness::Hard => "hard",
            Hardness::Extra => "extra",
        }
    }
}

impl fmt::Display for Hardness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

// ---------------------------------------------------------------------------------------------
// The structure `get_sql` builds.
// ---------------------------------------------------------------------------------------------

/// Aggregates, in the order of Spider's `AGG_OPS` (the discriminant is the official id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Agg {
    #[default]
    None = 0,
    Max = 1,
    Min = 2,
    Count = 3,
    Sum = 4,
    Avg = 5,
}

impl Agg {
    fn from_word(w: &str) -> Option<Agg> {
        Some(match w.to_ascii_lowercase().as_str() {
            "max" => Agg::Max,
            "min" => Agg::Min,
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "avg" => Agg::Avg,
            _ => return None,
        })
    }

    fn from_id(id: u64) -> Option<Agg> {
        Some(match id {
            0 => Agg::None,
            1 => Agg::Max,
            2 => Agg::Min,
            3 => Agg::Count,
            4 => Agg::Sum,
            5 => Agg::Avg,
            _ => return None,
        })
    }
}

/// Arithmetic between two column units, in the order of Spider's `UNIT_OPS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnitOp {
    #[default]
    None = 0,
    Minus = 1,
    Plus = 2,
    Times = 3,
    Divide = 4,
}

impl UnitOp {
    fn from_id(id: u64) -> Option<UnitOp> {
        Some(match id {
            0 => UnitOp::None,
            1 => UnitOp::Minus,
            2 => UnitOp::Plus,
            3 => UnitOp::Times,
            4 => UnitOp::Divide,
            _ => return None,
        })
    }
}

/// Condition operators, in the order of Spider's `WHERE_OPS` (the discriminant is the official
/// id; `NOT IN` is `not_op = true` with [`WhereOp::In`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhereOp {
    Not = 0,
    Between = 1,
    Eq = 2,
    Gt = 3,
    Lt = 4,
    Ge = 5,
    Le = 6,
    Ne = 7,
    In = 8,
    Like = 9,
    Is = 10,
    Exists = 11,
}

impl WhereOp {
    fn from_id(id: u64) -> Option<WhereOp> {
        use WhereOp::*;
        [Not, Between, Eq, Gt, Lt, Ge, Le, Ne, In, Like, Is, Exists]
            .get(usize::try_from(id).ok()?)
            .copied()
    }
}

/// `and` / `or` between two conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connector {
    And,
    Or,
}

/// A column as far as the structure needs one: Spider's parsed form has schema ids, text has names.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// `*` (id 0 in Spider's parsed form).
    Star,
    /// A name as written, qualified or not (`T1.name`).
    Name(String),
    /// A schema column id from Spider's parsed form.
    Id(u64),
    /// A literal where `get_sql` expects a column (`SELECT 1`): accepted, it changes no count.
    Literal(String),
}

/// `(agg_id, col, isDistinct)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColUnit {
    pub agg: Agg,
    pub col: Column,
    pub distinct: bool,
}

/// `(unit_op, col_unit1, col_unit2)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValUnit {
    pub op: UnitOp,
    pub left: ColUnit,
    pub right: Option<ColUnit>,
}

/// A condition's right-hand side.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Number(f64),
    Text(String),
    Null,
    Col(ColUnit),
    /// A nested query: the only kind of value the rules count.
    Sql(Box<SpiderSql>),
    /// `IN (1, 2, 3)` (outside `get_sql`'s grammar, accepted).
    List(Vec<Val>),
}

/// `(not_op, op_id, val_unit, val1, val2)`.
#[derive(Debug, Clone, PartialEq)]
pub struct CondUnit {
    pub not: bool,
    pub op: WhereOp,
    pub val_unit: ValUnit,
    pub val1: Option<Val>,
    /// Only `BETWEEN a AND b` has one.
    pub val2: Option<Val>,
}

/// Spider's flat condition list `[cond, 'and'|'or', cond, ...]`, kept as its two interleaved
/// halves so it cannot be malformed: `connectors[i]` joins `units[i]` and `units[i + 1]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Condition {
    units: Vec<CondUnit>,
    connectors: Vec<Connector>,
}

impl Condition {
    /// The conditions (`list[::2]` in Python).
    pub fn units(&self) -> &[CondUnit] {
        &self.units
    }

    /// The `and`/`or` between them (`list[1::2]` in Python).
    pub fn connectors(&self) -> &[Connector] {
        &self.connectors
    }

    /// The length of Spider's flat list, connectors included (the rules use it).
    pub fn flat_len(&self) -> usize {
        self.units.len() + self.connectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    fn push(&mut self, connector: Option<Connector>, unit: CondUnit) {
        if !self.units.is_empty() {
            self.connectors.push(connector.unwrap_or(Connector::And));
        }
        self.units.push(unit);
    }

    /// Appends `other` after an `and`, as `get_sql` does with the `ON` lists of successive joins.
    fn extend_with_and(&mut self, other: Condition) {
        let mut connectors = other.connectors.into_iter();
        for (i, unit) in other.units.into_iter().enumerate() {
            let c = if i == 0 { None } else { connectors.next() };
            self.push(c, unit);
        }
    }
}

/// `(table_type, col_id/sql)`.
#[derive(Debug, Clone, PartialEq)]
pub enum TableUnit {
    /// A table by name (text) or schema id (Spider's parsed form).
    Table(Column),
    Sql(Box<SpiderSql>),
}

/// `{table_units, conds}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FromClause {
    pub table_units: Vec<TableUnit>,
    pub conds: Condition,
}

/// `('asc'|'desc', [val_unit, ...])`. `get_sql` keeps one direction: the last one written.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub desc: bool,
    pub items: Vec<ValUnit>,
}

/// The dictionary `get_sql` returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpiderSql {
    pub distinct: bool,
    /// `(agg_id, val_unit)` pairs.
    pub select: Vec<(Agg, ValUnit)>,
    pub from: FromClause,
    pub where_: Condition,
    pub group_by: Vec<ColUnit>,
    pub having: Condition,
    pub order_by: Option<OrderBy>,
    pub limit: Option<i64>,
    pub intersect: Option<Box<SpiderSql>>,
    pub union: Option<Box<SpiderSql>>,
    pub except: Option<Box<SpiderSql>>,
}

// ---------------------------------------------------------------------------------------------
// The official rules.
// ---------------------------------------------------------------------------------------------

/// The three counts `eval_hardness` combines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Components {
    /// `count_component1`: clauses, joins, `or`s and `like`s.
    pub component1: usize,
    /// `count_component2`: nested queries (condition values and set operations).
    pub component2: usize,
    /// `count_others`: several aggregates, several select items, several where conditions,
    /// several group-by columns.
    pub others: usize,
}

impl Components {
    /// Counts, with the official script's quirks (noted where they bite).
    pub fn of(sql: &SpiderSql) -> Components {
        let conds = [&sql.from.conds, &sql.where_, &sql.having];

        let mut c1 = 0;
        c1 += usize::from(!sql.where_.is_empty());
        c1 += usize::from(!sql.group_by.is_empty());
        c1 += usize::from(sql.order_by.is_some());
        c1 += usize::from(sql.limit.is_some());
        c1 += sql.from.table_units.len().saturating_sub(1);
        c1 += conds
            .iter()
            .flat_map(|c| c.connectors())
            .filter(|&&k| k == Connector::Or)
            .count();
        c1 += conds
            .iter()
            .flat_map(|c| c.units())
            .filter(|u| u.op == WhereOp::Like)
            .count();

        let mut c2 = 0;
        for u in conds.iter().flat_map(|c| c.units()) {
            c2 += usize::from(matches!(u.val1, Some(Val::Sql(_))));
            c2 += usize::from(matches!(u.val2, Some(Val::Sql(_))));
        }
        c2 += [&sql.intersect, &sql.except, &sql.union]
            .iter()
            .filter(|s| s.is_some())
            .count();

        let mut aggs = sql.select.iter().filter(|(a, _)| *a != Agg::None).count();
        // `has_agg` looks at element 0 of a condition, which is its not_op: where-conditions count
        // when negated, whatever aggregates they hold.
        aggs += sql.where_.units().iter().filter(|u| u.not).count();
        aggs += sql.group_by.iter().filter(|c| c.agg != Agg::None).count();
        if let Some(order) = &sql.order_by {
            aggs += order
                .items
                .iter()
                .flat_map(|v| std::iter::once(&v.left).chain(&v.right))
                .filter(|c| c.agg != Agg::None)
                .count();
        }
        // `count_agg(sql['having'])` walks the whole flat list: a negated condition counts, and
        // so does every connector ('and'[0] != 0 in Python).
        aggs += sql.having.units().iter().filter(|u| u.not).count();
        aggs += sql.having.connectors().len();

        let mut others = 0;
        others += usize::from(aggs > 1);
        others += usize::from(sql.select.len() > 1);
        others += usize::from(sql.where_.flat_len() > 1);
        others += usize::from(sql.group_by.len() > 1);

        Components {
            component1: c1,
            component2: c2,
            others,
        }
    }

    /// `eval_hardness`, branch for branch.
    pub fn level(self) -> Hardness {
        let (c1, c2, co) = (self.component1, self.component2, self.others);
        if c1 <= 1 && co == 0 && c2 == 0 {
            Hardness::Easy
        } else if (co <= 2 && c1 <= 1 && c2 == 0) || (c1 <= 2 && co < 2 && c2 == 0) {
            Hardness::Medium
        } else if (co > 2 && c1 <= 2 && c2 == 0)
            || (2 < c1 && c1 <= 3 && co <= 2 && c2 == 0)
            || (c1 <= 1 && co == 0 && c2 <= 1)
        {
            Hardness::Hard
        } else {
            Hardness::Extra
        }
    }
}

/// Spider's hardness level of a SQL query, from its text.
pub fn hardness(sql: &str) -> Result<Hardness> {
    Ok(Components::of(&parse(sql)?).level())
}

/// Spider's hardness level from the official parsed form (the `sql` field of Spider's JSON).
pub fn hardness_from_parsed(sql: &Json) -> Result<Hardness> {
    Ok(Components::of(&SpiderSql::from_parsed(sql)?).level())
}

// ---------------------------------------------------------------------------------------------
// Text → structure.
// ---------------------------------------------------------------------------------------------

/// Parses one query into the structure `get_sql` builds.
///
/// Like `get_sql`, it stops where the query's grammar ends and ignores what is left: Spider's
/// train set has `ORDER BY count(*) >= 5`, which `get_sql` reads as `ORDER BY count(*)`, and its
/// shipped levels follow that reading. Hardness is not a validator; run the SQL to check it.
pub fn parse(sql: &str) -> Result<SpiderSql> {
    let mut p = Parser {
        src: sql,
        toks: lexer::significant(sql),
        pos: 0,
        depth: 0,
    };
    p.sql()
}

/// `get_sql`'s `CLAUSE_KEYWORDS`.
const CLAUSE_KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "group",
    "order",
    "limit",
    "intersect",
    "union",
    "except",
];
/// `get_sql`'s `JOIN_KEYWORDS`.
const JOIN_KEYWORDS: &[&str] = &["join", "on", "as"];
/// Words before `JOIN` that `get_sql` does not know; we read them all as a plain join.
const JOIN_MODIFIERS: &[&str] = &[
    "natural", "left", "right", "full", "outer", "inner", "cross",
];
/// Words that are never a bare column, table or alias name here.
const RESERVED: &[&str] = &[
    "select",
    "from",
    "where",
    "group",
    "order",
    "by",
    "having",
    "limit",
    "offset",
    "intersect",
    "union",
    "except",
    "all",
    "join",
    "on",
    "as",
    "using",
    "natural",
    "left",
    "right",
    "full",
    "outer",
    "inner",
    "cross",
    "and",
    "or",
    "not",
    "in",
    "like",
    "is",
    "between",
    "exists",
    "distinct",
    "asc",
    "desc",
    "null",
];

fn word_in(t: &Token<'_>, words: &[&str]) -> bool {
    t.kind == TokenKind::Word && words.iter().any(|w| t.text.eq_ignore_ascii_case(w))
}

fn is_punct(t: &Token<'_>, p: &str) -> bool {
    t.kind == TokenKind::Punct && t.text == p
}

/// A bare name: a word that is not a keyword, or a quoted identifier.
fn is_name(t: &Token<'_>) -> bool {
    (t.kind == TokenKind::Word && !word_in(t, RESERVED)) || t.kind == TokenKind::QuotedIdent
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token<'a>>,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Token<'a>> {
        self.toks.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<Token<'a>> {
        self.toks.get(self.pos + ahead).copied()
    }

    fn peek_word(&self, w: &str) -> bool {
        self.peek().is_some_and(|t| t.is_word(w))
    }

    fn peek_punct(&self, p: &str) -> bool {
        self.peek().is_some_and(|t| is_punct(&t, p))
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let hit = self.peek_word(w);
        self.pos += usize::from(hit);
        hit
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        let hit = self.peek_punct(p);
        self.pos += usize::from(hit);
        hit
    }

    fn expect_word(&mut self, w: &str, expected: &'static str) -> Result<()> {
        if self.eat_word(w) {
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn expect_punct(&mut self, p: &str, expected: &'static str) -> Result<()> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn skip_semicolons(&mut self) {
        while self.peek().is_some_and(|t| t.kind == TokenKind::Semicolon) {
            self.pos += 1;
        }
    }

    /// An error at the current token.
    fn error(&self, expected: &'static str) -> HardnessError {
        match self.peek() {
            None => HardnessError::UnexpectedEnd { expected },
            Some(t) => {
                // Tokens borrow from `src`, so the pointer difference is the byte offset.
                let offset = (t.text.as_ptr() as usize).saturating_sub(self.src.as_ptr() as usize);
                let found = match t.text.char_indices().nth(40) {
                    Some((cut, _)) => format!("{}…", &t.text[..cut]),
                    None => t.text.to_string(),
                };
                HardnessError::Unexpected {
                    offset,
                    found,
                    expected,
                }
            }
        }
    }

    /// Where `get_sql` ends a clause: the end, `)`, `;` or a clause keyword.
    fn at_clause_stop(&self) -> bool {
        match self.peek() {
            None => true,
            Some(t) => {
                t.kind == TokenKind::Semicolon || is_punct(&t, ")") || word_in(&t, CLAUSE_KEYWORDS)
            }
        }
    }

    fn sql(&mut self) -> Result<SpiderSql> {
        if self.depth >= MAX_DEPTH {
            return Err(HardnessError::TooDeep { limit: MAX_DEPTH });
        }
        self.depth += 1;
        let parsed = self.sql_body();
        self.depth -= 1;
        parsed
    }

    fn sql_body(&mut self) -> Result<SpiderSql> {
        let mut sql = SpiderSql::default();
        let block = self.eat_punct("(");
        self.expect_word("select", "SELECT")?;
        sql.distinct = self.eat_word("distinct");
        while !self.at_clause_stop() {
            let agg = match (self.peek(), self.peek_at(1)) {
                (Some(t), Some(n)) if is_punct(&n, "(") => Agg::from_word(t.text)
                    .filter(|_| t.kind == TokenKind::Word)
                    .unwrap_or_default(),
                _ => Agg::None,
            };
            self.pos += usize::from(agg != Agg::None);
            let unit = self.val_unit()?;
            sql.select.push((agg, unit));
            self.alias()?;
            if !self.eat_punct(",") {
                break;
            }
        }
        if !self.at_clause_stop() {
            return Err(self.error("`,` or FROM after a select item"));
        }
        if self.eat_word("from") {
            sql.from = self.read_from()?;
        }
        if self.eat_word("where") {
            sql.where_ = self.condition()?;
        }
        if self.eat_word("group") {
            self.expect_word("by", "BY after GROUP")?;
            while !self.at_clause_stop() {
                sql.group_by.push(self.col_unit()?);
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        if self.eat_word("having") {
            sql.having = self.condition()?;
        }
        if self.eat_word("order") {
            self.expect_word("by", "BY after ORDER")?;
            let mut order = OrderBy {
                desc: false,
                items: Vec::new(),
            };
            while !self.at_clause_stop() {
                order.items.push(self.val_unit()?);
                if self.eat_word("desc") {
                    order.desc = true;
                } else if self.eat_word("asc") {
                    order.desc = false;
                }
                if !self.eat_punct(",") {
                    break;
                }
            }
            sql.order_by = Some(order);
        }
        if self.eat_word("limit") {
            sql.limit = Some(self.integer("a number after LIMIT")?);
            if self.eat_word("offset") || self.eat_punct(",") {
                self.integer("a number after OFFSET")?;
            }
        }
        self.skip_semicolons();
        if block {
            self.expect_punct(")", "`)` closing the parenthesised query")?;
        }
        self.skip_semicolons();
        let slot = if self.eat_word("intersect") {
            Some(&mut sql.intersect)
        } else if self.eat_word("union") {
            Some(&mut sql.union)
        } else if self.eat_word("except") {
            Some(&mut sql.except)
        } else {
            None
        };
        if let Some(slot) = slot {
            self.eat_word("all");
            // The right side is a whole query, set operations included: A ∪ (B ∪ C).
            *slot = Some(Box::new(self.sql()?));
        }
        Ok(sql)
    }

    fn integer(&mut self, expected: &'static str) -> Result<i64> {
        match self.peek() {
            Some(t) if t.kind == TokenKind::Number => match t.text.parse::<i64>() {
                Ok(n) => {
                    self.pos += 1;
                    Ok(n)
                }
                Err(_) => Err(self.error(expected)),
            },
            _ => Err(self.error(expected)),
        }
    }

    /// An optional `AS name` or bare `name` after a select item, a table or a subquery.
    fn alias(&mut self) -> Result<()> {
        if self.eat_word("as") {
            match self.peek() {
                Some(t) if is_name(&t) || t.kind == TokenKind::String => self.pos += 1,
                _ => return Err(self.error("a name after AS")),
            }
        } else if self.peek().is_some_and(|t| is_name(&t)) {
            self.pos += 1;
        }
        Ok(())
    }

    fn read_from(&mut self) -> Result<FromClause> {
        let mut from = FromClause::default();
        loop {
            let mut block = false;
            if self.peek_punct("(") && self.peek_at(1).is_some_and(|t| t.is_word("select")) {
                self.pos += 1;
                let sub = self.sql()?;
                self.expect_punct(")", "`)` closing the subquery in FROM")?;
                self.alias()?;
                from.table_units.push(TableUnit::Sql(Box::new(sub)));
            } else {
                block = self.eat_punct("(");
                let name = match self.peek() {
                    Some(t) if is_name(&t) => t.text.to_string(),
                    _ => return Err(self.error("a table name or `(SELECT ...)` in FROM")),
                };
                self.pos += 1;
                self.alias()?;
                from.table_units.push(TableUnit::Table(Column::Name(name)));
            }
            if self.eat_word("on") {
                let conds = self.condition()?;
                from.conds.extend_with_and(conds);
            }
            if block {
                self.expect_punct(")", "`)` closing the parenthesised table")?;
            }
            if self.at_clause_stop() {
                return Ok(from);
            }
            if self.eat_punct(",") {
                continue;
            }
            while self.peek().is_some_and(|t| word_in(&t, JOIN_MODIFIERS)) {
                self.pos += 1;
            }
            self.expect_word("join", "JOIN, `,` or the next clause after a table in FROM")?;
        }
    }

    /// Where a condition list ends: a clause stop, `join`/`on`/`as` (both as `get_sql`), or
    /// what can follow an `ON` list in the joins we accept beyond it (`,` and `LEFT` ...).
    fn at_condition_stop(&self) -> bool {
        self.at_clause_stop()
            || self.peek().is_some_and(|t| {
                word_in(&t, JOIN_KEYWORDS) || word_in(&t, JOIN_MODIFIERS) || is_punct(&t, ",")
            })
    }

    fn condition(&mut self) -> Result<Condition> {
        let mut cond = Condition::default();
        let mut connector = None;
        loop {
            let unit = self.cond_unit()?;
            cond.push(connector, unit);
            if self.at_condition_stop() {
                return Ok(cond);
            }
            connector = if self.eat_word("and") {
                Some(Connector::And)
            } else if self.eat_word("or") {
                Some(Connector::Or)
            } else {
                return Err(self.error("AND, OR or the next clause after a condition"));
            };
        }
    }

    fn cond_unit(&mut self) -> Result<CondUnit> {
        let exists = self.peek_word("exists")
            || (self.peek_word("not") && self.peek_at(1).is_some_and(|t| t.is_word("exists")));
        if exists {
            // `get_sql` has no left operand to read here; `*` stands in for it.
            let not = self.eat_word("not");
            self.pos += 1;
            if !self.peek_punct("(") {
                return Err(self.error("`(SELECT ...)` after EXISTS"));
            }
            let val1 = Some(self.value()?);
            return Ok(CondUnit {
                not,
                op: WhereOp::Exists,
                val_unit: ValUnit {
                    op: UnitOp::None,
                    left: ColUnit {
                        agg: Agg::None,
                        col: Column::Star,
                        distinct: false,
                    },
                    right: None,
                },
                val1,
                val2: None,
            });
        }
        let val_unit = self.val_unit()?;
        let mut not = self.eat_word("not");
        let op = self.where_op()?;
        if op == WhereOp::Is && self.eat_word("not") {
            not = true;
        }
        let val1 = Some(self.value()?);
        let val2 = if op == WhereOp::Between {
            self.expect_word("and", "AND in BETWEEN ... AND ...")?;
            Some(self.value()?)
        } else {
            None
        };
        Ok(CondUnit {
            not,
            op,
            val_unit,
            val1,
            val2,
        })
    }

    fn where_op(&mut self) -> Result<WhereOp> {
        const EXPECTED: &str = "a comparison (=, !=, <>, >, <, >=, <=, IN, LIKE, IS, BETWEEN)";
        let Some(t) = self.peek() else {
            return Err(self.error(EXPECTED));
        };
        let op = match t.kind {
            TokenKind::Punct => {
                // `> =` with a space is one operator to `get_sql` (it glues `!`/`>`/`<` to `=`).
                let glued = self.peek_at(1).is_some_and(|n| is_punct(&n, "="))
                    && matches!(t.text, ">" | "<" | "!");
                let text = if glued {
                    self.pos += 1;
                    match t.text {
                        ">" => ">=",
                        "<" => "<=",
                        _ => "!=",
                    }
                } else {
                    t.text
                };
                match text {
                    "=" | "==" => WhereOp::Eq,
                    ">" => WhereOp::Gt,
                    "<" => WhereOp::Lt,
                    ">=" => WhereOp::Ge,
                    "<=" => WhereOp::Le,
                    "!=" | "<>" => WhereOp::Ne,
                    _ => return Err(self.error(EXPECTED)),
                }
            }
            TokenKind::Word => match t.text.to_ascii_lowercase().as_str() {
                "between" => WhereOp::Between,
                "in" => WhereOp::In,
                "like" => WhereOp::Like,
                "is" => WhereOp::Is,
                _ => return Err(self.error(EXPECTED)),
            },
            _ => return Err(self.error(EXPECTED)),
        };
        self.pos += 1;
        Ok(op)
    }

    /// A condition's value: a nested query, a literal, or a column unit.
    fn value(&mut self) -> Result<Val> {
        let block = self.eat_punct("(");
        let val = self.value_inner()?;
        if !block {
            return Ok(val);
        }
        let val = if self.peek_punct(",") {
            let mut list = vec![val];
            while self.eat_punct(",") {
                list.push(self.value_inner()?);
            }
            Val::List(list)
        } else {
            val
        };
        self.expect_punct(")", "`)` closing the value")?;
        Ok(val)
    }

    fn value_inner(&mut self) -> Result<Val> {
        let Some(t) = self.peek() else {
            return Err(self.error("a value"));
        };
        if t.is_word("select") {
            return Ok(Val::Sql(Box::new(self.sql()?)));
        }
        let signed = (is_punct(&t, "-") || is_punct(&t, "+"))
            && self.peek_at(1).is_some_and(|n| n.kind == TokenKind::Number);
        let literal = match t.kind {
            TokenKind::String => Some(Val::Text(t.text.to_string())),
            // Spider writes strings in double quotes; `get_sql` reads them as strings.
            TokenKind::QuotedIdent if t.text.starts_with('"') => {
                Some(Val::Text(t.text.to_string()))
            }
            TokenKind::Number => Some(number(t.text)),
            _ if signed => {
                self.pos += 1;
                let text = format!("{}{}", t.text, self.peek().map_or("", |n| n.text));
                Some(number(&text))
            }
            _ if t.is_word("null") => Some(Val::Null),
            _ => None,
        };
        if let Some(v) = literal {
            self.pos += 1;
            return Ok(v);
        }
        let col = self.col_unit()?;
        // `get_sql` reads a column value from a token slice that runs to the next `,`, `)`,
        // `and`, clause keyword or join keyword, then resumes after the slice: whatever follows
        // the column up to there (an `or` and its condition, say) is skipped. Same here.
        while let Some(t) = self.peek() {
            if is_punct(&t, ",")
                || is_punct(&t, ")")
                || t.is_word("and")
                || word_in(&t, CLAUSE_KEYWORDS)
                || word_in(&t, JOIN_KEYWORDS)
            {
                break;
            }
            self.pos += 1;
        }
        Ok(Val::Col(col))
    }

    fn val_unit(&mut self) -> Result<ValUnit> {
        let block = self.eat_punct("(");
        let left = self.col_unit()?;
        let op = match self.peek() {
            Some(t) if is_punct(&t, "-") => UnitOp::Minus,
            Some(t) if is_punct(&t, "+") => UnitOp::Plus,
            Some(t) if is_punct(&t, "*") => UnitOp::Times,
            Some(t) if is_punct(&t, "/") => UnitOp::Divide,
            _ => UnitOp::None,
        };
        let right = if op == UnitOp::None {
            None
        } else {
            self.pos += 1;
            Some(self.col_unit()?)
        };
        if block {
            self.expect_punct(")", "`)` closing the expression")?;
        }
        Ok(ValUnit { op, left, right })
    }

    fn col_unit(&mut self) -> Result<ColUnit> {
        let block = self.eat_punct("(");
        let agg = match (self.peek(), self.peek_at(1)) {
            (Some(t), Some(n)) if t.kind == TokenKind::Word && is_punct(&n, "(") => {
                Agg::from_word(t.text)
            }
            _ => None,
        };
        let unit = if let Some(agg) = agg {
            self.pos += 2;
            let distinct = self.eat_word("distinct");
            let col = self.col()?;
            self.expect_punct(")", "`)` closing the aggregate")?;
            ColUnit { agg, col, distinct }
        } else {
            let distinct = self.eat_word("distinct");
            let col = self.col()?;
            ColUnit {
                agg: Agg::None,
                col,
                distinct,
            }
        };
        if block {
            self.expect_punct(")", "`)` closing the column")?;
        }
        Ok(unit)
    }

    fn col(&mut self) -> Result<Column> {
        let Some(t) = self.peek() else {
            return Err(self.error("a column"));
        };
        let col = if is_punct(&t, "*") {
            Column::Star
        } else if is_name(&t) {
            let mut name = t.text.to_string();
            let qualified = self.peek_at(1).is_some_and(|d| is_punct(&d, "."))
                && self
                    .peek_at(2)
                    .is_some_and(|c| is_name(&c) || is_punct(&c, "*") || c.kind == TokenKind::Word);
            if qualified {
                self.pos += 2;
                name.push('.');
                name.push_str(self.peek().map_or("", |c| c.text));
            }
            Column::Name(name)
        } else if matches!(t.kind, TokenKind::Number | TokenKind::String) || t.is_word("null") {
            Column::Literal(t.text.to_string())
        } else {
            return Err(self.error("a column"));
        };
        self.pos += 1;
        Ok(col)
    }
}

fn number(text: &str) -> Val {
    match text.parse::<f64>() {
        Ok(n) => Val::Number(n),
        Err(_) => Val::Text(text.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Spider's parsed JSON → structure.
// ---------------------------------------------------------------------------------------------

impl SpiderSql {
    /// Reads Spider's parsed form (`dev.json`'s `sql` field) into the same structure the text
    /// parser builds, so both paths share the rules.
    pub fn from_parsed(sql: &Json) -> Result<SpiderSql> {
        read_sql(sql, "sql", 0)
    }
}

fn bad(path: &str, problem: impl Into<String>) -> HardnessError {
    HardnessError::BadParsed {
        path: path.to_string(),
        problem: problem.into(),
    }
}

fn field<'j>(obj: &'j Json, key: &str, path: &str) -> Result<&'j Json> {
    obj.get(key)
        .ok_or_else(|| bad(path, format!("missing field `{key}`")))
}

fn array<'j>(v: &'j Json, path: &str) -> Result<&'j [Json]> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| bad(path, format!("expected a list, found {v}")))
}

/// A fixed-length list (a Python tuple).
fn tuple<'j, const N: usize>(v: &'j Json, path: &str) -> Result<&'j [Json; N]> {
    array(v, path)?
        .try_into()
        .map_err(|_| bad(path, format!("expected a list of {N} items, found {v}")))
}

fn id(v: &Json, path: &str) -> Result<u64> {
    v.as_u64().ok_or_else(|| {
        bad(
            path,
            format!("expected a non-negative integer id, found {v}"),
        )
    })
}

fn flag(v: &Json, path: &str) -> Result<bool> {
    // Python's truthiness of what Spider stores there: a bool (or 0/1 in hand-made files).
    match v {
        Json::Bool(b) => Ok(*b),
        Json::Number(n) if n.as_u64().is_some() => Ok(n.as_u64() != Some(0)),
        _ => Err(bad(path, format!("expected true or false, found {v}"))),
    }
}

fn optional_sql(v: &Json, path: &str, depth: usize) -> Result<Option<Box<SpiderSql>>> {
    match v {
        Json::Null => Ok(None),
        _ => Ok(Some(Box::new(read_sql(v, path, depth + 1)?))),
    }
}

fn read_sql(v: &Json, path: &str, depth: usize) -> Result<SpiderSql> {
    if depth >= MAX_DEPTH {
        return Err(HardnessError::TooDeep { limit: MAX_DEPTH });
    }
    if !v.is_object() {
        return Err(bad(path, format!("expected a query object, found {v}")));
    }
    let from_path = format!("{path}.from");
    let from = field(v, "from", path)?;
    let units_path = format!("{from_path}.table_units");
    let table_units = array(field(from, "table_units", &from_path)?, &units_path)?
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let p = format!("{units_path}[{i}]");
            let [kind, what] = tuple::<2>(u, &p)?;
            match kind.as_str() {
                Some("table_unit") => Ok(TableUnit::Table(Column::Id(id(what, &p)?))),
                Some("sql") => Ok(TableUnit::Sql(Box::new(read_sql(what, &p, depth + 1)?))),
                _ => Err(bad(&p, format!("unknown table unit type {kind}"))),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let conds_path = format!("{from_path}.conds");
    let conds = read_condition(field(from, "conds", &from_path)?, &conds_path, depth)?;

    let select_path = format!("{path}.select");
    let [distinct, items] = tuple::<2>(field(v, "select", path)?, &select_path)?;
    let select = array(items, &select_path)?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let p = format!("{select_path}[1][{i}]");
            let [agg, unit] = tuple::<2>(item, &p)?;
            Ok((read_agg(agg, &p)?, read_val_unit(unit, &p)?))
        })
        .collect::<Result<Vec<_>>>()?;

    let group_path = format!("{path}.groupBy");
    let group_by = array(field(v, "groupBy", path)?, &group_path)?
        .iter()
        .enumerate()
        .map(|(i, c)| read_col_unit(c, &format!("{group_path}[{i}]")))
        .collect::<Result<Vec<_>>>()?;

    let order_path = format!("{path}.orderBy");
    let order = array(field(v, "orderBy", path)?, &order_path)?;
    let order_by = if order.is_empty() {
        None
    } else {
        let [dir, items] = tuple::<2>(field(v, "orderBy", path)?, &order_path)?;
        let desc = match dir.as_str() {
            Some("desc") => true,
            Some("asc") => false,
            _ => {
                return Err(bad(
                    &order_path,
                    format!("expected \"asc\" or \"desc\", found {dir}"),
                ));
            }
        };
        let items = array(items, &order_path)?
            .iter()
            .enumerate()
            .map(|(i, u)| read_val_unit(u, &format!("{order_path}[1][{i}]")))
            .collect::<Result<Vec<_>>>()?;
        Some(OrderBy { desc, items })
    };

    let limit = match field(v, "limit", path)? {
        Json::Null => None,
        l => Some(l.as_i64().ok_or_else(|| {
            bad(
                &format!("{path}.limit"),
                format!("expected an integer, found {l}"),
            )
        })?),
    };

    Ok(SpiderSql {
        distinct: flag(distinct, &select_path)?,
        select,
        from: FromClause { table_units, conds },
        where_: read_condition(field(v, "where", path)?, &format!("{path}.where"), depth)?,
        group_by,
        having: read_condition(field(v, "having", path)?, &format!("{path}.having"), depth)?,
        order_by,
        limit,
        intersect: optional_sql(
            field(v, "intersect", path)?,
            &format!("{path}.intersect"),
            depth,
        )?,
        union: optional_sql(field(v, "union", path)?, &format!("{path}.union"), depth)?,
        except: optional_sql(field(v, "except", path)?, &format!("{path}.except"), depth)?,
    })
}

fn read_agg(v: &Json, path: &str) -> Result<Agg> {
    let n = id(v, path)?;
    Agg::from_id(n).ok_or_else(|| bad(path, format!("unknown aggregate id {n} (0 to 5)")))
}

fn read_col_unit(v: &Json, path: &str) -> Result<ColUnit> {
    let [agg, col, distinct] = tuple::<3>(v, path)?;
    let col = match col {
        // Spider's schemas number `*` as column 0.
        c if c.as_u64() == Some(0) => Column::Star,
        c if c.is_u64() => Column::Id(id(c, path)?),
        // Older Spider files name columns (`"__singer.name__"`) instead of numbering them.
        Json::String(s) if s == "__all__" => Column::Star,
        Json::String(s) => Column::Name(s.clone()),
        c => return Err(bad(path, format!("expected a column id, found {c}"))),
    };
    Ok(ColUnit {
        agg: read_agg(agg, path)?,
        col,
        distinct: flag(distinct, path)?,
    })
}

fn read_val_unit(v: &Json, path: &str) -> Result<ValUnit> {
    let [op, left, right] = tuple::<3>(v, path)?;
    let n = id(op, path)?;
    Ok(ValUnit {
        op: UnitOp::from_id(n)
            .ok_or_else(|| bad(path, format!("unknown unit op id {n} (0 to 4)")))?,
        left: read_col_unit(left, path)?,
        right: match right {
            Json::Null => None,
            r => Some(read_col_unit(r, path)?),
        },
    })
}

fn read_val(v: &Json, path: &str, depth: usize) -> Result<Option<Val>> {
    Ok(Some(match v {
        Json::Null => return Ok(None),
        Json::Number(n) => Val::Number(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Val::Text(s.clone()),
        Json::Object(_) => Val::Sql(Box::new(read_sql(v, path, depth + 1)?)),
        Json::Array(_) => Val::Col(read_col_unit(v, path)?),
        Json::Bool(_) => return Err(bad(path, format!("expected a value, found {v}"))),
    }))
}

fn read_condition(v: &Json, path: &str, depth: usize) -> Result<Condition> {
    let items = array(v, path)?;
    let mut cond = Condition::default();
    let mut connector = None;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if i % 2 == 1 {
            connector = Some(match item.as_str() {
                Some("and") => Connector::And,
                Some("or") => Connector::Or,
                _ => return Err(bad(&p, format!("expected \"and\" or \"or\", found {item}"))),
            });
            continue;
        }
        let [not, op, val_unit, val1, val2] = tuple::<5>(item, &p)?;
        let n = id(op, &p)?;
        cond.push(
            connector.take(),
            CondUnit {
                not: flag(not, &p)?,
                op: WhereOp::from_id(n)
                    .ok_or_else(|| bad(&p, format!("unknown condition op id {n} (0 to 11)")))?,
                val_unit: read_val_unit(val_unit, &p)?,
                val1: read_val(val1, &p, depth)?,
                val2: read_val(val2, &p, depth)?,
            },
        );
    }
    if items.len() % 2 == 0 && !items.is_empty() {
        return Err(bad(path, "the condition list ends with a connector"));
    }
    Ok(cond)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts(sql: &str) -> (usize, usize, usize) {
        let c = Components::of(&parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}")));
        (c.component1, c.component2, c.others)
    }

    fn level(sql: &str) -> Hardness {
        hardness(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    #[test]
    fn count_star_is_a_select_level_aggregate_and_easy() {
        let sql = parse("SELECT count(*) FROM singer").unwrap();
        assert_eq!(sql.select.len(), 1);
        assert_eq!(sql.select[0].0, Agg::Count);
        assert_eq!(sql.select[0].1.left.agg, Agg::None);
        assert_eq!(sql.select[0].1.left.col, Column::Star);
        assert_eq!(parts("SELECT count(*) FROM singer"), (0, 0, 0));
        assert_eq!(level("SELECT count(*) FROM singer"), Hardness::Easy);
    }

    #[test]
    fn aggregates_outside_select_live_on_the_column_unit() {
        let sql = parse("SELECT a FROM t GROUP BY a HAVING count(DISTINCT b) > 1").unwrap();
        let having = &sql.having.units()[0];
        assert_eq!(having.val_unit.left.agg, Agg::Count);
        assert!(having.val_unit.left.distinct);
        // ... where `count_agg(having)` does not look (it reads not_op), so no aggregate counts.
        assert_eq!(
            parts("SELECT a FROM t GROUP BY a HAVING count(*) > 1"),
            (1, 0, 0)
        );
        assert_eq!(
            level("SELECT a FROM t GROUP BY a HAVING count(*) > 1"),
            Hardness::Easy
        );
    }

    #[test]
    fn several_select_items_count_as_other() {
        assert_eq!(parts("SELECT name, age FROM singer"), (0, 0, 1));
        assert_eq!(level("SELECT name, age FROM singer"), Hardness::Medium);
    }

    #[test]
    fn where_counts_once_and_two_conditions_count_as_other() {
        assert_eq!(parts("SELECT name FROM singer WHERE age > 20"), (1, 0, 0));
        assert_eq!(
            level("SELECT name FROM singer WHERE age > 20"),
            Hardness::Easy
        );
        let two = "SELECT name FROM singer WHERE age > 20 AND country = 'France'";
        assert_eq!(parse(two).unwrap().where_.flat_len(), 3);
        assert_eq!(parts(two), (1, 0, 1));
        assert_eq!(level(two), Hardness::Medium);
    }

    #[test]
    fn or_and_like_count_in_component1() {
        let or = "SELECT name FROM singer WHERE age > 20 OR country = 'France'";
        assert_eq!(parts(or), (2, 0, 1));
        let like = "SELECT name FROM singer WHERE name LIKE '%Smith%'";
        assert_eq!(parts(like), (2, 0, 0));
        assert_eq!(level(like), Hardness::Medium);
        // The same query with `=` is one component lighter, and easy.
        assert_eq!(
            level("SELECT name FROM singer WHERE name = 'Smith'"),
            Hardness::Easy
        );
        let not_like = "SELECT name FROM singer WHERE name NOT LIKE '%Smith%'";
        let c = parse(not_like).unwrap();
        assert!(c.where_.units()[0].not);
        assert_eq!(c.where_.units()[0].op, WhereOp::Like);
    }

    #[test]
    fn every_extra_table_counts_as_a_join() {
        let one = "SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.id";
        assert_eq!(parts(one), (1, 0, 0));
        assert_eq!(level(one), Hardness::Easy);
        let two = "SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.id \
                   JOIN c AS T3 ON T2.x = T3.x";
        assert_eq!(parts(two), (2, 0, 0));
        assert_eq!(level(two), Hardness::Medium);
        // All ON lists form one condition, joined with `and`.
        let from = parse(two).unwrap().from;
        assert_eq!(from.table_units.len(), 3);
        assert_eq!(from.conds.units().len(), 2);
        assert_eq!(from.conds.connectors(), &[Connector::And]);
    }

    #[test]
    fn two_joins_group_order_limit_is_extra() {
        let sql = "SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.id \
                   JOIN c AS T3 ON T2.x = T3.x GROUP BY T1.name ORDER BY count(*) DESC LIMIT 1";
        // group + order + limit + 2 joins; one aggregate (order by) is not "several".
        assert_eq!(parts(sql), (5, 0, 0));
        assert_eq!(level(sql), Hardness::Extra);
        let parsed = parse(sql).unwrap();
        assert_eq!(parsed.limit, Some(1));
        assert!(parsed.order_by.as_ref().is_some_and(|o| o.desc));
    }

    #[test]
    fn three_components_without_others_is_hard() {
        let sql = "SELECT name FROM singer WHERE age > 20 GROUP BY country ORDER BY name";
        assert_eq!(parts(sql), (3, 0, 0));
        assert_eq!(level(sql), Hardness::Hard);
    }

    #[test]
    fn many_others_with_few_components_is_hard() {
        let sql = "SELECT name, count(*), max(age) FROM singer WHERE age > 20 AND x = 1 \
                   GROUP BY a, b";
        // aggregates (2), select items (3), where conditions (2), group columns (2): four others.
        assert_eq!(parts(sql), (2, 0, 4));
        assert_eq!(level(sql), Hardness::Hard);
    }

    #[test]
    fn nested_queries_count_in_component2() {
        let sql = "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)";
        assert_eq!(parts(sql), (1, 1, 0));
        assert_eq!(level(sql), Hardness::Hard);
        let with_other = "SELECT name, age FROM singer WHERE age > (SELECT avg(age) FROM singer)";
        assert_eq!(level(with_other), Hardness::Extra);
        let two = "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer) \
                   AND id IN (SELECT singer_id FROM concert)";
        assert_eq!(parts(two), (1, 2, 1));
    }

    #[test]
    fn between_keeps_its_second_value_in_val2() {
        let plain = parse("SELECT a FROM t WHERE b BETWEEN 1 AND 5").unwrap();
        let unit = &plain.where_.units()[0];
        assert_eq!(unit.op, WhereOp::Between);
        assert_eq!(unit.val1, Some(Val::Number(1.0)));
        assert_eq!(unit.val2, Some(Val::Number(5.0)));
        // BETWEEN's AND is not a connector.
        assert_eq!(plain.where_.flat_len(), 1);
        let nested = "SELECT a FROM t WHERE b BETWEEN 1 AND (SELECT max(b) FROM u)";
        assert!(matches!(
            parse(nested).unwrap().where_.units()[0].val2,
            Some(Val::Sql(_))
        ));
        assert_eq!(parts(nested), (1, 1, 0));
    }

    #[test]
    fn set_operations_nest_to_the_right() {
        let sql = "SELECT a FROM t UNION SELECT a FROM u UNION SELECT a FROM v";
        let parsed = parse(sql).unwrap();
        let right = parsed.union.as_ref().expect("first union");
        assert!(
            right.union.is_some(),
            "B UNION C is the right side of A's union"
        );
        assert!(parsed.intersect.is_none() && parsed.except.is_none());
        assert_eq!(parts(sql), (0, 1, 0));
        assert_eq!(level(sql), Hardness::Hard);
        let except = "SELECT a FROM t WHERE b = 1 EXCEPT SELECT a FROM u WHERE b = 2";
        assert_eq!(parts(except), (1, 1, 0));
        assert!(parse(except).unwrap().except.is_some());
    }

    #[test]
    fn a_subquery_in_from_is_a_table_unit_not_a_nested_query() {
        let sql = "SELECT count(*) FROM (SELECT * FROM endowment WHERE amount > 8.5 \
                   GROUP BY school_id HAVING count(*) > 1)";
        let parsed = parse(sql).unwrap();
        assert!(matches!(parsed.from.table_units[..], [TableUnit::Sql(_)]));
        assert_eq!(parts(sql), (0, 0, 0));
        assert_eq!(level(sql), Hardness::Easy);
    }

    #[test]
    fn negated_where_conditions_count_as_aggregates() {
        // Official quirk: `has_agg(cond)` reads not_op.
        let negated = "SELECT count(*) FROM t WHERE a NOT IN (SELECT a FROM u)";
        let plain = "SELECT count(*) FROM t WHERE a IN (SELECT a FROM u)";
        assert_eq!(parts(negated), (1, 1, 1));
        assert_eq!(parts(plain), (1, 1, 0));
        assert_eq!(level(negated), Hardness::Extra);
        assert_eq!(level(plain), Hardness::Hard);
    }

    #[test]
    fn having_connectors_count_as_aggregates() {
        // Official quirk: `count_agg(having)` walks the connectors too, and each counts.
        let one = "SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1";
        let two = "SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1 AND sum(b) > 2";
        assert_eq!(parts(one), (1, 0, 1));
        assert_eq!(parts(two), (1, 0, 2));
        assert_eq!(level(two), Hardness::Medium);
    }

    #[test]
    fn order_by_aggregates_count_on_both_sides_of_an_expression() {
        assert_eq!(parts("SELECT a FROM t ORDER BY max(b)"), (1, 0, 0));
        assert_eq!(parts("SELECT a FROM t ORDER BY max(b) - min(b)"), (1, 0, 1));
        assert_eq!(
            parts("SELECT a FROM t ORDER BY max(b) DESC, min(b)"),
            (1, 0, 1)
        );
    }

    #[test]
    fn group_by_several_columns_counts_as_other() {
        assert_eq!(parts("SELECT a FROM t GROUP BY a"), (1, 0, 0));
        assert_eq!(parts("SELECT a FROM t GROUP BY a, b"), (1, 0, 1));
    }

    #[test]
    fn a_column_value_swallows_the_rest_of_the_condition_like_get_sql() {
        // `get_sql` skips from a column value to the next `and`/`,`/`)`/clause keyword, so the
        // OR after `T2.b` and its condition are lost; written the other way round they count.
        let swallowed = "SELECT T1.a FROM x AS T1 JOIN y AS T2 ON T1.id = T2.id \
                         WHERE T1.a = T2.b OR T1.c = 1";
        let kept = "SELECT T1.a FROM x AS T1 JOIN y AS T2 ON T1.id = T2.id \
                    WHERE T1.c = 1 OR T1.a = T2.b";
        assert_eq!(parse(swallowed).unwrap().where_.units().len(), 1);
        assert_eq!(parts(swallowed), (2, 0, 0));
        assert_eq!(parts(kept), (3, 0, 1));
    }

    #[test]
    fn forms_beyond_get_sql_are_read_sensibly() {
        // Comma and LEFT joins are joins; aliases without AS are aliases.
        assert_eq!(
            parts("SELECT a FROM t1 x, t2 y WHERE x.id = y.id"),
            (2, 0, 0)
        );
        assert_eq!(
            parts("SELECT a FROM t1 LEFT OUTER JOIN t2 ON t1.id = t2.id"),
            (1, 0, 0)
        );
        assert_eq!(parts("SELECT count(*) AS n FROM t"), (0, 0, 0));
        let ne = parse("SELECT a FROM t WHERE b <> 1").unwrap();
        assert_eq!(ne.where_.units()[0].op, WhereOp::Ne);
        let is_not = parse("SELECT a FROM t WHERE b IS NOT NULL").unwrap();
        assert!(is_not.where_.units()[0].not);
        assert_eq!(is_not.where_.units()[0].op, WhereOp::Is);
        let list = parse("SELECT a FROM t WHERE b IN (1, -2, 'x')").unwrap();
        assert!(matches!(&list.where_.units()[0].val1, Some(Val::List(v)) if v.len() == 3));
        assert_eq!(
            parts("SELECT a FROM t WHERE NOT EXISTS (SELECT * FROM u)"),
            (1, 1, 0)
        );
        assert_eq!(
            parts("SELECT a FROM t UNION ALL SELECT a FROM u"),
            (0, 1, 0)
        );
        assert_eq!(
            parse("SELECT a FROM t LIMIT 3 OFFSET 6;").unwrap().limit,
            Some(3)
        );
    }

    #[test]
    fn errors_say_where_and_what() {
        match parse("SELEC name FROM t") {
            Err(HardnessError::Unexpected { offset, found, .. }) => {
                assert_eq!((offset, found.as_str()), (0, "SELEC"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("SELECT name FROM t WHERE"),
            Err(HardnessError::UnexpectedEnd { .. })
        ));
        let stray = parse("SELECT a FROM t WHERE b = 1 c").unwrap_err();
        assert!(matches!(
            stray,
            HardnessError::Unexpected { offset: 28, .. }
        ));
        assert!(stray.to_string().contains("byte 28"), "{stray}");
        assert!(stray.to_string().contains("AND, OR"), "{stray}");
        assert!(matches!(
            parse("SELECT a FROM t WHERE b LIKE"),
            Err(HardnessError::UnexpectedEnd { .. })
        ));
    }

    #[test]
    fn what_follows_a_complete_query_is_ignored_like_get_sql() {
        // From Spider's train gold: `get_sql` ends ORDER BY after `count(*)`.
        let spider = "SELECT T2.name FROM Certificate AS T1 JOIN Aircraft AS T2 ON T2.aid = T1.aid \
                      WHERE T2.distance > 5000 GROUP BY T1.aid ORDER BY count(*) >= 5";
        let cut = "SELECT T2.name FROM Certificate AS T1 JOIN Aircraft AS T2 ON T2.aid = T1.aid \
                   WHERE T2.distance > 5000 GROUP BY T1.aid ORDER BY count(*)";
        assert_eq!(parse(spider), parse(cut));
        assert_eq!(parts(spider), (4, 0, 0));
        assert_eq!(level(spider), Hardness::Extra);
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let depth = MAX_DEPTH + 5;
        let sql = format!(
            "{}SELECT a FROM t{}",
            "SELECT a FROM t WHERE a IN (".repeat(depth),
            ")".repeat(depth)
        );
        assert_eq!(
            parse(&sql),
            Err(HardnessError::TooDeep { limit: MAX_DEPTH })
        );
        let ok = format!(
            "{}SELECT a FROM t{}",
            "SELECT a FROM t WHERE a IN (".repeat(10),
            ")".repeat(10)
        );
        assert_eq!(parts(&ok), (1, 1, 0));
    }

    #[test]
    fn parsed_form_uses_the_same_rules() {
        let easy = serde_json::json!({"from": {"table_units": [["table_unit", 1]], "conds": []},
            "select": [false, [[3, [0, [0, 0, false], null]]]], "where": [], "groupBy": [],
            "having": [], "orderBy": [], "limit": null, "intersect": null, "union": null,
            "except": null});
        assert_eq!(hardness_from_parsed(&easy), Ok(Hardness::Easy));
        assert_eq!(
            SpiderSql::from_parsed(&easy).map(|s| Components::of(&s)),
            parse("SELECT count(*) FROM singer").map(|s| Components::of(&s))
        );
        // A where with an OR, a LIKE and a nested query in val1.
        let mut nested = easy.clone();
        nested["where"] = serde_json::json!([
            [false, 9, [0, [0, 2, false], null], "\"%a%\"", null],
            "or",
            [true, 8, [0, [0, 3, false], null], easy.clone(), null]
        ]);
        let c = Components::of(&SpiderSql::from_parsed(&nested).unwrap());
        // where + or + like; one nested; aggregates 2 (count + NOT) and where length 3.
        assert_eq!((c.component1, c.component2, c.others), (3, 1, 2));
        assert_eq!(c.level(), Hardness::Extra);
    }

    #[test]
    fn malformed_parsed_form_names_the_place() {
        let mut sql = serde_json::json!({"from": {"table_units": [], "conds": []},
            "select": [false, []], "where": [[false, 2, [0, [0, 1, false], null], 1, null], "and"],
            "groupBy": [], "having": [], "orderBy": [], "limit": null, "intersect": null,
            "union": null, "except": null});
        match hardness_from_parsed(&sql) {
            Err(HardnessError::BadParsed { path, .. }) => assert_eq!(path, "sql.where"),
            other => panic!("{other:?}"),
        }
        sql["where"] = serde_json::json!([]);
        sql["orderBy"] = serde_json::json!(["sideways", []]);
        match hardness_from_parsed(&sql) {
            Err(HardnessError::BadParsed { path, problem }) => {
                assert_eq!(path, "sql.orderBy");
                assert!(problem.contains("sideways"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        sql["orderBy"] = serde_json::json!([]);
        sql.as_object_mut().unwrap().remove("limit");
        assert!(
            hardness_from_parsed(&sql)
                .unwrap_err()
                .to_string()
                .contains("`limit`")
        );
    }

    #[test]
    fn serde_names_are_spiders() {
        let names: Vec<String> = Hardness::ALL
            .iter()
            .map(|h| serde_json::to_string(h).unwrap())
            .collect();
        assert_eq!(names, ["\"easy\"", "\"medium\"", "\"hard\"", "\"extra\""]);
        assert_eq!(Hardness::Extra.to_string(), "extra");
    }

    const SOUP: &[&str] = &[
        "SELECT",
        "FROM",
        "WHERE",
        "GROUP",
        "BY",
        "ORDER",
        "HAVING",
        "LIMIT",
        "OFFSET",
        "INTERSECT",
        "UNION",
        "EXCEPT",
        "ALL",
        "JOIN",
        "LEFT",
        "ON",
        "AS",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "IS",
        "NULL",
        "BETWEEN",
        "EXISTS",
        "DISTINCT",
        "ASC",
        "DESC",
        "count",
        "max",
        "avg",
        "(",
        ")",
        ",",
        ".",
        "*",
        "-",
        "+",
        "/",
        "=",
        ">",
        "<",
        ">=",
        "!=",
        "<>",
        ";",
        "t",
        "T1",
        "a",
        "1",
        "2.5",
        "'x'",
        "\"y\"",
        "`z`",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any sequence of SQL tokens gives a level or an error, never a panic.
        #[test]
        fn token_soup_never_panics(idx in proptest::collection::vec(0..SOUP.len(), 0..40)) {
            let sql: Vec<&str> = idx.iter().map(|&i| SOUP[i]).collect();
            let _ = hardness(&sql.join(" "));
        }

        /// Soups after a valid start reach deeper into the parser.
        #[test]
        fn soup_after_a_valid_prefix_never_panics(
            idx in proptest::collection::vec(0..SOUP.len(), 0..30),
            prefix in 0usize..3,
        ) {
            let start = ["SELECT a FROM t WHERE", "SELECT count(*) FROM t AS T1 JOIN", "SELECT"];
            let sql: Vec<&str> = idx.iter().map(|&i| SOUP[i]).collect();
            let _ = hardness(&format!("{} {}", start[prefix], sql.join(" ")));
        }

        /// Arbitrary text (including non-ASCII) never panics either.
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,60}") {
            let _ = hardness(&s);
        }
    }
}
