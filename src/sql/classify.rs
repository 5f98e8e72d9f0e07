//! The paper's six query types. (Stand-in until the classifier lands; the merge replaces this.)
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryType {
    Other,
}
impl QueryType {
    pub fn name(&self) -> &'static str {
        "other"
    }
}
pub struct KeyInfo;
impl KeyInfo {
    pub fn from_sqlite(_p: &Path) -> Result<KeyInfo, rusqlite::Error> {
        Ok(KeyInfo)
    }
}
pub fn classify(_sql: &str, _k: &KeyInfo) -> QueryType {
    QueryType::Other
}
