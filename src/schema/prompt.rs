//! The prompt text: the schema first (CREATE TABLE statements with keys, types and comments),
//! then the matched values and the evidence, and the question last, so that prompts over the same
//! database and selection share a prefix (and a KV cache).
//!
//! Deterministic: the same inputs give the same bytes (tables and columns in schema order).

use std::fmt::Write;

use super::filter::Selection;
use super::introspect::{Column, DbInfo, Table};
use super::text::truncate_chars;
use super::values::ValueMatch;

/// A question longer than this is cut (with `…`): no real question is, and the prompt must stay
/// bounded whatever arrives.
pub const MAX_QUESTION_CHARS: usize = 2_000;

/// What the schema part says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Explicit schema integration: comments (natural names, descriptions, representative
    /// values), row counts, matched values, evidence.
    Explicit,
    /// The ablation: plain CREATE TABLE statements (names, types, keys) of the whole schema.
    Plain,
}

/// A prompt and where its per-database prefix ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub text: String,
    /// `text[..schema_len]` is the schema part, shared by every question with the same selection.
    pub schema_len: usize,
}

/// Level of detail, lowered step by step to meet a token budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Detail {
    Full,
    NoValues,
    Bare,
}

fn sql_literal(v: &str) -> String {
    if v.parse::<f64>().is_ok() {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

/// Names that need quoting in SQL are quoted the way SQLite reads them.
fn ident(name: &str) -> String {
    let plain = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// One line of comment text: no newlines, no `*/` that would end a comment early.
fn clean(s: &str) -> String {
    s.replace(['\n', '\r', '\t'], " ").replace("*/", "* /")
}

fn column_comment(c: &Column, detail: Detail) -> String {
    let mut parts = Vec::new();
    if detail < Detail::Bare {
        if !c.natural.eq_ignore_ascii_case(&c.name.replace('_', " ")) {
            parts.push(clean(&c.natural));
        }
        if let Some(d) = &c.description {
            parts.push(clean(d));
        }
    }
    if detail == Detail::Full && !c.values.is_empty() {
        let vals: Vec<String> = c.values.iter().map(|v| clean(&sql_literal(v))).collect();
        parts.push(format!("e.g. {}", vals.join(", ")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" -- {}", parts.join("; "))
    }
}

/// The first `k` rows of a kept table, its kept columns only, as the comment block of
/// Rajkumar et al.'s and DAIL-SQL's "CREATE TABLE + SELECT rows" representation. Empty for an
/// empty table.
fn example_rows_text(t: &Table, columns: &[usize], k: usize) -> String {
    let rows = &t.examples[..k.min(t.examples.len())];
    if rows.is_empty() || columns.is_empty() {
        return String::new();
    }
    let projection = if columns.len() == t.columns.len() {
        "*".to_string()
    } else {
        let names: Vec<String> = columns.iter().map(|&c| ident(&t.columns[c].name)).collect();
        names.join(", ")
    };
    let mut out = String::new();
    let noun = if rows.len() == 1 { "row" } else { "rows" };
    let _ = writeln!(out, "/*\n{} example {noun}:", rows.len());
    let _ = writeln!(
        out,
        "SELECT {projection} FROM {} LIMIT {};",
        ident(&t.name),
        rows.len()
    );
    let header: Vec<String> = columns.iter().map(|&c| clean(&t.columns[c].name)).collect();
    let _ = writeln!(out, "{}", header.join("\t"));
    for row in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|&c| match row.get(c).and_then(|v| v.as_deref()) {
                Some(v) => clean(v),
                None => "NULL".to_string(),
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("\t"));
    }
    out.push_str("*/\n");
    out
}

fn schema_text(
    db: &DbInfo,
    sel: &Selection,
    style: Style,
    detail: Detail,
    example_rows: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "-- Database: {}", clean(&db.db_id));
    for kept in &sel.tables {
        let t = &db.tables[kept.table];
        let mut lines: Vec<(String, String)> = Vec::new();
        let pks: Vec<&Column> = kept
            .columns
            .iter()
            .map(|&c| &t.columns[c])
            .filter(|c| c.primary_key)
            .collect();
        for &ci in &kept.columns {
            let c = &t.columns[ci];
            let mut def = ident(&c.name);
            if !c.ty.is_empty() {
                def.push(' ');
                def.push_str(&c.ty);
            }
            if c.primary_key && pks.len() == 1 {
                def.push_str(" PRIMARY KEY");
            }
            let comment = if style == Style::Explicit {
                column_comment(c, detail)
            } else {
                String::new()
            };
            lines.push((def, comment));
        }
        if pks.len() > 1 {
            let names: Vec<String> = pks.iter().map(|c| ident(&c.name)).collect();
            lines.push((format!("PRIMARY KEY ({})", names.join(", ")), String::new()));
        }
        for fk in &db.foreign_keys {
            if fk.from_table == kept.table
                && kept.columns.contains(&fk.from_column)
                && sel.has_column(fk.to_table, fk.to_column)
            {
                let to = &db.tables[fk.to_table];
                lines.push((
                    format!(
                        "FOREIGN KEY ({}) REFERENCES {}({})",
                        ident(&t.columns[fk.from_column].name),
                        ident(&to.name),
                        ident(&to.columns[fk.to_column].name)
                    ),
                    String::new(),
                ));
            }
        }
        let mut header = format!("CREATE TABLE {} (", ident(&t.name));
        if style == Style::Explicit
            && detail < Detail::Bare
            && !t.natural.eq_ignore_ascii_case(&t.name.replace('_', " "))
        {
            let _ = write!(header, " -- {}", clean(&t.natural));
        }
        out.push_str(&header);
        out.push('\n');
        let last = lines.len().saturating_sub(1);
        for (i, (def, comment)) in lines.iter().enumerate() {
            let comma = if i < last { "," } else { "" };
            let _ = writeln!(out, "  {def}{comma}{comment}");
        }
        if style == Style::Explicit && detail == Detail::Full {
            let _ = writeln!(out, "); -- {} rows", t.rows);
        } else {
            out.push_str(");\n");
        }
        if example_rows > 0 && detail < Detail::Bare {
            out.push_str(&example_rows_text(t, &kept.columns, example_rows));
        }
    }
    out
}

fn tail_text(
    db: &DbInfo,
    question: &str,
    evidence: &str,
    values: &[ValueMatch],
    style: Style,
) -> String {
    let mut out = String::new();
    if style == Style::Explicit && !values.is_empty() {
        out.push_str("-- Values the question mentions:\n");
        for m in values {
            let t = &db.tables[m.table];
            let _ = writeln!(
                out,
                "-- {}.{} = {}",
                ident(&t.name),
                ident(&t.columns[m.column].name),
                clean(&sql_literal(&m.value))
            );
        }
    }
    if !evidence.trim().is_empty() {
        let _ = writeln!(
            out,
            "-- Evidence: {}",
            clean(&truncate_chars(evidence.trim(), MAX_QUESTION_CHARS))
        );
    }
    let _ = writeln!(
        out,
        "-- Question: {}",
        clean(&truncate_chars(question.trim(), MAX_QUESTION_CHARS))
    );
    out
}

/// Inputs of one prompt.
pub struct PromptInput<'a> {
    pub db: &'a DbInfo,
    pub selection: &'a Selection,
    pub values: &'a [ValueMatch],
    pub question: &'a str,
    pub evidence: &'a str,
    pub style: Style,
    /// Tables of the selection, least relevant first: dropped in this order to meet the budget.
    pub drop_order: &'a [usize],
    /// Representative values in the column comments (`-- e.g. ...`). Off, the explicit prompt
    /// keeps its filtering, keys, comments and matched values but is much shorter, which suits
    /// a small model trained from scratch.
    pub representative_values: bool,
    /// Example rows per kept table (kept columns only) after its `CREATE TABLE`; 0 for none.
    pub example_rows: usize,
}

/// A token limit and the function that counts tokens.
pub type TokenBudget<'a> = (usize, &'a dyn Fn(&str) -> usize);

/// Serializes a prompt. With a budget and a token counter, detail is lowered (values first, then
/// comments) and then the least relevant tables are dropped until it fits; one table always stays.
pub fn render(input: &PromptInput<'_>, budget: Option<TokenBudget<'_>>) -> Prompt {
    let tail = tail_text(
        input.db,
        input.question,
        input.evidence,
        input.values,
        input.style,
    );
    let build = |sel: &Selection, detail: Detail| {
        let schema = schema_text(input.db, sel, input.style, detail, input.example_rows);
        Prompt {
            schema_len: schema.len(),
            text: schema + &tail,
        }
    };
    let details: &[Detail] = match input.style {
        Style::Explicit if input.representative_values => {
            &[Detail::Full, Detail::NoValues, Detail::Bare]
        }
        Style::Explicit => &[Detail::NoValues, Detail::Bare],
        // Example rows go (Bare) before tables do.
        Style::Plain if input.example_rows > 0 => &[Detail::Full, Detail::Bare],
        Style::Plain => &[Detail::Full],
    };
    let Some((limit, count)) = budget else {
        return build(input.selection, details[0]);
    };
    let mut sel = input.selection.clone();
    let mut drop = input.drop_order.iter();
    loop {
        for &detail in details {
            let p = build(&sel, detail);
            if count(&p.text) <= limit {
                return p;
            }
        }
        if sel.tables.len() <= 1 {
            return build(&sel, *details.last().expect("one detail level"));
        }
        // Drop the next least relevant table still kept (or the last one if the order is spent).
        let victim = drop.by_ref().find(|t| sel.has_table(**t)).copied();
        match victim {
            Some(t) => sel.tables.retain(|k| k.table != t),
            None => {
                sel.tables.pop();
            }
        }
    }
}
