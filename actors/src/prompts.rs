//! Where a prompt's text comes from: `src/schema`'s prompt builder for a real model (the
//! integrated schema, or the plain full schema for the ablation), the one-line stand-in for the
//! fake model (which never reads it). Built prompts are cached by example id, so every round after
//! the first (and the SFT phase before it) reads them from memory.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use exspin::data::{Dataset, Example};
use exspin::schema::builder::{self, PromptBuilder, PromptOptions};
use exspin::schema::filter::{FilterConfig, LexicalScorer};
use exspin::schema::prompt::Style;
use parking_lot::Mutex;

use crate::config::{ModelConfig, SchemaMode};
use crate::seams::stand_in_prompt;

pub enum Prompter {
    StandIn,
    Schema {
        builder: Box<PromptBuilder>,
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
        let options = PromptOptions {
            filter: FilterConfig {
                k1: model.schema_k1,
                k2: model.schema_k2,
                // Ranked padding: the same question always gets the same prompt.
                random_padding: false,
                ..FilterConfig::default()
            },
            style: match model.schema {
                SchemaMode::Plain => Style::Plain,
                SchemaMode::Integrated => Style::Explicit,
            },
            representative_values: model.schema_values,
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
            builder: Box::new(b),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The prompt text of `ex` (the model's template is applied later, by the seams).
    pub fn prompt(&self, ex: &Example) -> anyhow::Result<String> {
        match self {
            Prompter::StandIn => Ok(stand_in_prompt(&ex.db_id, &ex.question)),
            Prompter::Schema { builder, cache } => {
                if let Some(p) = cache.lock().get(&ex.id) {
                    return Ok(p.clone());
                }
                let built = builder
                    .build(ex)
                    .with_context(|| format!("building the prompt of {}", ex.id))?;
                let text = built.prompt.text;
                cache.lock().insert(ex.id.clone(), text.clone());
                Ok(text)
            }
        }
    }
}
