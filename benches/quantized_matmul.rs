//! Should the opponent generate with quantized weights (issue 16, item 5)? candle's quantized
//! matmul (`QMatMul`, q8_0 and q4_0; q4_k needs rows of 256 and Qwen2.5-0.5B's hidden size is 896)
//! against our f32 dense matmul (`exspin_kernels::dense`), in the same process, on the three
//! shapes that dominate a decoding step of Qwen2.5-Coder-0.5B: the MLP's up/gate (4864×896), its
//! down (896×4864) and the LM head (151936×896), at 1, 8 and 32 rows (one decoding row; the
//! opponent's continuous batch of 2 prompts × 4 samples; a full batch).
//!
//! Why the answer is no on a CPU: quantized weights cut the bytes read per step, which wins when
//! one row decodes (memory-bound), but candle's quantized kernel does one vector dot per
//! (row, output) and reuses nothing across rows, while the f32 GEMM reads each weight once for
//! all rows. The per-row cost of a batched f32 step is already what q8_0 costs at one row.
//!
//! `cargo bench --bench quantized_matmul`

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    for (name, out, inp) in [
        ("mlp_up_4864x896", 4864usize, 896usize),
        ("mlp_down_896x4864", 896, 4864),
        ("lm_head_151936x896", 151_936, 896),
    ] {
        let w = Tensor::randn(0f32, 0.02, (out, inp), &dev).unwrap();
        let quantized: Vec<(&str, QMatMul)> =
            [("q8_0", GgmlDType::Q8_0), ("q4_0", GgmlDType::Q4_0)]
                .into_iter()
                .map(|(n, q)| {
                    let qt = QTensor::quantize(&w, q).unwrap();
                    (n, QMatMul::from_qtensor(qt).unwrap())
                })
                .collect();
        let mut group = c.benchmark_group(name);
        group.sample_size(20);
        group.measurement_time(std::time::Duration::from_secs(3));
        for rows in [1usize, 8, 32] {
            let x = Tensor::randn(0f32, 1.0, (rows, inp), &dev).unwrap();
            group.bench_with_input(BenchmarkId::new("f32", rows), &x, |b, x| {
                b.iter(|| exspin_kernels::dense(x, &w).unwrap())
            });
            for (n, qm) in &quantized {
                group.bench_with_input(BenchmarkId::new(*n, rows), &x, |b, x| {
                    b.iter(|| qm.forward(x).unwrap())
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
