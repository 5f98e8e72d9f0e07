//! Sampling n answers per prompt: one prefill per prompt whose KV cache the n samples fork
//! (`generate_seeded` with `n`) against one prefill per sample (the same rows each prompted on
//! its own, the path before), in the same process, same seeds and sampling. A 30M-parameter
//! Qwen2 shape with random weights, 4 prompts of 256 tokens, 4 samples each, 16 new tokens: the
//! prompt share of a self-play rollout with schema prompts.
//!
//! `cargo bench --bench shared_prefill`

use candle_core::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use exspin::model::generate::{GenerateConfig, StopRules, generate_seeded};
use exspin::model::load::{self, SpecialTokens};
use exspin::model::{Config, tokenizer};

fn bench(c: &mut Criterion) {
    let corpus: Vec<String> = (0..20)
        .map(|_| "CREATE TABLE singer ( id INTEGER , name TEXT ) -- Question: how many?".into())
        .collect();
    let tok = tokenizer::train_bpe(corpus.iter(), 300).unwrap();
    let eot = tok.token_to_id("<|endoftext|>").unwrap();
    let special = SpecialTokens {
        eos: vec![],
        pad: eot,
        bos: None,
    };
    let cfg = Config::named("qwen2-30m").unwrap();
    let (model, _) = load::random(&cfg, &Device::Cpu).unwrap();
    let model = model.detached();
    let (prompts_n, samples, prompt_len) = (4usize, 4usize, 256usize);
    let prompts: Vec<Vec<u32>> = (0..prompts_n)
        .map(|p| {
            (0..prompt_len)
                .map(|i| ((i * 7 + p * 13) % 290) as u32 + 5)
                .collect()
        })
        .collect();
    let seeds: Vec<u64> = (0..prompts_n as u64).collect();
    let sampling = GenerateConfig {
        max_new_tokens: 16,
        temperature: 1.0,
        top_p: 0.95,
        n: samples,
        stop: StopRules {
            semicolon: false,
            code_block_end: false,
            strings: vec![],
        },
        ..GenerateConfig::default()
    };
    // The baseline: every sample its own row and its own prefill.
    let (mut rows, mut row_seeds) = (Vec::new(), Vec::new());
    for (p, ids) in prompts.iter().enumerate() {
        for s in 0..samples {
            rows.push(ids.clone());
            row_seeds.push(seeds[p] ^ (s as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
    }
    let one = GenerateConfig {
        n: 1,
        ..sampling.clone()
    };
    let mut g = c.benchmark_group("rollout_4x4");
    g.sample_size(10);
    g.bench_function("prefill_per_sample", |b| {
        b.iter(|| generate_seeded(&model, &tok, &special, &rows, Some(&row_seeds), &one).unwrap())
    });
    g.bench_function("prefill_per_prompt", |b| {
        b.iter(|| {
            generate_seeded(&model, &tok, &special, &prompts, Some(&seeds), &sampling).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
