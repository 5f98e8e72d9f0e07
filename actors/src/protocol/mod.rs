//! What crosses between the actors and between the runtime and the model: the messages, and the
//! seams (the synchronous traits the real and fake models implement).

pub mod messages;
pub mod seams;
