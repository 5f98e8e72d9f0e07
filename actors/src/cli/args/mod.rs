//! Arguments several commands share: the dataset, the schema prompt's settings, threads and
//! the compute device.

pub mod compute;
pub mod dataset;
pub mod schema;
pub mod tls;

pub use dataset::DatasetArgs;
pub use schema::{PromptModeArgs, SchemaArgs};
