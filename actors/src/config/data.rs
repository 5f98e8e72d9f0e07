//! `[data]`: where the examples come from. The TOML stays flat (`source = "spider"`, `path =
//! ...`); past parsing the source is a [`DataSource`] holding only the fields it reads.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The examples of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// The embedded default, generated into the run folder.
    Synthetic(SyntheticData),
    /// A Spider-layout folder (train_spider.json, dev.json, tables.json, database/).
    Spider { path: PathBuf },
}

/// The synthetic default's generator settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticData {
    pub seed: u64,
    pub train: usize,
    pub dev: usize,
    /// When > 0, the dev split is the last N train questions, held out (same databases, unseen
    /// questions) instead of the dev databases (unseen schemas, which a tiny model trained for
    /// minutes does not generalise to).
    pub holdout: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DataToml", into = "DataToml")]
pub struct DataConfig {
    pub source: DataSource,
    /// Dev examples used for the per-round dev accuracy (first N).
    pub dev_limit: usize,
    /// Only the first N train examples (0 = all): a fixed slice, e.g. of Spider's 7,000.
    pub train_limit: usize,
    /// The dev examples are a fixed subset of `dev_limit` stratified by the official hardness
    /// level (as `exspin eval --stratified`) instead of the first `dev_limit`.
    pub dev_stratified: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataToml::default()
            .try_into()
            .expect("the default data config is valid")
    }
}

/// Which source `data.source` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SourceKind {
    #[default]
    Synthetic,
    Spider,
}

/// `[data]` as written. Fields of one source only are options, so setting one for the other
/// source is an error instead of being silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct DataToml {
    source: SourceKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    synthetic_seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    synthetic_train: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    synthetic_dev: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    synthetic_holdout: Option<usize>,
    dev_limit: usize,
    train_limit: usize,
    dev_stratified: bool,
}

impl Default for DataToml {
    fn default() -> Self {
        DataToml {
            source: SourceKind::Synthetic,
            path: None,
            synthetic_seed: None,
            synthetic_train: None,
            synthetic_dev: None,
            synthetic_holdout: None,
            dev_limit: 40,
            train_limit: 0,
            dev_stratified: false,
        }
    }
}

impl TryFrom<DataToml> for DataConfig {
    type Error = String;
    fn try_from(t: DataToml) -> Result<Self, String> {
        let source = match t.source {
            SourceKind::Synthetic => {
                if t.path.is_some() {
                    return Err(
                        "data.path is only read with data.source = \"spider\"; remove it, or set \
                         data.source = \"spider\""
                            .into(),
                    );
                }
                let synthetic = SyntheticData {
                    seed: t.synthetic_seed.unwrap_or(42),
                    train: t.synthetic_train.unwrap_or(120),
                    dev: t.synthetic_dev.unwrap_or(40),
                    holdout: t.synthetic_holdout.unwrap_or(0),
                };
                if synthetic.train == 0 || synthetic.dev == 0 {
                    return Err(
                        "data.synthetic_train and data.synthetic_dev must be at least 1".into(),
                    );
                }
                if synthetic.holdout >= synthetic.train {
                    return Err(format!(
                        "data.synthetic_holdout ({}) must be below data.synthetic_train ({}): the \
                         held-out questions come out of the train split",
                        synthetic.holdout, synthetic.train
                    ));
                }
                DataSource::Synthetic(synthetic)
            }
            SourceKind::Spider => {
                let synthetic_keys = [
                    ("synthetic_seed", t.synthetic_seed.is_some()),
                    ("synthetic_train", t.synthetic_train.is_some()),
                    ("synthetic_dev", t.synthetic_dev.is_some()),
                    ("synthetic_holdout", t.synthetic_holdout.is_some()),
                ];
                if let Some((key, _)) = synthetic_keys.iter().find(|(_, set)| *set) {
                    return Err(format!(
                        "data.{key} is only read with data.source = \"synthetic\"; remove it"
                    ));
                }
                let path = t.path.ok_or(
                    "data.source = \"spider\" needs data.path (the folder with train_spider.json)",
                )?;
                DataSource::Spider { path }
            }
        };
        Ok(DataConfig {
            source,
            dev_limit: t.dev_limit,
            train_limit: t.train_limit,
            dev_stratified: t.dev_stratified,
        })
    }
}

impl From<DataConfig> for DataToml {
    fn from(c: DataConfig) -> DataToml {
        let mut t = DataToml {
            dev_limit: c.dev_limit,
            train_limit: c.train_limit,
            dev_stratified: c.dev_stratified,
            ..DataToml::default()
        };
        match c.source {
            DataSource::Synthetic(s) => {
                t.source = SourceKind::Synthetic;
                t.synthetic_seed = Some(s.seed);
                t.synthetic_train = Some(s.train);
                t.synthetic_dev = Some(s.dev);
                t.synthetic_holdout = Some(s.holdout);
            }
            DataSource::Spider { path } => {
                t.source = SourceKind::Spider;
                t.path = Some(path);
            }
        }
        t
    }
}
