//! The schema prompt of an example, by schema mode: `src/schema`'s prompt builder (plain or
//! integrated, by its options' style) or the ddl statements of a tables.json.

use std::path::{Path, PathBuf};

use crate::data::{Example, TablesFile};
use crate::schema::PromptBuilder;
use crate::schema::builder::PromptOptions;
use crate::schema::prompt::Style;

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

pub enum SchemaPrompts {
    Ddl { tables: TablesFile, path: PathBuf },
    Builder(Box<PromptBuilder>),
}

impl SchemaPrompts {
    /// The ddl prompts of the databases a tables.json declares.
    pub fn ddl(tables_json: &Path) -> Result<Self, PromptError> {
        Ok(SchemaPrompts::Ddl {
            tables: TablesFile::load(tables_json)?,
            path: tables_json.to_path_buf(),
        })
    }

    /// The builder's prompts in `mode` (plain, rows or integrated: the builder's style and
    /// example rows are set to match, so the mode and the text cannot disagree).
    ///
    /// # Panics
    /// On `SchemaMode::Ddl`, which needs a tables.json ([`Self::ddl`]).
    pub fn builder(mut builder: PromptBuilder, mode: SchemaMode) -> Self {
        set_builder_mode(builder.options_mut(), mode);
        SchemaPrompts::Builder(Box::new(builder))
    }

    pub fn mode(&self) -> SchemaMode {
        match self {
            SchemaPrompts::Ddl { .. } => SchemaMode::Ddl,
            SchemaPrompts::Builder(b) => match b.options().style {
                Style::Plain if b.options().example_rows > 0 => SchemaMode::Rows,
                Style::Plain => SchemaMode::Plain,
                Style::Explicit => SchemaMode::Integrated,
            },
        }
    }

    /// The schema prompt of `ex` (schema first, question last; no template yet).
    pub fn schema_prompt(&self, ex: &Example) -> Result<String, PromptError> {
        match self {
            SchemaPrompts::Ddl { tables, path } => {
                let schema = tables
                    .get(&ex.db_id)
                    .ok_or_else(|| PromptError::NoDdlSchema {
                        path: path.clone(),
                        db_id: ex.db_id.clone(),
                    })?;
                Ok(ddl::ddl_prompt(schema, &ex.question, &ex.evidence))
            }
            SchemaPrompts::Builder(b) => Ok(b
                .build(ex)
                .map_err(|source| PromptError::Schema {
                    example: ex.id.clone(),
                    source,
                })?
                .prompt
                .text),
        }
    }
}
