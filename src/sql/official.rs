//! The text steps the official Spider evaluator (taoyds/test-suite-sql-eval, `exec_eval.py`)
//! applies to both queries before executing them, reproduced so our numbers are the field's:
//!
//! * `postprocess`: `> =`, `< =`, `! =` become `>=`, `<=`, `!=`;
//! * `remove_distinct` (default; `--keep-distinct` turns it off): every `DISTINCT` word is
//!   dropped, and — because the script rebuilds the text from `sqlparse.parse(s)[0]` — only the
//!   first statement survives;
//! * `replace_cur_year`: `YEAR(CURDATE())` becomes `2020`.
//!
//! The quirks of `evaluation.py` that change *predictions* (the text `value` replaced by `1`, a
//! blank line read as a session separator) are applied only in [`Compat::Official`].

use serde::{Deserialize, Serialize};

use super::lexer::{self, TokenKind};

/// How faithfully to follow the official script's quirks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compat {
    /// The official semantics without the quirks that corrupt predictions.
    #[default]
    Default,
    /// Also replace `value` with `1` in each prediction and read blank lines as separators.
    Official,
}

/// The SQL as the official script executes it.
pub fn prepare_for_execution(sql: &str, keep_distinct: bool) -> String {
    let sql = postprocess(sql);
    let sql = if keep_distinct {
        sql
    } else {
        remove_distinct(&sql)
    };
    replace_cur_year(&sql)
}

/// `evaluation.py`'s `p_str.replace("value", "1")` (case-sensitive, anywhere in the text).
pub fn official_value_quirk(prediction: &str) -> String {
    prediction.replace("value", "1")
}

/// `postprocess` of `exec_eval.py`.
pub fn postprocess(sql: &str) -> String {
    sql.replace("> =", ">=")
        .replace("< =", "<=")
        .replace("! =", "!=")
}

/// `remove_distinct`: the first statement (its `;` included), without `DISTINCT` words.
pub fn remove_distinct(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    for token in lexer::tokenize(sql) {
        if token.kind == TokenKind::Word && token.text.eq_ignore_ascii_case("distinct") {
            continue;
        }
        out.push_str(token.text);
        if token.kind == TokenKind::Semicolon {
            break;
        }
    }
    out
}

/// `replace_cur_year`: `re.sub(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", "2020", q, flags=I)`.
pub fn replace_cur_year(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut copied = 0;
    while let Some(pos) = lower[i..].find("year") {
        let start = i + pos;
        if let Some(end) = match_cur_year(bytes, start) {
            out.push_str(&sql[copied..start]);
            out.push_str("2020");
            copied = end;
            i = end;
        } else {
            i = start + 4;
        }
    }
    out.push_str(&sql[copied..]);
    out
}

fn match_cur_year(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    let expect = |i: &mut usize, lit: &[u8]| -> bool {
        if b[*i..].starts_with(lit) {
            *i += lit.len();
            true
        } else {
            false
        }
    };
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    if !expect(&mut i, b"year") {
        return None;
    }
    for lit in [&b"("[..], b"curdate", b"(", b")", b")"] {
        ws(&mut i);
        if !expect(&mut i, lit) {
            return None;
        }
    }
    ws(&mut i);
    Some(i)
}

/// `'order by' in g_str.lower()`: whether row order matters for this gold query.
pub fn order_matters(prepared_gold: &str) -> bool {
    prepared_gold.to_lowercase().contains("order by")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_distinct_words_only() {
        assert_eq!(
            remove_distinct("SELECT DISTINCT name, count(distinct x) FROM t WHERE s = 'distinct'"),
            "SELECT  name, count( x) FROM t WHERE s = 'distinct'"
        );
        assert_eq!(
            remove_distinct("SELECT distinct_id FROM t"),
            "SELECT distinct_id FROM t"
        );
    }

    #[test]
    fn keeps_only_first_statement_like_sqlparse() {
        assert_eq!(remove_distinct("SELECT 1; DROP TABLE t"), "SELECT 1;");
    }

    #[test]
    fn postprocess_joins_split_operators() {
        assert_eq!(postprocess("a > = 1 AND b ! = 2"), "a >= 1 AND b != 2");
    }

    #[test]
    fn cur_year() {
        assert_eq!(
            replace_cur_year("SELECT YEAR ( curdate( ) ) - age FROM t"),
            "SELECT 2020- age FROM t"
        );
        assert_eq!(replace_cur_year("SELECT year FROM t"), "SELECT year FROM t");
    }

    #[test]
    fn value_quirk_is_case_sensitive() {
        assert_eq!(
            official_value_quirk("SELECT value, Value"),
            "SELECT 1, Value"
        );
    }
}
