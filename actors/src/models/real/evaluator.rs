//! Dev execution accuracy of a published version: greedy answers to the dev prompts, executed
//! against the gold queries with the sandboxed executor and judged by the one judge
//! (`exspin::eval::Judge`, the dev dataset's rule), as `exspin eval` judges them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use exspin::data::database_path;
use exspin::eval::Judge;
use exspin::model::chat::ChatTemplate;
use exspin::model::continuous::generate_continuous;
use exspin::model::generate::GenerateConfig;
use exspin::model::prefix_cache::PrefixCache;
use exspin::sql::classify::{KeyInfo, classify};
use exspin::sql::executor::ExecutorPool;

use super::{Lm, weights_dir};
use crate::logic::judge::judge_all;
use crate::models::compute::Compute;
use crate::protocol::seams::{
    DevEvaluator, PromptItem, Sample, SeamResult, Verdict, WeightsHandle,
};

/// Memory for the KV caches of recent schema prefixes during a dev pass (`exspin generate`'s
/// default `--prefix-cache-mib`).
const DEV_PREFIX_CACHE_BYTES: usize = 512 << 20;

pub struct RealEvaluator {
    pub run_dir: PathBuf,
    pub chat: ChatTemplate,
    /// The dev examples with their prompts (round unused).
    pub dev: Vec<PromptItem>,
    pub database_root: PathBuf,
    /// The dev dataset's rule, and where its examples come from (the gold cache's scope).
    pub judge: Judge,
    pub judge_scope: String,
    pub pool: ExecutorPool,
    pub max_new_tokens: usize,
    pub chunk: usize,
    /// Where the versions it evaluates are loaded.
    pub compute: Compute,
}

/// One dev evaluation: the accuracy, and per example (dev order) the predicted query and whether
/// it was right.
pub struct DevResult {
    pub ex: f64,
    pub preds: Vec<String>,
    pub correct: Vec<bool>,
}

impl RealEvaluator {
    /// EX of `lm` on the dev prompts, with its predicted queries and verdicts in dev order.
    pub fn ex_of(&self, lm: &Lm) -> anyhow::Result<DevResult> {
        self.ex_with(&lm.model, &lm.tokenizer, &lm.special, &lm.chat)
    }

    /// [`Self::ex_of`] on a model's parts (the SFT loop holds the model while it is scored).
    pub fn ex_with(
        &self,
        model: &exspin::model::Model,
        tokenizer: &tokenizers::Tokenizer,
        special: &exspin::model::load::SpecialTokens,
        chat: &ChatTemplate,
    ) -> anyhow::Result<DevResult> {
        if self.dev.is_empty() {
            return Ok(DevResult {
                ex: 0.0,
                preds: Vec::new(),
                correct: Vec::new(),
            });
        }
        let cfg = GenerateConfig {
            max_new_tokens: self.max_new_tokens,
            temperature: 0.0,
            n: 1,
            ..GenerateConfig::default()
        };
        let mut preds = Vec::with_capacity(self.dev.len());
        let started = std::time::Instant::now();
        // A line at every tenth of the pass: on a CPU a pass takes tens of minutes, and a run in
        // the background (its stderr a log file, no progress bar) would otherwise say nothing.
        let mut tenths_told = 0;
        // As `exspin generate` answers: continuous batching over `chunk` rows, and each
        // database's schema prefilled once for its questions (dev is in dataset order, so a
        // database's questions come together). Greedy, the same answers as static batches.
        let mut prefixes = PrefixCache::new(DEV_PREFIX_CACHE_BYTES);
        let rows = self.chunk.max(1);
        for part in self.dev.chunks(4 * rows) {
            let ids: Vec<Vec<u32>> = part
                .iter()
                .map(|p| Ok(exspin::prompt::prompt_ids(tokenizer, chat, &p.prompt)?))
                .collect::<anyhow::Result<_>>()?;
            let gens = generate_continuous(
                model,
                tokenizer,
                special,
                &ids,
                None,
                &cfg,
                rows,
                Some(&mut prefixes),
            )?;
            preds.extend(
                gens.iter()
                    .map(|g| exspin::prompt::answer_sql(chat, &g.text)),
            );
            let tenths = 10 * preds.len() / self.dev.len();
            if tenths > tenths_told && preds.len() < self.dev.len() {
                tenths_told = tenths;
                eprintln!(
                    "dev pass: {}/{} answered ({:.1} s a question)",
                    preds.len(),
                    self.dev.len(),
                    started.elapsed().as_secs_f64() / preds.len() as f64
                );
            }
        }
        let items = self
            .dev
            .iter()
            .zip(&preds)
            .map(|(p, sql)| {
                let sample = Sample {
                    example_id: p.example_id.clone(),
                    sample_id: format!("{}#dev", p.example_id),
                    round: 0,
                    sql: sql.clone(),
                    version: 0,
                    ref_version: 0,
                    logp_gold: 0.0,
                    logp_gen: 0.0,
                    tokens: 0,
                };
                (p.clone(), sample)
            })
            .collect();
        let judged = judge_all(
            &self.judge,
            &self.pool,
            &self.judge_scope,
            |db| database_path(&self.database_root, db),
            items,
        );
        // judge_all answers in input order, one verdict per item.
        let correct: Vec<bool> = judged
            .iter()
            .map(|j| j.verdict == Verdict::Correct)
            .collect();
        let right = correct.iter().filter(|c| **c).count();
        Ok(DevResult {
            ex: right as f64 / self.dev.len() as f64,
            preds,
            correct,
        })
    }

    /// Writes `RUN/dev_predictions/{name}.sql` (one query per line, dev order), for `exspin eval`,
    /// and for a published version `v{t}` also `RUN/dev/round-{t}.jsonl`: one line per dev example
    /// with its gold query, its query type (the paper's six, keys read from the database) and the
    /// verdict — what `exspin experiment` turns into accuracy per query type.
    pub fn write_predictions(&self, name: &str, result: &DevResult) -> anyhow::Result<()> {
        let dir = self.run_dir.join("dev_predictions");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.sql"));
        let text: String = result.preds.iter().map(|p| format!("{p}\n")).collect();
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        let Some(version) = name.strip_prefix('v').and_then(|v| v.parse::<u64>().ok()) else {
            return Ok(());
        };
        let mut keys: BTreeMap<&str, KeyInfo> = BTreeMap::new();
        let mut lines = String::new();
        for (item, correct) in self.dev.iter().zip(&result.correct) {
            let key = keys.entry(item.db_id.as_str()).or_insert_with(|| {
                KeyInfo::from_sqlite(&database_path(&self.database_root, &item.db_id))
                    .unwrap_or_default()
            });
            let line = serde_json::json!({
                "example_id": item.example_id,
                "gold_sql": item.gold_sql,
                "query_type": classify(&item.gold_sql, key).name(),
                "correct": correct,
            });
            lines.push_str(&format!("{line}\n"));
        }
        let dir = self.run_dir.join("dev");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("round-{version}.jsonl"));
        std::fs::write(&path, lines).with_context(|| format!("writing {}", path.display()))
    }
}

impl DevEvaluator for RealEvaluator {
    fn evaluate(&mut self, weights: &WeightsHandle) -> SeamResult<f64> {
        let path = weights
            .path
            .clone()
            .unwrap_or_else(|| weights_dir(&self.run_dir, weights.version));
        let lm = Lm::load(&path, &self.chat, &self.compute)?;
        let result = self.ex_of(&lm)?;
        self.write_predictions(&format!("v{}", weights.version), &result)?;
        let ex = result.ex;
        eprintln!(
            "dev execution accuracy of version {}: {:.1}% ({} questions)",
            weights.version,
            100.0 * ex,
            self.dev.len()
        );
        Ok(ex)
    }
}
