//! Token counts for budgets and measurements, with the model's own tokenizer (tokenizer.json).

use std::path::Path;

use super::SchemaError;

pub struct TokenCounter {
    tokenizer: tokenizers::Tokenizer,
}

impl TokenCounter {
    pub fn from_file(path: &Path) -> Result<TokenCounter, SchemaError> {
        let tokenizer =
            tokenizers::Tokenizer::from_file(path).map_err(|e| SchemaError::Tokenizer {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(TokenCounter { tokenizer })
    }

    /// Tokens of `text` without special tokens (a chat template adds its own).
    pub fn count(&self, text: &str) -> usize {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.len())
            .unwrap_or(text.len() / 3)
    }
}
