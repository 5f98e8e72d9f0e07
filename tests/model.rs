//! The model layer on tiny random models (hidden 32, 2 layers, vocab ~300): forward, padding,
//! KV cache, loading and saving, GGUF, generation, log-probs, losses and training steps.
//! `EXSPIN_MODEL` (a Qwen2.5-Coder GGUF) enables the tests on the real model.
//!
//! Device: the CPU, or a GPU with `EXSPIN_TEST_DEVICE=cuda` in a `--features cuda` build
//! (`util::test_device`; it panics rather than fall back). The tests of forward passes, padding,
//! the KV cache, generation, log-probs, losses, training steps and checkpoint round trips run on
//! that device, in f32; their numeric bounds go through `util::tol` (unchanged on the CPU, 10×
//! looser on a GPU). Loading errors, GGUF and the real-model test stay on the CPU.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{D, Device, Tensor};
use candle_nn::VarMap;
use exspin::model::chat::ChatTemplate;
use exspin::model::checkpoint;
use exspin::model::config::{Architecture, Config};
use exspin::model::decoder::{KvCache, Model, pad_batch};
use exspin::model::generate::{self, GenerateConfig, StopRules};
use exspin::model::load::{self, SpecialTokens};
use exspin::model::logprob::{Pair, response_logprobs};
use exspin::model::lora::{self, LoraConfig};
use exspin::model::recompute::backward_checkpointed;
use exspin::model::shared_prompt::{backward_checkpointed_shared, shared_prompt_logprobs};
use exspin::model::{ModelError, tokenizer};
use exspin::train::loss::{self, PairLogprobs};
use exspin::train::prompt_groups::{PairTokens, PromptGroups};
use exspin::train::{Decay, LrSchedule, Optimizer, OptimizerConfig, params_of};
use tokenizers::Tokenizer;

use crate::util::{test_device, tol};

const CORPUS: &str = "SELECT name FROM singer WHERE age > 30;\nSELECT count(*) FROM concert;\n\
SELECT T1.name FROM stadium AS T1 JOIN concert AS T2 ON T1.stadium_id = T2.stadium_id;\n\
How many singers are there? What is the name of the oldest singer? List all concerts in 2014.\n";

fn tiny_tokenizer() -> Tokenizer {
    let lines: Vec<String> = (0..20).map(|_| CORPUS.to_string()).collect();
    tokenizer::train_bpe(lines.iter(), 300).expect("train bpe")
}

fn tiny_cfg(vocab: usize) -> Config {
    Config::tiny(vocab)
}

fn specials(tok: &Tokenizer) -> SpecialTokens {
    let eot = tok.token_to_id("<|endoftext|>").unwrap();
    SpecialTokens {
        eos: vec![eot, tok.token_to_id("<|im_end|>").unwrap()],
        pad: eot,
        bos: None,
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn ids(v: &[u32], dev: &Device) -> Tensor {
    Tensor::new(v, dev).unwrap().unsqueeze(0).unwrap()
}

#[test]
fn model_forward_shapes_and_untied_head() {
    let dev = test_device();
    for tied in [true, false] {
        let cfg = Config {
            tie_word_embeddings: tied,
            ..tiny_cfg(300)
        };
        let (m, vm) = load::random(&cfg, &dev).unwrap();
        let x = Tensor::new(&[[1u32, 2, 3, 4, 5], [6, 7, 8, 9, 10]], &dev).unwrap();
        let y = m.forward(&x, &[vec![1; 5], vec![1; 5]], None).unwrap();
        assert_eq!(y.dims(), &[2, 5, 300]);
        assert_eq!(vm.all_vars().len(), cfg.expected_tensors().len());
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| x.is_finite()));
    }
}

#[test]
fn model_left_and_right_padding_match_unpadded_logits() {
    let dev = test_device();
    let cfg = Config {
        architecture: Architecture::Llama,
        attention_bias: false,
        ..tiny_cfg(300)
    };
    let (m, _) = load::random(&cfg, &dev).unwrap();
    let rows = vec![vec![5u32, 9, 11, 40, 2, 7, 100], vec![3u32, 8, 250]];
    for left in [true, false] {
        let (x, mask) = pad_batch(&rows, 0, left, &dev).unwrap();
        let batch = m.forward(&x, &mask, None).unwrap();
        for (r, row) in rows.iter().enumerate() {
            let alone = m
                .forward(&ids(row, &dev), &[vec![1; row.len()]], None)
                .unwrap();
            let off = if left { 7 - row.len() } else { 0 };
            let got = batch.get(r).unwrap().narrow(0, off, row.len()).unwrap();
            let d = max_abs_diff(&got, &alone.get(0).unwrap());
            assert!(d < tol(&dev, 1e-4), "left={left} row {r}: max diff {d}");
        }
    }
}

#[test]
fn model_kv_cache_equals_full_recompute() {
    let dev = test_device();
    let (m, _) = load::random(&tiny_cfg(300), &dev).unwrap();
    let rows = vec![vec![5u32, 9, 11, 40, 2, 7], vec![3u32, 8, 250, 17]];
    let (x, mask) = pad_batch(&rows, 0, true, &dev).unwrap();
    let mut cache = KvCache::new();
    m.forward(&x, &mask, Some(&mut cache)).unwrap();
    // Feed three more tokens one by one; compare with a full forward over everything.
    let extra = [[12u32, 13], [14, 15], [16, 17]];
    let mut full_rows = rows.clone();
    let mut last = None;
    for e in extra {
        let step = Tensor::new(&[[e[0]], [e[1]]], &dev).unwrap();
        last = Some(
            m.forward(&step, &[vec![1], vec![1]], Some(&mut cache))
                .unwrap(),
        );
        full_rows[0].push(e[0]);
        full_rows[1].push(e[1]);
    }
    assert_eq!(cache.len(), 9);
    // The weights are Vars (trainable), and still the cache holds no graph.
    assert!(!cache.tracks_ops(), "the cache keeps autograd graphs alive");
    // What generation runs on records nothing at all.
    assert!(last.as_ref().unwrap().track_op());
    let view = m.detached();
    let step = Tensor::new(&[[1u32], [2]], &dev).unwrap();
    let out = view
        .forward(&step, &[vec![1], vec![1]], Some(&mut cache))
        .unwrap();
    assert!(!out.track_op(), "a detached model's output records a graph");
    let (fx, fmask) = pad_batch(&full_rows, 0, true, &dev).unwrap();
    let full = m.forward(&fx, &fmask, None).unwrap();
    let d = max_abs_diff(
        &last.unwrap().squeeze(1).unwrap(),
        &full.narrow(1, 8, 1).unwrap().squeeze(1).unwrap(),
    );
    assert!(d < tol(&dev, 1e-4), "cached vs full: {d}");
}

/// Greedy decoding by full recomputation, token by token (the reference for `generate`).
fn naive_greedy(m: &Model, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut seq = prompt.to_vec();
    for _ in 0..n {
        let y = m
            .forward(&ids(&seq, m.device()), &[vec![1; seq.len()]], None)
            .unwrap();
        let last = y.get(0).unwrap().get(seq.len() - 1).unwrap();
        seq.push(last.argmax(D::Minus1).unwrap().to_scalar::<u32>().unwrap());
    }
    seq[prompt.len()..].to_vec()
}

#[test]
fn model_generate_greedy_matches_recompute_and_logprobs() {
    let dev = test_device();
    let tok = tiny_tokenizer();
    let vocab = tok.get_vocab_size(true);
    let (m, _) = load::random(&tiny_cfg(vocab), &dev).unwrap();
    let mut sp = specials(&tok);
    sp.eos.clear(); // random weights: run the full budget
    let prompts = vec![
        tokenizer::encode(&tok, "SELECT name FROM").unwrap(),
        tokenizer::encode(&tok, "How many").unwrap(),
    ];
    let cfg = GenerateConfig {
        max_new_tokens: 6,
        stop: StopRules {
            semicolon: false,
            code_block_end: false,
            strings: vec![],
        },
        ..GenerateConfig::default()
    };
    let out = generate::generate(&m, &tok, &sp, &prompts, &cfg).unwrap();
    assert_eq!(out.len(), 2);
    for (g, p) in out.iter().zip(&prompts) {
        assert_eq!(g.tokens, naive_greedy(&m, p, 6), "prompt {}", g.prompt);
        assert_eq!(g.logprobs.len(), 6);
        // The per-token log-probs sum to the log-prob of the same pair computed in one pass.
        let lp = response_logprobs(
            &m,
            &[Pair {
                prompt: p.clone(),
                response: g.tokens.clone(),
            }],
            sp.pad,
        )
        .unwrap();
        let whole = lp.sum.to_vec1::<f32>().unwrap()[0];
        let summed: f32 = g.logprobs.iter().sum();
        assert!(
            (whole - summed).abs() < tol(&dev, 1e-3),
            "{whole} vs {summed}"
        );
    }
    // Sampling: n samples per prompt, reproducible with the seed.
    let scfg = GenerateConfig {
        temperature: 1.0,
        top_p: 0.9,
        n: 3,
        seed: 7,
        ..cfg.clone()
    };
    let a = generate::generate(&m, &tok, &sp, &prompts, &scfg).unwrap();
    let b = generate::generate(&m, &tok, &sp, &prompts, &scfg).unwrap();
    assert_eq!(a.len(), 6);
    assert_eq!(a, b);
    assert_eq!((a[4].prompt, a[4].sample), (1, 1));
}

/// One prefill per prompt: a prompt's n samples fork from its KV cache, and give what n
/// separately prefilled rows with the same seeds give (prompts of different lengths, so the
/// forked rows keep their padding).
#[test]
fn model_samples_of_a_prompt_share_its_prefill() {
    let dev = test_device();
    let tok = tiny_tokenizer();
    let (m, _) = load::random(&tiny_cfg(tok.get_vocab_size(true)), &dev).unwrap();
    let mut sp = specials(&tok);
    sp.eos.clear();
    let prompts = vec![
        tokenizer::encode(&tok, "SELECT name FROM singer WHERE").unwrap(),
        tokenizer::encode(&tok, "How many").unwrap(),
    ];
    let (n, seeds) = (3usize, [11u64, 12]);
    let cfg = GenerateConfig {
        max_new_tokens: 8,
        temperature: 1.0,
        top_p: 0.95,
        n,
        stop: StopRules {
            semicolon: false,
            code_block_end: false,
            strings: vec![],
        },
        ..GenerateConfig::default()
    };
    let shared = generate::generate_seeded(&m, &tok, &sp, &prompts, Some(&seeds), &cfg).unwrap();
    // The same rows, each prompted on its own row: sample s of prompt p has the seed
    // `seeds[p] ^ s * K` of the shared call, and is sample 0 of its own row here.
    let (mut rows, mut row_seeds) = (Vec::new(), Vec::new());
    for (p, ids) in prompts.iter().enumerate() {
        for s in 0..n {
            rows.push(ids.clone());
            row_seeds.push(seeds[p] ^ (s as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
    }
    let one = GenerateConfig { n: 1, ..cfg };
    let separate = generate::generate_seeded(&m, &tok, &sp, &rows, Some(&row_seeds), &one).unwrap();
    assert_eq!(shared.len(), separate.len());
    for (a, b) in shared.iter().zip(&separate) {
        assert_eq!(
            a.tokens, b.tokens,
            "prompt {} sample {}",
            a.prompt, a.sample
        );
        for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
            assert!((x - y).abs() < tol(&dev, 1e-5), "{x} vs {y}");
        }
    }
}

/// Responses scored on their prompt's shared prefill equal a full forward of each (prompt,
/// response) pair, for prompts and responses of mixed lengths (one response of a single token),
/// and for prompts with a common schema start prefilled once or taken from a prefix cache.
#[test]
fn model_grouped_response_logprobs_equal_full_scoring() {
    use exspin::model::prefix_cache::PrefixCache;
    let dev = test_device();
    let tok = tiny_tokenizer();
    let (m, _) = load::random(&tiny_cfg(tok.get_vocab_size(true)), &dev).unwrap();
    let m = m.detached();
    let pad = specials(&tok).pad;
    let enc = |t: &str| tokenizer::encode(&tok, t).unwrap();
    let mixed = vec![
        enc("SELECT name FROM singer WHERE age >"),
        enc("How many"),
        enc("CREATE TABLE singer ( id , name ) -- Question: list the names"),
    ];
    let schema = "CREATE TABLE singer ( id , name , age ) CREATE TABLE concert ( id , stadium_id ) \
                  -- Question:";
    let alike = vec![
        enc(&format!("{schema} How many singers")),
        enc(&format!("{schema} List all")),
        enc(&format!(
            "{schema} What is the name of the oldest singer? SELECT name FROM"
        )),
    ];
    let responses: Vec<(usize, Vec<u32>)> = vec![
        (0, enc(" 30 ORDER BY name")),
        (1, enc(" singers")),
        (0, enc(" 2")[..1].to_vec()),
        (2, enc(" SELECT name FROM singer")),
        (1, enc(" are there in all?")),
    ];
    let mut cache = PrefixCache::new(64 << 20);
    for (case, prompts, cached) in [
        ("mixed", &mixed, false),
        ("alike", &alike, false),
        ("alike, filling the cache", &alike, true),
        ("alike, from the cache", &alike, true),
    ] {
        let grouped = exspin::model::logprob::grouped_response_logprobs(
            &m,
            prompts,
            &responses,
            pad,
            cached.then_some(&mut cache),
        )
        .unwrap();
        for (i, (p, r)) in responses.iter().enumerate() {
            let full = response_logprobs(
                &m,
                &[Pair {
                    prompt: prompts[*p].clone(),
                    response: r.clone(),
                }],
                pad,
            )
            .unwrap()
            .sum
            .to_vec1::<f32>()
            .unwrap()[0];
            assert!(
                (grouped[i] - full).abs() < tol(&dev, 1e-4),
                "{case}, response {i}: {} vs {full}",
                grouped[i]
            );
        }
    }
    assert_eq!(cache.stats().hits, 1, "{:?}", cache.stats());
}

/// Prompts that start alike (a database's schema, then each its question) give the same
/// generations whether their common start is prefilled once, taken from a prefix cache (whole,
/// or truncated for a prompt that diverges inside it), or not shared at all; and the cache stays
/// inside its byte bound.
#[test]
fn model_shared_and_cached_prefixes_change_no_generation() {
    use exspin::model::prefix_cache::PrefixCache;
    let dev = test_device();
    let tok = tiny_tokenizer();
    let (m, _) = load::random(&tiny_cfg(tok.get_vocab_size(true)), &dev).unwrap();
    let mut sp = specials(&tok);
    sp.eos.clear();
    let enc = |t: &str| tokenizer::encode(&tok, t).unwrap();
    let schema = "CREATE TABLE singer ( id , name , age ) CREATE TABLE concert ( id , stadium_id ) \
                  -- Question:";
    let batch_a = vec![
        enc(&format!("{schema} How many singers are there?")),
        enc(&format!("{schema} List all concerts in 2014.")),
        enc(&format!(
            "{schema} What is the name of the oldest singer? SELECT"
        )),
    ];
    // Shares the schema with batch a (a cache hit), and one prompt diverging inside it (its
    // batch's common start, and so the cached entry it uses, is shorter).
    let batch_b = vec![
        enc(&format!("{schema} What is the name of the oldest singer?")),
        enc("CREATE TABLE singer ( id , name , age ) CREATE TABLE concert ( id , name ) How many"),
    ];
    let cfg = GenerateConfig {
        max_new_tokens: 6,
        temperature: 1.0,
        n: 2,
        stop: StopRules {
            semicolon: false,
            code_block_end: false,
            strings: vec![],
        },
        ..GenerateConfig::default()
    };
    let plain = GenerateConfig {
        share_prefix: false,
        ..cfg.clone()
    };
    let seeds_a = [1u64, 2, 3];
    let seeds_b = [4u64, 5];
    let run = |cfg: &GenerateConfig, cache: Option<&mut PrefixCache>, b: &[Vec<u32>], s: &[u64]| {
        generate::generate_cached(&m, &tok, &sp, b, Some(s), cfg, cache).unwrap()
    };
    let mut cache = PrefixCache::new(64 << 20);
    let pairs = [
        (
            run(&plain, None, &batch_a, &seeds_a),
            run(&cfg, Some(&mut cache), &batch_a, &seeds_a),
        ),
        (
            run(&plain, None, &batch_b, &seeds_b),
            run(&cfg, Some(&mut cache), &batch_b, &seeds_b),
        ),
        (
            run(&plain, None, &batch_a, &seeds_a),
            run(&cfg, Some(&mut cache), &batch_a, &seeds_a),
        ),
    ];
    for (i, (want, got)) in pairs.iter().enumerate() {
        assert_eq!(want.len(), got.len());
        for (a, b) in want.iter().zip(got) {
            assert_eq!(
                a.tokens, b.tokens,
                "call {i}, prompt {} sample {}",
                a.prompt, a.sample
            );
            for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
                assert!((x - y).abs() < tol(&dev, 1e-4), "call {i}: {x} vs {y}");
            }
        }
    }
    let stats = cache.stats();
    assert!(stats.hits >= 2, "{stats:?}");
    assert!(
        stats.reused_tokens as usize >= batch_a[0].len() / 2,
        "{stats:?}"
    );
    // A bound smaller than one entry keeps nothing; a bound of one entry keeps one.
    let mut tiny = PrefixCache::new(1);
    run(&cfg, Some(&mut tiny), &batch_a, &seeds_a);
    assert_eq!(tiny.stats().entries, 0);
    let one_entry = stats.bytes / stats.entries.max(1);
    let mut small = PrefixCache::new(one_entry + one_entry / 2);
    run(&cfg, Some(&mut small), &batch_a, &seeds_a);
    run(&cfg, Some(&mut small), &batch_b, &seeds_b);
    assert!(
        small.stats().bytes <= one_entry + one_entry / 2,
        "{:?}",
        small.stats()
    );
}

/// Continuous batching (a finished row's slot goes to the next prompt at once) gives every
/// prompt the same samples and log-probs as static batching, whatever the number of slots, with
/// prompts of mixed lengths (some sharing a schema start, taken from a prefix cache) and rows
/// that end at different steps.
#[test]
fn model_continuous_batching_changes_no_sample() {
    use exspin::model::continuous::generate_continuous;
    use exspin::model::prefix_cache::PrefixCache;
    let dev = test_device();
    let tok = tiny_tokenizer();
    let sp = specials(&tok);
    let enc = |t: &str| tokenizer::encode(&tok, t).unwrap();
    let schema = "CREATE TABLE singer ( id , name , age ) CREATE TABLE concert ( id , stadium_id ) \
                  -- Question:";
    let prompts = vec![
        enc(&format!("{schema} How many singers are there?")),
        enc("How many"),
        enc(&format!("{schema} List all concerts in 2014.")),
        enc("SELECT name FROM singer WHERE age > 30 ORDER BY"),
        enc(&format!("{schema} What is the name of the oldest singer?")),
    ];
    let seeds = [7u64, 8, 9, 10, 11];
    let cfg = GenerateConfig {
        max_new_tokens: 10,
        temperature: 1.0,
        n: 2,
        // Rows end at different steps (a stop string the tiny model writes now and then).
        stop: StopRules {
            semicolon: true,
            code_block_end: false,
            strings: vec![" FROM".into()],
        },
        ..GenerateConfig::default()
    };
    // Random weights (unseeded): a model whose rows all run to the token budget tests nothing
    // here, so draw models until one's rows end at different steps.
    let (m, fixed) = (0..10)
        .find_map(|_| {
            let (m, _) = load::random(&tiny_cfg(tok.get_vocab_size(true)), &dev).unwrap();
            let fixed =
                generate::generate_seeded(&m, &tok, &sp, &prompts, Some(&seeds), &cfg).unwrap();
            let lengths: std::collections::BTreeSet<usize> =
                fixed.iter().map(|g| g.tokens.len()).collect();
            (lengths.len() > 1).then_some((m, fixed))
        })
        .expect("in 10 random models, rows should end at different steps");
    for max_rows in [2, 3, 5, 64] {
        let mut cache = PrefixCache::new(64 << 20);
        let cont = generate_continuous(
            &m,
            &tok,
            &sp,
            &prompts,
            Some(&seeds),
            &cfg,
            max_rows,
            Some(&mut cache),
        )
        .unwrap();
        assert_eq!(cont.len(), fixed.len());
        for (a, b) in fixed.iter().zip(&cont) {
            let case = format!(
                "max_rows {max_rows}, prompt {} sample {}",
                a.prompt, a.sample
            );
            assert_eq!((a.prompt, a.sample), (b.prompt, b.sample), "{case}");
            assert_eq!(a.tokens, b.tokens, "{case}");
            assert_eq!(a.finish, b.finish, "{case}");
            for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
                assert!((x - y).abs() < tol(&dev, 1e-4), "{case}: {x} vs {y}");
            }
        }
        assert!(
            cache.stats().hits >= 1,
            "max_rows {max_rows}: {:?}",
            cache.stats()
        );
    }
}

#[test]
fn model_response_logprobs_equal_manual_sum() {
    let dev = test_device();
    let (m, _) = load::random(&tiny_cfg(300), &dev).unwrap();
    let pairs = vec![
        Pair {
            prompt: vec![1, 2, 3, 4],
            response: vec![5, 6],
        },
        Pair {
            prompt: vec![7, 8],
            response: vec![9, 10, 11],
        },
    ];
    let lp = response_logprobs(&m, &pairs, 0).unwrap();
    let got: Vec<f32> = lp.sum.to_vec1().unwrap();
    for (i, p) in pairs.iter().enumerate() {
        let seq: Vec<u32> = p.prompt.iter().chain(&p.response).copied().collect();
        let y = m
            .forward(&ids(&seq, &dev), &[vec![1; seq.len()]], None)
            .unwrap();
        let lsm = candle_nn::ops::log_softmax(&y.get(0).unwrap(), D::Minus1).unwrap();
        let lsm: Vec<Vec<f32>> = lsm.to_vec2().unwrap();
        let want: f32 = (p.prompt.len()..seq.len())
            .map(|t| lsm[t - 1][seq[t] as usize])
            .sum();
        assert!(
            (got[i] - want).abs() < tol(&dev, 1e-4),
            "pair {i}: {} vs {want}",
            got[i]
        );
    }
    assert_eq!(lp.n_tokens, vec![2, 3]);
}

#[test]
fn model_hf_folder_round_trip_gives_identical_logits() {
    let dev = test_device();
    let dir = tempfile::tempdir().unwrap();
    let tok = tiny_tokenizer();
    let cfg = Config {
        tie_word_embeddings: false,
        ..tiny_cfg(tok.get_vocab_size(true))
    };
    let (m, _) = load::random(&cfg, &dev).unwrap();
    let out = dir.path().join("ckpt");
    checkpoint::save_hf(
        &out,
        &m,
        &tok,
        &specials(&tok),
        &ChatTemplate::ChatMl,
        false,
    )
    .unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "generation_config.json",
    ] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    // Saving again replaces the folder atomically (no temporary left behind).
    checkpoint::save_hf(
        &out,
        &m,
        &tok,
        &specials(&tok),
        &ChatTemplate::ChatMl,
        false,
    )
    .unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let loaded = load::load(&out, &dev).unwrap();
    assert_eq!(loaded.config, {
        let mut c = cfg.clone();
        c.eos_token_id = Some(specials(&tok).eos[0]);
        c
    });
    assert_eq!(loaded.chat, ChatTemplate::ChatMl);
    let x = Tensor::new(&[[3u32, 4, 5, 6]], &dev).unwrap();
    let a = m.forward(&x, &[vec![1; 4]], None).unwrap();
    let b = loaded.model.forward(&x, &[vec![1; 4]], None).unwrap();
    assert!(max_abs_diff(&a, &b) <= tol(&dev, 0.0));
    assert_eq!(
        tokenizer::encode(&loaded.tokenizer, CORPUS).unwrap(),
        tokenizer::encode(&tok, CORPUS).unwrap()
    );
}

#[test]
fn model_load_errors_name_the_file_and_the_tensor() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let tok = tiny_tokenizer();
    let cfg = tiny_cfg(tok.get_vocab_size(true));
    let (m, _) = load::random(&cfg, &dev).unwrap();
    let out = dir.path().join("m");
    checkpoint::save_hf(&out, &m, &tok, &specials(&tok), &ChatTemplate::Plain, false).unwrap();
    let weights = out.join("model.safetensors");
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(&weights, &dev).unwrap();

    // Missing tensor.
    let w = tensors.remove("model.layers.1.mlp.up_proj.weight").unwrap();
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let e = load::load(&out, &dev).err().expect("must fail");
    assert!(matches!(e, ModelError::MissingTensor { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("model.safetensors") && msg.contains("model.layers.1.mlp.up_proj.weight"),
        "{msg}"
    );

    // Shape mismatch.
    tensors.insert(
        "model.layers.1.mlp.up_proj.weight".into(),
        w.t().unwrap().contiguous().unwrap(),
    );
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let msg = load::load(&out, &dev).err().expect("must fail").to_string();
    assert!(
        msg.contains("has shape [32, 64]") && msg.contains("[64, 32]"),
        "{msg}"
    );

    // Unknown architecture.
    let c = out.join("config.json");
    let text = std::fs::read_to_string(&c)
        .unwrap()
        .replace("Qwen2ForCausalLM", "MambaForCausalLM");
    std::fs::write(&c, text).unwrap();
    let msg = load::load(&out, &dev).err().expect("must fail").to_string();
    assert!(
        msg.contains("config.json") && msg.contains("MambaForCausalLM"),
        "{msg}"
    );

    // A tokenizer larger than the model's vocabulary belongs to another model.
    let big = Config::tiny(20);
    let (small, _) = load::random(&big, &dev).unwrap();
    let out2 = dir.path().join("m2");
    checkpoint::save_hf(
        &out2,
        &small,
        &tok,
        &specials(&tok),
        &ChatTemplate::Plain,
        false,
    )
    .unwrap();
    let msg = load::load(&out2, &dev)
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        msg.contains("tokenizer.json") && msg.contains("another model"),
        "{msg}"
    );
}

/// Write `model`'s weights and `tok` as a GGUF file the way llama.cpp's converter does.
fn write_gguf(path: &Path, model: &Model, tok: &Tokenizer, arch: &str) {
    let cfg = model.config();
    let mut tensors = Vec::new();
    for (name, t) in model.named_tensors(true).unwrap() {
        let g = load::hf_to_gguf_name(&name).unwrap();
        let t = if arch == "llama" && name.contains("q_proj.weight") {
            load::permute_qk(&t, cfg.num_attention_heads).unwrap()
        } else if arch == "llama" && name.contains("k_proj.weight") {
            load::permute_qk(&t, cfg.num_key_value_heads).unwrap()
        } else {
            t
        };
        // Matrices as f16 (dequantized on load), vectors as f32, as in real GGUF files.
        let dt = if t.rank() == 2 {
            GgmlDType::F16
        } else {
            GgmlDType::F32
        };
        tensors.push((g, QTensor::quantize(&t, dt).unwrap()));
    }
    use gguf_file::Value as V;
    let vocab = tokenizer::vocab_by_id(tok);
    let json: serde_json::Value = serde_json::from_str(&tok.to_string(false).unwrap()).unwrap();
    let merges: Vec<V> = json["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            serde_json::Value::Array(p) => V::String(format!(
                "{} {}",
                p[0].as_str().unwrap(),
                p[1].as_str().unwrap()
            )),
            s => V::String(s.as_str().unwrap().to_string()),
        })
        .collect();
    let types: Vec<V> = vocab
        .iter()
        .map(|t| V::I32(if t.starts_with("<|") { 3 } else { 1 }))
        .collect();
    let u = |x: usize| V::U32(x as u32);
    let md: Vec<(String, V)> = vec![
        ("general.architecture".into(), V::String(arch.into())),
        ("general.name".into(), V::String("tiny-instruct".into())),
        (format!("{arch}.block_count"), u(cfg.num_hidden_layers)),
        (
            format!("{arch}.context_length"),
            u(cfg.max_position_embeddings),
        ),
        (format!("{arch}.embedding_length"), u(cfg.hidden_size)),
        (
            format!("{arch}.feed_forward_length"),
            u(cfg.intermediate_size),
        ),
        (
            format!("{arch}.attention.head_count"),
            u(cfg.num_attention_heads),
        ),
        (
            format!("{arch}.attention.head_count_kv"),
            u(cfg.num_key_value_heads),
        ),
        (
            format!("{arch}.rope.freq_base"),
            V::F32(cfg.rope_theta as f32),
        ),
        (
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            V::F32(cfg.rms_norm_eps as f32),
        ),
        ("tokenizer.ggml.model".into(), V::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), V::String("qwen2".into())),
        (
            "tokenizer.ggml.tokens".into(),
            V::Array(vocab.iter().map(|t| V::String(t.clone())).collect()),
        ),
        ("tokenizer.ggml.token_type".into(), V::Array(types)),
        ("tokenizer.ggml.merges".into(), V::Array(merges)),
        (
            "tokenizer.ggml.eos_token_id".into(),
            u(tok.token_to_id("<|im_end|>").unwrap() as usize),
        ),
        (
            "tokenizer.ggml.padding_token_id".into(),
            u(tok.token_to_id("<|endoftext|>").unwrap() as usize),
        ),
        (
            "tokenizer.chat_template".into(),
            V::String("{{ '<|im_start|>' + message['role'] }}".into()),
        ),
    ];
    let md_refs: Vec<(&str, &V)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}

#[test]
fn model_gguf_load_matches_source_model() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let tok = tiny_tokenizer();
    for arch in ["qwen2", "llama"] {
        let cfg = Config {
            architecture: Architecture::from_name(arch).unwrap(),
            attention_bias: arch == "qwen2",
            tie_word_embeddings: arch == "qwen2",
            ..tiny_cfg(tok.get_vocab_size(true))
        };
        let (m, _) = load::random(&cfg, &dev).unwrap();
        let path = dir.path().join(format!("tiny-{arch}.gguf"));
        write_gguf(&path, &m, &tok, arch);
        let g = load::load(&path, &dev).unwrap();
        assert_eq!(g.config.architecture, cfg.architecture);
        assert_eq!(g.config.tie_word_embeddings, cfg.tie_word_embeddings);
        assert_eq!(g.chat, ChatTemplate::ChatMl);
        assert_eq!(g.name, "tiny-instruct");
        assert!(
            g.special
                .eos
                .contains(&tok.token_to_id("<|im_end|>").unwrap())
        );
        // Weights went through f16: logits agree to f16 precision, not bit for bit.
        let x = Tensor::new(&[[3u32, 4, 5, 6, 7]], &dev).unwrap();
        let a = m.forward(&x, &[vec![1; 5]], None).unwrap();
        let b = g.model.forward(&x, &[vec![1; 5]], None).unwrap();
        let d = max_abs_diff(&a, &b);
        assert!(d < 2e-3, "{arch}: logits differ by {d}");
        // The tokenizer rebuilt from metadata encodes and decodes as the original.
        let text = "SELECT name FROM singer WHERE age > 30; <|im_end|>";
        assert_eq!(
            tokenizer::encode(&g.tokenizer, text).unwrap(),
            tokenizer::encode(&tok, text).unwrap(),
            "{arch}"
        );
    }
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"not a gguf").unwrap();
    let msg = load::load(&bad, &dev).err().unwrap().to_string();
    assert!(msg.contains("bad.gguf"), "{msg}");
}

fn sft_batch(tok: &Tokenizer) -> Vec<Pair> {
    let enc = |s: &str| tokenizer::encode(tok, s).unwrap();
    vec![
        Pair {
            prompt: enc("How many singers are there?\n"),
            response: enc("SELECT count(*) FROM singer;"),
        },
        Pair {
            prompt: enc("What is the name of the oldest singer?\n"),
            response: enc("SELECT name FROM singer WHERE age > 30;"),
        },
    ]
}

fn trainer_cfg(lr: f64) -> OptimizerConfig {
    OptimizerConfig {
        optim: Default::default(),
        schedule: LrSchedule {
            peak_lr: lr,
            warmup_steps: 0,
            total_steps: 100,
            decay: Decay::Constant,
            min_lr_ratio: 1.0,
        },
        grad_accum: 1,
        max_grad_norm: Some(1.0),
    }
}

#[test]
fn model_full_finetune_step_reduces_loss_and_reaches_every_weight() {
    let dev = test_device();
    let tok = tiny_tokenizer();
    let (m, vm) = load::random(&tiny_cfg(tok.get_vocab_size(true)), &dev).unwrap();
    let batch = sft_batch(&tok);
    let pad = specials(&tok).pad;
    let l0 = loss::sft_loss(&response_logprobs(&m, &batch, pad).unwrap()).unwrap();
    // Every weight tensor gets a gradient.
    let grads = l0.loss.backward().unwrap();
    let params = params_of(&vm);
    let missing: Vec<&String> = params
        .iter()
        .filter(|(_, v)| grads.get(v.as_tensor()).is_none())
        .map(|(n, _)| n)
        .collect();
    assert!(missing.is_empty(), "no gradient for {missing:?}");
    // Adam's first steps move every weight by about lr whatever the gradient, and the random
    // init (unseeded, so it differs per run) has std 0.02: at lr 1e-2 about 1 run in 150
    // diverged. 3e-3 over five steps is the stable regime.
    let mut tr = Optimizer::new(params, trainer_cfg(3e-3)).unwrap();
    for _ in 0..5 {
        let l = loss::sft_loss(&response_logprobs(&m, &batch, pad).unwrap()).unwrap();
        let st = tr.backward(&l.loss).unwrap().expect("an update per batch");
        assert!(st.grad_norm > 0.0);
    }
    let l1 = loss::sft_loss(&response_logprobs(&m, &batch, pad).unwrap()).unwrap();
    assert!(
        l1.metrics.loss < l0.metrics.loss - 0.1,
        "loss {} -> {}",
        l0.metrics.loss,
        l1.metrics.loss
    );
    assert_eq!(tr.step(), 5);
}

#[test]
fn model_lora_step_changes_only_adapters_and_peft_round_trip() {
    let dev = test_device();
    let tok = tiny_tokenizer();
    let (mut m, base_vm) = load::random(&tiny_cfg(tok.get_vocab_size(true)), &dev).unwrap();
    let base_before: Vec<(String, Tensor)> = params_of(&base_vm)
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().copy().unwrap()))
        .collect();
    let lcfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
    };
    let adapters = VarMap::new();
    assert_eq!(lora::attach(&mut m, &lcfg, &adapters).unwrap(), 6);
    let x = Tensor::new(&[[3u32, 4, 5]], &dev).unwrap();
    // B starts at zero: the adapted model equals the base.
    let before_logits = m.forward(&x, &[vec![1; 3]], None).unwrap();
    m.set_training(true);
    let batch = sft_batch(&tok);
    let pad = specials(&tok).pad;
    let l0 = loss::sft_loss(&response_logprobs(&m, &batch, pad).unwrap())
        .unwrap()
        .metrics
        .loss;
    let params = params_of(&adapters);
    assert_eq!(params.len(), 12);
    let mut tr = Optimizer::new(params, trainer_cfg(2e-2)).unwrap();
    for _ in 0..4 {
        let l = loss::sft_loss(&response_logprobs(&m, &batch, pad).unwrap()).unwrap();
        tr.backward(&l.loss).unwrap();
    }
    m.set_training(false);
    let l1 = loss::sft_loss(&response_logprobs(&m, &batch, pad).unwrap())
        .unwrap()
        .metrics
        .loss;
    assert!(l1 < l0 - 0.05, "LoRA loss {l0} -> {l1}");
    for ((n, before), (_, now)) in base_before.iter().zip(params_of(&base_vm)) {
        assert_eq!(
            max_abs_diff(before, now.as_tensor()),
            0.0,
            "base weight {n} changed"
        );
    }
    let after_logits = m.forward(&x, &[vec![1; 3]], None).unwrap();
    assert!(max_abs_diff(&before_logits, &after_logits) > 1e-4);

    // PEFT adapter out and back in; merged checkpoint gives the same logits as the adapted model.
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save_adapter(&dir.path().join("adapter"), &mut m, &lcfg, "tiny").unwrap();
    let st: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.path().join("adapter/adapter_model.safetensors"), &dev)
            .unwrap();
    assert!(st.contains_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    assert_eq!(st.len(), 12);
    let (mut fresh, _) = {
        let mut t = HashMap::new();
        for (n, v) in &base_before {
            t.insert(n.clone(), v.clone());
        }
        load::from_tensors(m.config(), &t, Path::new("base"), &dev).unwrap()
    };
    let vm2 = VarMap::new();
    let got_cfg = lora::load_adapter(&dir.path().join("adapter"), &mut fresh, &vm2).unwrap();
    assert_eq!(got_cfg, lcfg);
    let again = fresh.forward(&x, &[vec![1; 3]], None).unwrap();
    assert!(max_abs_diff(&after_logits, &again) < tol(&dev, 1e-6));
    let merged_dir = dir.path().join("merged");
    checkpoint::save_hf(
        &merged_dir,
        &m,
        &tok,
        &specials(&tok),
        &ChatTemplate::Plain,
        true,
    )
    .unwrap();
    let merged = load::load(&merged_dir, &dev).unwrap();
    let y = merged.model.forward(&x, &[vec![1; 3]], None).unwrap();
    assert!(max_abs_diff(&after_logits, &y) < tol(&dev, 1e-4));
}

/// Gradients of the SFT loss on `batch` for `params`, plain and with activations recomputed,
/// both in forward pass number `pass + 1` (the key of LoRA dropout).
fn plain_and_checkpointed_grads(
    m: &Model,
    params: &[(String, candle_core::Var)],
    batch: &[Pair],
    pad: u32,
    pass: u64,
) -> (Vec<Tensor>, Vec<Tensor>, f32, f32) {
    m.forward_passes()
        .store(pass, std::sync::atomic::Ordering::Relaxed);
    let plain = loss::sft_loss(&response_logprobs(m, batch, pad).unwrap()).unwrap();
    let g_plain = plain.loss.backward().unwrap();
    m.forward_passes()
        .store(pass, std::sync::atomic::Ordering::Relaxed);
    let vars: Vec<_> = params.iter().map(|(_, v)| v.clone()).collect();
    let (loss, g_ckpt) = backward_checkpointed(m, batch, pad, &vars, |lp| {
        let out = loss::sft_loss(lp)?;
        Ok((out.loss, out.metrics.loss))
    })
    .unwrap();
    let pick = |g: &candle_core::backprop::GradStore| -> Vec<Tensor> {
        params
            .iter()
            .map(|(n, v)| {
                g.get(v.as_tensor())
                    .unwrap_or_else(|| panic!("no gradient for {n}"))
                    .clone()
            })
            .collect()
    };
    (pick(&g_plain), pick(&g_ckpt), plain.metrics.loss, loss)
}

/// Asserts two gradients of `name` agree relative to the first's largest entry (which must not be
/// zero: a test of equal zeros proves nothing); returns that scale.
fn assert_same_gradient(name: &str, a: &Tensor, b: &Tensor, dev: &Device) -> f32 {
    let scale = a
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(scale > 0.0, "{name} has a zero gradient");
    assert!(
        max_abs_diff(a, b) <= tol(dev, 1e-4) * scale,
        "{name}: plain vs checkpointed gradient differ by {} (scale {scale})",
        max_abs_diff(a, b)
    );
    scale
}

#[test]
fn model_checkpointed_backward_equals_plain_backward() {
    let dev = test_device();
    let tok = tiny_tokenizer();
    let pad = specials(&tok).pad;
    let batch = sft_batch(&tok);
    // Full fine-tuning: every weight, the tied embedding included (input and output use).
    let (m, vm) = load::random(&tiny_cfg(tok.get_vocab_size(true)), &dev).unwrap();
    let params = params_of(&vm);
    let (plain, ckpt, l_plain, l_ckpt) = plain_and_checkpointed_grads(&m, &params, &batch, pad, 0);
    assert!(
        (l_plain - l_ckpt).abs() < tol(&dev, 1e-5),
        "{l_plain} vs {l_ckpt}"
    );
    for ((n, _), (a, b)) in params.iter().zip(plain.iter().zip(&ckpt)) {
        assert_same_gradient(n, a, b, &dev);
    }
    // LoRA with heavy dropout: the recomputed pass must drop the units the first pass dropped.
    let (mut m, _) = load::random(&tiny_cfg(tok.get_vocab_size(true)), &dev).unwrap();
    let adapters = VarMap::new();
    let lcfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.3,
        target_modules: vec!["q_proj".into(), "o_proj".into(), "up_proj".into()],
    };
    lora::attach(&mut m, &lcfg, &adapters).unwrap();
    // B starts at zero, so A's gradient would be zero: give B some weight first.
    for (n, v) in params_of(&adapters) {
        if n.contains("lora_B") {
            v.set(&Tensor::randn(0f32, 0.1, v.dims(), &dev).unwrap())
                .unwrap();
        }
    }
    m.set_training(true);
    let params = params_of(&adapters);
    let (plain, ckpt, _, _) = plain_and_checkpointed_grads(&m, &params, &batch, pad, 7);
    let (other_pass, _, _, _) = plain_and_checkpointed_grads(&m, &params, &batch, pad, 8);
    let mut masks_matter = false;
    for ((n, _), ((a, b), c)) in params.iter().zip(plain.iter().zip(&ckpt).zip(&other_pass)) {
        let scale = assert_same_gradient(n, a, b, &dev);
        masks_matter |= max_abs_diff(a, c) > 1e-2 * scale;
    }
    assert!(
        masks_matter,
        "another pass number must draw other dropout masks"
    );
}

/// Pairs of two prompts of different lengths, each with its gold and two negatives (one of them a
/// single token), as the ExSPIN learner receives them.
fn prompt_group_pairs(tok: &Tokenizer) -> Vec<PairTokens> {
    let enc = |s: &str| tokenizer::encode(tok, s).unwrap();
    let mut pairs = Vec::new();
    for (q, gold, negatives) in [
        (
            "How many singers are there? List all concerts in 2014.\n",
            "SELECT count(*) FROM singer;",
            ["SELECT count(*) FROM concert;", ";"],
        ),
        (
            "What is the name of the oldest singer?\n",
            "SELECT name FROM singer WHERE age > 30;",
            [
                "SELECT T1.name FROM stadium AS T1",
                "SELECT name FROM singer;",
            ],
        ),
    ] {
        for neg in negatives {
            pairs.push(PairTokens {
                prompt: enc(q),
                chosen: enc(gold),
                rejected: enc(neg),
            });
        }
    }
    pairs
}

/// The SPIN loss of `pairs` and its gradients for `params`, per pair (each pair's prompt runs
/// for its chosen and its rejected row) or prompt-shared, plain or checkpointed, in pass `pass`.
fn pair_loss_and_grads(
    m: &Model,
    params: &[(String, candle_core::Var)],
    pairs: &[PairTokens],
    pad: u32,
    shared: bool,
    checkpointed: bool,
) -> (f32, Vec<Tensor>) {
    m.forward_passes()
        .store(3, std::sync::atomic::Ordering::Relaxed);
    let n = pairs.len();
    let ref_c: Vec<f32> = (0..n).map(|i| -20.0 - i as f32).collect();
    let ref_r: Vec<f32> = (0..n).map(|i| -25.0 + i as f32).collect();
    let groups = PromptGroups::new(pairs);
    let loss_of = |lp: &exspin::model::logprob::ResponseLogprobs| {
        let (pc, pr) = if shared {
            groups.split(&lp.sum)?
        } else {
            (lp.sum.narrow(0, 0, n)?, lp.sum.narrow(0, n, n)?)
        };
        let out = loss::spin_loss(
            0.1,
            PairLogprobs {
                policy_chosen: &pc,
                policy_rejected: &pr,
                ref_chosen: &ref_c,
                ref_rejected: &ref_r,
            },
        )?;
        Ok((out.loss, out.metrics.loss))
    };
    let rows: Vec<Pair> = pairs
        .iter()
        .map(|p| Pair {
            prompt: p.prompt.clone(),
            response: p.chosen.clone(),
        })
        .chain(pairs.iter().map(|p| Pair {
            prompt: p.prompt.clone(),
            response: p.rejected.clone(),
        }))
        .collect();
    let vars: Vec<_> = params.iter().map(|(_, v)| v.clone()).collect();
    let (value, grads) = match (shared, checkpointed) {
        (false, false) => {
            let (l, v) = loss_of(&response_logprobs(m, &rows, pad).unwrap()).unwrap();
            (v, l.backward().unwrap())
        }
        (true, false) => {
            let lp = shared_prompt_logprobs(m, &groups.prompts, &groups.responses, pad).unwrap();
            let (l, v) = loss_of(&lp).unwrap();
            (v, l.backward().unwrap())
        }
        (false, true) => backward_checkpointed(m, &rows, pad, &vars, loss_of).unwrap(),
        (true, true) => {
            backward_checkpointed_shared(m, &groups.prompts, &groups.responses, pad, &vars, loss_of)
                .unwrap()
        }
    };
    let picked = params
        .iter()
        .map(|(name, v)| {
            grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"))
                .clone()
        })
        .collect();
    (value, picked)
}

#[test]
fn model_prompt_shared_pair_training_equals_per_pair_training() {
    let dev = test_device();
    let tok = tiny_tokenizer();
    let pad = specials(&tok).pad;
    let pairs = prompt_group_pairs(&tok);
    let groups = PromptGroups::new(&pairs);
    assert_eq!((groups.prompts.len(), groups.responses.len()), (2, 6));
    // The log-probs themselves: each response against its row scored alone.
    let (m, vm) = load::random(&tiny_cfg(tok.get_vocab_size(true)), &dev).unwrap();
    let shared: Vec<f32> = shared_prompt_logprobs(&m, &groups.prompts, &groups.responses, pad)
        .unwrap()
        .sum
        .to_vec1()
        .unwrap();
    for (i, (p, r)) in groups.responses.iter().enumerate() {
        let alone: Vec<f32> = response_logprobs(
            &m,
            &[Pair {
                prompt: groups.prompts[*p].clone(),
                response: r.clone(),
            }],
            pad,
        )
        .unwrap()
        .sum
        .to_vec1()
        .unwrap();
        assert!(
            (shared[i] - alone[0]).abs() < tol(&dev, 1e-4),
            "response {i}: {} vs {}",
            shared[i],
            alone[0]
        );
    }
    // Full fine-tuning (the tied embedding included), then LoRA; plain and checkpointed.
    let (mut lora_model, _) = load::random(&tiny_cfg(tok.get_vocab_size(true)), &dev).unwrap();
    let adapters = VarMap::new();
    let lcfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
    };
    lora::attach(&mut lora_model, &lcfg, &adapters).unwrap();
    for (n, v) in params_of(&adapters) {
        if n.contains("lora_B") {
            v.set(&Tensor::randn(0f32, 0.1, v.dims(), &dev).unwrap())
                .unwrap();
        }
    }
    lora_model.set_training(true);
    for (what, model, params) in [
        ("full", &m, params_of(&vm)),
        ("lora", &lora_model, params_of(&adapters)),
    ] {
        let (l_ref, g_ref) = pair_loss_and_grads(model, &params, &pairs, pad, false, false);
        for (shared, checkpointed) in [(true, false), (true, true), (false, true)] {
            let (l, g) = pair_loss_and_grads(model, &params, &pairs, pad, shared, checkpointed);
            assert!(
                (l - l_ref).abs() < tol(&dev, 1e-5),
                "{what} shared={shared} checkpointed={checkpointed}: loss {l} vs {l_ref}"
            );
            for ((n, _), (a, b)) in params.iter().zip(g_ref.iter().zip(&g)) {
                assert_same_gradient(
                    &format!("{what} shared={shared} checkpointed={checkpointed} {n}"),
                    a,
                    b,
                    &dev,
                );
            }
        }
    }
}

#[test]
fn model_trainer_accumulates_and_resumes() {
    let dev = test_device();
    let tok = tiny_tokenizer();
    let cfg = tiny_cfg(tok.get_vocab_size(true));
    let batch = sft_batch(&tok);
    let pad = specials(&tok).pad;
    // Accumulating the two halves equals one step on the whole batch of two equal-weight rows
    // (the loss is a per-token mean, so compare with rows of equal length).
    let (m, vm) = load::random(&cfg, &dev).unwrap();
    let mut tc = trainer_cfg(1e-2);
    tc.grad_accum = 2;
    let mut tr = Optimizer::new(params_of(&vm), tc).unwrap();
    let l = loss::sft_loss(&response_logprobs(&m, &batch[..1], pad).unwrap()).unwrap();
    assert!(tr.backward(&l.loss).unwrap().is_none());
    let l = loss::sft_loss(&response_logprobs(&m, &batch[1..], pad).unwrap()).unwrap();
    assert!(tr.backward(&l.loss).unwrap().is_some());
    assert_eq!(tr.step(), 1);
    let dir = tempfile::tempdir().unwrap();
    tr.save_state(dir.path()).unwrap();
    let mut tr2 = Optimizer::new(params_of(&vm), trainer_cfg(1e-2)).unwrap();
    tr2.load_state(dir.path()).unwrap();
    assert_eq!(tr2.step(), 1);
}

#[test]
fn model_pair_losses_match_hand_computed_values() {
    let dev = test_device();
    let pc = Tensor::new(&[-10.0f32, -5.0], &dev).unwrap();
    let pr = Tensor::new(&[-12.0f32, -4.0], &dev).unwrap();
    let lp = PairLogprobs {
        policy_chosen: &pc,
        policy_rejected: &pr,
        ref_chosen: &[-11.0, -5.0],
        ref_rejected: &[-11.0, -5.0],
    };
    // Pair 1: chosen ratio +1, rejected ratio −1 → z = 0.5·2 = 1. Pair 2: 0 and +1 → z = −0.5.
    let nls = |z: f64| -(1.0 / (1.0 + (-z).exp())).ln();
    let want = (nls(1.0) + nls(-0.5)) / 2.0;
    let out = loss::spin_loss(0.5, lp).unwrap();
    assert!(
        (out.metrics.loss as f64 - want).abs() < f64::from(tol(&dev, 1e-6)),
        "{} vs {want}",
        out.metrics.loss
    );
    assert!((out.metrics.chosen_reward - 0.25).abs() < tol(&dev, 1e-6));
    assert!((out.metrics.rejected_reward - 0.0).abs() < tol(&dev, 1e-6));
    assert!((out.metrics.margin - 0.25).abs() < tol(&dev, 1e-6));
    assert_eq!(out.metrics.accuracy, 0.5);
    let dpo = loss::dpo_loss(0.5, lp).unwrap();
    assert_eq!(dpo.metrics.loss, out.metrics.loss);
    let hinge = loss::hinge_loss(0.5, lp).unwrap();
    assert!((hinge.metrics.loss - (0.0 + 1.5) / 2.0).abs() < tol(&dev, 1e-6));
    // Gradient of the logistic loss w.r.t. the chosen log-prob: −β·σ(−z)/n.
    let pcv = candle_core::Var::new(&[-10.0f32, -5.0], &dev).unwrap();
    let lp2 = PairLogprobs {
        policy_chosen: pcv.as_tensor(),
        ..lp
    };
    let g = loss::spin_loss(0.5, lp2).unwrap().loss.backward().unwrap();
    let gv: Vec<f32> = g.get(pcv.as_tensor()).unwrap().to_vec1().unwrap();
    let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
    assert!((gv[0] as f64 + 0.5 * sig(-1.0) / 2.0).abs() < f64::from(tol(&dev, 1e-6)));
    assert!((gv[1] as f64 + 0.5 * sig(0.5) / 2.0).abs() < f64::from(tol(&dev, 1e-6)));
    // Large margins stay finite (the stable form).
    let big = Tensor::new(&[1000.0f32], &dev).unwrap();
    let small = Tensor::new(&[-1000.0f32], &dev).unwrap();
    let o = loss::spin_loss(
        1.0,
        PairLogprobs {
            policy_chosen: &small,
            policy_rejected: &big,
            ref_chosen: &[0.0],
            ref_rejected: &[0.0],
        },
    )
    .unwrap();
    assert!((o.metrics.loss - 2000.0).abs() < 1e-2);
}

#[test]
fn model_gold_nll_term_adds_weighted_mean_token_nll_and_its_gradient() {
    let dev = test_device();
    let pc = candle_core::Var::new(&[-10.0f32, -5.0], &dev).unwrap();
    let pr = Tensor::new(&[-12.0f32, -4.0], &dev).unwrap();
    let lp = PairLogprobs {
        policy_chosen: pc.as_tensor(),
        policy_rejected: &pr,
        ref_chosen: &[-11.0, -5.0],
        ref_rejected: &[-11.0, -5.0],
    };
    let pair = loss::spin_loss(0.5, lp).unwrap();
    let pair_value = pair.metrics.loss;
    // Gold lengths 4 and 1: per-token NLLs 10/4 = 2.5 and 5, mean 3.75; weight 0.2 adds 0.75.
    let out = loss::with_gold_nll(pair, 0.2, pc.as_tensor(), &[4, 1]).unwrap();
    assert!((out.metrics.gold_nll - 3.75).abs() < tol(&dev, 1e-6));
    assert!((out.metrics.loss - (pair_value + 0.75)).abs() < tol(&dev, 1e-5));
    assert!(
        (out.metrics.margin - 0.25).abs() < tol(&dev, 1e-6),
        "the margin is the pair loss's"
    );
    // d/d log p(gold_i) = −β·σ(−z_i)/n − weight/(n·len_i): pair 1 z = 1, pair 2 z = −0.5.
    let g = out.loss.backward().unwrap();
    let gv: Vec<f32> = g.get(pc.as_tensor()).unwrap().to_vec1().unwrap();
    let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
    let want = [
        -0.5 * sig(-1.0) / 2.0 - 0.2 / (2.0 * 4.0),
        -0.5 * sig(0.5) / 2.0 - 0.2 / 2.0,
    ];
    for (got, want) in gv.iter().zip(want) {
        assert!(
            (*got as f64 - want).abs() < f64::from(tol(&dev, 1e-6)),
            "{got} vs {want}"
        );
    }
    // A pair without gold tokens, or counts that do not match the pairs, is refused.
    let again = loss::spin_loss(0.5, lp).unwrap();
    assert!(loss::with_gold_nll(again.clone(), 0.2, pc.as_tensor(), &[4, 0]).is_err());
    assert!(loss::with_gold_nll(again, 0.2, pc.as_tensor(), &[4]).is_err());
}

#[test]
fn model_sft_loss_is_mean_token_nll() {
    let dev = test_device();
    let lp = exspin::model::logprob::ResponseLogprobs {
        sum: Tensor::new(&[-6.0f32, -3.0], &dev).unwrap(),
        n_tokens: vec![2, 1],
    };
    let out = loss::sft_loss(&lp).unwrap();
    assert!((out.metrics.loss - 3.0).abs() < tol(&dev, 1e-6));
    assert_eq!(out.metrics.tokens, 3);
}

/// Opt-in: the real Qwen2.5-Coder-0.5B-Instruct GGUF (`EXSPIN_MODEL`).
#[test]
fn model_real_qwen_gguf_tokenizer_and_greedy_sql() {
    let Some(path) = std::env::var_os("EXSPIN_MODEL") else {
        eprintln!("SKIP model_real_qwen_gguf: set EXSPIN_MODEL to the Qwen2.5-Coder-0.5B GGUF");
        return;
    };
    let dev = Device::Cpu;
    let t0 = std::time::Instant::now();
    let lm = load::load(Path::new(&path), &dev).unwrap();
    eprintln!("loaded {} in {:.1}s", lm.name, t0.elapsed().as_secs_f64());
    assert_eq!(lm.chat, ChatTemplate::ChatMl);
    assert_eq!(
        (lm.config.num_hidden_layers, lm.config.hidden_size),
        (24, 896)
    );
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models/qwen2.5-tokenizer.json");
    let reference = if reference.is_file() {
        Some(reference)
    } else {
        Some(Path::new("/work/shared/models/qwen2.5-tokenizer.json").to_path_buf())
            .filter(|p| p.is_file())
    };
    if let Some(r) = reference {
        let rt = tokenizer::from_file(&r).unwrap();
        for text in [
            "SELECT T1.name, count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.sid GROUP BY 1;",
            "<|im_start|>user\nHow many héads?\n\n  x = 12345 'it's'<|im_end|>\n",
        ] {
            assert_eq!(
                tokenizer::encode(&lm.tokenizer, text).unwrap(),
                tokenizer::encode(&rt, text).unwrap(),
                "{text}"
            );
        }
    }
    let prompt = lm.chat.render(
        None,
        "CREATE TABLE singer (singer_id INTEGER, name TEXT, age INTEGER);\n\
         How many singers are there? Answer with one SQL query.",
    );
    let ids = tokenizer::encode(&lm.tokenizer, &prompt).unwrap();
    let t0 = std::time::Instant::now();
    let out = generate::generate(
        &lm.model,
        &lm.tokenizer,
        &lm.special,
        &[ids],
        &GenerateConfig {
            max_new_tokens: 40,
            ..GenerateConfig::default()
        },
    )
    .unwrap();
    let sql = generate::extract_sql(&out[0].text);
    eprintln!(
        "generated {} tokens in {:.1}s: {:?} -> {sql:?}",
        out[0].tokens.len(),
        t0.elapsed().as_secs_f64(),
        out[0].text
    );
    assert!(
        sql.to_ascii_uppercase()
            .starts_with("SELECT COUNT(*) FROM SINGER"),
        "{sql}"
    );
}

#[test]
fn model_chat_templates() {
    let t = ChatTemplate::ChatMl.render(Some("sys"), "hi");
    assert_eq!(
        t,
        "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(ChatTemplate::Plain.render(None, "hi"), "hi");
    assert_eq!(
        ChatTemplate::detect(None, true, Some("Qwen2.5-Coder-0.5B-Instruct")),
        ChatTemplate::ChatMl
    );
    assert_eq!(
        ChatTemplate::detect(None, true, Some("Qwen2.5-Coder-0.5B")),
        ChatTemplate::Plain
    );
    assert_eq!(
        "chatml".parse::<ChatTemplate>().unwrap(),
        ChatTemplate::ChatMl
    );
    assert!("jinja".parse::<ChatTemplate>().is_err());
}

#[test]
fn model_extract_sql_handles_fences_and_prose() {
    use generate::extract_sql;
    assert_eq!(extract_sql("SELECT a FROM t;"), "SELECT a FROM t");
    assert_eq!(
        extract_sql(
            "Here is the query:\n```sql\nSELECT a,\n  b\nFROM t\nWHERE x = 'a;b'\n```\nIt selects."
        ),
        "SELECT a, b FROM t WHERE x = 'a;b'"
    );
    assert_eq!(
        extract_sql("```\nselect count(*) from t\n"),
        "select count(*) from t"
    );
    assert_eq!(
        extract_sql("To count rows, use SELECT count(*) FROM t\n\nThis returns the number."),
        "SELECT count(*) FROM t"
    );
    assert_eq!(
        extract_sql("WITH x AS (SELECT 1) SELECT * FROM x;"),
        "WITH x AS (SELECT 1) SELECT * FROM x"
    );
    assert_eq!(extract_sql("  "), "");
    let rules = StopRules::default();
    assert_eq!(rules.cut("```sql\nSELECT 1\n``` more"), Some(16));
    assert_eq!(rules.cut("```sql\nSELECT 1"), None);
    assert_eq!(rules.cut("SELECT 1; SELECT 2"), Some(9));
}
