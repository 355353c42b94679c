#!/usr/bin/env python3
"""Trains shardcast's learned load forecaster and exports it to ONNX.

The model forecasts the next H per-epoch access counts of a shard from its last K counts and the time of
day. Its ONNX signature is the one `OnnxForecaster` (operators/src/forecast/onnx.rs) documents:

    counts   f32 [N, K]  last K counts, oldest first, each divided by scale = 1 + mean of the K counts
    time     f32 [N, 2]  sin, cos of 2*pi * (time of day of the first forecast epoch) / 24 h
    forecast f32 [N, H]  the next H counts divided by the same scale

Training series are per-shard per-epoch counts (shard = FNV-1a 64 of the key mod shards, as `shard_of`)
from the generator's events (JSON lines from `shardcast produce --generator --to file:PATH`) and from
real traces (`*.normalized.csv.gz`). Real traces are split in time: the model never sees the last
TEST_FRACTION of a trace, which is where the scores are measured; the generator is scored on a run with
another seed. Everything is seeded, so the same inputs give the same model.

The network is a small MLP (two hidden ReLU layers) plus a linear path from the inputs to the outputs,
trained with Adam on an absolute-error loss weighted so that every dataset counts like its MASE.
Only numpy and onnx are needed (see requirements.txt); onnxruntime, when installed, checks the export.
"""

import argparse
import csv
import gzip
import json
import math
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

K = 32  # counts per input window
H = 8  # epochs forecast
HIDDEN = 64
SEED = 20251122
EPOCHS = 40
BATCH = 256
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-5
TEST_FRACTION = 0.3
DAY_MS = 86_400_000
# The signature carries the time of day, but one day of a real trace and minutes of generator time cannot
# teach a daily cycle: trained with it, the model met afternoon hours in NASA's held-out tail that it had
# never seen and did worse there (MASE 0.850 instead of 0.814, README.md). So this model is trained with
# the time input zeroed and exported with zero weights on it; a model trained on weeks of data can use it.
USE_TIME_OF_DAY = False

# The series each dataset is scored on (tick in ms, shards), as operators/tests/forecast_quality.rs
# rebuilds them, and the extra views of the same events that only add training examples.
MAIN = {
    "generator": (1_000, 16),
    "nasa": (60_000, 8),
    "cloudphysics": (10_000, 8),
}
AUGMENT = {
    "generator": [(1_000, 4), (1_000, 64), (2_000, 16)],
    "nasa": [(60_000, 4), (60_000, 16), (30_000, 8), (120_000, 8)],
    "cloudphysics": [(10_000, 4), (10_000, 16), (5_000, 8), (20_000, 8)],
}


# ---------------------------------------------------------------------------------------------- series


def fnv1a64(key: str) -> int:
    h = 0xCBF29CE484222325
    for b in key.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def read_trace(path: Path):
    """(ts_ms, key) of a normalized trace (ts in seconds)."""
    ts, keys = [], []
    with gzip.open(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header[:2] != ["ts", "key"]:
            sys.exit(f"{path}: not a normalized trace (header {header})")
        for row in reader:
            ts.append(int(row[0]) * 1000)
            keys.append(row[1])
    return np.array(ts, dtype=np.int64), keys


def read_events(path: Path):
    """(ts_ms, key) of a JSON-lines event file."""
    ts, keys = [], []
    with open(path) as f:
        for line in f:
            if line.strip():
                event = json.loads(line)
                ts.append(int(event["ts"]))
                keys.append(event["key"])
    return np.array(ts, dtype=np.int64), keys


class Events:
    """Events with each key's hash computed once, whatever the shard counts asked for."""

    def __init__(self, ts, keys):
        self.ts = ts
        cache = {}
        self.hashes = np.array(
            [cache.setdefault(k, fnv1a64(k)) for k in keys], dtype=np.uint64
        )

    def series(self, tick_ms: int, shards: int):
        """(first_epoch, counts [shards, epochs]), as `shard_series` builds them."""
        epochs = self.ts // tick_ms
        first = int(epochs.min())
        counts = np.zeros((shards, int(epochs.max()) - first + 1))
        np.add.at(counts, ((self.hashes % np.uint64(shards)).astype(np.int64), epochs - first), 1)
        return first, counts


# ------------------------------------------------------------------------------------------- features


def windows(counts: np.ndarray, t: int) -> np.ndarray:
    """The last K counts before origin t of every series, left-padded with the first (as onnx.rs)."""
    tail = counts[:, max(0, t - K) : t]
    if tail.shape[1] == 0:
        return np.zeros((counts.shape[0], K))
    pad = np.repeat(tail[:, :1], K - tail.shape[1], axis=1)
    return np.concatenate([pad, tail], axis=1)


def time_of_day(next_epoch: int, tick_ms: int) -> np.ndarray:
    angle = 2 * math.pi * ((next_epoch * tick_ms) % DAY_MS) / DAY_MS
    return np.array([math.sin(angle), math.cos(angle)], dtype=np.float32)


def examples(first: int, counts: np.ndarray, tick_ms: int, origins):
    """Model inputs, scales and targets for every series at every origin."""
    xs, ts, scales, ys = [], [], [], []
    for t in origins:
        w = windows(counts, t)
        scale = 1.0 + w.mean(axis=1)
        xs.append((w / scale[:, None]).astype(np.float32))
        ts.append(np.repeat(time_of_day(first + t, tick_ms)[None, :], counts.shape[0], axis=0))
        scales.append(scale)
        ys.append(counts[:, t : t + H])
    return np.concatenate(xs), np.concatenate(ts), np.concatenate(scales), np.concatenate(ys)


# ------------------------------------------------------------------------------------------ baselines
# The same definitions as operators/src/forecast/baselines.rs, over a batch of windows.


def last_value(h):
    return np.repeat(h[:, -1:], H, axis=1)


def ewma(alpha):
    def forecast(h):
        level = h[:, 0].copy()
        for j in range(1, h.shape[1]):
            level += alpha * (h[:, j] - level)
        return np.repeat(level[:, None], H, axis=1)

    return forecast


def holt(alpha=0.2, beta=0.05, phi=0.9):
    def forecast(h):
        level, trend = h[:, 0].copy(), np.zeros(h.shape[0])
        for j in range(1, h.shape[1]):
            nxt = alpha * h[:, j] + (1 - alpha) * (level + phi * trend)
            trend = beta * (nxt - level) + (1 - beta) * phi * trend
            level = nxt
        damp = np.cumsum(phi ** np.arange(1, H + 1))
        return np.maximum(level[:, None] + damp[None, :] * trend[:, None], 0.0)

    return forecast


BASELINES = {
    "last": last_value,
    "ewma(0.1)": ewma(0.1),
    "ewma(0.2)": ewma(0.2),
    "ewma(0.5)": ewma(0.5),
    "holt": holt(),
}


# ---------------------------------------------------------------------------------------------- model


class Mlp:
    def __init__(self, rng):
        d = K + 2
        self.params = {
            "w1": rng.normal(0, math.sqrt(2 / d), (d, HIDDEN)),
            "b1": np.zeros(HIDDEN),
            "w2": rng.normal(0, math.sqrt(2 / HIDDEN), (HIDDEN, HIDDEN)),
            "b2": np.zeros(HIDDEN),
            "w3": rng.normal(0, 0.01, (HIDDEN, H)),
            "b3": np.zeros(H),
            # The linear path starts as the mean of the last 8 counts.
            "wl": np.zeros((d, H)),
        }
        self.params["wl"][K - 8 : K, :] = 1 / 8

    def forward(self, z):
        p = self.params
        a1 = z @ p["w1"] + p["b1"]
        h1 = np.maximum(a1, 0)
        a2 = h1 @ p["w2"] + p["b2"]
        h2 = np.maximum(a2, 0)
        y = h2 @ p["w3"] + p["b3"] + z @ p["wl"]
        return y, (z, a1, h1, a2, h2)

    def gradients(self, cache, dy):
        z, a1, h1, a2, h2 = cache
        p = self.params
        g = {"w3": h2.T @ dy, "b3": dy.sum(0), "wl": z.T @ dy}
        da2 = (dy @ p["w3"].T) * (a2 > 0)
        g["w2"], g["b2"] = h1.T @ da2, da2.sum(0)
        da1 = (da2 @ p["w2"].T) * (a1 > 0)
        g["w1"], g["b1"] = z.T @ da1, da1.sum(0)
        return g

    def predict(self, x, t):
        return self.forward(np.concatenate([x, t], axis=1).astype(np.float64))[0]


def train(model, z, y, weight, rng):
    """Adam on the weighted absolute error of the scaled forecasts."""
    m = {k: np.zeros_like(v) for k, v in model.params.items()}
    v = {k: np.zeros_like(val) for k, val in model.params.items()}
    step = 0
    for epoch in range(EPOCHS):
        order = rng.permutation(len(z))
        lr = LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * epoch / EPOCHS))
        total = 0.0
        for start in range(0, len(z), BATCH):
            idx = order[start : start + BATCH]
            pred, cache = model.forward(z[idx])
            err = pred - y[idx]
            w = weight[idx][:, None]
            total += float((w * np.abs(err)).sum())
            dy = w * np.sign(err) / (len(idx) * H)
            grads = model.gradients(cache, dy)
            step += 1
            for k, g in grads.items():
                if k.startswith("w"):
                    g = g + WEIGHT_DECAY * model.params[k]
                m[k] = 0.9 * m[k] + 0.1 * g
                v[k] = 0.999 * v[k] + 0.001 * g * g
                mh, vh = m[k] / (1 - 0.9**step), v[k] / (1 - 0.999**step)
                model.params[k] -= lr * mh / (np.sqrt(vh) + 1e-8)
        if epoch % 10 == 0 or epoch == EPOCHS - 1:
            print(f"  epoch {epoch:3d}  loss {total / (len(z) * H):.4f}", flush=True)


def export(model, path: Path):
    p = {k: v.astype(np.float32) for k, v in model.params.items()}
    inits = [numpy_helper.from_array(v, name=k) for k, v in p.items()]
    nodes = [
        helper.make_node("Concat", ["counts", "time"], ["z"], axis=1),
        helper.make_node("MatMul", ["z", "w1"], ["a1m"]),
        helper.make_node("Add", ["a1m", "b1"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["h1"]),
        helper.make_node("MatMul", ["h1", "w2"], ["a2m"]),
        helper.make_node("Add", ["a2m", "b2"], ["a2"]),
        helper.make_node("Relu", ["a2"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w3"], ["a3m"]),
        helper.make_node("Add", ["a3m", "b3"], ["a3"]),
        helper.make_node("MatMul", ["z", "wl"], ["lin"]),
        helper.make_node("Add", ["a3", "lin"], ["forecast"]),
    ]
    graph = helper.make_graph(
        nodes,
        "shardcast_load_forecaster",
        [
            helper.make_tensor_value_info("counts", TensorProto.FLOAT, ["N", K]),
            helper.make_tensor_value_info("time", TensorProto.FLOAT, ["N", 2]),
        ],
        [helper.make_tensor_value_info("forecast", TensorProto.FLOAT, ["N", H])],
        inits,
    )
    m = helper.make_model(
        graph,
        producer_name="shardcast models/train_forecaster.py",
        opset_imports=[helper.make_opsetid("", 17)],
    )
    m.ir_version = 9
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return p


# ------------------------------------------------------------------------------------------ scoring


def score(first, counts, tick_ms, warmup, forecasters):
    """MASE (one-step and over all H horizons) against the naive forecast, and WAPE, per forecaster."""
    errs = {name: [0.0, 0.0] for name in forecasters}
    ref = [0.0, 0.0]
    actual = [0.0, 0.0]
    for t in range(warmup, counts.shape[1] - H + 1):
        hist = counts[:, max(0, t - K) : t]
        target = counts[:, t : t + H]
        naive = last_value(hist)
        ref[0] += np.abs(naive[:, 0] - target[:, 0]).sum()
        ref[1] += np.abs(naive - target).sum()
        actual[0] += target[:, 0].sum()
        actual[1] += target.sum()
        for name, f in forecasters.items():
            pred = f(hist, first + t, tick_ms)
            errs[name][0] += np.abs(pred[:, 0] - target[:, 0]).sum()
            errs[name][1] += np.abs(pred - target).sum()
    return {
        name: dict(
            mase_one=e[0] / ref[0], mase_all=e[1] / ref[1], wape_one=e[0] / actual[0], wape_all=e[1] / actual[1]
        )
        for name, e in errs.items()
    }


def model_forecaster(predict):
    def forecast(hist, next_epoch, tick_ms):
        w = windows(hist, hist.shape[1])
        scale = 1.0 + w.mean(axis=1)
        x = (w / scale[:, None]).astype(np.float32)
        t = np.repeat(time_of_day(next_epoch, tick_ms)[None, :], hist.shape[0], axis=0)
        return np.maximum(predict(x, t) * scale[:, None], 0.0)

    return forecast


# --------------------------------------------------------------------------------------------- main


def main():
    here = Path(__file__).resolve().parent
    traces = here.parent.parent / "shared" / "traces"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator-train", type=Path, required=True, help="JSON lines, generator seed 42")
    ap.add_argument("--generator-test", type=Path, required=True, help="JSON lines, generator seed 7")
    ap.add_argument(
        "--nasa", type=Path, default=traces / "nasa_http_19950801" / "nasa_19950801.normalized.csv.gz"
    )
    ap.add_argument(
        "--cloudphysics",
        type=Path,
        default=traces / "cloudphysics_libcachesim" / "cloudPhysicsIO.normalized.csv.gz",
    )
    ap.add_argument("--out", type=Path, default=here / "forecaster.onnx")
    args = ap.parse_args()
    for path in [args.generator_train, args.generator_test, args.nasa, args.cloudphysics]:
        if not path.exists():
            sys.exit(f"missing input {path} (see models/README.md for how to make it)")

    rng = np.random.default_rng(SEED)
    print("reading events", flush=True)
    data = {
        "generator": Events(*read_events(args.generator_train)),
        "nasa": Events(*read_trace(args.nasa)),
        "cloudphysics": Events(*read_trace(args.cloudphysics)),
    }
    generator_test = Events(*read_events(args.generator_test))

    # Training examples; real traces stop before their test part begins (same instant for every view).
    zs, ys, ws = [], [], []
    tests = {}
    for name, events in data.items():
        tick, shards = MAIN[name]
        first, counts = events.series(tick, shards)
        if name == "generator":
            end_ms = None
            tests[name] = (*generator_test.series(tick, shards), tick, K)
        else:
            split = int(counts.shape[1] * (1 - TEST_FRACTION))
            end_ms = (first + split) * tick
            tests[name] = (first, counts, tick, split)
        for tick, shards in [MAIN[name]] + AUGMENT[name]:
            first, counts = events.series(tick, shards)
            last = counts.shape[1] - H
            if end_ms is not None:
                last = min(last, end_ms // tick - first - H)
            x, t, scale, y = examples(first, counts, tick, range(4, last + 1))
            naive_mae = np.abs(x[:, -1:] * scale[:, None] - y).mean()
            if not USE_TIME_OF_DAY:
                t = np.zeros_like(t)
            zs.append(np.concatenate([x, t], axis=1).astype(np.float64))
            ys.append(y / scale[:, None])
            # Absolute error in counts divided by the naive error: every view counts like its MASE.
            ws.append(scale / max(naive_mae, 1e-9) / len(x))
            print(f"  {name:12s} tick {tick // 1000:4d}s {shards:3d} shards: {len(x):6d} examples", flush=True)
    z, y, weight = np.concatenate(zs), np.concatenate(ys), np.concatenate(ws)
    weight *= len(weight) / weight.sum()

    print(f"training on {len(z)} examples (K={K}, H={H})", flush=True)
    model = Mlp(rng)
    train(model, z, y, weight, rng)
    if not USE_TIME_OF_DAY:
        # Trained on zeros, these weights are only their random start: the exported model ignores time.
        model.params["w1"][K:, :] = 0
        model.params["wl"][K:, :] = 0
    params = export(model, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")

    def predict32(x, t):
        # The exported float32 weights, as ONNX Runtime computes them.
        zz = np.concatenate([x, t], axis=1).astype(np.float32)
        h1 = np.maximum(zz @ params["w1"] + params["b1"], 0)
        h2 = np.maximum(h1 @ params["w2"] + params["b2"], 0)
        return (h2 @ params["w3"] + params["b3"] + zz @ params["wl"]).astype(np.float64)

    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
        x = rng.random((5, K), dtype=np.float32)
        t = rng.random((5, 2), dtype=np.float32)
        got = session.run(["forecast"], {"counts": x, "time": t})[0]
        gap = float(np.abs(got - predict32(x, t)).max())
        print(f"onnxruntime {onnxruntime.__version__} agrees with the weights (max difference {gap:.2e})")
        assert gap < 1e-4, gap
    except ImportError:
        print("onnxruntime is not installed: the export was not run, only checked")

    forecasters = {name: (lambda f: lambda h, e, tick: f(h))(f) for name, f in BASELINES.items()}
    forecasters["onnx"] = model_forecaster(predict32)
    print("\nheld-out scores (MASE against the naive forecast; WAPE), K=%d H=%d" % (K, H))
    print(f"{'dataset':28s} {'forecaster':10s} {'MASE 1':>7s} {'MASE 1..H':>9s} {'WAPE 1':>7s} {'WAPE 1..H':>9s}")
    for name, (first, counts, tick, warmup) in tests.items():
        label = f"{name} ({tick // 1000}s, {counts.shape[0]} shards)"
        for fname, s in score(first, counts, tick, warmup, forecasters).items():
            print(
                f"{label:28s} {fname:10s} {s['mase_one']:7.3f} {s['mase_all']:9.3f} "
                f"{s['wape_one']:7.3f} {s['wape_all']:9.3f}"
            )


if __name__ == "__main__":
    main()
