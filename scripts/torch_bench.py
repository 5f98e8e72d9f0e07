#!/usr/bin/env python3
"""PyTorch baselines for `exspin bench train` / `exspin bench generate` (not part of CI).

train:    fwd + loss (shifted next-token NLL) + bwd + AdamW of Qwen2ForCausalLM with random
          weights of a named exspin shape, on random token batches. Prints one JSON object.
generate: transformers `generate`, greedy, exactly N new tokens (EOS ignored via min_new_tokens),
          random prompts of P tokens, at each batch size; weights from a GGUF (dequantized by
          transformers: needs the `gguf` package) or a named shape.
"""

import argparse
import json
import statistics
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

SHAPES = {
    # name: (vocab, hidden, intermediate, layers, heads, kv_heads, rope_theta) — as Config::named in
    # src/model/decoder.rs.
    "qwen2-30m": (16384, 512, 1408, 8, 8, 2, 10000.0),
    "qwen2.5-coder-0.5b": (151936, 896, 4864, 24, 14, 2, 1e6),
    "qwen2.5-coder-1.5b": (151936, 1536, 8960, 28, 12, 2, 1e6),
}


def shape_model(name, dtype):
    v, h, i, l, nh, kv, theta = SHAPES[name]
    cfg = Qwen2Config(
        vocab_size=v, hidden_size=h, intermediate_size=i, num_hidden_layers=l, num_attention_heads=nh,
        num_key_value_heads=kv, rope_theta=theta, tie_word_embeddings=True, rms_norm_eps=1e-6,
        max_position_embeddings=32768,
    )
    return Qwen2ForCausalLM(cfg).to(dtype)


def train(args):
    torch.manual_seed(args.seed)
    model = shape_model(args.shape, torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, foreach=True)
    vocab = model.config.vocab_size
    params = sum(p.numel() for p in model.parameters())
    times, fwd = [], []
    for step in range(args.warmup + args.steps):
        ids = torch.randint(0, vocab, (args.batch, args.seq))
        t0 = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        t1 = time.perf_counter()
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        if step >= args.warmup:
            times.append(t2 - t0)
            fwd.append(t1 - t0)
    tokens = args.batch * args.seq
    print(json.dumps({
        "bench": "train", "impl": "pytorch", "torch": torch.__version__, "model": args.shape,
        "params": params, "threads": torch.get_num_threads(), "batch": args.batch, "seq": args.seq,
        "steps": args.steps, "tokens_per_s": tokens * len(times) / sum(times),
        "tokens_per_s_median_step": tokens / statistics.median(times),
        "step_s": times, "forward_s": fwd,
    }))


def generate(args):
    torch.manual_seed(args.seed)
    if args.gguf:
        from transformers import AutoModelForCausalLM
        import os
        model = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(os.path.abspath(args.gguf)), gguf_file=os.path.basename(args.gguf),
            dtype=torch.float32)
        name = os.path.basename(args.gguf)
    else:
        model = shape_model(args.shape, torch.float32)
        name = args.shape
    model.eval()
    vocab = model.config.vocab_size
    results = []
    for b in args.batch:
        g = torch.Generator().manual_seed(args.seed ^ b)
        ids = torch.randint(0, vocab, (b, args.prompt_len), generator=g)
        mask = torch.ones_like(ids)
        kw = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                  pad_token_id=0, attention_mask=mask)
        with torch.no_grad():
            model.generate(ids, **{**kw, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
            runs = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                out = model.generate(ids, **kw)
                runs.append(time.perf_counter() - t0)
                assert out.shape[1] == args.prompt_len + args.new_tokens, out.shape
        total = statistics.median(runs)
        results.append({"batch": b, "new_tokens_per_row": args.new_tokens, "prompt_len": args.prompt_len,
                        "total_s": total, "new_tokens_per_s": b * args.new_tokens / total, "reps": args.reps})
    print(json.dumps({"bench": "generate", "impl": "transformers", "torch": torch.__version__, "model": name,
                      "threads": torch.get_num_threads(), "greedy": True, "results": results}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--shape", default="qwen2-30m")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--seq", type=int, default=256)
    t.add_argument("--steps", type=int, default=5)
    t.add_argument("--warmup", type=int, default=1)
    g = sub.add_parser("generate")
    g.add_argument("--gguf")
    g.add_argument("--shape", default="qwen2.5-coder-0.5b")
    g.add_argument("--batch", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    g.add_argument("--prompt-len", type=int, default=32)
    g.add_argument("--new-tokens", type=int, default=64)
    g.add_argument("--reps", type=int, default=1)
    for p in (t, g):
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    (train if args.cmd == "train" else generate)(args)


if __name__ == "__main__":
    main()
