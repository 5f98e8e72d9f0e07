//! The experiment file (TOML): a base job config, the methods as overrides of it, the seeds and
//! the λ sweep.
//!
//! ```toml
//! base = "demo.toml"                  # relative to this file
//! dataset = "embedded default"        # the column name in Table 3
//! set = { "run.rounds" = 3 }          # applied to every method
//! seeds = [1, 2, 3]                   # optional: every method once per seed
//! main = "ExSPIN"
//! ablations = ["w/o schema integration", "w/o execution feedback"]
//!
//! [[method]]
//! name = "ExSPIN"
//! set = { "run.mode" = "exspin" }
//!
//! [[method]]
//! name = "SFT"
//! set = { "run.mode" = "sft" }
//! follow = "ExSPIN"                   # optional: train the gold of exactly ExSPIN's pairs
//!
//! [lambda_sweep]
//! method = "ExSPIN"
//! key = "train.lambda"
//! values = [0.1, 0.5, 1.0, 2.0]
//! ```
//!
//! `seeds` (optional, non-empty, no repeats): every method runs once per seed, as `run.seed = s`,
//! into `OUT/runs/{method}/seed-{s}`. The seed changes the self-play rounds (data order,
//! sampling), not the SFT phase: each seeded run also gets `sft.seed` = the SFT seed of the base
//! config with the shared overrides (its `sft.seed`, or else its `run.seed`), so every seed of a
//! method, and every method with the same SFT settings, starts from one version 0
//! (`JobConfig::sft_signature`). `run.seed` may then not be set in `set` or a method's `set`.
//! The report gives each method's mean over the seeds with a 95% t-interval and, for every pair
//! of methods, an exact McNemar test over the dev questions of all seeds (`stats.rs`). Without
//! `seeds`, each method runs once with the base config's seed into `OUT/runs/{method}`, with a
//! Wilson interval over the dev questions. The λ sweep runs with the first seed only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The job config every method starts from, relative to the experiment file.
    pub base: PathBuf,
    /// The dataset's name in the report (default: the base config's `data.source`).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Overrides applied to every method before its own.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// The method whose ablations Tables 6/7 show.
    #[serde(default = "default_main")]
    pub main: String,
    /// Methods shown beside `main` in the ablation tables.
    #[serde(default)]
    pub ablations: Vec<String>,
    /// Run every method once per seed (`run.seed`); None: once, with the base config's seed.
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    #[serde(rename = "method")]
    pub methods: Vec<MethodSpec>,
    #[serde(default)]
    pub lambda_sweep: Option<LambdaSweep>,
}

fn default_main() -> String {
    "ExSPIN".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSpec {
    pub name: String,
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// Continued SFT only: the earlier method whose run (of the same seed) this one follows,
    /// training the gold of exactly the samples that run trained (`run.follow`).
    #[serde(default)]
    pub follow: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaSweep {
    /// The method the sweep copies (its overrides, then λ).
    pub method: String,
    /// The job-config key that holds λ.
    pub key: String,
    pub values: Vec<f64>,
    /// Rounds per sweep point (default: the method's own), so the sweep can be cheaper.
    #[serde(default)]
    pub rounds: Option<u64>,
}

impl ExperimentConfig {
    /// Reads and validates an experiment file; returns it with the base config's path resolved.
    pub fn load(path: &Path) -> anyhow::Result<(ExperimentConfig, PathBuf)> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the experiment file {}", path.display()))?;
        let config: ExperimentConfig = toml::from_str(&text)
            .with_context(|| format!("{}: not a valid experiment file", path.display()))?;
        config
            .validate()
            .with_context(|| format!("{}: invalid experiment file", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(".")).join(&config.base);
        anyhow::ensure!(
            base.is_file(),
            "{}: base = {:?} does not exist (looked for {}); give a job config path relative to \
             the experiment file",
            path.display(),
            config.base,
            base.display()
        );
        Ok((config, base))
    }

    /// Every problem at once, one per line.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        if self.methods.is_empty() {
            errors.push("add at least one [[method]] with a name and its overrides".to_string());
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.methods {
            if m.name.trim().is_empty() {
                errors.push("a [[method]] has an empty name".into());
            } else if !seen.insert(slug(&m.name)) {
                errors.push(format!(
                    "method {:?}: another method has the same name (after lower-casing and \
                     replacing non-alphanumerics by '-'); rename one",
                    m.name
                ));
            }
        }
        if let Some(seeds) = &self.seeds {
            if seeds.is_empty() {
                errors.push(
                    "seeds = [] runs nothing; list at least one seed (e.g. seeds = [1, 2, 3]) or \
                     remove the key to run each method once with the base config's run.seed"
                        .into(),
                );
            }
            let mut seen = std::collections::BTreeSet::new();
            for s in seeds {
                if !seen.insert(s) {
                    errors.push(format!("seeds: {s} is listed twice; list each seed once"));
                }
            }
            let sets = std::iter::once(("set".to_string(), &self.set)).chain(
                self.methods
                    .iter()
                    .map(|m| (format!("method {:?}: set", m.name), &m.set)),
            );
            for (where_, set) in sets {
                if set.contains_key("run.seed") {
                    errors.push(format!(
                        "{where_}: \"run.seed\" is set by seeds = [...] for every run; remove it \
                         (or remove seeds)"
                    ));
                }
            }
        }
        let known = |name: &str| self.methods.iter().any(|m| m.name == name);
        for (i, m) in self.methods.iter().enumerate() {
            let Some(f) = &m.follow else { continue };
            if !self.methods[..i].iter().any(|o| &o.name == f) {
                errors.push(format!(
                    "method {:?}: follow = {f:?} must name a method listed before it (the runs \
                     go in order, and the one followed has to have finished)",
                    m.name
                ));
            }
            if m.set.contains_key("run.follow") || self.set.contains_key("run.follow") {
                errors.push(format!(
                    "method {:?}: \"run.follow\" is set by follow = {f:?}; remove it from set",
                    m.name
                ));
            }
        }
        if !known(&self.main) {
            errors.push(format!(
                "main = {:?} is not one of the methods; set main to the method whose ablations you \
                 want in Tables 6/7",
                self.main
            ));
        }
        for a in &self.ablations {
            if !known(a) {
                errors.push(format!("ablations: {a:?} is not one of the methods"));
            }
        }
        if let Some(sweep) = &self.lambda_sweep {
            if !known(&sweep.method) {
                errors.push(format!(
                    "lambda_sweep.method = {:?} is not one of the methods",
                    sweep.method
                ));
            }
            if sweep.values.is_empty() || sweep.values.iter().any(|v| !(v.is_finite() && *v > 0.0))
            {
                errors.push(
                    "lambda_sweep.values must be a non-empty list of positive numbers".into(),
                );
            }
            if sweep.rounds == Some(0) {
                errors.push("lambda_sweep.rounds must be at least 1".into());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", errors.join("\n"))
        }
    }
}

/// A file-name-safe form of a method name ("w/o schema" → "w-o-schema").
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<ExperimentConfig> {
        let c: ExperimentConfig = toml::from_str(text)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn a_full_file_parses() {
        let c = parse(
            r#"
base = "demo.toml"
set = { "run.rounds" = 2 }
main = "ExSPIN"
ablations = ["SPIN"]
[[method]]
name = "ExSPIN"
set = { "run.mode" = "exspin" }
[[method]]
name = "SPIN"
set = { "run.mode" = "spin" }
[lambda_sweep]
method = "ExSPIN"
key = "train.lambda"
values = [0.5, 1.0]
rounds = 1
"#,
        )
        .unwrap();
        assert_eq!(c.methods.len(), 2);
        assert_eq!(c.lambda_sweep.unwrap().values, vec![0.5, 1.0]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = parse(
            r#"
base = "demo.toml"
main = "Nope"
ablations = ["Missing"]
[[method]]
name = "A b"
[[method]]
name = "a-B"
[[method]]
name = "early"
follow = "late"
[[method]]
name = "late"
set = { "run.follow" = "../x" }
follow = "A b"
[lambda_sweep]
method = "Other"
key = "train.lambda"
values = [0.0]
"#,
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "method \"early\": follow = \"late\" must name a method listed before it",
            "method \"late\": \"run.follow\" is set by follow",
            "same name",
            "main = \"Nope\"",
            "\"Missing\"",
            "lambda_sweep.method",
            "positive",
        ] {
            assert!(err.contains(needle), "{needle:?} missing from: {err}");
        }
    }

    #[test]
    fn seeds_must_be_listed_once_each_and_own_run_seed() {
        let c =
            parse("base = \"demo.toml\"\nseeds = [3, 1]\n[[method]]\nname = \"ExSPIN\"\n").unwrap();
        assert_eq!(c.seeds, Some(vec![3, 1]));
        let none = parse("base = \"demo.toml\"\n[[method]]\nname = \"ExSPIN\"\n").unwrap();
        assert_eq!(none.seeds, None);
        for (text, needle) in [
            ("seeds = []", "seeds = [] runs nothing"),
            ("seeds = [1, 2, 1]", "1 is listed twice"),
            (
                "seeds = [1]\nset = { \"run.seed\" = 4 }",
                "set: \"run.seed\" is set by seeds",
            ),
        ] {
            let err = parse(&format!(
                "base = \"demo.toml\"\n{text}\n[[method]]\nname = \"ExSPIN\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(err.contains(needle), "{needle:?} missing from: {err}");
        }
        let err = parse(
            "base = \"demo.toml\"\nseeds = [1]\n[[method]]\nname = \"ExSPIN\"\n\
             set = { \"run.seed\" = 2 }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("method \"ExSPIN\": set"), "{err}");
    }

    #[test]
    fn a_bad_seed_list_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exp.toml");
        std::fs::write(
            &path,
            "base = \"demo.toml\"\nseeds = [2, 2]\n[[method]]\nname = \"ExSPIN\"\n",
        )
        .unwrap();
        let err = format!("{:#}", ExperimentConfig::load(&path).unwrap_err());
        assert!(
            err.contains("exp.toml") && err.contains("2 is listed twice"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = parse("base = \"x\"\nmethods = []\n").unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    }

    #[test]
    fn slugs_are_file_safe() {
        assert_eq!(slug("w/o schema integration"), "w-o-schema-integration");
        assert_eq!(slug("ExSPIN λ=0.5"), "exspin-0.5");
    }
}
