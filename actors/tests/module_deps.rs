//! The runtime's folders depend on each other one way, and the command's modules only reach the
//! shared arguments. These read the sources of `actors/src` and fail when a file reaches a folder
//! it must not (comments and `#[cfg(test)]` parts do not count):
//!
//! ```text
//! config ← protocol ← logic ← state ← observe ← fleet
//!                       ↑       ↑                 ↑
//!                     models  stages ← runtime ← bench, sft
//!                       ↑                 ↑
//!                     hosts ──────────────┘ (fleet)
//! ```
//! * `config` (the typed job config) and `protocol` (the seams) reach nothing else of the crate;
//! * `logic` (decisions without actors) reaches only `config` and `protocol`;
//! * `state` (journal, ledger, checkpoints, summary) adds `logic`; `observe` adds `state`;
//! * `models` (real and fake models behind the seams) reaches `config`, `protocol` and `logic`,
//!   never the actors;
//! * `fleet` (wire types, nodes, picking a worker's actor: what the head's stages use) reaches
//!   `config`, `protocol`, `logic` and `observe`, never a model;
//! * `stages` (the actors) reach everything below and `fleet`, never `models`, `runtime` or the
//!   entry points;
//! * `hosts` (the actors a fleet worker hosts) reach `fleet` and `models`, never the stages;
//! * under `cli/`, a command group reaches `crate::cli::args` and nothing else of `crate::cli`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without `//` comments and without what follows its first `#[cfg(test)]`.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths `crate::a::b` a text names, as (a, b).
fn crate_paths(text: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let mut parts = rest.splitn(3, "::").map(|p| {
            p.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        });
        let first = parts.next().unwrap_or_default();
        let second = parts.next().unwrap_or_default();
        found.insert((first, second));
    }
    found
}

/// Files under `folder` that name a top-level module of the crate outside `allowed`.
fn reaching_outside(folder: &str, allowed: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&src().join(folder), &mut files);
    assert!(!files.is_empty(), "no sources under actors/src/{folder}");
    let mut bad = Vec::new();
    for f in files {
        for (module, _) in crate_paths(&code(&f)) {
            if module != folder && !allowed.contains(&module.as_str()) {
                bad.push(format!("{} reaches crate::{module}", f.display()));
            }
        }
    }
    bad
}

#[test]
fn the_runtime_folders_depend_one_way() {
    let rules: [(&str, &[&str]); 10] = [
        ("config", &[]),
        ("protocol", &[]),
        ("logic", &["config", "protocol"]),
        ("state", &["config", "protocol", "logic"]),
        ("observe", &["config", "protocol", "logic", "state"]),
        ("models", &["config", "protocol", "logic"]),
        ("fleet", &["config", "protocol", "logic", "observe"]),
        (
            "stages",
            &["config", "protocol", "logic", "state", "observe", "fleet"],
        ),
        ("hosts", &["config", "protocol", "logic", "models", "fleet"]),
        ("experiment", &["config"]),
    ];
    let mut bad = Vec::new();
    for (folder, allowed) in rules {
        bad.extend(reaching_outside(folder, allowed));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn a_command_group_reaches_only_the_shared_arguments() {
    let mut files = Vec::new();
    rust_files(&src().join("cli"), &mut files);
    let mut bad = Vec::new();
    for f in files.iter().filter(|f| !f.ends_with("cli/mod.rs")) {
        for (module, sub) in crate_paths(&code(f)) {
            if module == "cli" && sub != "args" {
                bad.push(format!("{} reaches crate::cli::{sub}", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn the_checker_sees_a_reach() {
    let paths = crate_paths("use crate::stages::context::Ctx;\nlet x = crate::cli::run::go();");
    assert!(paths.contains(&("stages".into(), "context".into())));
    assert!(paths.contains(&("cli".into(), "run".into())));
}
