//! Few-shot examples: the question–SQL pairs of a training set whose questions are most like
//! the one asked, put in the prompt between the schema and the question (DAIL-SQL's selection,
//! Gao et al. 2023, in its simplest form: similarity of *masked* questions).
//!
//! A question's words that name its own database's tables or columns, and its numbers and
//! quoted values, are masked before comparing, so "How many singers are older than 30?" finds
//! "How many heads are older than 56?" by its shape rather than by a shared word like "age".
//! Similarity is the cosine of TF-IDF vectors over the masked words and word pairs.
//!
//! Examples come only from *other* databases than the question's: at test time (Spider dev)
//! the training databases are always others, and a training prompt must not carry its own
//! answer or a near copy of it.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::data::{DatabaseSchema, Example, TablesFile};
use crate::schema::text;

/// The words of a database's table and column names (natural and original).
pub fn schema_words(schema: &DatabaseSchema) -> HashSet<String> {
    let mut words = HashSet::new();
    let names = schema
        .table_names
        .iter()
        .chain(&schema.table_names_original)
        .chain(schema.column_names.iter().map(|(_, n)| n))
        .chain(schema.column_names_original.iter().map(|(_, n)| n));
    for name in names {
        words.extend(words_of(name));
    }
    words
}

/// Lower-cased, stemmed words (`src/schema`'s splitter and stemmer: camelCase splits, so
/// "singers" meets the column `SingerName`).
fn words_of(text: &str) -> Vec<String> {
    text::words(text).iter().map(|w| text::stem(w)).collect()
}

/// The masked word sequence of a question: schema words become `<s>`, numbers `<n>`, quoted
/// spans `<v>`.
pub fn masked(question: &str, schema: &HashSet<String>) -> Vec<String> {
    let mut unquoted = String::with_capacity(question.len());
    let mut quote: Option<char> = None;
    for c in question.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                unquoted.push_str(" qvalue ");
            }
            Some(_) => {}
            None if c == '"' || c == '“' || c == '”' => {
                quote = Some(if c == '“' { '”' } else { c })
            }
            None => unquoted.push(c),
        }
    }
    words_of(&unquoted)
        .into_iter()
        .map(|w| {
            if w == "qvalue" {
                "<v>".to_string()
            } else if w.chars().all(|c| c.is_ascii_digit()) {
                "<n>".to_string()
            } else if schema.contains(&w) {
                "<s>".to_string()
            } else {
                w
            }
        })
        .collect()
}

/// Unigrams and bigrams of a masked question, counted.
fn features(words: &[String]) -> HashMap<String, f32> {
    let mut f = HashMap::new();
    for w in words {
        *f.entry(w.clone()).or_insert(0.0) += 1.0;
    }
    for pair in words.windows(2) {
        *f.entry(format!("{} {}", pair[0], pair[1])).or_insert(0.0) += 1.0;
    }
    f
}

/// The training pairs to draw examples from, indexed for similarity.
pub struct ShotPool {
    examples: Vec<Example>,
    /// The schema words of every database the tables file declares (pool's and questions').
    words_by_db: HashMap<String, HashSet<String>>,
    idf: HashMap<String, f32>,
    /// feature → (example, weight of the feature in its unit vector).
    postings: HashMap<String, Vec<(usize, f32)>>,
}

impl ShotPool {
    /// Indexes `examples`. Questions, theirs and the ones asked later, are masked with their
    /// databases' words from `tables` (one it does not declare masks only numbers and values).
    pub fn new(examples: Vec<Example>, tables: &TablesFile) -> Self {
        let words_by_db: HashMap<String, HashSet<String>> = tables
            .databases
            .iter()
            .map(|(db, schema)| (db.clone(), schema_words(schema)))
            .collect();
        let none = HashSet::new();
        let feats: Vec<HashMap<String, f32>> = examples
            .iter()
            .map(|ex| {
                let words = words_by_db.get(&ex.db_id).unwrap_or(&none);
                features(&masked(&ex.question, words))
            })
            .collect();
        let n = feats.len() as f32;
        let mut df: HashMap<&str, f32> = HashMap::new();
        for f in &feats {
            for k in f.keys() {
                *df.entry(k.as_str()).or_insert(0.0) += 1.0;
            }
        }
        let idf: HashMap<String, f32> = df
            .iter()
            .map(|(k, d)| (k.to_string(), ((n + 1.0) / (d + 1.0)).ln() + 1.0))
            .collect();
        let mut postings: HashMap<String, Vec<(usize, f32)>> = HashMap::new();
        for (i, f) in feats.iter().enumerate() {
            let weighted: Vec<(&String, f32)> = f.iter().map(|(k, tf)| (k, tf * idf[k])).collect();
            let norm = weighted.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
            if norm == 0.0 {
                continue;
            }
            for (k, w) in weighted {
                postings.entry(k.clone()).or_default().push((i, w / norm));
            }
        }
        ShotPool {
            examples,
            words_by_db,
            idf,
            postings,
        }
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The `k` examples most like `question` (asked of `db_id`, whose words are masked), from
    /// databases other than `db_id`, most similar first; ties go to the earlier example.
    pub fn select(&self, question: &str, db_id: &str, k: usize) -> Vec<&Example> {
        if k == 0 {
            return Vec::new();
        }
        let none = HashSet::new();
        let schema = self.words_by_db.get(db_id).unwrap_or(&none);
        let q = features(&masked(question, schema));
        let weighted: Vec<(&String, f32)> = q
            .iter()
            .filter_map(|(f, tf)| self.idf.get(f).map(|idf| (f, tf * idf)))
            .collect();
        let norm = weighted.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        let mut score: HashMap<usize, f32> = HashMap::new();
        if norm > 0.0 {
            for (f, w) in &weighted {
                for &(i, v) in &self.postings[*f] {
                    *score.entry(i).or_insert(0.0) += w / norm * v;
                }
            }
        }
        let mut ranked: Vec<(usize, f32)> = score
            .into_iter()
            .filter(|&(i, _)| self.examples[i].db_id != db_id)
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
            .into_iter()
            .take(k)
            .map(|(i, _)| &self.examples[i])
            .collect()
    }
}

/// The examples as prompt text: SQL comments, the most similar last (nearest the question).
pub fn shots_text(shots: &[&Example]) -> String {
    if shots.is_empty() {
        return String::new();
    }
    let mut out = String::from("-- Examples from other databases:\n");
    for ex in shots.iter().rev() {
        let _ = writeln!(out, "-- Question: {}", one_line(&ex.question));
        let _ = writeln!(
            out,
            "-- SQL: {};",
            one_line(ex.gold_sql.trim().trim_end_matches(';'))
        );
    }
    out.push('\n');
    out
}

/// Whitespace runs (Spider's queries have double spaces) become one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: &str, db: &str, q: &str, sql: &str) -> Example {
        Example {
            id: id.into(),
            db_id: db.into(),
            question: q.into(),
            evidence: String::new(),
            gold_sql: sql.into(),
        }
    }

    fn words(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn masking_hides_schema_words_numbers_and_quoted_values() {
        let m = masked(
            "How many singers are older than 30 and named \"Joe Sharp\"?",
            &words(&["singer", "age", "name"]),
        );
        assert_eq!(
            m,
            [
                "how", "many", "<s>", "are", "older", "than", "<n>", "and", "named", "<v>"
            ]
        );
    }

    #[test]
    fn selection_matches_the_question_shape_across_databases() {
        // Without masking, "age" and "singer" would pull t0 up; masked, the shape wins.
        let mut pool_tables = TablesFile::default();
        pool_tables.databases.insert(
            "concert".into(),
            DatabaseSchema {
                db_id: "concert".into(),
                table_names: vec!["singer".into()],
                table_names_original: vec!["singer".into()],
                column_names: vec![(-1, "*".into()), (0, "age".into())],
                column_names_original: vec![(-1, "*".into()), (0, "Age".into())],
                column_types: vec!["text".into(), "number".into()],
                primary_keys: vec![],
                foreign_keys: vec![],
            },
        );
        let pool = ShotPool::new(
            vec![
                ex(
                    "t0",
                    "music",
                    "List the age of every singer.",
                    "SELECT age FROM singer",
                ),
                ex(
                    "t1",
                    "dept",
                    "How many heads are older than 56?",
                    "SELECT count(*) FROM head WHERE age > 56",
                ),
                ex(
                    "t2",
                    "zoo",
                    "How many cats are older than 3?",
                    "SELECT count(*) FROM cat WHERE age > 3",
                ),
                ex(
                    "t3",
                    "zoo",
                    "What is the average weight of dogs?",
                    "SELECT avg(weight) FROM dog",
                ),
            ],
            &pool_tables,
        );
        assert_eq!(pool.len(), 4);
        let got = pool.select("How many singers are older than 30?", "concert", 2);
        let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["t1", "t2"]);
        // Never the question's own database.
        let got = pool.select("How many cats are older than 3?", "zoo", 4);
        assert!(
            got.iter().all(|e| e.db_id != "zoo"),
            "{:?}",
            got.iter().map(|e| &e.id).collect::<Vec<_>>()
        );
        assert_eq!(got[0].id, "t1");
        assert!(pool.select("anything", "x", 0).is_empty());
    }

    #[test]
    fn the_text_puts_the_most_similar_last_and_cleans_whitespace() {
        let a = ex("a", "d", "First?", "SELECT  1 ;");
        let b = ex("b", "d", "Second?", "SELECT 2");
        let text = shots_text(&[&a, &b]);
        assert_eq!(
            text,
            "-- Examples from other databases:\n-- Question: Second?\n-- SQL: SELECT 2;\n\
             -- Question: First?\n-- SQL: SELECT 1;\n\n"
        );
        assert_eq!(shots_text(&[]), "");
    }
}
