//! One prompt renderer: for the same example, schema mode and template, the four paths that give
//! a model a prompt (`exspin ask`, `exspin generate`, `exspin sft`, the run's SFT phase and seams)
//! give byte-identical token ids. Each command is run as a user runs it and reports the ids it fed
//! the model (`ask --json`, `generate --tokens-out`, `sft --tokens-out`); the run's ids come from
//! the library calls `exspin run` makes. And `exspin sft` refuses the removed JSON config.

use std::path::{Path, PathBuf};

use candle_core::Device;

use exspin::model::Config;
use exspin::model::chat::ChatTemplate;
use exspin::model::checkpoint;
use exspin::model::load::{self, SpecialTokens};
use exspin::model::tokenizer;
use exspin_actors::config::JobConfig;
use exspin_actors::sft::SftJob;

mod common;
use common::exspin;

const QUESTION: &str = "How many cats does keeper Ann look after?";
const GOLD: &str = "SELECT count(*) FROM animal JOIN keeper ON animal.keeper_id = keeper.id \
WHERE kind = 'cat' AND keeper.name = 'Ann'";

/// A tiny random Qwen2 with a BPE tokenizer, saved as a Hugging Face folder whose metadata names
/// `template` (what `exspin sft` and the run read; ask and generate get `--template`).
fn tiny_model(dir: &Path, template: &ChatTemplate) {
    let corpus = format!(
        "CREATE TABLE animal keeper kind name cat dog Ann Bob -- Question: {QUESTION}\n{GOLD}\n\
         <|im_start|>system You are a SQLite expert.<|im_end|>\n-- SQL:\n"
    );
    let lines: Vec<String> = (0..20).map(|_| corpus.clone()).collect();
    let tok = tokenizer::train_bpe(lines.iter(), 400).unwrap();
    let (model, _) = load::random(&Config::tiny(tok.get_vocab_size(true)), &Device::Cpu).unwrap();
    let eot = tok.token_to_id("<|endoftext|>").unwrap();
    let special = SpecialTokens {
        eos: vec![eot],
        pad: eot,
        bos: None,
    };
    checkpoint::save_hf(dir, &model, &tok, &special, template, false).unwrap();
}

/// A Spider-layout folder (no tables.json: the schema comes from the SQLite file, as for `ask`)
/// with one train question over a two-table database.
fn spider_folder(dir: &Path) -> PathBuf {
    let db_dir = dir.join("database").join("zoo");
    std::fs::create_dir_all(&db_dir).unwrap();
    let db = db_dir.join("zoo.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE keeper(id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE animal(id INTEGER PRIMARY KEY, name TEXT, kind TEXT,
                             keeper_id INTEGER REFERENCES keeper(id));
         INSERT INTO keeper VALUES (1, 'Ann'), (2, 'Bob');
         INSERT INTO animal VALUES (1, 'Tom', 'cat', 1), (2, 'Rex', 'dog', 2), (3, 'Kit', 'cat', 1);",
    )
    .unwrap();
    let records = serde_json::json!([{ "db_id": "zoo", "question": QUESTION, "query": GOLD }]);
    for name in ["train_spider.json", "dev.json"] {
        std::fs::write(dir.join(name), records.to_string()).unwrap();
    }
    db
}

fn first_ids(jsonl: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(jsonl).unwrap();
    let row: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    serde_json::from_value(row["prompt"].clone()).unwrap()
}

struct Paths {
    ask: Vec<u32>,
    generate: Vec<u32>,
    sft: Vec<u32>,
    run_sft: Vec<u32>,
    run_seams: Vec<u32>,
}

fn prompt_ids_of_every_path(tmp: &Path, mode: &str, template: &str) -> Paths {
    let dir = tmp.join(format!("{mode}-{template}"));
    let spider_dir = dir.join("spider");
    let db = spider_folder(&spider_dir);
    let model = dir.join("model");
    tiny_model(&model, &template.parse().unwrap());
    let cache = dir.join("cache");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // The run's schema options (model.schema_k1/k2 defaults, ranked padding, values) spelled as
    // the commands' flags.
    let schema_flags = ["--k1", "4", "--k2", "10", "--ranked-padding"];

    let mut ask = vec![
        "ask".to_string(),
        "--model".into(),
        s(&model),
        "--db".into(),
        s(&db),
        "--cache".into(),
        s(&cache),
        "--template".into(),
        template.into(),
        "--max-new-tokens".into(),
        "2".into(),
        "--threads".into(),
        "1".into(),
        "--json".into(),
    ];
    ask.extend(schema_flags.iter().map(|f| f.to_string()));
    ask.extend(["--schema".to_string(), mode.to_string()]);
    ask.push(QUESTION.into());
    let (code, out, err) = exspin(&ask.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(code == 0 || code == 1, "ask: exit {code}\n{out}\n{err}");
    let answer: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    let ask_ids: Vec<u32> = serde_json::from_value(answer["prompt_ids"].clone()).unwrap();

    let tokens = dir.join("generate-tokens.jsonl");
    let (model_s, spider_s, cache_s) = (s(&model), s(&spider_dir), s(&cache));
    let (pred_s, tokens_s) = (s(&dir.join("pred.sql")), s(&tokens));
    let mut generate: Vec<String> = [
        "generate",
        "--model",
        model_s.as_str(),
        "--spider",
        spider_s.as_str(),
        "--split",
        "train",
        "--cache",
        cache_s.as_str(),
        "--template",
        template,
        "--schema",
        mode,
        "--max-new-tokens",
        "2",
        "--threads",
        "1",
        "--out",
        pred_s.as_str(),
        "--tokens-out",
        tokens_s.as_str(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    generate.extend(schema_flags.iter().map(|f| f.to_string()));
    let (code, out, err) = exspin(&generate.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "generate:\n{out}\n{err}");

    let config = dir.join("sft.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\nsource = \"spider\"\npath = {:?}\n\n[run]\nprompts_per_round = 1\n\
             seed = 3\n\n[model]\nkind = \"pretrained\"\npath = {:?}\nschema = \"{mode}\"\n\n\
             [sft]\nsteps = 1\nbatch_size = 1\n",
            s(&spider_dir),
            s(&model)
        ),
    )
    .unwrap();
    let sft_tokens = dir.join("sft-tokens.jsonl");
    let (code, out, err) = exspin(&[
        "sft",
        &s(&config),
        "--out",
        &s(&dir.join("sft-out")),
        "--cache",
        &s(&cache),
        "--tokens-out",
        &s(&sft_tokens),
        "--threads",
        "1",
    ]);
    assert_eq!(code, 0, "sft:\n{out}\n{err}");
    assert!(dir.join("sft-out").join("config.json").is_file(), "{err}");
    assert!(dir.join("sft-out").join("tokenizer.json").is_file());

    // The run: the library's SFT preparation (the run's prompter, initial model and SFT pairs),
    // and the ids the seams feed the model for the prompt text a `PromptItem` carries.
    let (job, _) = JobConfig::load(&config).unwrap();
    let run = SftJob::prepare(job, &dir.join("run-cache")).unwrap();
    Paths {
        ask: ask_ids,
        generate: first_ids(&tokens),
        sft: first_ids(&sft_tokens),
        run_sft: run.pairs()[0].prompt.clone(),
        run_seams: run.seam_prompt_ids(0).unwrap(),
    }
}

#[test]
fn ask_generate_sft_and_the_run_give_the_same_prompt_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for mode in ["plain", "rows", "integrated"] {
        for template in ["chatml", "plain"] {
            let p = prompt_ids_of_every_path(tmp.path(), mode, template);
            let case = format!("schema {mode}, template {template}");
            assert!(!p.ask.is_empty(), "{case}");
            assert_eq!(p.ask, p.generate, "{case}: ask vs generate");
            assert_eq!(p.ask, p.sft, "{case}: ask vs sft");
            assert_eq!(p.ask, p.run_sft, "{case}: ask vs the run's SFT phase");
            assert_eq!(p.ask, p.run_seams, "{case}: ask vs the run's seams");
            seen.push(p.ask);
        }
    }
    // The mode and the template each change the prompt (the flags reach the renderer).
    for i in 0..seen.len() {
        for j in i + 1..seen.len() {
            assert_ne!(seen[i], seen[j], "cases {i} and {j} gave the same ids");
        }
    }
}

#[test]
fn sft_refuses_the_removed_json_config() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("sft.json");
    std::fs::write(&config, "{}").unwrap();
    let (code, out, err) = exspin(&[
        "sft",
        config.to_str().unwrap(),
        "--out",
        tmp.path().join("out").to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("JSON form"), "{err}");
    assert!(
        err.contains("[data]") && err.contains("[model]") && err.contains("[sft]"),
        "{err}"
    );
}

/// `exspin bench rollout` on a tiny model: the new path (one prefill per prompt, shared schema
/// prefix, decoding's log-probs) draws the same samples as the old one and gives the same
/// reference log-probs, for three questions over one database in batches of two; so does the
/// opponent's path with subnormal floats kept against flushed (`--compare denormals`).
#[test]
fn bench_rollout_draws_the_same_samples_and_log_probs_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let spider_dir = tmp.path().join("spider");
    spider_folder(&spider_dir);
    let questions = [
        QUESTION,
        "How many dogs are there?",
        "List the names of all keepers.",
    ];
    let records: Vec<_> = questions
        .iter()
        .map(|q| serde_json::json!({ "db_id": "zoo", "question": q, "query": GOLD }))
        .collect();
    std::fs::write(
        spider_dir.join("dev.json"),
        serde_json::Value::from(records).to_string(),
    )
    .unwrap();
    let model = tmp.path().join("model");
    tiny_model(&model, &ChatTemplate::ChatMl);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // The old path against the opponent's, and the opponent's with subnormals kept and flushed.
    for compare in ["path", "denormals"] {
        let (code, out, err) = exspin(&[
            "bench",
            "rollout",
            "--model",
            &s(&model),
            "--spider",
            &s(&spider_dir),
            "--cache",
            &s(&tmp.path().join("cache")),
            "--schema",
            "rows",
            "--prompts",
            "3",
            "--samples",
            "2",
            "--batch",
            "2",
            "--max-new-tokens",
            "6",
            "--compare",
            compare,
            "--threads",
            "1",
            "--json",
        ]);
        assert_eq!(code, 0, "{out}\n{err}");
        let report: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
        assert_eq!(report["compare"], compare, "{report}");
        assert_eq!(report["same_sample_tokens"], "6/6", "{report}");
        assert!(
            report["max_gold_logprob_diff"].as_f64().unwrap() < 1e-3,
            "{report}"
        );
        assert!(
            report["max_sample_logprob_diff"].as_f64().unwrap() < 1e-3,
            "{report}"
        );
        assert!(report["speedup"].as_f64().unwrap() > 0.0, "{report}");
    }
}

/// `exspin bench pairs` on a tiny model: the prompt-shared layout gives the per-pair layout's
/// loss and gradients (LoRA with activation checkpointing, and full fine-tuning without), for
/// three questions of one database with two negatives each; with `--compare denormals`, flushing
/// subnormals to zero gives the same loss and gradients.
#[test]
fn bench_pairs_gives_the_per_pair_gradients_with_each_prompt_run_once() {
    let tmp = tempfile::tempdir().unwrap();
    let spider_dir = tmp.path().join("spider");
    spider_folder(&spider_dir);
    let records: Vec<_> = [
        (QUESTION, GOLD),
        ("How many dogs are there?", "SELECT count(*) FROM animal"),
        ("List the names of all keepers.", "SELECT name FROM keeper"),
    ]
    .iter()
    .map(|(q, g)| serde_json::json!({ "db_id": "zoo", "question": q, "query": g }))
    .collect();
    std::fs::write(
        spider_dir.join("dev.json"),
        serde_json::Value::from(records).to_string(),
    )
    .unwrap();
    let model = tmp.path().join("model");
    tiny_model(&model, &ChatTemplate::ChatMl);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // The layouts (LoRA with checkpointing, full without), and subnormals kept against flushed.
    for extra in [
        &[][..],
        &["--full", "--no-checkpointing"][..],
        &["--compare", "denormals"][..],
    ] {
        let (model, spider, cache) = (s(&model), s(&spider_dir), s(&tmp.path().join("cache")));
        let mut argv = vec![
            "bench",
            "pairs",
            "--model",
            &model,
            "--spider",
            &spider,
            "--cache",
            &cache,
            "--prompts",
            "3",
            "--negatives",
            "2",
            "--threads",
            "1",
            "--json",
        ];
        argv.extend_from_slice(extra);
        let (code, out, err) = exspin(&argv);
        assert_eq!(code, 0, "{out}\n{err}");
        let report: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
        let max_grad = report["max_grad"].as_f64().unwrap();
        assert!(max_grad > 0.0, "a zero gradient proves nothing: {report}");
        assert!(
            report["max_grad_diff"].as_f64().unwrap() <= 1e-4 * max_grad,
            "{report}"
        );
        assert!(report["max_loss_diff"].as_f64().unwrap() < 1e-5, "{report}");
        assert_eq!(report["prompts"], 3, "{report}");
        assert!(report["speedup"].as_f64().unwrap() > 0.0, "{report}");
        let compare = if extra.contains(&"denormals") {
            "denormals"
        } else {
            "layout"
        };
        assert_eq!(report["compare"], compare, "{report}");
    }
}

/// `exspin generate` with the tiny model, 3 new tokens per answer, into `pred` and `tokens`
/// (`--tokens-out`), plus `extra` flags; returns its stderr.
fn generate_tiny(
    dir: &Path,
    model: &Path,
    spider_dir: &Path,
    pred: &Path,
    tokens: &Path,
    extra: &[&str],
) -> String {
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let cache = s(&dir.join("cache"));
    let (model, spider_dir, pred, tokens) = (s(model), s(spider_dir), s(pred), s(tokens));
    let mut argv = vec![
        "generate",
        "--model",
        &model,
        "--spider",
        &spider_dir,
        "--cache",
        &cache,
        "--max-new-tokens",
        "3",
        "--threads",
        "1",
        "--out",
        &pred,
        "--tokens-out",
        &tokens,
    ];
    argv.extend_from_slice(extra);
    let (code, out, err) = exspin(&argv);
    assert_eq!(code, 0, "{out}\n{err}");
    err
}

/// `exspin generate` over a dev set in which one question's database is missing (as Spider's
/// `wta_1` is from the shared data): that question gets a placeholder line, the others their
/// answers, so lines stay aligned with the dataset for `exspin eval`.
#[test]
fn generate_keeps_lines_aligned_past_a_missing_database() {
    let tmp = tempfile::tempdir().unwrap();
    let spider_dir = tmp.path().join("spider");
    spider_folder(&spider_dir);
    let records: Vec<_> = [
        ("zoo", QUESTION),
        ("nowhere", "How many?"),
        ("zoo", "How many dogs are there?"),
    ]
    .iter()
    .map(|(db, q)| serde_json::json!({ "db_id": db, "question": q, "query": GOLD }))
    .collect();
    std::fs::write(
        spider_dir.join("dev.json"),
        serde_json::Value::from(records).to_string(),
    )
    .unwrap();
    let model = tmp.path().join("model");
    tiny_model(&model, &ChatTemplate::ChatMl);
    let (pred, tokens) = (tmp.path().join("pred.sql"), tmp.path().join("tokens.jsonl"));
    let err = generate_tiny(tmp.path(), &model, &spider_dir, &pred, &tokens, &[]);
    assert!(err.contains("1 questions have no database"), "{err}");
    let lines: Vec<String> = std::fs::read_to_string(&pred)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[1], "SELECT 1");
    let prompts: Vec<usize> = std::fs::read_to_string(&tokens)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["prompt"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(prompts.len(), 3);
    assert!(
        prompts[0] > 0 && prompts[1] == 0 && prompts[2] > 0,
        "{prompts:?}"
    );
}

/// `exspin generate --repair N`: an answer that fails to run is answered again from the same
/// prompt with a note after the question on what the SQLite error names. The tiny random model's
/// answers never run, so its question takes all N repairs, and the last one's prompt is the
/// first prompt with two notes before its instruction.
#[test]
fn generate_repairs_failing_answers_with_notes_after_the_question() {
    let tmp = tempfile::tempdir().unwrap();
    let spider_dir = tmp.path().join("spider");
    spider_folder(&spider_dir);
    let model = tmp.path().join("model");
    tiny_model(&model, &ChatTemplate::ChatMl);
    let run = |repair: &str| {
        let (pred, tokens) = (
            tmp.path().join(format!("pred-{repair}.sql")),
            tmp.path().join(format!("tokens-{repair}.jsonl")),
        );
        let err = generate_tiny(
            tmp.path(),
            &model,
            &spider_dir,
            &pred,
            &tokens,
            &["--repair", repair],
        );
        let tokens = std::fs::read_to_string(&tokens).unwrap();
        let row: serde_json::Value = serde_json::from_str(tokens.lines().next().unwrap()).unwrap();
        (std::fs::read_to_string(&pred).unwrap(), row, err)
    };
    let ids = |v: &serde_json::Value| serde_json::from_value::<Vec<u32>>(v.clone()).unwrap();
    let (first_sql, plain, _) = run("0");
    assert!(plain.get("repair").is_none(), "{plain}");
    let (repaired_sql, row, err) = run("2");
    assert!(
        err.contains("2 repairs, 0 failing answers now run (0 requalified)"),
        "{err}"
    );
    // The random model's SQL fails with no rule a rewrite applies, so its text stands.
    assert_eq!(row["repair"]["requalified"], false, "{row}");
    // The first pass is the same with or without repairs; the line holds the last repair's SQL.
    assert_eq!(row["prompt"], plain["prompt"]);
    // (An answer without SQL takes its line as `SELECT 1`.)
    let line = |sql: &serde_json::Value| match sql.as_str().unwrap() {
        "" => "SELECT 1".to_string(),
        sql => sql.to_string(),
    };
    assert_eq!(first_sql.trim(), line(&row["sql"]));
    assert_eq!(repaired_sql.trim(), line(&row["repair"]["sql"]));
    let (first, repaired) = (ids(&row["prompt"]), ids(&row["repair"]["prompt"]));
    let tok = exspin::model::load::load_as(&model, candle_core::DType::F32, &Device::Cpu)
        .unwrap()
        .tokenizer;
    let (first, repaired) = (
        tok.decode(&first, false).unwrap(),
        tok.decode(&repaired, false).unwrap(),
    );
    let question = format!("-- Question: {QUESTION}\n");
    let at = first.find(&question).unwrap() + question.len();
    // The same prompt up to the question, two notes, then the same instruction and answer cue.
    assert_eq!(repaired[..at], first[..at]);
    assert_eq!(repaired[at..].matches("-- Note: ").count(), 2, "{repaired}");
    assert!(repaired.ends_with(&first[at..]), "{repaired}");
}
