//! The schema prompt of an example, by schema mode: `src/schema`'s prompt builder (plain or
//! integrated, by its options' style) or the ddl statements of a tables.json.

use std::path::{Path, PathBuf};

use crate::data::{Example, TablesFile};
use crate::schema::PromptBuilder;
use crate::schema::builder::PromptOptions;
use crate::schema::prompt::Style;

use super::shots::{self, ShotPool};
use super::{PromptError, SchemaMode, ddl};

/// Sets the builder's style and example rows for `mode` (plain, rows or integrated), so that a
/// builder's text is the mode's whoever builds it (a dataset's prompts, `exspin ask`'s one
/// SQLite file).
///
/// # Panics
/// On `SchemaMode::Ddl`, which is not the builder's (it needs a tables.json: [`SchemaPrompts::ddl`]).
pub fn set_builder_mode(options: &mut PromptOptions, mode: SchemaMode) {
    match mode {
        SchemaMode::Plain => {
            options.style = Style::Plain;
            options.example_rows = 0;
        }
        SchemaMode::Rows => {
            options.style = Style::Plain;
            if options.example_rows == 0 {
                options.example_rows = super::DEFAULT_EXAMPLE_ROWS;
            }
        }
        SchemaMode::Integrated => options.style = Style::Explicit,
        SchemaMode::Ddl => panic!("the ddl prompt comes from SchemaPrompts::ddl"),
    }
}

/// Where a schema prompt's schema comes from.
pub enum SchemaSource {
    Ddl { tables: TablesFile, path: PathBuf },
    Builder(Box<PromptBuilder>),
}

/// The schema prompts of a dataset: the schema of the question's database, optionally the
/// training pairs most like the question ([`ShotPool`]), then the question.
pub struct SchemaPrompts {
    pub source: SchemaSource,
    shots: Option<(ShotPool, usize)>,
}

impl SchemaPrompts {
    /// The ddl prompts of the databases a tables.json declares.
    pub fn ddl(tables_json: &Path) -> Result<Self, PromptError> {
        Ok(SchemaPrompts {
            source: SchemaSource::Ddl {
                tables: TablesFile::load(tables_json)?,
                path: tables_json.to_path_buf(),
            },
            shots: None,
        })
    }

    /// The ddl prompts of an already loaded tables file (`path` names it in errors).
    pub fn ddl_of(tables: TablesFile, path: PathBuf) -> Self {
        SchemaPrompts {
            source: SchemaSource::Ddl { tables, path },
            shots: None,
        }
    }

    /// The builder's prompts in `mode` (plain, rows or integrated: the builder's style and
    /// example rows are set to match, so the mode and the text cannot disagree).
    ///
    /// # Panics
    /// On `SchemaMode::Ddl`, which needs a tables.json ([`Self::ddl`]).
    pub fn builder(mut builder: PromptBuilder, mode: SchemaMode) -> Self {
        set_builder_mode(builder.options_mut(), mode);
        SchemaPrompts {
            source: SchemaSource::Builder(Box::new(builder)),
            shots: None,
        }
    }

    /// Puts the `k` pairs of `pool` most like each question before it (none when `k` is 0).
    pub fn with_shots(mut self, pool: ShotPool, k: usize) -> Self {
        self.shots = (k > 0).then_some((pool, k));
        self
    }

    /// Examples per prompt (0: none).
    pub fn shots(&self) -> usize {
        self.shots.as_ref().map_or(0, |(_, k)| *k)
    }

    pub fn mode(&self) -> SchemaMode {
        match &self.source {
            SchemaSource::Ddl { .. } => SchemaMode::Ddl,
            SchemaSource::Builder(b) => match b.options().style {
                Style::Plain if b.options().example_rows > 0 => SchemaMode::Rows,
                Style::Plain => SchemaMode::Plain,
                Style::Explicit => SchemaMode::Integrated,
            },
        }
    }

    /// The schema prompt of `ex` (schema first, examples next, question last; no template yet).
    pub fn schema_prompt(&self, ex: &Example) -> Result<String, PromptError> {
        let (mut text, schema_len) = match &self.source {
            SchemaSource::Ddl { tables, path } => {
                let schema = tables
                    .get(&ex.db_id)
                    .ok_or_else(|| PromptError::NoDdlSchema {
                        path: path.clone(),
                        db_id: ex.db_id.clone(),
                    })?;
                let schema_len = ddl::schema_ddl(schema).len();
                (
                    ddl::ddl_prompt(schema, &ex.question, &ex.evidence),
                    schema_len,
                )
            }
            SchemaSource::Builder(b) => {
                let prompt = b
                    .build(ex)
                    .map_err(|source| PromptError::Schema {
                        example: ex.id.clone(),
                        source,
                    })?
                    .prompt;
                (prompt.text, prompt.schema_len)
            }
        };
        if let Some((pool, k)) = &self.shots {
            let chosen = pool.select(&ex.question, &ex.db_id, *k);
            // After the schema's blank line, so prompts of one database still share it whole.
            let at = text[schema_len..]
                .find(|c: char| c != '\n')
                .map_or(text.len(), |i| schema_len + i);
            text.insert_str(at, &shots::shots_text(&chosen));
        }
        Ok(text)
    }
}
