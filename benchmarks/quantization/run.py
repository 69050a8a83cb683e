"""Quantization benchmark: what onnxpy.quantization buys and costs on four models.

    python -m benchmarks.quantization.run       # all models -> docs/benchmarks/quantization.md
    python -m benchmarks.quantization.run --models mlp,cnn --rounds 5

Models: two small classifiers trained here with PyTorch on scikit-learn's digits (an MLP on the
64 pixels, a CNN on the 8x8 images; trained, so top-1 agreement means something), and the zoo's
ResNet-50 and BERT-base (random weights, ``benchmarks/zoo.py``). Per variant:

* file size before and after;
* agreement with the float model: top-1 over 1,000 seeded inputs (held-out digits) for the
  classifiers, output SQNR for ResNet-50, cosine similarity of BERT's last hidden state;
* latency (batch 1; the classifiers also at batch 100) of the quantized model vs the float
  model in onnxpy, and vs onnxruntime running the same quantized file, measured *interleaved
  in one process* (float, quantized, onnxruntime, repeated) so that the shared machine's slow
  spells hit all three alike; the ratios are medians of per-round ratios;
* session creation time and peak memory (VmHWM), each (model file, runtime) in a fresh process.

Every runtime runs on ``--threads`` threads (BLAS via OMP/OPENBLAS variables, onnxruntime via
``intra_op_num_threads``, its pool not spinning between runs). The default is 1: on the shared
2-core machine under load, 2-thread BLAS slowed ResNet-50 from ~0.4 s to ~2.8 s a run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "benchmarks"


def _cache() -> Path:
    from benchmarks import zoo

    d = zoo.cache_dir() / "quant"
    d.mkdir(parents=True, exist_ok=True)
    return d


# -- the trained classifiers ---------------------------------------------------------------------


def _digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[:1000], order[1000:]  # 1,000 seeded held-out inputs, 797 to train
    return x[train], y[train], x[test], y[test]


def _train(kind: str) -> Path:
    path = _cache() / f"digits_{kind}.onnx"
    if path.exists():
        return path
    import torch
    from torch import nn

    torch.manual_seed(0)
    xtr, ytr, _, _ = _digits()
    if kind == "mlp":
        model = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
        )
        shape = (-1, 64)
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(64 * 4 * 4, 10),
        )  # fmt: skip
        shape = (-1, 1, 8, 8)
    xt, yt = torch.tensor(xtr).reshape(shape), torch.tensor(ytr)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        for i in range(0, len(xt), 64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[i : i + 64]), yt[i : i + 64])
            loss.backward()
            opt.step()
    model.eval()
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    torch.onnx.export(
        model, (xt[:1],), str(tmp), input_names=["x"], output_names=["logits"],
        dynamic_axes={"x": {0: "n"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    os.replace(tmp, path)
    return path


def _digit_inputs(kind: str) -> tuple[list[dict], list[dict], float]:
    """(calibration feeds, the 1,000 agreement inputs as batches of 100, float test accuracy)."""
    xtr, _, xte, yte = _digits()
    shape = (-1, 64) if kind == "mlp" else (-1, 1, 8, 8)
    cal = [{"x": xtr[i : i + 20].reshape(shape)} for i in range(0, 200, 20)]
    evals = [{"x": xte[i : i + 100].reshape(shape)} for i in range(0, 1000, 100)]
    return cal, evals, yte


# -- variants ------------------------------------------------------------------------------------


def _quantize(variant: str, src: Path, cal: list[dict]) -> Path:
    from onnxpy import quantization as oq
    from onnxpy.quantization.workflow import FeedReader

    dst = _cache() / f"{src.stem}.{variant}.onnx"
    if dst.exists():
        return dst
    if variant == "dynamic":
        oq.quantize_dynamic(src, dst, per_channel=True)
    elif variant == "static":
        oq.quantize_static(
            src, dst, FeedReader(cal), per_channel=True, activation_type=oq.QuantType.QUInt8
        )
    elif variant == "int4":
        oq.quantize_weight_only(src, dst, bits=4, block_size=32)
    elif variant == "fp16":
        import onnx

        onnx.save(oq.convert_float_to_float16(src), str(dst))
    return dst


def _zoo_inputs(name: str, count: int, seed: int) -> list[dict]:
    from benchmarks import zoo

    return [zoo.inputs_for(name, batch=1, seed=seed + i) for i in range(count)]


PLAN = {
    "mlp": ("digits MLP 64-256-256-10", ["dynamic", "static"]),
    "cnn": ("digits CNN (3 conv)", ["static"]),
    "resnet50": ("ResNet-50", ["static"]),
    "bert_base": ("BERT-base (seq 128)", ["dynamic", "int4", "fp16"]),
}


def prepare(name: str):
    """(float path, calibration feeds, agreement feeds, timing feed, metric kind)."""
    from benchmarks import zoo

    if name in ("mlp", "cnn"):
        cal, evals, _ = _digit_inputs(name)
        timing = {1: {"x": evals[0]["x"][:1]}, 100: evals[0]}
        return _train(name), cal, evals, timing, "top1"
    path = zoo.build(name)
    cal = _zoo_inputs(name, 8, 100)
    evals = _zoo_inputs(name, 20, 1000)
    return path, cal, evals, {1: evals[0]}, "sqnr" if name == "resnet50" else "cosine"


# -- measurements --------------------------------------------------------------------------------


def _sessions(paths: list[Path], threads: int):
    import onnxruntime as ort

    import onnxpy

    so = onnxpy.SessionOptions()
    so.intra_op_num_threads = threads
    ours = [onnxpy.InferenceSession(str(p), sess_options=so) for p in paths]
    oso = ort.SessionOptions()
    oso.intra_op_num_threads = threads
    # Its pool would otherwise spin between runs, taking the cores from the runs it alternates
    # with (2 shared cores).
    oso.add_session_config_entry("session.intra_op.allow_spinning", "0")
    theirs = ort.InferenceSession(str(paths[1]), oso, providers=["CPUExecutionProvider"])
    return ours, theirs


def agreement(kind: str, float_sess, quant_sess, evals: list[dict], labels=None) -> dict:
    ref = [float_sess.run(None, f)[0] for f in evals]
    got = [quant_sess.run(None, f)[0] for f in evals]
    r, g = np.concatenate(ref).astype(np.float64), np.concatenate(got).astype(np.float64)
    if kind == "top1":
        out = {"top1_agreement": float(np.mean(r.argmax(1) == g.argmax(1)))}
        if labels is not None:
            out["float_acc"] = float(np.mean(r.argmax(1) == labels))
            out["quant_acc"] = float(np.mean(g.argmax(1) == labels))
        return out
    if kind == "sqnr":
        return {"sqnr_db": float(10 * np.log10(np.sum(r**2) / np.sum((g - r) ** 2)))}
    r2, g2 = r.reshape(-1, r.shape[-1]), g.reshape(-1, g.shape[-1])
    cos = np.sum(r2 * g2, 1) / (np.linalg.norm(r2, axis=1) * np.linalg.norm(g2, axis=1))
    return {"cosine": float(cos.mean()), "cosine_min": float(cos.min())}


def _runner(sess):
    def run(feed):
        return sess.run(None, feed)

    return run


def interleaved(runs: list, feed: dict, rounds: int, min_time: float) -> list[list[float]]:
    """Per round, each runner's median latency (s) over enough calls to fill ``min_time``."""
    for run in runs:
        run(feed)  # warm-up
    per_round = []
    for _ in range(rounds):
        row = []
        for run in runs:
            times, t_end = [], time.perf_counter() + min_time
            while len(times) < 3 or time.perf_counter() < t_end:
                t0 = time.perf_counter()
                run(feed)
                times.append(time.perf_counter() - t0)
            row.append(float(np.median(times)))
        per_round.append(row)
    return per_round


def child(cfg: dict) -> None:
    """Session creation and peak memory of one (file, runtime) in this fresh process."""
    import resource  # noqa: F401 - VmHWM below; resource only as a fallback

    if cfg["runtime"] == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = cfg["threads"]
        t0 = time.perf_counter()
        s = ort.InferenceSession(cfg["path"], so, providers=["CPUExecutionProvider"])
    else:
        import onnxpy

        so = onnxpy.SessionOptions()
        so.intra_op_num_threads = cfg["threads"]
        t0 = time.perf_counter()
        s = onnxpy.InferenceSession(cfg["path"], sess_options=so)
    create = time.perf_counter() - t0
    feed = {k: np.asarray(v) for k, v in np.load(cfg["feed"]).items()}
    for _ in range(3):
        s.run(None, feed)
    with open("/proc/self/status") as f:
        hwm = next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmHWM:"))
    print("RESULT " + json.dumps({"create_s": create, "peak_mb": hwm}))


def fresh_process(path: Path, runtime: str, feed_file: Path, threads: int) -> dict:
    cfg = {"path": str(path), "runtime": runtime, "feed": str(feed_file), "threads": threads}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.quantization.run", "--child", json.dumps(cfg)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        return {"error": proc.stderr.strip().splitlines()[-1][:200] if proc.stderr else "no result"}
    return json.loads(lines[-1][7:])


def _size(path: Path) -> int:
    extra = path.parent / (path.name + ".data")
    return path.stat().st_size + (extra.stat().st_size if extra.exists() else 0)


def measure(name: str, args) -> list[dict]:
    title, variants = PLAN[name]
    src, cal, evals, timing, kind = prepare(name)
    one = timing[1]
    labels = _digit_inputs(name)[2] if kind == "top1" else None
    feed_file = _cache() / f"{name}.feed.npz"
    np.savez(feed_file, **one)
    rows = []
    base = {"float": fresh_process(src, "onnxpy", feed_file, args.threads)}
    for variant in variants:
        t0 = time.perf_counter()
        q = _quantize(variant, src, cal)
        quantize_s = time.perf_counter() - t0
        (f_sess, q_sess), o_sess = _sessions([src, q], args.threads)
        runners = [_runner(f_sess), _runner(q_sess), _runner(o_sess)]
        row = {
            "model": title,
            "variant": variant,
            "size_before": _size(src),
            "size_after": _size(q),
        }
        row["quantize_s"] = quantize_s
        row.update(agreement(kind, f_sess, q_sess, evals, labels))
        row["latency"] = {}
        for batch, feed in timing.items():
            lat = np.asarray(interleaved(runners, feed, args.rounds, args.min_time))
            fl, qu, ox = (np.median(lat, 0) * 1e3).tolist()
            row["latency"][batch] = {
                "float_ms": fl,
                "quant_ms": qu,
                "ort_ms": ox,
                "quant_vs_float": float(np.median(lat[:, 1] / lat[:, 0])),
                "quant_vs_ort": float(np.median(lat[:, 1] / lat[:, 2])),
            }
        row["create_float"] = base["float"]
        row["create_quant"] = fresh_process(q, "onnxpy", feed_file, args.threads)
        row["create_ort"] = fresh_process(q, "onnxruntime", feed_file, args.threads)
        rows.append(row)
        print(json.dumps(row), flush=True)
        del f_sess, q_sess, o_sess
    return rows


def _agree(r: dict) -> str:
    if "top1_agreement" in r:
        acc = f" (acc {r['float_acc']:.3f} -> {r['quant_acc']:.3f})" if "float_acc" in r else ""
        return f"top-1 {r['top1_agreement']:.3f}{acc}"
    if "sqnr_db" in r:
        return f"SQNR {r['sqnr_db']:.1f} dB"
    return f"cosine {r['cosine']:.4f} (min {r['cosine_min']:.4f})"


def render(rows: list[dict], args) -> str:
    lines = [
        "# Quantization benchmark",
        "",
        f"`python -m benchmarks.quantization.run` ({args.threads} thread(s), {args.rounds} "
        f"interleaved rounds of >= {args.min_time:.2f} s per runtime). Ratios "
        "are medians of same-round ratios (float, quantized and onnxruntime run one after another "
        "in one process). Session creation and peak memory (VmHWM) come from a fresh process per "
        "(file, runtime).",
        "",
        "| model | variant | size MB before -> after | agreement | batch | float ms | quant ms "
        "| quant/float | ORT quant ms | onnxpy/ORT | session s (float / quant / ORT) "
        "| peak MB (float / quant / ORT) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = [r["create_float"], r["create_quant"], r["create_ort"]]
        sess = " / ".join(f"{x.get('create_s', float('nan')):.2f}" for x in c)
        peak = " / ".join(f"{x.get('peak_mb', float('nan')):.0f}" for x in c)
        before, after = r["size_before"] / 1e6, r["size_after"] / 1e6
        for batch, t in r["latency"].items():
            lines.append(
                f"| {r['model']} | {r['variant']} | {before:.2f} -> {after:.2f} "
                f"({before / after:.2f}x) | {_agree(r)} | {batch} | {t['float_ms']:.3f} | "
                f"{t['quant_ms']:.3f} | {t['quant_vs_float']:.2f} | {t['ort_ms']:.3f} | "
                f"{t['quant_vs_ort']:.2f} | {sess} | {peak} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--models", default=",".join(PLAN))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--min-time", type=float, default=0.3)
    p.add_argument("--out", default=str(OUT / "quantization.md"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    rows = []
    for name in args.models.split(","):
        rows += measure(name.strip(), args)
    text = render(rows, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
