//! The text a model continues for a schema prompt, and the text of an answer. One rule per
//! template:
//!
//! * ChatML (instruct models): [`SYSTEM`] as the system message, the schema prompt and
//!   [`INSTRUCTION`] as the user turn (what `exspin generate`'s measured Spider figures used).
//! * Plain (base and tiny models): the schema prompt and the [`PLAIN_CUE`], no system text (what
//!   the run's tiny-model experiments used; a base model continues a cue, not an instruction).
//!
//! The answer is the query and the template's end of turn, so training teaches stopping and
//! every score includes it.

use tokenizers::Tokenizer;

use crate::model::chat::ChatTemplate;
use crate::model::tokenizer;

use super::PromptError;

pub const SYSTEM: &str =
    "You are a SQLite expert. Answer the question with one SQLite query in a ```sql code block.";

/// The user turn's last line under ChatML.
pub const INSTRUCTION: &str = "Write one SQLite query that answers the question.";

/// What a plain-template prompt ends with: the model continues with the query.
pub const PLAIN_CUE: &str = "-- SQL:\n";

/// The text the model continues for `schema_prompt` (schema first, question last).
pub fn render(template: &ChatTemplate, schema_prompt: &str) -> String {
    match template {
        ChatTemplate::ChatMl => {
            template.render(Some(SYSTEM), &format!("{schema_prompt}\n{INSTRUCTION}"))
        }
        ChatTemplate::Plain => format!("{schema_prompt}\n{PLAIN_CUE}"),
    }
}

/// The token ids of [`render`]'s text.
pub fn prompt_ids(
    tok: &Tokenizer,
    template: &ChatTemplate,
    schema_prompt: &str,
) -> Result<Vec<u32>, PromptError> {
    Ok(tokenizer::encode(tok, &render(template, schema_prompt))?)
}

/// An answer as training and scoring see it: the query, then the end of turn.
pub fn answer_text(template: &ChatTemplate, sql: &str) -> String {
    format!("{}{}", sql.trim(), template.end_of_turn())
}

pub fn answer_ids(
    tok: &Tokenizer,
    template: &ChatTemplate,
    sql: &str,
) -> Result<Vec<u32>, PromptError> {
    Ok(tokenizer::encode(tok, &answer_text(template, sql))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_carries_the_system_message_and_the_instruction() {
        let t = render(&ChatTemplate::ChatMl, "-- Question: q\n");
        assert_eq!(
            t,
            format!(
                "<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n-- Question: q\n\n\
                 {INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n"
            )
        );
    }

    #[test]
    fn plain_ends_with_the_sql_cue_and_no_system_text() {
        assert_eq!(
            render(&ChatTemplate::Plain, "-- Question: q\n"),
            "-- Question: q\n\n-- SQL:\n"
        );
        assert_eq!(
            answer_text(&ChatTemplate::Plain, " SELECT 1 \n"),
            "SELECT 1<|endoftext|>"
        );
    }
}
