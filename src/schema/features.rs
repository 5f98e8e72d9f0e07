//! Lexical and value features of every table and column against one question: the lexical
//! scorer adds them up with fixed weights, the learned scorer weighs them by logistic regression.

use super::introspect::DbInfo;
use super::text::{content_stems, name_coverage, stem, words};
use super::values::ValueMatch;

/// The question as the scorers see it.
pub struct Question<'a> {
    pub text: &'a str,
    /// Stemmed content words.
    pub stems: Vec<String>,
    /// Lower-cased words joined by single spaces, for phrase tests.
    pub flat: String,
    pub values: &'a [ValueMatch],
}

/// Long questions are cut before scoring: names are matched against the first words only, which
/// bounds the quadratic word matching (a 10,000-character question stays fast).
const MAX_QUESTION_WORDS: usize = 200;

impl<'a> Question<'a> {
    pub fn new(text: &'a str, evidence: &str, values: &'a [ValueMatch]) -> Self {
        let mut stems = content_stems(text);
        stems.extend(content_stems(evidence));
        stems.truncate(MAX_QUESTION_WORDS);
        let mut flat_words = words(text);
        flat_words.truncate(MAX_QUESTION_WORDS * 2);
        let flat = format!(
            " {} ",
            flat_words
                .iter()
                .map(|w| stem(w))
                .collect::<Vec<_>>()
                .join(" ")
        );
        Question {
            text,
            stems,
            flat,
            values,
        }
    }

    fn has_phrase(&self, name: &str) -> bool {
        let w: Vec<String> = words(name).iter().map(|w| stem(w)).collect();
        !w.is_empty() && self.flat.contains(&format!(" {} ", w.join(" ")))
    }
}

pub const TABLE_FEATURES: usize = 12;
pub const COLUMN_FEATURES: usize = 12;

/// Features of every table and of every column, in schema order.
pub struct Features {
    pub tables: Vec<[f32; TABLE_FEATURES]>,
    pub columns: Vec<Vec<[f32; COLUMN_FEATURES]>>,
}

fn coverage(name: &str, q: &Question<'_>) -> f32 {
    let stems: Vec<String> = words(name).iter().map(|w| stem(w)).collect();
    name_coverage(&stems, &q.stems)
}

pub fn compute(db: &DbInfo, q: &Question<'_>) -> Features {
    let n_tables = db.tables.len().max(1) as f32;
    let asks_name =
        q.flat.contains(" name ") || q.flat.contains(" who ") || q.flat.contains(" title ");
    let mut col_cov: Vec<Vec<f32>> = Vec::with_capacity(db.tables.len());
    let mut columns = Vec::with_capacity(db.tables.len());
    let mut table_cov = Vec::with_capacity(db.tables.len());
    for (ti, t) in db.tables.iter().enumerate() {
        let tcov = coverage(&t.name, q).max(coverage(&t.natural, q));
        table_cov.push(tcov);
        let ncols = t.columns.len().max(1) as f32;
        let mut covs = Vec::with_capacity(t.columns.len());
        let mut feats = Vec::with_capacity(t.columns.len());
        for (ci, c) in t.columns.iter().enumerate() {
            let name_cov = coverage(&c.name, q);
            let nat_cov = coverage(&c.natural, q);
            let desc_cov = c.description.as_deref().map_or(0.0, |d| coverage(d, q));
            let value = q
                .values
                .iter()
                .filter(|m| m.table == ti && m.column == ci)
                .map(|m| m.score)
                .fold(0.0, f32::max);
            let ty = c.ty.to_lowercase();
            let numeric = ["int", "real", "num", "float", "double", "dec"]
                .iter()
                .any(|k| ty.contains(k));
            let namey = words(&c.name).iter().any(|w| w == "name" || w == "title");
            covs.push(name_cov.max(nat_cov));
            feats.push([
                name_cov,
                nat_cov,
                value,
                f32::from(c.primary_key),
                f32::from(db.is_foreign_key(ti, ci)),
                tcov,
                f32::from(numeric),
                1.0 / (ci as f32 + 1.0),
                f32::from(q.has_phrase(&c.natural) || q.has_phrase(&c.name)),
                desc_cov,
                f32::from(namey && asks_name),
                1.0 / ncols,
            ]);
        }
        col_cov.push(covs);
        columns.push(feats);
    }
    // The best lexical table anchors the join-graph features.
    let lexical: Vec<f32> = (0..db.tables.len())
        .map(|ti| table_cov[ti] + 0.3 * col_cov[ti].iter().copied().fold(0.0, f32::max))
        .collect();
    let mut rank: Vec<usize> = (0..db.tables.len()).collect();
    rank.sort_by(|&a, &b| lexical[b].total_cmp(&lexical[a]).then(a.cmp(&b)));
    let mut rank_of = vec![0usize; db.tables.len()];
    for (r, &t) in rank.iter().enumerate() {
        rank_of[t] = r;
    }
    let neighbours = |ti: usize| -> Vec<usize> {
        db.foreign_keys
            .iter()
            .filter_map(|fk| {
                if fk.from_table == ti && fk.to_table != ti {
                    Some(fk.to_table)
                } else if fk.to_table == ti && fk.from_table != ti {
                    Some(fk.from_table)
                } else {
                    None
                }
            })
            .collect()
    };
    let mentioned = |t: usize| {
        table_cov[t] >= 0.5
            || col_cov[t].iter().any(|&c| c >= 0.99)
            || q.values.iter().any(|m| m.table == t)
    };
    let tables = db
        .tables
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            let ns = neighbours(ti);
            let mut mentioned_neighbours: Vec<usize> =
                ns.iter().copied().filter(|&n| mentioned(n)).collect();
            mentioned_neighbours.sort();
            mentioned_neighbours.dedup();
            let value = q
                .values
                .iter()
                .filter(|m| m.table == ti)
                .map(|m| m.score)
                .fold(0.0, f32::max);
            let full_cols = col_cov[ti].iter().filter(|&&c| c >= 0.99).count() as f32;
            [
                coverage(&t.name, q),
                coverage(&t.natural, q),
                col_cov[ti].iter().copied().fold(0.0, f32::max),
                full_cols.min(3.0) / 3.0,
                value,
                ns.len() as f32 / n_tables,
                f32::from(ns.contains(&rank[0])),
                1.0 / n_tables,
                1.0 / (rank_of[ti] as f32 + 1.0),
                f32::from(q.has_phrase(&t.natural) || q.has_phrase(&t.name)),
                // A junction table joins two tables the question mentions.
                f32::from(mentioned_neighbours.len() >= 2),
                ((t.rows as f32) + 1.0).ln() / 10.0,
            ]
        })
        .collect();
    Features { tables, columns }
}
