//! `exspin bench quant-agreement`: how often our dequantized f32 decoder picks the same next token
//! as candle-transformers' quantized Qwen2 (the GGUF's own q4/q6 weights through candle's
//! quantized matmul), teacher-forced over recorded (prompt, generation) token sequences, e.g. the
//! `--tokens-out` file of `exspin generate`. Agreement is counted at every generated position:
//! given the prompt and the generated tokens before it, do both models' argmax agree?

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use candle_core::quantized::gguf_file;
use candle_core::{D, Tensor};
use candle_transformers::models::quantized_qwen2::ModelWeights;
use exspin::model::load;
use serde::Deserialize;
use serde_json::json;

use crate::cli::args::compute::ComputeArgs;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  exspin generate --model M.gguf --spider data/spider --limit 50 \
--schema plain --out pred.txt --tokens-out gen.jsonl\n  exspin bench quant-agreement --model M.gguf \
--tokens gen.jsonl --limit 10 --json"
)]
pub struct QuantAgreementArgs {
    /// The GGUF file (Qwen2 architecture).
    #[arg(long, value_name = "FILE.gguf")]
    pub model: PathBuf,
    /// JSONL of {"prompt": [ids], "generated": [ids]} records (`exspin generate --tokens-out`).
    #[arg(long, value_name = "FILE")]
    pub tokens: PathBuf,
    /// Only the first N records.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub compute: ComputeArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Deserialize)]
struct Record {
    prompt: Vec<u32>,
    generated: Vec<u32>,
}

fn argmax_rows(logits: &Tensor) -> anyhow::Result<Vec<u32>> {
    Ok(logits
        .to_dtype(candle_core::DType::F32)?
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?)
}

pub fn run(args: QuantAgreementArgs) -> anyhow::Result<()> {
    // Ours in the asked dtype (f32 by default: the dequantized weights), the quantized model on
    // the same device.
    let (dev, dtype, threads) = args.compute.open()?;
    let file = std::fs::File::open(&args.tokens)
        .with_context(|| format!("opening {}", args.tokens.display()))?;
    let mut records = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a token record", args.tokens.display(), i + 1))?;
        records.push(r);
        if args.limit.is_some_and(|n| records.len() >= n) {
            break;
        }
    }
    anyhow::ensure!(!records.is_empty(), "{}: no records", args.tokens.display());

    let lm = load::load_as(&args.model, dtype, &dev)
        .with_context(|| format!("loading {} dequantized", args.model.display()))?;
    let mut ours = lm.model.clone();
    ours.freeze_base();
    let mut reader = std::fs::File::open(&args.model)?;
    let content = gguf_file::Content::read(&mut reader)
        .with_context(|| format!("reading {}", args.model.display()))?;
    let mut quant = ModelWeights::from_gguf(content, &mut reader, &dev)
        .with_context(|| format!("building the quantized model from {}", args.model.display()))?;

    let (mut positions, mut agree, mut ours_vs_recorded) = (0usize, 0usize, 0usize);
    let mut full_agree = 0usize;
    let mut first_disagreement = Vec::new();
    let started = Instant::now();
    for (ri, r) in records.iter().enumerate() {
        anyhow::ensure!(
            !r.prompt.is_empty() && !r.generated.is_empty(),
            "record {ri}: empty prompt or generation"
        );
        // Positions predicting each generated token: p-1 .. p+g-2.
        let g = r.generated.len();
        let p = r.prompt.len();
        let seq: Vec<u32> = r
            .prompt
            .iter()
            .chain(&r.generated[..g - 1])
            .copied()
            .collect();
        let ids = Tensor::from_vec(seq.clone(), (1, seq.len()), &dev)?;
        let hidden = ours.forward_hidden(&ids, &[vec![1u8; seq.len()]], None)?;
        let ours_top = argmax_rows(&ours.logits(&hidden.narrow(1, p - 1, g)?.squeeze(0)?)?)?;

        // The quantized model returns the last position's logits: prompt at once, then one
        // generated token per call from its own cache.
        let mut quant_top = Vec::with_capacity(g);
        let prompt = Tensor::from_vec(r.prompt.clone(), (1, p), &dev)?;
        quant_top.push(argmax_rows(&quant.forward(&prompt, 0)?)?[0]);
        for (i, &t) in r.generated[..g - 1].iter().enumerate() {
            let x = Tensor::from_vec(vec![t], (1, 1), &dev)?;
            quant_top.push(argmax_rows(&quant.forward(&x, p + i)?)?[0]);
        }
        let same = ours_top
            .iter()
            .zip(&quant_top)
            .filter(|(a, b)| a == b)
            .count();
        positions += g;
        agree += same;
        full_agree += usize::from(same == g);
        ours_vs_recorded += ours_top
            .iter()
            .zip(&r.generated)
            .filter(|(a, b)| a == b)
            .count();
        first_disagreement.push(ours_top.iter().zip(&quant_top).position(|(a, b)| a != b));
        eprintln!(
            "{} / {}: {same}/{g} positions agree ({:.0} s)",
            ri + 1,
            records.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let report = json!({
        "bench": "quant_agreement",
        "model": args.model.display().to_string(),
        "sequences": records.len(),
        "positions": positions,
        "top1_agree": agree,
        "top1_agreement": agree as f64 / positions as f64,
        "sequences_fully_agreeing": full_agree,
        "dequantized_matches_recorded": ours_vs_recorded as f64 / positions as f64,
        "first_disagreement": first_disagreement,
        "threads": threads,
        "seconds": started.elapsed().as_secs_f64(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "top-1 agreement {agree}/{positions} = {:.4} over {} sequences ({} agree throughout)",
            agree as f64 / positions as f64,
            records.len(),
            full_agree
        );
    }
    Ok(())
}
