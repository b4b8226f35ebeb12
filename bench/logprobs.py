"""Peak memory and time of the trainer's log-prob computation: the pre-issue-10 full-vocabulary log-softmax against
studykit.engine.grpo's chunked one, forward + backward through an lm_head, each in a fresh process (peak RSS on CPU,
torch.cuda.max_memory_allocated on a GPU).

    .venv/bin/python bench/logprobs.py [--batch 4 --positions 1024 --vocab 16384 --hidden 256 --dtype float32]

Prints one line per implementation: extra peak memory over the inputs, in MB and in units of one [B, T, V] fp32
tensor, and seconds. A wide vocabulary (Qwen2.5: 151,936) scales every number by vocab / --vocab.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
from studykit.engine import grpo
a = json.loads(sys.argv[1])
torch.manual_seed(0)
dev = "cuda" if torch.cuda.is_available() else "cpu"
dt = getattr(torch, a["dtype"])
B, T, V, H = a["batch"], a["positions"], a["vocab"], a["hidden"]
hidden = torch.randn(B, T + 1, H, device=dev, dtype=dt, requires_grad=True)
head = torch.nn.Linear(H, V, bias=False).to(dev, dt)
targets = torch.randint(0, V, (B, T), device=dev)
def old():
    logits = head(hidden)[:, :-1].float()
    lp_all = torch.log_softmax(logits, -1)
    lp = lp_all.gather(-1, targets[..., None]).squeeze(-1)
    ent = -(lp_all.exp() * lp_all).sum(-1)
    return lp, ent
def new():
    return grpo.chunked_token_logprobs(head(hidden), targets, 1.0, a["chunk"])
fn = {"old": old, "new": new}[a["impl"]]
if dev == "cuda":  # warm-up (kernels, allocator); on CPU the high-water mark would then already hold the peak
    lp, ent = fn(); lp.sum().backward(); hidden.grad = None; head.weight.grad = None; del lp, ent
if dev == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
else:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
lp, ent = fn()
lp.sum().backward()
if dev == "cuda":
    torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated()
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"impl": a["impl"], "extra_bytes": peak - base, "seconds": time.perf_counter() - t0, "device": dev}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--positions", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=16384)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--dtype", default="float32")
    args = vars(ap.parse_args())
    unit = args["batch"] * args["positions"] * args["vocab"] * 4
    print(f"[B, T, V] fp32 = {unit / 2**20:.0f} MB; args {args}")
    for impl in ("old", "new"):
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args | {"impl": impl})], capture_output=True,
                             text=True, check=True)
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{impl}: extra peak {rec['extra_bytes'] / 2**20:8.0f} MB = {rec['extra_bytes'] / unit:4.1f} x [B,T,V] "
              f"fp32, {rec['seconds']:.2f} s ({rec['device']})")


if __name__ == "__main__":
    main()
