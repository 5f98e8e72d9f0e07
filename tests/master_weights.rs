//! bf16 training through f32 master weights: at the learning rates used for fine-tuning
//! (1e-6), an AdamW update is far below bf16's resolution for typical weights. Updated in place
//! it would round away; through the master copy the published (rounded) weights follow f32
//! training.

use candle_core::{DType, Device, Tensor, Var};
use exspin::train::{AdamW, AdamWConfig};

/// `steps` AdamW updates at `lr` with the same gradient each time, on weights of `dtype`
/// starting at `init`; returns the parameter (as f32) and the value training holds for it.
fn train(init: &[f32], dtype: DType, steps: usize, lr: f64) -> (Vec<f32>, Vec<f32>) {
    let dev = Device::Cpu;
    let w = Var::from_tensor(
        &Tensor::from_slice(init, init.len(), &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
    .unwrap();
    let mut opt = AdamW::new(vec![("w".into(), w.clone())], AdamWConfig::default()).unwrap();
    // Alternating signs, varying sizes: Adam's step is about lr either way.
    let g: Vec<f32> = (0..init.len())
        .map(|i| if i % 2 == 0 { 0.5 } else { -2.0 } * (1.0 + i as f32 / 10.0))
        .collect();
    let g = Tensor::from_slice(&g, init.len(), &dev)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    for _ in 0..steps {
        opt.step(&[Some(g.clone())], lr, 1.0).unwrap();
    }
    let f32s = |t: &Tensor| t.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
    (f32s(w.as_tensor()), f32s(&opt.trained_value(0)))
}

#[test]
fn bf16_training_at_lr_1e_6_moves_the_weights_as_f32_training_does() {
    // Typical small weights (|w| ≈ 0.01: bf16's spacing there is 6.1e-5), exactly representable
    // in bf16 so both runs start from the same values.
    let raw: Vec<f32> = (0..64)
        .map(|i| {
            let x = 0.0078125 * (1.0 + (i % 8) as f32 / 8.0);
            if i % 3 == 0 { -x } else { x }
        })
        .collect();
    let init: Vec<f32> = Tensor::from_slice(&raw, raw.len(), &Device::Cpu)
        .and_then(|t| t.to_dtype(DType::BF16))
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.to_vec1())
        .unwrap();
    let (steps, lr) = (1000, 1e-6);
    let (f32_weights, _) = train(&init, DType::F32, steps, lr);
    let (bf16_weights, bf16_master) = train(&init, DType::BF16, steps, lr);
    for i in 0..init.len() {
        let moved = f32_weights[i] - init[i];
        assert!(moved.abs() > 5e-4, "f32 training moved w[{i}] by {moved}");
        // The master follows f32 training (the same f32 arithmetic in another order: f32 CPU
        // parameters update in one fused pass): within 1e-4 of the distance moved (~1e-7).
        assert!(
            (bf16_master[i] - f32_weights[i]).abs() <= 1e-4 * moved.abs(),
            "master w[{i}]: {} vs f32 {}",
            bf16_master[i],
            f32_weights[i]
        );
        // The parameter is the master rounded to bf16: within half a bf16 spacing of f32's
        // result (|w| < 0.0157 here, spacing 6.1e-5), i.e. it moved by ~16 spacings as f32 did.
        assert!(
            (bf16_weights[i] - f32_weights[i]).abs() <= 3.1e-5,
            "bf16 w[{i}] = {} but f32 training gives {} (start {})",
            bf16_weights[i],
            f32_weights[i],
            init[i]
        );
    }
}

/// The masters are part of the optimizer state: a resumed run continues from them, not from the
/// rounded parameters.
#[test]
fn the_masters_are_saved_and_loaded_with_the_state() {
    let dev = Device::Cpu;
    let init = Tensor::from_slice(&[0.01f32, -0.01, 0.02, 0.5], 4, &dev)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let w = Var::from_tensor(&init).unwrap();
    let mut opt = AdamW::new(vec![("w".into(), w.clone())], AdamWConfig::default()).unwrap();
    let g = Tensor::from_slice(&[1.0f32, -1.0, 1.0, -1.0], 4, &dev)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    for _ in 0..7 {
        opt.step(&[Some(g.clone())], 1e-6, 1.0).unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("optimizer.safetensors");
    opt.save(&file).unwrap();
    let master = opt.trained_value(0);
    let mut again = AdamW::new(vec![("w".into(), w.clone())], AdamWConfig::default()).unwrap();
    again.load(&file, 7).unwrap();
    assert_eq!(max_abs_diff(&again.trained_value(0), &master), 0.0);
    // The rounded parameter alone would have lost the 7e-6 the master moved.
    let param = w.as_tensor().to_dtype(DType::F32).unwrap();
    let lost = max_abs_diff(&param, &master);
    assert!(lost > 1e-6, "{lost}");
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .unwrap()
}
