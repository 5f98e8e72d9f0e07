//! The text a model continues for a schema prompt, and the text of an answer. One rule per
//! template:
//!
//! * ChatML (instruct models): [`SYSTEM`] as the system message, the schema prompt and
//!   [`INSTRUCTION`] as the user turn (what `exspin generate`'s measured Spider figures used).
//! * Plain (base and tiny models): the schema prompt and the [`PLAIN_CUE`], no system text (what
//!   the run's tiny-model experiments used; a base model continues a cue, not an instruction).
//!
//! Under ChatML the assistant turn opens with [`ANSWER_PREFIX`] (a ```sql code block), so an
//! instruct model writes the query at once: without it, Qwen2.5-Coder-0.5B answered 12 of 200
//! Spider questions with a step-by-step explanation that ran out of tokens before any SQL.
//!
//! The answer is the query, the block's closing fence (ChatML) and the template's end of turn,
//! so training teaches stopping and every score includes it; [`answer_sql`] reads the query
//! back out of a completion.

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

/// How the assistant turn starts under ChatML: an opened SQL code block.
pub const ANSWER_PREFIX: &str = "```sql\n";

/// The part of the answer the prompt already holds (empty under the plain template).
pub fn answer_prefix(template: &ChatTemplate) -> &'static str {
    match template {
        ChatTemplate::ChatMl => ANSWER_PREFIX,
        ChatTemplate::Plain => "",
    }
}

/// The query of a model's completion of [`render`]'s text (the completion continues the
/// answer prefix, so the code block it closes was opened by the prompt).
pub fn answer_sql(template: &ChatTemplate, completion: &str) -> String {
    crate::model::generate::extract_sql(&format!("{}{completion}", answer_prefix(template)))
}

/// The text the model continues for `schema_prompt` (schema first, question last).
pub fn render(template: &ChatTemplate, schema_prompt: &str) -> String {
    match template {
        ChatTemplate::ChatMl => {
            template.render(Some(SYSTEM), &format!("{schema_prompt}\n{INSTRUCTION}"))
                + ANSWER_PREFIX
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
    let close = match template {
        ChatTemplate::ChatMl => "\n```",
        ChatTemplate::Plain => "",
    };
    format!("{}{close}{}", sql.trim(), template.end_of_turn())
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
                 {INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n```sql\n"
            )
        );
        assert_eq!(
            answer_text(&ChatTemplate::ChatMl, " SELECT 1 \n"),
            "SELECT 1\n```<|im_end|>"
        );
        // The completion continues the opened block; the query comes back whole.
        assert_eq!(
            answer_sql(&ChatTemplate::ChatMl, "SELECT name\nFROM t;\n```"),
            "SELECT name FROM t"
        );
        assert_eq!(answer_sql(&ChatTemplate::Plain, "SELECT 1\n"), "SELECT 1");
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
