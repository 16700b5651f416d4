"""Scoring throughput, end to end: memmap float16 cutouts -> prob, entropy, BALD, std.

    python bench/bench_scoring.py [--model DIR | --members K] [--spec-len 100] [--n 20000]
        [--T 1 10] [--batch 4096] [--threads 1] [--device cpu|cuda]

Writes N simulated candidates to ``.npy`` memmaps laid out like the cutout store's (float16
cutouts, float32 spectrum + error), then times :func:`mlcore.cnn.scoring.score` over them,
including the reads, the float32 cast, the normalisation, the 1D windows (models with the
1D branch) and T MC-dropout samples (per member, for an ensemble: ``--members K`` builds an
untrained EnsembleCNN of K default nets).
Each T is timed twice in the same run: the baseline (``score_batch_reference``: torch
normalisation with a per-candidate ``nanmedian``, ``model.forward_mc`` on the whole batch,
i.e. the code before issue #27) and the current path (numpy selection normalisation,
BatchNorm-folded channels_last trunk in chunks), with the ratio. Also times normalisation
and the network alone, both ways. Rates are given per wall second and per CPU-second of the
process (with one thread, the per-core figure that holds on a machine shared with other
work). Prints figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import mlcore.cnn.scoring as scoring
from mlcore.cnn.card import load_checkpoint
from mlcore.cnn.data import normalise_numpy, normalise_torch, spec_windows
from mlcore.cnn.model import CNNConfig, EnsembleCNN, LineCNN, count_parameters
from mlcore.cnn.scoring import score


@contextlib.contextmanager
def baseline_path():
    """``score`` with every batch through ``score_batch_reference`` (today's code before
    issue #27), however ``iter_scores`` reaches it."""
    fast = scoring.score_batch
    scoring.score_batch = scoring.score_batch_reference
    try:
        yield
    finally:
        scoring.score_batch = fast


def make_store(tmp: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cutout-store-like memmaps: cutouts (N,5,9,100) float16, spec (N,2,1036), wave (N,)."""
    cut = np.lib.format.open_memmap(tmp / "cutouts.npy", "w+", np.float16, (n, 5, 9, 100))
    spec = np.lib.format.open_memmap(tmp / "spec.npy", "w+", np.float32, (n, 2, 1036))
    wave = np.empty(n, np.float64)
    from mlcore.simulator import simulate_survey
    from mlcore.survey import stack_cutouts

    for a in range(0, n, 10_000):
        s = simulate_survey(min(10_000, n - a), seed=seed + a)
        b = a + len(s)
        cut[a:b] = stack_cutouts(s.im_sum, s.im_array)
        spec[a:b, 0], spec[a:b, 1] = s.spec1d, s.spec1d_err
        wave[a:b] = s.catalog["wave"]
    cut.flush()
    spec.flush()
    return np.load(tmp / "cutouts.npy", mmap_mode="r"), np.load(tmp / "spec.npy", "r"), wave


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model dir (default: untrained default net)")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--T", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default=None)
    ap.add_argument("--members", type=int, default=1, help="without --model: an ensemble of K")
    ap.add_argument(
        "--spec-len", type=int, default=0, help="without --model: a 1D branch (trained: 100)"
    )
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if a.model:
        model = load_checkpoint(a.model, device)
    elif a.members > 1:
        cfg = CNNConfig(spec_len=a.spec_len)
        model = EnsembleCNN([LineCNN(cfg) for _ in range(a.members)]).to(device).eval()
    else:
        model = LineCNN(CNNConfig(spec_len=a.spec_len)).to(device).eval()
    print(
        f"device {device}, threads {a.threads}, {count_parameters(model)} params, batch {a.batch}"
        f", {type(model).__name__}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        mm, spec, wave = make_store(Path(tmp), a.n, seed=100)
        kw = {"spec": spec, "wave": wave} if model.config.spec_len else {}
        score(
            model,
            mm[: a.batch],
            n_samples=2,
            batch_size=a.batch,
            **({"spec": spec[: a.batch], "wave": wave[: a.batch]} if kw else {}),
        )  # warm-up
        bf16 = device == "cpu" and scoring.cpu_bfloat16_native()
        runs = [
            ("baseline", baseline_path, "float32"),
            ("current", contextlib.nullcontext, "float32"),
        ]
        if bf16:  # the opt-in bfloat16 trunks (AMX / AVX512-BF16 CPUs)
            runs.append(("bfloat16", contextlib.nullcontext, "bfloat16"))
        for T in a.T:
            rate, cpu_rate, probs = {}, {}, {}
            for name, ctx, precision in runs:
                with ctx():
                    t0, c0 = time.perf_counter(), time.process_time()
                    res = score(
                        model, mm, n_samples=T, batch_size=a.batch, precision=precision, **kw
                    )
                    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
                rate[name], cpu_rate[name], probs[name] = a.n / dt, a.n / cpu, res["prob"]
                print(
                    f"end to end  T={T:3d} {name:8s}: {rate[name]:9.0f} candidates/s wall"
                    f" ({dt:.2f} s for {a.n}), {cpu_rate[name]:9.0f} per CPU-second"
                )
            for name in [r[0] for r in runs[1:]]:
                print(
                    f"end to end  T={T:3d} {name} / baseline: "
                    f"{rate[name] / rate['baseline']:.2f}x wall, "
                    f"{cpu_rate[name] / cpu_rate['baseline']:.2f}x per CPU-second"
                )
            if bf16:
                d = np.abs(probs["bfloat16"] - probs["current"])
                print(
                    f"end to end  T={T:3d} bfloat16 vs float32 prob: max |diff| {d.max():.2e},"
                    f" 99th percentile {np.percentile(d, 99):.2e}"
                )
        raw = np.asarray(mm[: a.batch])
        x = torch.from_numpy(raw.astype(np.float32)).to(device)
        norms = [("torch nanmedian", lambda: normalise_torch(x))]
        if device == "cpu":
            norms.append(("numpy, whole batch", lambda: normalise_numpy(raw)))
            chunk = scoring._CPU_CHUNK
            norms.append(
                (
                    f"numpy, {chunk}-row chunks",
                    lambda: [
                        normalise_numpy(raw[i : i + chunk]) for i in range(0, len(raw), chunk)
                    ],
                )
            )
        for name, fn in norms:
            t0 = time.perf_counter()
            for _ in range(3):
                fn()
            print(f"normalise alone, {name}: {3 * a.batch / (time.perf_counter() - t0):9.0f}/s")
        z, _ = normalise_torch(x)
        sw = None
        if model.config.spec_len:
            t0 = time.perf_counter()
            sp = np.asarray(spec[: a.batch])
            sw = spec_windows(sp[:, 0], sp[:, 1], wave[: a.batch], model.config.spec_len // 2)
            print(f"1D windows alone: {a.batch / (time.perf_counter() - t0):9.0f}/s")
            sw = torch.from_numpy(sw).to(device)
        nets = [("network alone (baseline forward_mc)", lambda: model.forward_mc(z, sw, 10))]
        if device == "cpu":
            nets.append(
                (
                    "normalise + network (current, chunked)",
                    lambda: scoring._logits_cpu(model, raw, sw, 10, None),
                )
            )
        with torch.inference_mode():
            for name, fn in nets:
                fn()
                t0 = time.perf_counter()
                for _ in range(3):
                    fn()
                if device == "cuda":
                    torch.cuda.synchronize()
                t_net = (time.perf_counter() - t0) / 3
                print(f"{name} T=10: {a.batch / t_net:9.0f}/s")


if __name__ == "__main__":
    main()
