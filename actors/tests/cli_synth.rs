//! `exspin data synth` end to end: writes the layout, refuses a used folder, prints JSON.

use std::process::Command;

fn exspin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_exspin"))
}

#[test]
fn synth_writes_refuses_non_empty_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    let run = |extra: &[&str]| {
        let mut cmd = exspin();
        cmd.args(["data", "synth", "--out"])
            .arg(&out)
            .args(["--seed", "3", "--train", "60", "--dev", "30", "--json"])
            .args(extra);
        cmd.output().unwrap()
    };
    let first = run(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(summary["seed"], 3);
    assert_eq!(summary["splits"][0]["examples"], 60);
    assert_eq!(summary["splits"][1]["examples"], 30);
    assert_eq!(summary["databases"].as_array().unwrap().len(), 8);
    for file in ["tables.json", "train_spider.json", "dev.json"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }

    let again = run(&[]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("not empty") && stderr.contains("--force"),
        "{stderr}"
    );

    let forced = run(&["--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_eq!(forced.stdout, first.stdout);
}

#[test]
fn synth_help_explains_the_options() {
    let out = exspin().args(["data", "synth", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--out",
        "--seed",
        "--train",
        "--dev",
        "--force",
        "--json",
        "byte-identical",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
}
