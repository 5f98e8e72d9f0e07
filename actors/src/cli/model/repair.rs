//! Repairs for `exspin generate` and `exspin ask`: every answer runs in the read-only sandbox;
//! one that fails (an SQLite error or a refused statement) is answered again, greedily, with a
//! note on where the schema has what the error names (`exspin::prompt::repair`), up to `rounds`
//! times; one that still fails is rewritten through the right table of its joins when that makes
//! it run (`exspin::prompt::requalify`). No gold answer is looked at, so the figures stay honest
//! inference figures.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use exspin::model::chat::ChatTemplate;
use exspin::model::load::LoadedModel;
use exspin::model::prefix_cache::PrefixCache;
use exspin::prompt::repair::failure;
use exspin::prompt::requalify::until_it_runs;
use exspin::schema::introspect::DbInfo;
use exspin::sql::executor::{ExecutorConfig, Sandbox};

use super::ask::{Answer, answer};

/// A question's context for repairs: its schema prompt (no template yet), its database and the
/// database's schema.
pub struct Asked<'a> {
    pub schema_prompt: String,
    pub db: &'a Path,
    pub info: &'a DbInfo,
}

/// What the repair turns did to a batch of answers.
#[derive(Debug, Default, Clone, Copy)]
pub struct RepairStats {
    /// Repairs generated (a question repaired twice counts twice).
    pub turns: usize,
    /// Answers that failed first and run after their repairs (requalified ones included).
    pub fixed: usize,
    /// Answers that still failed after the model's repairs and run once requalified.
    pub requalified: usize,
}

/// The repairs of a batch of answers.
pub struct Repaired {
    pub stats: RepairStats,
    /// Each question's last repair (None: its first answer ran, or it was never repaired).
    pub last: Vec<Option<Answer>>,
    /// Whether each question's answer is its last one requalified (its `sql` is then not the
    /// model's text).
    pub requalified: Vec<bool>,
}

impl Repaired {
    /// The answer that stands for question `i`: its last repair, else its first answer.
    pub fn answer<'a>(&'a self, first: &'a [Answer], i: usize) -> &'a Answer {
        self.last[i].as_ref().unwrap_or(&first[i])
    }
}

/// Runs each answer; each failing one is answered again with a note, for at most `rounds`
/// rounds (each round adds the note of its failure to the earlier ones), and one that still
/// fails is requalified when that makes it run. The last repair stands for the question: a
/// repair that still fails is no worse than its failed original.
#[allow(clippy::too_many_arguments)]
pub fn repair(
    lm: &LoadedModel,
    template: &ChatTemplate,
    asked: &[Asked<'_>],
    answers: &[Answer],
    rounds: usize,
    max_new_tokens: usize,
    max_rows: usize,
    prefixes: &mut PrefixCache,
) -> anyhow::Result<Repaired> {
    assert_eq!(asked.len(), answers.len(), "one answer per question");
    let config = ExecutorConfig::default();
    let mut sandboxes: HashMap<PathBuf, Sandbox> = HashMap::new();
    let mut done = Repaired {
        stats: RepairStats::default(),
        last: (0..answers.len()).map(|_| None).collect(),
        requalified: vec![false; answers.len()],
    };
    let mut notes: Vec<Vec<String>> = vec![Vec::new(); answers.len()];
    // Round 0 runs every answer; a later round, the answers the round before repaired.
    let mut check: Vec<usize> = (0..answers.len()).collect();
    for round in 0..=rounds {
        // (question, the text the model continues)
        let mut todo: Vec<(usize, String)> = Vec::new();
        for &i in &check {
            let q = &asked[i];
            let sql = done.answer(answers, i).sql.clone();
            let sandbox = match sandboxes.entry(q.db.to_path_buf()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(Sandbox::open(q.db)?),
            };
            match failure(sandbox, &sql, &config) {
                Some(error) if round < rounds => {
                    notes[i].push(exspin::prompt::repair::feedback(q.info, &sql, &error));
                    let text = exspin::prompt::repair::render_repair(
                        template,
                        &q.schema_prompt,
                        &notes[i],
                    );
                    todo.push((i, text));
                }
                // The model's repairs are spent (none when `rounds` is 0: one pass means one).
                Some(error) if rounds > 0 => {
                    if let Some(sql) = until_it_runs(sandbox, q.info, &sql, error, &config) {
                        let last = done.answer(answers, i).clone();
                        done.last[i] = Some(Answer { sql, ..last });
                        done.requalified[i] = true;
                        done.stats.requalified += 1;
                        done.stats.fixed += 1;
                    }
                }
                Some(_) => {}
                None if round > 0 => done.stats.fixed += 1,
                None => {}
            }
        }
        if todo.is_empty() {
            break;
        }
        let ids = todo
            .iter()
            .map(|(_, text)| exspin::model::tokenizer::encode(&lm.tokenizer, text))
            .collect::<Result<Vec<_>, _>>()?;
        done.stats.turns += ids.len();
        let repaired = answer(lm, template, ids, max_new_tokens, max_rows, prefixes)?;
        check = todo.iter().map(|(i, _)| *i).collect();
        for ((i, _), a) in todo.iter().zip(repaired) {
            done.last[*i] = Some(a);
        }
    }
    Ok(done)
}
