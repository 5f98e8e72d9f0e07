//! The tables and columns a SQL query uses, resolved against a database: the labels the learned
//! scorer trains on and what recall is measured against.
//!
//! A lexer-level resolver, not a parser: table names follow FROM / JOIN (and commas inside a
//! FROM list), `x AS T1` and `x T1` define aliases, `T1.col` resolves through the alias, and a
//! bare word that names a column of a table the query reads is that column. Aliases are global to
//! the query, which is right for Spider's `T1`…`Tn` style.

use std::collections::{BTreeMap, BTreeSet};

use super::introspect::DbInfo;
use crate::sql::lexer::{TokenKind, significant};

/// What a query uses: table indices and `(table, column)` pairs, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub tables: BTreeSet<usize>,
    pub columns: BTreeSet<(usize, usize)>,
}

fn unquote(text: &str) -> &str {
    let b = text.as_bytes();
    if b.len() >= 2
        && matches!(
            (b[0], b[b.len() - 1]),
            (b'"', b'"') | (b'`', b'`') | (b'[', b']')
        )
    {
        &text[1..text.len() - 1]
    } else {
        text
    }
}

const NOT_ALIAS: &[&str] = &[
    "where",
    "join",
    "on",
    "group",
    "order",
    "limit",
    "union",
    "intersect",
    "except",
    "inner",
    "left",
    "right",
    "outer",
    "cross",
    "natural",
    "having",
    "as",
    "select",
    "from",
    "and",
    "or",
];

/// Resolves the tables and columns `sql` uses in `db`.
pub fn usage(sql: &str, db: &DbInfo) -> Usage {
    let toks = significant(sql);
    let ident = |i: usize| -> Option<&str> {
        let t = toks.get(i)?;
        matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent).then(|| unquote(t.text))
    };
    let mut usage = Usage::default();
    let mut aliases: BTreeMap<String, usize> = BTreeMap::new();
    // Pass 1: tables and aliases.
    let mut in_from = false;
    for i in 0..toks.len() {
        let t = &toks[i];
        if t.is_word("from") || t.is_word("join") {
            in_from = true;
        } else if t.kind == TokenKind::Word
            && !t.is_word("as")
            && NOT_ALIAS.contains(&t.text.to_lowercase().as_str())
        {
            in_from = false;
        }
        let after_table_keyword = i > 0
            && (toks[i - 1].is_word("from")
                || toks[i - 1].is_word("join")
                || (in_from && toks[i - 1].text == ","));
        if !after_table_keyword {
            continue;
        }
        let Some(name) = ident(i) else { continue };
        let Some(ti) = db.table_index(name) else {
            continue;
        };
        usage.tables.insert(ti);
        aliases.insert(name.to_lowercase(), ti);
        let alias_at = if toks.get(i + 1).is_some_and(|t| t.is_word("as")) {
            i + 2
        } else {
            i + 1
        };
        if let Some(alias) = ident(alias_at)
            && !NOT_ALIAS.contains(&alias.to_lowercase().as_str())
        {
            aliases.insert(alias.to_lowercase(), ti);
        }
    }
    // Pass 2: columns.
    for i in 0..toks.len() {
        let Some(name) = ident(i) else { continue };
        let dotted_before = i >= 2 && toks[i - 1].text == ".";
        if dotted_before {
            if let Some(&ti) = ident(i - 2).and_then(|q| aliases.get(&q.to_lowercase()))
                && let Some(ci) = db.column_index(ti, name)
            {
                usage.columns.insert((ti, ci));
            }
            continue;
        }
        if toks.get(i + 1).is_some_and(|t| t.text == ".") {
            continue; // a qualifier, handled with the column after it
        }
        // A bare column: the first table of the query (in schema order) that has it.
        if let Some((ti, ci)) = usage
            .tables
            .iter()
            .find_map(|&ti| db.column_index(ti, name).map(|ci| (ti, ci)))
        {
            usage.columns.insert((ti, ci));
        }
    }
    usage
}

/// The string literals of `sql`, unquoted, with LIKE's `%` stripped: the values a question names.
pub fn string_literals(sql: &str) -> Vec<String> {
    significant(sql)
        .iter()
        .filter(|t| {
            t.kind == TokenKind::String
                || (t.kind == TokenKind::QuotedIdent && t.text.starts_with('"'))
        })
        .map(|t| {
            t.text[1..t.text.len().saturating_sub(1).max(1)]
                .replace("''", "'")
                .trim_matches('%')
                .to_string()
        })
        .filter(|s| !s.trim().is_empty())
        .collect()
}
