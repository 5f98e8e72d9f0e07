//! The embedding scorer's encoder on a tiny random BERT written to a temp folder (no download):
//! loading, shapes, pooling math, padding invariance, determinism and the per-database cache.
//! Two opt-in tests use the real all-MiniLM-L6-v2: `EXSPIN_MINILM=DIR` (from
//! `scripts/install-minilm.sh`), and `EXSPIN_MINILM_REFERENCE=FILE` (from
//! `scripts/minilm-reference.py`) for agreement with sentence-transformers.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use exspin::schema::embedding::{self, EmbeddingScorer};
use exspin::schema::features::Question;
use exspin::schema::filter::SchemaScorer;
use exspin::schema::minilm::{self, BertConfig, BertEncoder, SentenceEncoder};
use exspin::schema::{Column, DbInfo, Table};

const WORDS: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "how", "many", "singers", "singer", "are", "there", "?",
    "name", "age", "country", "stadium", "concert", "capacity", "id", ":", ",", "##s", "song",
];

fn tokenizer_json() -> String {
    let vocab: serde_json::Map<String, serde_json::Value> = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
        .collect();
    let special = |id: u32, s: &str| {
        serde_json::json!({"id": id, "content": s, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    let tok = |s: &str| serde_json::json!({"SpecialToken": {"id": s, "type_id": 0}});
    let seq = |s: &str, t: u32| serde_json::json!({"Sequence": {"id": s, "type_id": t}});
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "[PAD]"), special(1, "[UNK]"), special(2, "[CLS]"), special(3, "[SEP]")],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [tok("[CLS]"), seq("A", 0), tok("[SEP]")],
            "pair": [tok("[CLS]"), seq("A", 0), tok("[SEP]"), seq("B", 1), tok("[SEP]")],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab}
    })
    .to_string()
}

fn tiny_config() -> BertConfig {
    serde_json::from_value(serde_json::json!({
        "vocab_size": WORDS.len(), "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 32, "max_position_embeddings": 64,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"
    }))
    .unwrap()
}

/// Writes a random tiny BERT in the installed layout (config.json, model.safetensors,
/// tokenizer.json) to `dir`.
fn write_tiny_model(dir: &Path) {
    let cfg = tiny_config();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    BertEncoder::new(&cfg, vb).unwrap();
    vm.save(dir.join("model.safetensors")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({
            "vocab_size": cfg.vocab_size, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 32, "max_position_embeddings": 64,
            "hidden_act": "gelu", "model_type": "bert"
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
}

fn tiny_encoder() -> (tempfile::TempDir, SentenceEncoder) {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path());
    let enc = SentenceEncoder::load(dir.path()).unwrap();
    (dir, enc)
}

fn column(name: &str) -> Column {
    Column {
        name: name.into(),
        natural: name.into(),
        ty: "TEXT".into(),
        primary_key: false,
        description: None,
        values: Vec::new(),
    }
}

fn tiny_db() -> DbInfo {
    DbInfo {
        db_id: "concert_singer".into(),
        content_hash: "abc".into(),
        tables: vec![
            Table {
                name: "singer".into(),
                natural: "singer".into(),
                columns: vec![column("singer id"), column("name"), column("age")],
                rows: 6,
                examples: Vec::new(),
            },
            Table {
                name: "stadium".into(),
                natural: "stadium".into(),
                columns: vec![column("stadium id"), column("capacity")],
                rows: 9,
                examples: Vec::new(),
            },
        ],
        foreign_keys: Vec::new(),
    }
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn mean_pooling_skips_padding_and_normalizes() {
    // Row 0: tokens (1,0) and (3,4) real, (100,100) padding -> mean (2,2) -> (0.7071, 0.7071).
    // Row 1: only (0,5) real -> (0,1).
    let hidden = Tensor::new(
        &[
            [[1f32, 0.], [3., 4.], [100., 100.]],
            [[0., 5.], [7., 7.], [9., 9.]],
        ],
        &Device::Cpu,
    )
    .unwrap();
    let mask = Tensor::new(&[[1f32, 1., 0.], [1., 0., 0.]], &Device::Cpu).unwrap();
    let out: Vec<Vec<f32>> = minilm::mean_pool_normalize(&hidden, &mask)
        .unwrap()
        .to_vec2()
        .unwrap();
    let h = std::f32::consts::FRAC_1_SQRT_2;
    for (got, want) in out.iter().flatten().zip([h, h, 0.0, 1.0]) {
        assert!((got - want).abs() < 1e-6, "{out:?}");
    }
    // An all-padding row gives zeros rather than NaN.
    let zero = Tensor::zeros((1, 3), DType::F32, &Device::Cpu).unwrap();
    let out: Vec<Vec<f32>> = minilm::mean_pool_normalize(&hidden.narrow(0, 0, 1).unwrap(), &zero)
        .unwrap()
        .to_vec2()
        .unwrap();
    assert!(out[0].iter().all(|x| *x == 0.0), "{out:?}");
}

#[test]
fn tiny_bert_embeddings_are_unit_deterministic_and_padding_invariant() {
    let (_dir, enc) = tiny_encoder();
    assert_eq!(
        enc.tokenize("How many singers?").unwrap(),
        vec![2, 4, 5, 6, 10, 3],
        "[CLS] how many singers ? [SEP]"
    );
    let texts = ["How many singers are there?", "stadium capacity", ""];
    let a = enc.embed(&texts).unwrap();
    assert_eq!(a.len(), 3);
    for v in &a {
        assert_eq!(v.len(), 16);
        assert!((norm(v) - 1.0).abs() < 1e-5, "{}", norm(v));
    }
    // Batched (padded to the longest) and alone give the same vector: the mask works.
    for (i, t) in texts.iter().enumerate() {
        let alone = enc.embed(&[t]).unwrap().remove(0);
        let diff = alone
            .iter()
            .zip(&a[i])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-5, "text {i}: batched and alone differ by {diff}");
    }
    assert_eq!(enc.embed(&texts).unwrap(), a, "same input, same output");
    assert!(minilm::dot(&a[0], &a[1]) < 0.9999, "different texts differ");
}

#[test]
fn embedding_scorer_caches_schema_vectors_per_database() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path());
    let scorer = EmbeddingScorer::new(SentenceEncoder::load(dir.path()).unwrap());
    let db = tiny_db();
    let q = Question::new("How many singers are there?", "", &[]);
    assert_eq!(scorer.cached_databases(), 0);
    let s1 = scorer.score(&db, &q);
    assert_eq!(scorer.cached_databases(), 1);
    assert_eq!(s1.tables.len(), 2);
    assert_eq!(s1.columns[0].len(), 3);
    assert_eq!(s1.columns[1].len(), 2);
    for s in s1.tables.iter().chain(s1.columns.iter().flatten()) {
        assert!((-1.0001..=1.0001).contains(s), "cosine {s}");
    }
    // Cached vectors are the ones a fresh computation gives.
    let cached = scorer.schema_vectors(&db).unwrap();
    let text = embedding::table_text(&db.tables[1]);
    assert_eq!(text, "stadium: stadium id, capacity");
    let fresh = scorer.encoder().embed(&[&text]).unwrap().remove(0);
    let diff = fresh
        .iter()
        .zip(&cached.tables[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-5, "{diff}");
    assert_eq!(scorer.score(&db, &q), s1);
    assert_eq!(
        scorer.cached_databases(),
        1,
        "second question reuses the cache"
    );
    // A changed database (new content hash) gets its own entry.
    let mut changed = tiny_db();
    changed.content_hash = "def".into();
    changed.tables[1].columns.push(column("name"));
    let s2 = scorer.score(&changed, &q);
    assert_eq!(scorer.cached_databases(), 2);
    assert_eq!(s2.columns[1].len(), 3);
}

#[test]
fn missing_model_names_the_install_script() {
    let dir = tempfile::tempdir().unwrap();
    let err = SentenceEncoder::load(dir.path())
        .err()
        .expect("no files, no model");
    let msg = err.to_string();
    assert!(
        msg.contains("config.json") && msg.contains("install-minilm.sh"),
        "{msg}"
    );
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    std::fs::write(dir.path().join("model.safetensors"), "x").unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
    let msg = SentenceEncoder::load(dir.path()).err().unwrap().to_string();
    assert!(
        msg.contains("config.json") && msg.contains("not a BERT config"),
        "{msg}"
    );
}

fn real_model(what: &str) -> Option<SentenceEncoder> {
    match std::env::var_os(minilm::MODEL_ENV) {
        Some(dir) => Some(SentenceEncoder::load(Path::new(&dir)).unwrap()),
        None => {
            eprintln!(
                "SKIP {what}: set EXSPIN_MINILM to the folder scripts/install-minilm.sh printed"
            );
            None
        }
    }
}

#[test]
fn real_minilm_ranks_the_mentioned_table_first() {
    let Some(enc) = real_model("real MiniLM similarity") else {
        return;
    };
    let scorer = EmbeddingScorer::new(enc);
    let db = tiny_db();
    let q = Question::new("How many singers do we have?", "", &[]);
    let s = scorer.score(&db, &q);
    assert!(
        s.tables[0] > s.tables[1] + 0.1,
        "singer vs stadium: {:?}",
        s.tables
    );
    let q = Question::new("What is the largest stadium capacity?", "", &[]);
    let s = scorer.score(&db, &q);
    assert!(
        s.tables[1] > s.tables[0] + 0.1,
        "stadium vs singer: {:?}",
        s.tables
    );
    assert!(
        s.columns[1][1] > s.columns[1][0],
        "capacity vs id: {:?}",
        s.columns[1]
    );
}

/// `EXSPIN_MINILM_REFERENCE` is a JSON list of {"text", "embedding"} written by
/// `scripts/minilm-reference.py` with sentence-transformers.
#[test]
fn real_minilm_matches_sentence_transformers() {
    let Some(path) = std::env::var_os("EXSPIN_MINILM_REFERENCE") else {
        eprintln!(
            "SKIP MiniLM reference: set EXSPIN_MINILM_REFERENCE (scripts/minilm-reference.py)"
        );
        return;
    };
    let Some(enc) = real_model("MiniLM reference") else {
        return;
    };
    let refs: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(!refs.is_empty());
    let texts: Vec<&str> = refs.iter().map(|r| r["text"].as_str().unwrap()).collect();
    let ours = enc.embed(&texts).unwrap();
    for (r, v) in refs.iter().zip(&ours) {
        let want: Vec<f32> = serde_json::from_value(r["embedding"].clone()).unwrap();
        let cos = minilm::dot(v, &want) / norm(&want);
        eprintln!("cosine {cos:.6}  {}", r["text"]);
        assert!(cos >= 0.999, "{cos} for {}", r["text"]);
    }
}
