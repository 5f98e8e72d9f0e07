#!/usr/bin/env python3
"""Logit parity between exspin and PyTorch `transformers`, both ways (not part of CI).

1. exspin writes small random Qwen2 and Llama checkpoints (`exspin model random`, every tensor
   random: norms and biases too); transformers loads each and both compute the logits of the same
   tokens.
2. transformers writes random checkpoints (`save_pretrained`, norms and biases perturbed so none
   is a no-op); exspin loads each (`exspin model logits`) and both compute the same logits.

Passes when every max |Δlogit| ≤ 1e-4 (f32). Needs a virtualenv with torch + transformers:
    python3 -m venv /work/torch-venv && /work/torch-venv/bin/pip install torch transformers safetensors
    /work/torch-venv/bin/python scripts/parity.py --exspin target/release/exspin
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

TOL = 1e-4
TOKENS = [1, 17, 42, 255, 3, 99, 128, 7, 64, 200, 5, 31, 250, 0, 77, 13]


def exspin_logits(exspin, model_dir, tokens):
    out = subprocess.run(
        [exspin, "model", "logits", "--model", str(model_dir), "--tokens", ",".join(map(str, tokens)), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    v = json.loads(out.stdout)
    return torch.tensor(v["logits"], dtype=torch.float32)


def torch_logits(model, tokens):
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].float()


def transformers_random(kind, seed):
    torch.manual_seed(seed)
    common = dict(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    if kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(tie_word_embeddings=True, rms_norm_eps=1e-6, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, rms_norm_eps=1e-5, **common))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.02 * torch.randn_like(p))
    return model.float().eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exspin", default="target/release/exspin")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. exspin -> transformers
        for shape in ["qwen2-tiny", "llama-tiny"]:
            d = tmp / f"exspin-{shape}"
            subprocess.run([args.exspin, "model", "random", "--shape", shape, "--out", str(d), "--seed", "7"], check=True)
            model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
            a = torch_logits(model, TOKENS)
            b = exspin_logits(args.exspin, d, TOKENS)
            rows.append(("exspin -> transformers", shape, type(model).__name__, a, b))
        # 2. transformers -> exspin
        for kind in ["qwen2", "llama"]:
            d = tmp / f"hf-{kind}"
            model = transformers_random(kind, seed=3)
            model.save_pretrained(d, safe_serialization=True)
            a = torch_logits(model, TOKENS)
            b = exspin_logits(args.exspin, d, TOKENS)
            rows.append(("transformers -> exspin", kind, type(model).__name__, a, b))
    ok = True
    results = []
    for direction, name, cls, a, b in rows:
        assert a.shape == b.shape, (direction, name, a.shape, b.shape)
        diff = (a - b).abs().max().item()
        scale = a.abs().max().item()
        passed = diff <= TOL
        ok &= passed
        results.append(
            dict(direction=direction, model=name, cls=cls, max_abs_diff=diff, max_abs_logit=scale, passed=passed)
        )
        print(f"{direction:24} {name:11} {cls:18} max|Δ| = {diff:.3e} (max|logit| {scale:.3f}) {'ok' if passed else 'FAIL'}")
    print(json.dumps({"tolerance": TOL, "tokens": len(TOKENS), "results": results, "passed": ok}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
