#!/usr/bin/env python3
"""bench_torch_gpt.py — PyTorch eager CPU training of the model mprun trains
(not run by make test; make bench calls it when torch imports).

Builds the same layers as mpkit (docs/model-format.md) from a model spec:
embedding (token table + learned positions), pre-LN causal multi-head
attention with a residual (y = x + Wo MHA(LN x) + bo, scale 1/sqrt(d/h)),
residual_mlp (y = x + W2 gelu_tanh(W1 LN x + b1) + b2), layernorm, linear
(bias per the spec), mean token cross-entropy; plain SGD. One step = m
micro-batches of b sequences, forward + backward each (gradients
accumulate), then the optimizer step: what an mprun one-stage step does.
Prints the median ms/step over --steps after --warmup, on --threads threads.

usage: tests/bench_torch_gpt.py [--model profiles/gpt-mini.model.json]
         [--micro-batch 1] [--micro-batches 4] [--steps 5] [--warmup 1]
         [--threads 1] [--sdpa]
"""
import argparse
import json
import math
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class Attention(nn.Module):
    def __init__(self, d, heads, causal):
        super().__init__()
        self.ln = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)
        self.o = nn.Linear(d, d)
        self.h, self.causal, self.sdpa = heads, causal, False

    def forward(self, x):
        b, t, d = x.shape
        h, dh = self.h, d // self.h
        q, k, v = self.qkv(self.ln(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, h, dh).transpose(1, 2) for z in (q, k, v))
        if self.sdpa:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(dh))
            if self.causal:
                mask = torch.ones(t, t, dtype=torch.bool).triu(1)
                s = s.masked_fill(mask, float("-inf"))
            a = torch.softmax(s, dim=-1) @ v
        return x + self.o(a.transpose(1, 2).reshape(b, t, d))


class ResidualMLP(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.ln = nn.LayerNorm(d, eps=1e-5)
        self.w1 = nn.Linear(d, hidden)
        self.w2 = nn.Linear(hidden, d)

    def forward(self, x):
        return x + self.w2(F.gelu(self.w1(self.ln(x)), approximate="tanh"))


class Embedding(nn.Module):
    def __init__(self, vocab, seq_len, d):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(seq_len, d) * 0.02)

    def forward(self, ids):
        return self.tok(ids) + self.pos


def expand(layers):
    for l in layers:
        if "repeat" in l:
            for _ in range(l["repeat"]):
                yield from expand(l["layers"])
        else:
            yield l


def build(spec):
    inp = spec["input"]
    if inp.get("type") != "tokens":
        sys.exit("bench_torch_gpt.py: %s: not a token model" % spec.get("name"))
    vocab, seq = inp["vocab"], inp["seq_len"]
    mods, d = [], None
    for l in expand(spec["layers"]):
        t = l["type"]
        if t == "embedding":
            d = l["dim"]
            mods.append(Embedding(vocab, seq, d))
        elif t == "attention":
            mods.append(Attention(d, l["heads"], l.get("causal", True)))
        elif t == "residual_mlp":
            mods.append(ResidualMLP(d, l["hidden"]))
        elif t == "layernorm":
            mods.append(nn.LayerNorm(d, eps=1e-5))
        elif t == "linear":
            mods.append(nn.Linear(d, l["out"], bias=l.get("bias", True)))
            d = l["out"]
        elif t == "gelu":
            mods.append(nn.GELU(approximate="tanh"))
        elif t == "relu":
            mods.append(nn.ReLU())
        else:
            sys.exit("bench_torch_gpt.py: layer type %s not supported" % t)
    return nn.Sequential(*mods), vocab, seq


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="profiles/gpt-mini.model.json")
    ap.add_argument("--micro-batch", type=int, default=1)
    ap.add_argument("--micro-batches", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--sdpa", action="store_true", help="fused scaled_dot_product_attention")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    with open(a.model) as f:
        spec = json.load(f)
    net, vocab, seq = build(spec)
    for m in net.modules():
        if isinstance(m, Attention):
            m.sdpa = a.sdpa
    opt = torch.optim.SGD(net.parameters(), lr=a.lr)
    g = torch.Generator().manual_seed(3)
    data = [(torch.randint(0, vocab, (a.micro_batch, seq), generator=g),
             torch.randint(0, vocab, (a.micro_batch, seq), generator=g)) for _ in range(a.micro_batches)]
    times, loss = [], None
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        for x, y in data:
            logits = net(x)
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1)) / a.micro_batches
            loss.backward()
        opt.step()
        t = (time.perf_counter() - t0) * 1e3
        if step >= a.warmup:
            times.append(t)
    print("# torch %s, %d thread(s), %s, b=%d x m=%d, %s attention, %d parameters"
          % (torch.__version__, torch.get_num_threads(), spec.get("name"), a.micro_batch, a.micro_batches,
             "sdpa" if a.sdpa else "explicit", sum(p.numel() for p in net.parameters())))
    print("torch_step_ms %.3f  (median of %d steps after %d warm-up; runs: %s; last loss %.4f)"
          % (statistics.median(times), len(times), a.warmup, " ".join("%.1f" % t for t in times),
             loss.item() * a.micro_batches))


if __name__ == "__main__":
    main()
