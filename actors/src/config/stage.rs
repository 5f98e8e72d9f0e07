//! The six stages of the stream, named once: the supervisor's children, fault injection, the
//! busy-time statistics, the metrics and the progress bars all key on [`Stage`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One kind of actor in the stream (several opponent-generators share the kind `Opponent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    PromptBuilder,
    Opponent,
    Executor,
    Replay,
    Trainer,
    Evaluator,
}

impl Stage {
    /// Every stage, in start order.
    pub const ALL: [Stage; 6] = [
        Stage::PromptBuilder,
        Stage::Opponent,
        Stage::Executor,
        Stage::Replay,
        Stage::Trainer,
        Stage::Evaluator,
    ];

    /// The name configs, `EXSPIN_FAULT`, logs and metrics use.
    pub fn name(self) -> &'static str {
        match self {
            Stage::PromptBuilder => "prompt_builder",
            Stage::Opponent => "opponent",
            Stage::Executor => "executor",
            Stage::Replay => "replay",
            Stage::Trainer => "trainer",
            Stage::Evaluator => "evaluator",
        }
    }

    fn names() -> String {
        Stage::ALL.map(Stage::name).join(", ")
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.name() == s)
            .ok_or_else(|| format!("\"{s}\" is not a stage; use one of {}", Stage::names()))
    }
}

/// An injected panic: `stage:message_index` (the stage panics at its message with that index,
/// counted from 0 over all its incarnations, once) or `stage:*` (at every message: a failure
/// that a restart does not cure, for the restart budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FaultSpec {
    pub stage: Stage,
    pub at: FaultAt,
}

/// Which messages of its stage a fault fires at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAt {
    /// The message with this index (from 0, over all incarnations), once.
    Message(u64),
    /// Every message.
    Every,
}

impl FromStr for FaultSpec {
    type Err = String;
    fn from_str(spec: &str) -> Result<Self, String> {
        let (stage, index) = spec
            .split_once(':')
            .ok_or_else(|| format!("\"{spec}\" is not stage:message_index"))?;
        let stage = stage.trim().parse()?;
        let at =
            match index.trim() {
                "*" => FaultAt::Every,
                n => FaultAt::Message(n.parse().map_err(|_| {
                    format!("\"{index}\" in \"{spec}\" is not a message index or *")
                })?),
            };
        Ok(FaultSpec { stage, at })
    }
}

impl TryFrom<String> for FaultSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<FaultSpec> for String {
    fn from(f: FaultSpec) -> String {
        match f.at {
            FaultAt::Message(n) => format!("{}:{n}", f.stage),
            FaultAt::Every => format!("{}:*", f.stage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_ones_list_the_stages() {
        for stage in Stage::ALL {
            assert_eq!(stage.name().parse::<Stage>(), Ok(stage));
        }
        let err = "optimizer:3".parse::<FaultSpec>().unwrap_err();
        assert!(err.contains("prompt_builder, opponent, executor, replay, trainer, evaluator"));
        assert_eq!(
            "replay:4".parse::<FaultSpec>(),
            Ok(FaultSpec {
                stage: Stage::Replay,
                at: FaultAt::Message(4)
            })
        );
        let every: FaultSpec = "replay:*".parse().unwrap();
        assert_eq!(every.at, FaultAt::Every);
        assert_eq!(String::from(every), "replay:*");
        assert!("replay:x".parse::<FaultSpec>().is_err());
    }
}
