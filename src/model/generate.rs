//! Batched generation with a KV cache: greedy or sampled (temperature, top-p, seed), n samples per
//! prompt, stop rules (end of statement, end of a code block, strings, EOS), a token budget. Each
//! result carries its text, token ids and per-token log-probs (under the model at temperature 1,
//! the quantity the self-play losses use), and [`extract_sql`] pulls the query out of an answer.

use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::decoder::{Model, pad_batch};
use super::load::SpecialTokens;
use super::prefix_cache::{PrefixCache, prefill_common_start};
use super::{Result, tokenizer};

/// When a sequence stops (EOS always stops it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StopRules {
    /// Stop after the first `;` (the end of an SQL statement); the `;` is kept.
    pub semicolon: bool,
    /// Stop when a code block that the answer opened (```) is closed; the closing fence is cut.
    pub code_block_end: bool,
    /// Stop at any of these strings; the string is cut.
    pub strings: Vec<String>,
}

impl Default for StopRules {
    fn default() -> Self {
        StopRules {
            semicolon: true,
            code_block_end: true,
            strings: Vec::new(),
        }
    }
}

impl StopRules {
    /// Where to cut `text` if a rule fires: the byte length to keep.
    pub fn cut(&self, text: &str) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut take = |p: usize| best = Some(best.map_or(p, |b: usize| b.min(p)));
        if self.semicolon
            && let Some(p) = text.find(';')
        {
            take(p + 1);
        }
        if self.code_block_end
            && let Some(open) = text.find("```")
            && let Some(close) = text[open + 3..].find("```")
        {
            take(open + 3 + close);
        }
        for s in &self.strings {
            if !s.is_empty()
                && let Some(p) = text.find(s.as_str())
            {
                take(p);
            }
        }
        best
    }
}

/// Generation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateConfig {
    pub max_new_tokens: usize,
    /// 0 means greedy.
    pub temperature: f64,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches this.
    pub top_p: f64,
    pub seed: u64,
    /// Samples per prompt.
    pub n: usize,
    pub stop: StopRules,
    /// Prefill the tokens every prompt of a batch starts with once (and reuse a
    /// [`PrefixCache`]'s): off is the plain path, one left-padded prefill of whole prompts.
    pub share_prefix: bool,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            max_new_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            n: 1,
            stop: StopRules::default(),
            share_prefix: true,
        }
    }
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finish {
    Eos,
    Stop,
    Length,
}

/// One generated answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Index of its prompt, and which of the n samples it is.
    pub prompt: usize,
    pub sample: usize,
    /// The decoded text, cut by the stop rules (special tokens dropped).
    pub text: String,
    /// Every generated token id, EOS included when it ended the sequence.
    pub tokens: Vec<u32>,
    /// log p of each generated token under the model (temperature 1).
    pub logprobs: Vec<f32>,
    pub finish: Finish,
}

fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = row
        .iter()
        .map(|&x| ((x - max) as f64).exp())
        .sum::<f64>()
        .ln() as f32
        + max;
    row.iter().map(|&x| x - lse).collect()
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}

/// Sample from `logits` at `temperature` with nucleus `top_p`.
fn sample(logits: &[f32], temperature: f64, top_p: f64, rng: &mut ChaCha8Rng) -> usize {
    let scaled: Vec<f64> = logits.iter().map(|&x| x as f64 / temperature).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut probs: Vec<(usize, f64)> = scaled
        .iter()
        .map(|&x| (x - max).exp())
        .enumerate()
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= total);
    probs.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    let mut keep = probs.len();
    if top_p < 1.0 {
        let mut acc = 0.0;
        for (i, p) in probs.iter().enumerate() {
            acc += p.1;
            if acc >= top_p {
                keep = i + 1;
                break;
            }
        }
    }
    let kept = &probs[..keep];
    let mass: f64 = kept.iter().map(|p| p.1).sum();
    let mut u = rng.random::<f64>() * mass;
    for p in kept {
        u -= p.1;
        if u <= 0.0 {
            return p.0;
        }
    }
    kept[kept.len() - 1].0
}

pub(crate) struct Row {
    pub(crate) prompt: usize,
    pub(crate) sample: usize,
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    text: String,
    pub(crate) finish: Option<Finish>,
    rng: ChaCha8Rng,
}

/// Generate `cfg.n` answers for each prompt (token ids, e.g. a rendered chat template). Results
/// come prompt by prompt, samples in order. Rows are left-padded, prefilled together, then
/// decoded one token per step from the cache; finished rows leave the batch.
pub fn generate(
    model: &Model,
    tok: &Tokenizer,
    special: &SpecialTokens,
    prompts: &[Vec<u32>],
    cfg: &GenerateConfig,
) -> Result<Vec<Generation>> {
    generate_seeded(model, tok, special, prompts, None, cfg)
}

/// [`generate`] with one seed per prompt (`seeds[p]` replaces `cfg.seed` for prompt p), so that a
/// prompt's samples do not depend on which other prompts share its batch: the self-play runtime
/// seeds each prompt by its example and round, and a re-issued prompt gets the same samples.
pub fn generate_seeded(
    model: &Model,
    tok: &Tokenizer,
    special: &SpecialTokens,
    prompts: &[Vec<u32>],
    seeds: Option<&[u64]>,
    cfg: &GenerateConfig,
) -> Result<Vec<Generation>> {
    generate_cached(model, tok, special, prompts, seeds, cfg, None)
}

/// [`generate_seeded`] that starts from (and adds to) a cache of prefilled prefixes, so that
/// successive batches over one database prefill its schema once.
pub fn generate_cached(
    model: &Model,
    tok: &Tokenizer,
    special: &SpecialTokens,
    prompts: &[Vec<u32>],
    seeds: Option<&[u64]>,
    cfg: &GenerateConfig,
    prefix_cache: Option<&mut PrefixCache>,
) -> Result<Vec<Generation>> {
    let mut rows = new_rows(prompts.len(), seeds, cfg)?;
    let inputs = prompt_inputs(prompts, special);
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Generation is never differentiated: on detached weights (adapters included) no step
    // records an autograd graph, which the KV cache would otherwise keep alive.
    let detached = model.detached();
    let model = &detached;
    let (mut cache, suffixes) =
        prefill_common_start(model, &inputs, cfg.share_prefix, prefix_cache)?;
    let (ids, mask) = pad_batch(&suffixes, special.pad, true, model.device())?;
    let mut active: Vec<usize> = (0..rows.len()).collect();
    // For each active row, its row in the last forward's output and in the cache: after the
    // prefill, its prompt's row; then its own.
    let mut source: Vec<usize> = rows.iter().map(|r| r.prompt).collect();
    let mut next_input: Tensor = ids;
    let mut next_mask = mask;
    for step in 0..cfg.max_new_tokens {
        let hidden = model.forward_hidden(&next_input, &next_mask, Some(&mut cache))?;
        let t = hidden.dim(1)?;
        let logits = model.logits(&hidden.narrow(1, t - 1, 1)?.squeeze(1)?)?;
        let logits: Vec<Vec<f32>> = logits.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        let mut still = Vec::with_capacity(active.len());
        let mut keep_idx = Vec::with_capacity(active.len());
        let mut next = Vec::with_capacity(active.len());
        for (&ri, &bi) in active.iter().zip(&source) {
            let row = &mut rows[ri];
            let id = advance(row, &logits[bi], step, cfg, special, tok)?;
            if row.finish.is_none() {
                still.push(ri);
                keep_idx.push(bi);
                next.push(id);
            }
        }
        if still.is_empty() {
            break;
        }
        // Drops finished rows and, after the prefill, forks each prompt's cache into its rows.
        if keep_idx.iter().enumerate().any(|(i, &k)| i != k) || keep_idx.len() != logits.len() {
            cache.select_rows(&keep_idx)?;
        }
        source = (0..still.len()).collect();
        active = still;
        next_input = Tensor::from_vec(next.clone(), (next.len(), 1), model.device())?;
        next_mask = vec![vec![1u8]; next.len()];
    }
    Ok(rows.into_iter().map(Row::into_generation).collect())
}

/// Input ids per prompt (an empty prompt becomes BOS, or padding: a row needs a token).
pub(crate) fn prompt_inputs(prompts: &[Vec<u32>], special: &SpecialTokens) -> Vec<Vec<u32>> {
    prompts
        .iter()
        .map(|ids| {
            if ids.is_empty() {
                vec![special.bos.unwrap_or(special.pad)]
            } else {
                ids.clone()
            }
        })
        .collect()
}

/// The rows of `count` prompts × `cfg.n` samples, prompt by prompt, each with its own seed
/// (`seeds`, when given, holds one per prompt).
pub(crate) fn new_rows(
    count: usize,
    seeds: Option<&[u64]>,
    cfg: &GenerateConfig,
) -> Result<Vec<Row>> {
    if let Some(s) = seeds
        && s.len() != count
    {
        return Err(super::ModelError::invalid(
            "generate",
            format!("{} seeds for {count} prompts", s.len()),
        ));
    }
    let n = cfg.n.max(1);
    let mut rows = Vec::with_capacity(count * n);
    for p in 0..count {
        for s in 0..n {
            // Per-row seed: a row's sample does not depend on what else is in the batch.
            let seed = match seeds {
                Some(seeds) => seeds[p] ^ (s as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                None => {
                    cfg.seed ^ ((p as u64) << 20) ^ (s as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                }
            };
            rows.push(Row {
                prompt: p,
                sample: s,
                tokens: Vec::new(),
                logprobs: Vec::new(),
                text: String::new(),
                finish: None,
                rng: ChaCha8Rng::seed_from_u64(seed),
            });
        }
    }
    Ok(rows)
}

/// Chooses `row`'s next token from its `logits` (greedy or sampled with its own generator),
/// records it and its log-prob (unmodified logits), and sets `finish` when a stop rule, EOS or
/// the budget (`step` is the 0-based index of this token) ends the row. Returns the token.
pub(crate) fn advance(
    row: &mut Row,
    logits: &[f32],
    step: usize,
    cfg: &GenerateConfig,
    special: &SpecialTokens,
    tok: &Tokenizer,
) -> Result<u32> {
    let lp = log_softmax(logits);
    let id = if cfg.temperature <= 0.0 {
        argmax(logits)
    } else {
        sample(logits, cfg.temperature, cfg.top_p, &mut row.rng)
    } as u32;
    row.tokens.push(id);
    row.logprobs.push(lp[id as usize]);
    if special.eos.contains(&id) {
        row.finish = Some(Finish::Eos);
    } else {
        row.text = tokenizer::decode(tok, &row.tokens)?;
        if let Some(cut) = cfg.stop.cut(&row.text) {
            row.text.truncate(cut);
            row.finish = Some(Finish::Stop);
        } else if step + 1 >= cfg.max_new_tokens {
            row.finish = Some(Finish::Length);
        }
    }
    Ok(id)
}

impl Row {
    /// Tokens generated so far (the 0-based step of the next one).
    pub(crate) fn tokens_len(&self) -> usize {
        self.tokens.len()
    }
    pub(crate) fn into_generation(self) -> Generation {
        Generation {
            prompt: self.prompt,
            sample: self.sample,
            text: self.text,
            tokens: self.tokens,
            logprobs: self.logprobs,
            finish: self.finish.unwrap_or(Finish::Length),
        }
    }
}

/// The SQL query in a model's answer: the inside of the first code block if there is one, from
/// the first `SELECT`/`WITH` on (prose before it is dropped), up to the first `;` outside quotes
/// or a blank line, whitespace outside quotes collapsed so the query fits on one line.
pub fn extract_sql(answer: &str) -> String {
    let mut body = answer;
    if let Some(open) = body.find("```") {
        let after = &body[open + 3..];
        // Skip the language tag on the fence's line (```sql).
        let after = match after.find('\n') {
            Some(nl)
                if after[..nl]
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric()) =>
            {
                &after[nl + 1..]
            }
            _ => after,
        };
        body = match after.find("```") {
            Some(close) => &after[..close],
            None => after,
        };
    }
    let upper = body.to_ascii_uppercase();
    let start = ["SELECT", "WITH"]
        .iter()
        .filter_map(|kw| {
            upper.match_indices(kw).map(|(i, _)| i).find(|&i| {
                let before = upper[..i].chars().next_back();
                let after = upper[i + kw.len()..].chars().next();
                !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .min();
    if let Some(s) = start {
        body = &body[s..];
    }
    let mut out = String::with_capacity(body.len());
    let mut quote: Option<char> = None;
    let mut prev_newline = false;
    let mut pending_space = false;
    for c in body.chars() {
        match quote {
            Some(q) => {
                out.push(if c == '\n' { ' ' } else { c });
                if c == q {
                    quote = None;
                }
            }
            None => {
                if c == ';' {
                    break;
                }
                if c == '\n' {
                    if prev_newline {
                        break; // a blank line ends the query: what follows is prose
                    }
                    prev_newline = true;
                    pending_space = true;
                    continue;
                }
                if c.is_whitespace() {
                    pending_space = true;
                    continue;
                }
                prev_newline = false;
                if pending_space && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                if c == '\'' || c == '"' || c == '`' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out.trim().to_string()
}
