//! Criterion view of the same comparison as `exspin bench logprob` (which adds peak memory):
//! fused token log-prob vs `log_softmax → gather`, forward and forward+backward, at a size that
//! keeps a criterion run short (256 rows of Qwen's 151,936-token vocabulary).
//! Run: `CARGO_TARGET_DIR=... cargo bench --release -p exspin-kernels --bench logprob`.

use std::hint::black_box;

use candle_core::{DType, Device, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};
use exspin_kernels::{reference, token_logprobs};

const ROWS: usize = 256;
const VOCAB: usize = 151_936;

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let logits = Var::from_tensor(&Tensor::randn(0f32, 2.0, (ROWS, VOCAB), &dev).unwrap()).unwrap();
    let targets = (Tensor::rand(0f32, (VOCAB - 1) as f32, ROWS, &dev).unwrap())
        .floor()
        .unwrap()
        .to_dtype(DType::U32)
        .unwrap();
    let x = logits.as_tensor();
    let mut g = c.benchmark_group("token_logprobs_256x151936");
    g.sample_size(10);
    g.bench_function("fused/forward", |b| {
        b.iter(|| black_box(token_logprobs(x, &targets, None).unwrap()))
    });
    g.bench_function("composition/forward", |b| {
        b.iter(|| black_box(reference::token_logprobs(x, &targets, None).unwrap()))
    });
    g.bench_function("fused/forward_backward", |b| {
        b.iter(|| {
            let lp = token_logprobs(x, &targets, None).unwrap();
            black_box(lp.sum_all().unwrap().backward().unwrap())
        })
    });
    g.bench_function("composition/forward_backward", |b| {
        b.iter(|| {
            let lp = reference::token_logprobs(x, &targets, None).unwrap();
            black_box(lp.sum_all().unwrap().backward().unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
