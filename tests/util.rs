//! Helpers shared by the test modules.

use std::path::PathBuf;

/// A test that cannot run without the shared data: a visible `SKIP` line, or, with
/// `EXSPIN_REQUIRE_DATA=1` (what `.ci/run` sets when it finds the data), a failure that names
/// the variable, so a CI that lost its data cannot pass by skipping.
#[allow(dead_code)]
pub fn skip_without_data(what: &str, why: &str) {
    if std::env::var("EXSPIN_REQUIRE_DATA").is_ok_and(|v| v == "1") {
        panic!(
            "{what} needs the shared data: {why}. EXSPIN_REQUIRE_DATA=1 forbids skipping: set \
             EXSPIN_DATA to the shared data folder (e.g. ../shared/data)"
        );
    }
    eprintln!("SKIP {what}: {why}");
}

/// The shared data folder (`EXSPIN_DATA`), or `None` after [`skip_without_data`].
#[allow(dead_code)]
pub fn shared_data(what: &str) -> Option<PathBuf> {
    match std::env::var_os("EXSPIN_DATA").map(PathBuf::from) {
        Some(dir) if dir.is_dir() => Some(dir),
        Some(dir) => {
            skip_without_data(
                what,
                &format!("EXSPIN_DATA={} is not a folder", dir.display()),
            );
            None
        }
        None => {
            skip_without_data(
                what,
                "set EXSPIN_DATA to the shared data folder (e.g. ../shared/data)",
            );
            None
        }
    }
}

/// The Spider folder inside the shared data, if present.
#[allow(dead_code)]
pub fn spider_dir(what: &str) -> Option<PathBuf> {
    let dir = shared_data(what)?.join("spider");
    if dir.join("dev.json").is_file() {
        Some(dir)
    } else {
        skip_without_data(what, &format!("{} has no dev.json", dir.display()));
        None
    }
}

/// The device of the model tests: the CPU, unless `EXSPIN_TEST_DEVICE=cuda` (or `cuda:N`) asks
/// for a GPU. Asking for one never falls back to the CPU: a test binary built without
/// `--features cuda`, or a machine where the device does not open, panics with the reason (so a
/// GPU check cannot pass on the CPU by mistake). Unset, empty or `cpu`: the CPU, as before.
#[allow(dead_code)]
pub fn test_device() -> candle_core::Device {
    let want = std::env::var("EXSPIN_TEST_DEVICE").unwrap_or_default();
    let ordinal = match want.as_str() {
        "" | "cpu" => return candle_core::Device::Cpu,
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| {
                panic!("EXSPIN_TEST_DEVICE={other:?}: use cpu, cuda or cuda:N (or leave it unset)")
            }),
    };
    if !cfg!(feature = "cuda") {
        panic!(
            "EXSPIN_TEST_DEVICE={want} but this test binary was built without CUDA support: \
             build it with `cargo test --release --features cuda`, or unset EXSPIN_TEST_DEVICE"
        );
    }
    candle_core::Device::new_cuda(ordinal).unwrap_or_else(|e| {
        panic!("EXSPIN_TEST_DEVICE={want}: CUDA device {ordinal} does not open: {e}")
    })
}

/// Whether the tests run on a GPU ([`test_device`]).
#[allow(dead_code)]
pub fn on_gpu(dev: &candle_core::Device) -> bool {
    !dev.is_cpu()
}

/// A numeric bound of a CPU test, on the test device. On the CPU it is `cpu` unchanged (the
/// tests' behaviour there is as it was). On a GPU the same f32 maths runs in another order
/// (cuBLAS algorithms chosen per shape, warp-tree reductions, fused kernels), so two results that
/// agree to the last bits on the CPU differ by some ulps there: the bound is 10× looser, and
/// at least 1e-5 (so an exact CPU comparison becomes a near-exact one).
#[allow(dead_code)]
pub fn tol(dev: &candle_core::Device, cpu: f32) -> f32 {
    if on_gpu(dev) {
        (10.0 * cpu).max(1e-5)
    } else {
        cpu
    }
}
