//! Continued SFT that follows a finished run (`run.follow`): it trains the gold answer of exactly
//! the samples that run trained, round by round, without generating or executing anything. The
//! same prompts and the same number of steps as the run it is compared with, so the only
//! difference left is the negative (ExSPIN's wrong generation). Without it, continued SFT picks
//! its golds from its own opponent's wrong answers, whose count drifts from the comparison's after
//! round 0, and it spends the comparison's generation time again.

use std::collections::HashSet;

use exspin::data::Dataset;

use crate::protocol::seams::{Judged, PromptItem, Sample, Verdict};

/// The sample ids a finished run trained (its `summary.json`'s `samples_trained_ids`).
#[derive(Debug, Clone, PartialEq)]
pub struct Followed {
    trained: HashSet<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FollowError {
    #[error(
        "sample {id:?} is not one of this run's samples (rounds 0..{rounds}): the followed run \
         drew other prompts. Give both runs the same data, run.seed, run.prompts_per_round and \
         run.samples_per_prompt"
    )]
    NotPlanned { id: String, rounds: u64 },
    #[error(
        "the followed run trained nothing in round {round}: it has fewer rounds than this run. \
         Lower run.rounds to its rounds, or follow a run with more"
    )]
    RoundMissing { round: u64 },
}

impl Followed {
    pub fn new(trained: impl IntoIterator<Item = String>) -> Followed {
        Followed {
            trained: trained.into_iter().collect(),
        }
    }

    /// Checks that the followed run's samples are this run's (same prompts in the same rounds)
    /// and that it trained something in each of this run's `rounds`. Its samples in later rounds
    /// are allowed (this run may stop earlier).
    pub fn check_plan(
        &self,
        train: &Dataset,
        order: &[usize],
        rounds: u64,
        prompts_per_round: usize,
        samples_per_prompt: usize,
    ) -> Result<(), FollowError> {
        let planned: HashSet<String> = (0..rounds)
            .flat_map(|round| {
                let start = round as usize * prompts_per_round;
                (start..start + prompts_per_round).flat_map(move |i| {
                    let ex = &train.examples[order[i % order.len()]];
                    (0..samples_per_prompt).map(move |k| format!("{}#r{round}#s{k}", ex.id))
                })
            })
            .collect();
        let mut seen_rounds = HashSet::new();
        let mut ids: Vec<&String> = self.trained.iter().collect();
        ids.sort();
        for id in ids {
            let Some(round) = round_of(id) else {
                return Err(FollowError::NotPlanned {
                    id: id.clone(),
                    rounds,
                });
            };
            if round >= rounds {
                continue;
            }
            if !planned.contains(id) {
                return Err(FollowError::NotPlanned {
                    id: id.clone(),
                    rounds,
                });
            }
            seen_rounds.insert(round);
        }
        match (0..rounds).find(|r| !seen_rounds.contains(r)) {
            Some(round) => Err(FollowError::RoundMissing { round }),
            None => Ok(()),
        }
    }

    /// The batch's samples as the followed run judged them, as far as its trained ids tell: a
    /// trained sample was not correct (recorded as `WrongResult`; which failure it was is not
    /// kept), any other was correct or could not be judged (`Correct`), so continued SFT's pairs
    /// (`pairs::make_pairs`) are exactly the followed run's. Nothing is generated: the SQL is
    /// empty and so are the log-probs, which continued SFT does not read.
    pub fn judgements(&self, batch: &[PromptItem], n_samples: usize, version: u64) -> Vec<Judged> {
        batch
            .iter()
            .flat_map(|p| {
                (0..n_samples).map(move |k| {
                    let sample_id = p.sample_id(k);
                    let verdict = if self.trained.contains(&sample_id) {
                        Verdict::WrongResult
                    } else {
                        Verdict::Correct
                    };
                    Judged {
                        prompt: p.clone(),
                        sample: Sample {
                            example_id: p.example_id.clone(),
                            sample_id,
                            round: p.round,
                            sql: String::new(),
                            version,
                            ref_version: version,
                            logp_gold: 0.0,
                            logp_gen: 0.0,
                            tokens: 0,
                        },
                        verdict,
                    }
                })
            })
            .collect()
    }
}

/// The round of a sample id `{example}#r{round}#s{k}`.
fn round_of(sample_id: &str) -> Option<u64> {
    let mut parts = sample_id.rsplitn(3, '#');
    let _sample = parts.next()?;
    parts.next()?.strip_prefix('r')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::logic::pairs::make_pairs;

    fn prompt(example: &str, round: u64) -> PromptItem {
        PromptItem {
            example_id: example.into(),
            db_id: "db".into(),
            question: format!("question {example}"),
            gold_sql: format!("SELECT '{example}'"),
            prompt: format!("prompt {example}"),
            round,
        }
    }

    #[test]
    fn continued_sft_pairs_are_exactly_the_followed_runs_trained_samples() {
        let followed = Followed::new(["a#r1#s0".to_string(), "b#r1#s1".into(), "b#r1#s0".into()]);
        let batch = [prompt("a", 1), prompt("b", 1), prompt("c", 1)];
        let judged = followed.judgements(&batch, 2, 1);
        assert_eq!(judged.len(), 6);
        let (pairs, filtered) = make_pairs(Mode::Sft, &judged);
        let ids: Vec<&str> = pairs.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a#r1#s0", "b#r1#s0", "b#r1#s1"]);
        assert!(pairs.iter().all(|p| p.rejected.is_none()));
        assert_eq!(pairs[1].chosen, "SELECT 'b'");
        assert_eq!(filtered, ["a#r1#s1", "c#r1#s0", "c#r1#s1"]);
    }

    #[test]
    fn the_round_is_read_from_the_sample_id() {
        assert_eq!(round_of("spider-train-00074#r12#s3"), Some(12));
        assert_eq!(round_of("odd#id#r2#s0"), Some(2));
        assert_eq!(round_of("no-round"), None);
    }
}
