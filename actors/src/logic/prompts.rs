//! Where a prompt's text comes from: `exspin::prompt::SchemaPrompts` for a real model (the
//! integrated schema, or the plain full schema for the ablation: the same schema prompts
//! `exspin generate` makes), the one-line stand-in for the fake model (which never reads it).
//! The template goes on later, in the seams (`real::Lm::prompt_ids`, `exspin::prompt::render`). Built prompts are cached by example id, so every round after
//! the first (and the SFT phase before it) reads them from memory.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use exspin::data::{Dataset, Example};
use exspin::prompt::{SchemaMode, SchemaPrompts};
use exspin::schema::builder::{self, PromptBuilder, PromptOptions};
use exspin::schema::filter::{FilterConfig, LexicalScorer};
use parking_lot::Mutex;

use crate::config::ModelConfig;
use crate::protocol::seams::stand_in_prompt;

pub enum Prompter {
    StandIn,
    Schema {
        prompts: SchemaPrompts,
        cache: Mutex<HashMap<String, String>>,
    },
}

impl Prompter {
    /// The prompter a model config asks for. The schema caches (introspection, value indexes) go
    /// to `cache_dir`. Train and dev of one dataset share its tables file and database folder.
    pub fn new(model: &ModelConfig, dataset: &Dataset, cache_dir: &Path) -> anyhow::Result<Self> {
        if model.is_fake() {
            return Ok(Prompter::StandIn);
        }
        let tables = builder::tables_file_for(dataset).with_context(|| {
            format!(
                "reading the tables file beside {}",
                dataset.source.display()
            )
        })?;
        if model.schema == SchemaMode::Ddl {
            anyhow::ensure!(
                !tables.databases.is_empty(),
                "model.schema = \"ddl\" renders the CREATE TABLE statements of a tables.json, and \
                 there is none beside {}: use \"integrated\" or \"plain\"",
                dataset.source.display()
            );
            return Ok(Prompter::Schema {
                prompts: SchemaPrompts::ddl_of(tables, dataset.source.clone()),
                cache: Mutex::new(HashMap::new()),
            });
        }
        let options = PromptOptions {
            filter: FilterConfig {
                k1: model.schema_k1,
                k2: model.schema_k2,
                // Ranked padding: the same question always gets the same prompt.
                random_padding: false,
                ..FilterConfig::default()
            },
            representative_values: model.schema_values,
            example_rows: model.schema_rows,
            ..PromptOptions::default()
        };
        // The lexical scorer needs no trained file, so a fresh run folder works as is.
        let b = PromptBuilder::new(
            cache_dir,
            &dataset.database_root,
            tables,
            Box::new(LexicalScorer),
            options,
        );
        Ok(Prompter::Schema {
            prompts: SchemaPrompts::builder(b, model.schema),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The prompt text of `ex` (the model's template is applied later, by the seams).
    pub fn prompt(&self, ex: &Example) -> anyhow::Result<String> {
        match self {
            Prompter::StandIn => Ok(stand_in_prompt(&ex.db_id, &ex.question)),
            Prompter::Schema { prompts, cache } => {
                if let Some(p) = cache.lock().get(&ex.id) {
                    return Ok(p.clone());
                }
                let text = prompts.schema_prompt(ex)?;
                cache.lock().insert(ex.id.clone(), text.clone());
                Ok(text)
            }
        }
    }
}
