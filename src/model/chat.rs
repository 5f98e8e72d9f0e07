//! Prompt templates: Qwen's ChatML for instruct models, the plain text for base models.
//!
//! The template is chosen from the model's metadata (its `chat_template` string and whether the
//! vocabulary has `<|im_start|>`), and can be overridden by name (`chatml`, `plain`).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a (system, user) prompt becomes the text the model continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatTemplate {
    /// `<|im_start|>system\n…<|im_end|>\n<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n`.
    ChatMl,
    /// The system text, a blank line, the user text: what a base model continues.
    Plain,
}

/// Qwen2.5's default system message (its chat template inserts it when none is given).
pub const QWEN_DEFAULT_SYSTEM: &str =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

impl ChatTemplate {
    /// ChatML when the model's own template speaks it, or, with no template, when the vocabulary
    /// has `<|im_start|>` and `<|im_end|>` and the model calls itself an instruct/chat model.
    pub fn detect(template: Option<&str>, has_im_tokens: bool, name: Option<&str>) -> Self {
        match template {
            Some(t) if t.contains("<|im_start|>") => ChatTemplate::ChatMl,
            Some(_) => ChatTemplate::Plain,
            None => {
                let chatty = name.is_some_and(|n| {
                    let n = n.to_ascii_lowercase();
                    n.contains("instruct") || n.contains("chat")
                });
                if has_im_tokens && chatty {
                    ChatTemplate::ChatMl
                } else {
                    ChatTemplate::Plain
                }
            }
        }
    }

    /// The text the model continues. `system` None uses Qwen's default for ChatML (as Qwen's own
    /// template does) and nothing for plain prompts.
    pub fn render(&self, system: Option<&str>, user: &str) -> String {
        match self {
            ChatTemplate::ChatMl => format!(
                "<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n",
                system.unwrap_or(QWEN_DEFAULT_SYSTEM)
            ),
            ChatTemplate::Plain => match system {
                Some(s) if !s.is_empty() => format!("{s}\n\n{user}"),
                _ => user.to_string(),
            },
        }
    }

    /// Text that ends an answer under this template (appended to training targets).
    pub fn end_of_turn(&self) -> &'static str {
        match self {
            ChatTemplate::ChatMl => "<|im_end|>",
            ChatTemplate::Plain => "<|endoftext|>",
        }
    }
}

impl FromStr for ChatTemplate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "chatml" => Ok(ChatTemplate::ChatMl),
            "plain" | "base" | "none" => Ok(ChatTemplate::Plain),
            other => Err(format!(
                "unknown chat template {other:?}: use chatml or plain"
            )),
        }
    }
}
