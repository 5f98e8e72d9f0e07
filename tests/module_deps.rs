//! The library's module dependencies point one way. These read the sources of `src/` and fail when
//! a file reaches a module it must not: the cycles `sql ↔ data` and `model::decoder ↔ model::lora`
//! were broken once and must not come back.
//!
//! Established directions:
//! * `sql` is the lowest domain module: nothing under `src/sql/` reaches `data`, `schema`, `model`,
//!   `train` or `eval` (datasets build on SQL: `data::tables` turns a schema into
//!   `sql::classify::KeyInfo`, not the other way).
//! * `model::lora_adapter` (the adapter a linear layer holds) and `model::config` know neither the
//!   decoder nor `model::lora`; the decoder reaches LoRA only through `lora_adapter`; `model::lora`
//!   (attaching adapters, PEFT files) sits above the decoder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A module path inside the crate, e.g. `["model", "lora"]`.
type ModPath = Vec<String>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module a source file defines: `src/sql/hardness/mod.rs` → `sql::hardness`,
/// `src/model/lora.rs` → `model::lora`.
fn module_of(file: &Path) -> ModPath {
    let rel = file.strip_prefix(src_dir()).expect("a file under src/");
    let mut parts: ModPath = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The text with `//` comments and string literals blanked, so prose and messages do not count.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_str {
                if c == '"' && prev != '\\' {
                    in_str = false;
                }
                prev = if prev == '\\' && c == '\\' { ' ' } else { c };
                continue;
            }
            if c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' {
                in_str = true;
                prev = ' ';
                continue;
            }
            out.push(c);
        }
        out.push('\n');
    }
    out
}

fn ident_at(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| (&s[..end], &s[end..]))
}

/// Expands the path (or use tree) at the start of `s` into full paths, appending to `prefix`:
/// `data::{tables::X, Y}` → `data::tables::X`, `data::Y`.
fn expand(s: &str, prefix: &ModPath, out: &mut Vec<ModPath>) {
    let mut path = prefix.clone();
    let mut rest = s;
    loop {
        let trimmed = rest.trim_start();
        if let Some(group) = trimmed.strip_prefix('{') {
            // Split the group at its top-level commas.
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        expand(&group[start..i], &path, out);
                        return;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&group[start..i], &path, out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            return;
        }
        let Some((id, after)) = ident_at(trimmed) else {
            break;
        };
        path.push(id.to_string());
        match after.trim_start().strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    if path.len() > prefix.len() {
        out.push(path);
    }
}

/// Every crate-internal module path `code` names (through `crate::` or `super::`), resolved to a
/// path from the crate root; `module` is the module the code belongs to.
fn reached_paths(code: &str, module: &ModPath) -> Vec<ModPath> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let word_start =
        |i: usize| i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
    for (i, _) in code.match_indices("crate::") {
        if word_start(i) && !code[..i].ends_with("::") {
            expand(&code[i + "crate::".len()..], &Vec::new(), &mut out);
        }
    }
    for (i, _) in code.match_indices("super::") {
        if !word_start(i) || code[..i].ends_with("::") {
            continue;
        }
        let mut rest = &code[i..];
        let mut base = module.clone();
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r.trim_start();
        }
        expand(rest, &base, &mut out);
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The files under `src/<under>` (a folder or one file) and the module paths each reaches.
fn reached_from(under: &str) -> Vec<(PathBuf, BTreeSet<String>)> {
    let root = src_dir().join(under);
    let mut files = Vec::new();
    if root.is_dir() {
        rust_files(&root, &mut files);
    } else {
        files.push(root);
    }
    assert!(!files.is_empty(), "no sources under src/{under}");
    files
        .into_iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let reached = reached_paths(&code_only(&text), &module_of(&f))
                .into_iter()
                .map(|p| p.join("::"))
                .collect();
            (f, reached)
        })
        .collect()
}

/// Fails naming every file under `src/<under>` that reaches a module in `forbidden` (a path
/// prefix such as `data` or `model::lora`).
fn assert_reaches_none(under: &str, forbidden: &[&str]) {
    let mut offences = Vec::new();
    for (file, reached) in reached_from(under) {
        for path in &reached {
            let hit = forbidden
                .iter()
                .any(|f| path == f || path.starts_with(&format!("{f}::")));
            if hit {
                offences.push(format!("{} reaches crate::{path}", file.display()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "module dependencies must point one way (see tests/module_deps.rs):\n{}",
        offences.join("\n")
    );
}

#[test]
fn sql_depends_on_no_other_domain_module() {
    assert_reaches_none("sql", &["data", "schema", "model", "train", "eval"]);
}

#[test]
fn the_lora_adapter_and_the_config_do_not_know_the_decoder() {
    for file in ["model/lora_adapter.rs", "model/config.rs"] {
        assert_reaches_none(file, &["model::decoder", "model::lora"]);
    }
}

#[test]
fn the_decoder_reaches_lora_only_through_the_adapter() {
    assert_reaches_none("model/decoder.rs", &["model::lora"]);
    let (_, reached) = &reached_from("model/decoder.rs")[0];
    assert!(
        reached.contains("model::lora_adapter::Lora"),
        "the decoder's linear layer holds a model::lora_adapter::Lora: {reached:?}"
    );
}

#[test]
fn the_scanner_sees_every_way_of_naming_a_module() {
    let sql = vec!["sql".to_string(), "classify".to_string()];
    let reached = |code: &str| -> Vec<String> {
        reached_paths(&code_only(code), &sql)
            .into_iter()
            .map(|p| p.join("::"))
            .collect()
    };
    assert_eq!(
        reached("use crate::data::DatabaseSchema;"),
        ["data::DatabaseSchema"]
    );
    assert_eq!(
        reached("use crate::{data::{tables, Example}, sql::lexer};"),
        ["data::tables", "data::Example", "sql::lexer"]
    );
    assert_eq!(
        reached("fn f(s: &super::super::data::DatabaseSchema) {}"),
        ["data::DatabaseSchema"]
    );
    assert_eq!(
        reached("use super::lexer::{self, Token};"),
        ["sql::lexer::self", "sql::lexer::Token"]
    );
    // Prose and messages are not dependencies.
    assert!(reached("// see crate::data::Example\nlet m = \"crate::data\";").is_empty());
    assert!(reached("/// [`crate::data::Example`]").is_empty());
}
