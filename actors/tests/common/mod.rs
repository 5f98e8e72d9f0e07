//! What the tests that run the `exspin` binary share.

use std::process::Command;

/// Runs `exspin ARGS` and returns its exit code (-1 when killed by a signal), stdout and stderr.
pub fn exspin(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_exspin"))
        .args(args)
        .output()
        .expect("running exspin");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
