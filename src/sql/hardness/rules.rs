//! The official rules: the counts `eval_hardness` combines and the four levels they give.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ast::{Agg, Connector, SpiderSql, Val, WhereOp};

/// Spider's four hardness levels, easiest first.
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
