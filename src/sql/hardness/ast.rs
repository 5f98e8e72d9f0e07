//! The structure `get_sql` builds: the one both readers (`parse.rs`, `json.rs`) produce and
//! the rules (`rules.rs`) count.

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
    pub(super) fn from_word(w: &str) -> Option<Agg> {
        Some(match w.to_ascii_lowercase().as_str() {
            "max" => Agg::Max,
            "min" => Agg::Min,
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "avg" => Agg::Avg,
            _ => return None,
        })
    }

    pub(super) fn from_id(id: u64) -> Option<Agg> {
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
    pub(super) fn from_id(id: u64) -> Option<UnitOp> {
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
    pub(super) fn from_id(id: u64) -> Option<WhereOp> {
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

    pub(super) fn push(&mut self, connector: Option<Connector>, unit: CondUnit) {
        if !self.units.is_empty() {
            self.connectors.push(connector.unwrap_or(Connector::And));
        }
        self.units.push(unit);
    }

    /// Appends `other` after an `and`, as `get_sql` does with the `ON` lists of successive joins.
    pub(super) fn extend_with_and(&mut self, other: Condition) {
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
