//! Dotted-key overrides (`"run.mode" = "spin"`) applied to a TOML job config.
//!
//! The experiment works on the TOML document rather than on `JobConfig` so that a method can set
//! any field the job config has; the result is then parsed and validated as a `JobConfig`, so a
//! misspelt key is refused before any run starts.

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum OverrideError {
    #[error("override key {key:?} is empty or has an empty part; write it like \"run.mode\"")]
    BadKey { key: String },
    #[error("override key {key:?}: {prefix:?} is a value, not a table, in the base config")]
    NotATable { key: String, prefix: String },
}

/// Sets `key` (dotted path) to `value`, creating the tables on the way.
pub fn apply(doc: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), OverrideError> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err(OverrideError::BadKey { key: key.into() });
    }
    let (last, tables) = parts.split_last().expect("split yields at least one part");
    let mut table = doc;
    for (i, part) in tables.iter().enumerate() {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(OverrideError::NotATable {
                    key: key.into(),
                    prefix: parts[..=i].join("."),
                });
            }
        };
    }
    table.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nested_keys_and_creates_missing_tables() {
        let mut doc: toml::Table =
            toml::from_str("[run]\nmode = \"exspin\"\nrounds = 3\n").unwrap();
        apply(&mut doc, "run.mode", toml::Value::String("spin".into())).unwrap();
        apply(&mut doc, "loss.lambda", toml::Value::Float(0.5)).unwrap();
        assert_eq!(doc["run"]["mode"].as_str(), Some("spin"));
        assert_eq!(doc["run"]["rounds"].as_integer(), Some(3));
        assert_eq!(doc["loss"]["lambda"].as_float(), Some(0.5));
    }

    #[test]
    fn refuses_bad_keys_and_paths_through_values() {
        let mut doc: toml::Table = toml::from_str("[run]\nmode = \"exspin\"\n").unwrap();
        assert_eq!(
            apply(&mut doc, "run..mode", toml::Value::Integer(1)),
            Err(OverrideError::BadKey {
                key: "run..mode".into()
            })
        );
        assert_eq!(
            apply(&mut doc, "run.mode.x", toml::Value::Integer(1)),
            Err(OverrideError::NotATable {
                key: "run.mode.x".into(),
                prefix: "run.mode".into()
            })
        );
    }
}
