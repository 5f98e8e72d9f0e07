//! SQL: the sandboxed executor, result comparison, and the two ways we classify a query (Spider's
//! official hardness levels and the paper's six query types).

pub mod classify;
pub mod compare;
pub mod executor;
pub mod hardness;
pub mod lexer;
pub mod official;
pub mod value;

pub use value::{ResultSet, Value};
