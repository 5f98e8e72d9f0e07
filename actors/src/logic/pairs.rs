//! Turning judged samples into training pairs, per mode. Pure functions: the replay actor calls
//! them, the tests call them directly.
//!
//! Every pair takes the id of the sample it came from, so each sample gives at most one pair and
//! "trained exactly once" is a statement about sample ids.

use crate::config::Mode;
use crate::protocol::seams::{Judged, Pair, Verdict};

/// Pairs made from the samples of one or more prompts (all samples of a prompt together, as the
/// opponent generates them), and the sample ids that give no pair (filtered), in input order.
pub fn make_pairs(mode: Mode, judged: &[Judged]) -> (Vec<Pair>, Vec<String>) {
    if mode == Mode::Grpo {
        return grpo_items(judged);
    }
    let mut pairs = Vec::new();
    let mut filtered = Vec::new();
    for j in judged {
        let s = &j.sample;
        let gold = |rejected: Option<(&str, f32)>| Pair {
            id: s.sample_id.clone(),
            example_id: s.example_id.clone(),
            prompt: j.prompt.prompt.clone(),
            chosen: j.prompt.gold_sql.clone(),
            rejected: rejected.map(|(sql, _)| sql.to_string()),
            version: s.version,
            ref_logp_chosen: s.logp_gold,
            ref_logp_rejected: rejected.map(|(_, lp)| lp),
            ref_version: s.ref_version,
            advantage: None,
        };
        let keep = match (mode, &j.verdict) {
            (_, Verdict::GoldFailed) => None,
            // Continued SFT: the gold of every generation ExSPIN would pair, alone: the same
            // prompts and steps as ExSPIN, without its negative.
            (Mode::Sft, Verdict::Correct) => None,
            (Mode::Sft, _) => Some(gold(None)),
            (Mode::Spin, _) => Some(gold(Some((&s.sql, s.logp_gen)))),
            (Mode::Exspin, Verdict::Correct) | (Mode::Dpo, Verdict::Correct) | (Mode::Grpo, _) => {
                None
            }
            (Mode::Exspin, _) => Some(gold(Some((&s.sql, s.logp_gen)))),
            (Mode::Dpo, _) => {
                // A correct generation of the same prompt is the better "chosen": it is on-policy.
                let correct = judged.iter().find(|o| {
                    o.sample.example_id == s.example_id
                        && o.sample.round == s.round
                        && o.verdict == Verdict::Correct
                });
                Some(match correct {
                    Some(c) => Pair {
                        chosen: c.sample.sql.clone(),
                        ref_logp_chosen: c.sample.logp_gen,
                        ..gold(Some((&s.sql, s.logp_gen)))
                    },
                    None => gold(Some((&s.sql, s.logp_gen))),
                })
            }
        };
        match keep {
            Some(p) => pairs.push(p),
            None => filtered.push(s.sample_id.clone()),
        }
    }
    (pairs, filtered)
}

/// GRPO's training items: every generation of a prompt, with its advantage within the group of
/// that prompt's samples that arrived together (a whole generate call's, unless a restart
/// re-issued part of it). A group whose rewards are all equal, and a sample whose gold failed,
/// give nothing (filtered).
fn grpo_items(judged: &[Judged]) -> (Vec<Pair>, Vec<String>) {
    use exspin::train::grpo::{execution_reward, group_advantages};
    let mut groups: Vec<((&str, u64), Vec<&Judged>)> = Vec::new();
    let mut filtered = Vec::new();
    for j in judged {
        if j.verdict == Verdict::GoldFailed {
            filtered.push(j.sample.sample_id.clone());
            continue;
        }
        let key = (j.sample.example_id.as_str(), j.sample.round);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(j),
            None => groups.push((key, vec![j])),
        }
    }
    let mut items = Vec::new();
    for (_, members) in groups {
        let rewards: Vec<f32> = members
            .iter()
            .map(|j| execution_reward(&j.verdict))
            .collect();
        for (j, advantage) in members.into_iter().zip(group_advantages(&rewards)) {
            let s = &j.sample;
            if advantage == 0.0 {
                filtered.push(s.sample_id.clone());
                continue;
            }
            items.push(Pair {
                id: s.sample_id.clone(),
                example_id: s.example_id.clone(),
                prompt: j.prompt.prompt.clone(),
                chosen: s.sql.clone(),
                rejected: None,
                version: s.version,
                ref_logp_chosen: s.logp_gen,
                ref_logp_rejected: None,
                ref_version: s.ref_version,
                advantage: Some(advantage),
            });
        }
    }
    (items, filtered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::seams::{PromptItem, Sample};

    fn judged(k: usize, verdict: Verdict) -> Judged {
        let prompt = PromptItem {
            example_id: "e1".into(),
            db_id: "db".into(),
            question: "q".into(),
            gold_sql: "GOLD".into(),
            prompt: "p".into(),
            round: 0,
        };
        Judged {
            sample: Sample {
                example_id: "e1".into(),
                sample_id: prompt.sample_id(k),
                round: 0,
                sql: format!("GEN{k}"),
                version: 0,
                ref_version: 0,
                logp_gold: -1.0,
                logp_gen: -2.0,
                tokens: 1,
            },
            prompt,
            verdict,
        }
    }

    fn batch() -> Vec<Judged> {
        vec![
            judged(0, Verdict::Correct),
            judged(1, Verdict::WrongResult),
            judged(2, Verdict::Timeout),
            judged(3, Verdict::GoldFailed),
        ]
    }

    fn ids(p: &[Pair]) -> Vec<&str> {
        p.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn each_mode_keeps_what_it_should() {
        let (p, f) = make_pairs(Mode::Exspin, &batch());
        assert_eq!(ids(&p), ["e1#r0#s1", "e1#r0#s2"]);
        assert_eq!(f, ["e1#r0#s0", "e1#r0#s3"]);
        assert!(p.iter().all(|p| p.chosen == "GOLD"));

        let (p, _) = make_pairs(Mode::Spin, &batch());
        assert_eq!(ids(&p), ["e1#r0#s0", "e1#r0#s1", "e1#r0#s2"]);

        let (p, _) = make_pairs(Mode::Dpo, &batch());
        assert_eq!(ids(&p), ["e1#r0#s1", "e1#r0#s2"]);
        assert!(
            p.iter().all(|p| p.chosen == "GEN0"),
            "a correct generation is chosen"
        );

        let (p, _) = make_pairs(Mode::Dpo, &batch()[1..]);
        assert!(p.iter().all(|p| p.chosen == "GOLD"), "else gold");

        // SFT trains gold where ExSPIN trains a pair: the same ids, no negative.
        let (p, f) = make_pairs(Mode::Sft, &batch());
        assert_eq!(ids(&p), ["e1#r0#s1", "e1#r0#s2"]);
        assert!(p.iter().all(|p| p.chosen == "GOLD" && p.rejected.is_none()));
        assert_eq!(f, ["e1#r0#s0", "e1#r0#s3"]);
    }

    #[test]
    fn grpo_trains_every_generation_with_its_group_advantage() {
        // Rewards 1 (correct), 0.1 (executes), 0 (timeout); the failed gold is left out.
        // Mean 0.3667, population std 0.44969: advantages 1.4084, -0.5930, -0.8154.
        let (p, f) = make_pairs(Mode::Grpo, &batch());
        assert_eq!(ids(&p), ["e1#r0#s0", "e1#r0#s1", "e1#r0#s2"]);
        assert_eq!(f, ["e1#r0#s3"]);
        let chosen: Vec<&str> = p.iter().map(|p| p.chosen.as_str()).collect();
        assert_eq!(
            chosen,
            ["GEN0", "GEN1", "GEN2"],
            "the generations themselves"
        );
        let adv: Vec<f32> = p.iter().map(|p| p.advantage.unwrap()).collect();
        for (a, want) in adv.iter().zip([1.4084, -0.5930, -0.8154]) {
            assert!((a - want).abs() < 1e-3, "{adv:?}");
        }
        assert!(
            p.iter()
                .all(|p| p.ref_logp_chosen == -2.0 && p.rejected.is_none())
        );

        // All wrong alike: nothing to learn, everything filtered.
        let same = [
            judged(0, Verdict::WrongResult),
            judged(1, Verdict::WrongResult),
        ];
        let (p, f) = make_pairs(Mode::Grpo, &same);
        assert!(p.is_empty());
        assert_eq!(f.len(), 2);

        // Two prompts in one call form two groups.
        let mut other = judged(0, Verdict::Correct);
        other.sample.example_id = "e2".into();
        other.sample.sample_id = "e2#r0#s0".into();
        let mut other_wrong = judged(1, Verdict::Timeout);
        other_wrong.sample.example_id = "e2".into();
        other_wrong.sample.sample_id = "e2#r0#s1".into();
        let mixed = [
            judged(0, Verdict::Correct),
            other,
            other_wrong,
            judged(1, Verdict::Correct),
        ];
        let (p, f) = make_pairs(Mode::Grpo, &mixed);
        assert_eq!(ids(&p), ["e2#r0#s0", "e2#r0#s1"]);
        assert_eq!(f, ["e1#r0#s0", "e1#r0#s1"]);
        assert_eq!(p[0].advantage, Some(1.0));
        assert_eq!(p[1].advantage, Some(-1.0));
    }
}
