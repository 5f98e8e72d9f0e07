//! What crosses between the runtime and the model: the seams (the synchronous traits the real
//! and fake models implement) and the values passed through them. The actors' own messages are
//! `stages/messages.rs`.

pub mod seams;
