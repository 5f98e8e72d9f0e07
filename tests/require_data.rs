//! A CI that lost the shared data cannot pass by skipping: with `EXSPIN_REQUIRE_DATA=1` a test that
//! needs `EXSPIN_DATA` and does not find it fails, naming the variable; without the switch it
//! skips visibly. Checked by running one data test of this binary again in a child process.

use std::process::{Command, Output};

/// This test binary, running only the official-agreement test, without `EXSPIN_DATA`.
fn run_data_test_without_data(require: Option<&str>) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "eval::dail_sql_gpt4_gives_the_official_809_of_972",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_remove("EXSPIN_DATA")
    .env_remove("EXSPIN_REQUIRE_DATA");
    if let Some(v) = require {
        cmd.env("EXSPIN_REQUIRE_DATA", v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_data_test_fails_without_its_data_when_the_data_is_required() {
    let out = run_data_test_without_data(Some("1"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "passed without its data:\n{text}");
    assert!(
        text.contains("EXSPIN_REQUIRE_DATA=1") && text.contains("EXSPIN_DATA"),
        "{text}"
    );
    // The test really ran (and failed), not filtered away.
    assert!(text.contains("1 failed"), "{text}");
}

#[test]
fn a_data_test_skips_visibly_when_the_data_is_not_required() {
    let out = run_data_test_without_data(None);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("SKIP official agreement") && text.contains("1 passed"),
        "{text}"
    );
}
