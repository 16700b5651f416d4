"""The shift campaign: labels on a shifted survey B to recover from a model trained on A.

    .venv/bin/python bench/bench_shift_campaign.py [--scenarios correlated_noise psf_seeing]
        [--seeds 1] [--n-a 30000] [--n-ref 30000] [--n-test 16000] [--loop-pool 15000]
        [--schedule 250 500 1000 1500 2000] [--ref-epochs 12] [--loop-epochs 4]
        [--lr 3e-3] [--low-lr 1e-3] [--votes 10] [--threads 1] [--out bench/shift_campaign.json]
    .venv/bin/python bench/bench_shift_campaign.py --report   # tables, .md and PNG only

Field A: the unshifted COSMOS simulation; B: the same field under a shift scenario
(``mlcore.simulator.scenarios``). Per scenario:

(a) the reference: a LineCNN (1D branch on) trained from scratch on ``--n-ref`` B candidates
    with truth labels, judged on a fixed held-out B test set (``--n-test``, other seeds);
(b) the loop on B: it starts from the A-model (trained the same way on ``--n-a`` COSMOS
    candidates). Each round adds labels up to the next ``--schedule`` total, from a pool of
    ``--loop-pool`` B candidates, then retrains (``--loop-epochs``, the platform's schedule
    otherwise) and is judged on the same test set. Arms:
      al_ft        acquisition (the platform's: BALD from T=5 MC passes, ``select_batch``
                   defaults) by the arm's current model; fine-tuned from the current model
      al_ft_lowlr  the same with the lower learning rate ``--low-lr``
      al_scratch   acquisition by the arm's current model; retrained from scratch
      rand_ft      uniformly random picks (the control); fine-tuned from the current model
      rand_scratch the same picks; retrained from scratch
      al_ft_lowlr_truth  al_ft_lowlr with truth labels instead of the volunteers' (not in
                   the default arms: it separates label noise from the number of labels)
    The first batch of every acquisition arm is chosen by the A-model itself. Labels come
    from simulated volunteers (``mlcore.volunteers``): every pool candidate has ``--votes``
    votes drawn once (20,000 volunteers, by activity, at a random session position), an
    arm sees the votes of the candidates it picked, and Dawid-Skene (per S/N regime) over
    them gives the soft training targets.
Reported: per arm the labels at which the held-out balanced accuracy first comes within
1 point of the reference (both S/N regimes, and each), and the arm's figures at 1,000
labels against the issue's target (>= 0.94 / 0.80). Simulated data and every trained model
are cached in ``var/bench_shift_campaign/``: a stopped run resumes where it was. Figures
only: nothing passes or fails.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _util import ROOT
from bench_al_oracle import simulate_arrays
from bench_uncertainty import mc_scores

from mlcore.acquisition import AcquisitionConfig, select_batch
from mlcore.aggregation.dawid_skene import dawid_skene
from mlcore.aggregation.votes import VoteTable
from mlcore.cnn.data import regime_index
from mlcore.cnn.evaluation import balanced_accuracy
from mlcore.cnn.model import CNNConfig, LineCNN
from mlcore.cnn.training import TrainConfig, normalise_rows, predict_logits, train
from mlcore.volunteers import VolunteerPopulation

CACHE = ROOT / "var" / "bench_shift_campaign"
ARMS = ("al_ft", "al_ft_lowlr", "al_scratch", "rand_ft", "rand_scratch", "al_ft_lowlr_truth")
# Simulation seeds (chunks of 20k add k): A training, A test, and per scenario B pool, B test.
SEED_A, SEED_A_TEST, SEED_B, SEED_B_TEST = 251_000, 252_000, 253_000, 254_000


def load(tag: str, n: int, seed: int, scenario: str | None) -> dict[str, np.ndarray]:
    """n simulated COSMOS candidates (20k chunks) under ``scenario``, cached."""
    path = CACHE / f"data_{tag}_n{n}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    data = simulate_arrays(n, lambda k: seed + k, scenario)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data


def save_model(path: Path, model: LineCNN, extra: dict) -> None:
    torch.save({"config": model.config.to_dict(), "state": model.state_dict(), **extra}, path)


def load_model(path: Path) -> tuple[LineCNN, dict]:
    blob = torch.load(path, weights_only=False)
    model = LineCNN(CNNConfig(**blob.pop("config")))
    model.load_state_dict(blob.pop("state"))
    model.eval()
    return model, blob


def fit(d: dict, targets: np.ndarray, *, epochs: int, seed: int, lr: float, init=None):
    """Train on the rows where ``targets`` is finite (85/15 split inside them)."""
    t0 = time.perf_counter()
    res = train(
        d["cut"], targets, d["sn"], spec=d["spec"],
        model_config=CNNConfig(spec_len=d["spec"].shape[-1]),
        config=TrainConfig(epochs=epochs, seed=seed, lr=lr), init=init,
    )  # fmt: skip
    res.model.eval()
    return res.model, round(time.perf_counter() - t0, 1)


class Judge:
    """Balanced accuracy per S/N regime on one fixed test set (inputs normalised once)."""

    def __init__(self, d: dict):
        idx = np.arange(len(d["y"]))
        self.x, self.s = normalise_rows(d["cut"], idx), torch.as_tensor(d["spec"])
        self.y, self.reg = d["y"] >= 0.5, regime_index(d["sn"])

    def __call__(self, model) -> dict[str, float]:
        pred = predict_logits(model, self.x, self.s) >= 0
        return {
            name: round(float(balanced_accuracy(self.y[self.reg == r], pred[self.reg == r])), 4)
            for name, r in (("high", 1), ("low", 0))
        }


def cached_model(path: Path, d: dict, targets: np.ndarray, a, seed: int, judge: Judge, what: str):
    if path.exists():
        model, info = load_model(path)
        print(f"{what}: cached {info}", flush=True)
        return model, info
    model, secs = fit(d, targets, epochs=a.ref_epochs, seed=seed, lr=a.lr)
    info = {"labels": int(np.isfinite(targets).sum()), "epochs": a.ref_epochs, "train_s": secs,
            "bacc": judge(model)}  # fmt: skip
    save_model(path, model, info)
    print(f"{what}: {info}", flush=True)
    return model, info


def pool_votes(y: np.ndarray, sn: np.ndarray, n_votes: int, seed: int) -> VoteTable:
    """``n_votes`` simulated volunteer votes on every pool candidate, drawn once."""
    pop = VolunteerPopulation.sample(20_000, seed=seed)
    rng = np.random.default_rng(seed + 1)
    cand = np.repeat(np.arange(len(y)), n_votes)
    vol = pop.draw_volunteers(cand.size, rng)
    pos = rng.integers(0, pop.session_length[vol])  # somewhere in that volunteer's session
    label = pop.respond(vol, y[cand] >= 0.5, sn[cand], rng, pos)
    return VoteTable.from_arrays(cand, vol, label, n_candidates=len(y), n_volunteers=len(pop))


def aggregate(votes: VoteTable, labelled: np.ndarray, sn: np.ndarray) -> np.ndarray:
    """Dawid-Skene posterior P(real) of the labelled rows from their votes only."""
    keep = np.isin(votes.candidate, labelled)
    local = np.searchsorted(labelled, votes.candidate[keep])  # labelled is sorted
    vt = VoteTable.from_arrays(
        local, votes.volunteer[keep], votes.label[keep],
        n_candidates=len(labelled), n_volunteers=votes.n_volunteers,
    )  # fmt: skip
    return dawid_skene(vt, regime=regime_index(sn[labelled])).posterior


def run_arm(arm: str, scen: str, seed: int, d: dict, votes: VoteTable, a_model, judge, a):
    """One arm of the loop on B; every round cached. -> rows."""
    ft, acq = arm.endswith("_ft") or "_ft_" in arm, arm.startswith("al_")
    lr = a.low_lr if "lowlr" in arm else a.lr
    n = len(d["y"])
    labelled = np.empty(0, np.intp)
    model = a_model
    rows = []
    rng = np.random.default_rng(seed)  # random arms: one order, shared by both
    order = rng.permutation(n)
    for r, total in enumerate(a.schedule, start=1):
        path = CACHE / f"loop_{scen}_s{seed}_{arm}_r{r}.pt"
        if path.exists():
            model, info = load_model(path)
            labelled, row = info["labelled"], info["row"]
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        k = total - len(labelled)
        t0 = time.perf_counter()
        if acq:
            rest = np.setdiff1d(np.arange(n), labelled)
            sc = mc_scores(model, (d["cut"], d["sn"], d["y"], d["spec"]), rest, 5,
                           seed * 100 + r)  # fmt: skip
            cfg = AcquisitionConfig(strategy="bald", batch_size=k, seed=seed * 100 + r)
            pick = select_batch(prob=sc["prob"], bald=sc["bald"], sn=d["sn"][rest],
                                wave=d["wave"][rest], config=cfg).index  # fmt: skip
            labelled = np.sort(np.concatenate([labelled, rest[pick]]))
        else:
            labelled = np.sort(order[:total])
        select_s = time.perf_counter() - t0
        post = aggregate(votes, labelled, d["sn"])
        if arm.endswith("_truth"):  # the control for label noise: same loop, truth labels
            post = d["y"][labelled]
        targets = np.full(n, np.nan, np.float32)
        targets[labelled] = post
        model, secs = fit(d, targets, epochs=a.loop_epochs, seed=seed * 100 + r, lr=lr,
                          init=model if ft else None)  # fmt: skip
        truth = d["y"][labelled] >= 0.5
        low = regime_index(d["sn"][labelled]) == 0
        row = {
            "scenario": scen, "seed": seed, "arm": arm, "round": r, "labels": int(len(labelled)),
            "labels_low": int(low.sum()), "real_share": round(float(truth.mean()), 3),
            "label_acc": round(float(((post >= 0.5) == truth).mean()), 4),
            "label_acc_low": round(float(((post >= 0.5) == truth)[low].mean()), 4),
            **{f"bacc_{k}": v for k, v in judge(model).items()},
            "lr": lr, "select_s": round(select_s, 1), "train_s": secs,
        }  # fmt: skip
        save_model(path, model, {"labelled": labelled, "row": row})
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def labels_within(rows: list[dict], ref: dict, keys=("high", "low"), tol=0.01) -> int | None:
    """Labels of the first round within ``tol`` of the reference in every regime of keys."""
    for r in sorted(rows, key=lambda r: r["labels"]):
        if all(r[f"bacc_{k}"] >= ref[k] - tol for k in keys):
            return r["labels"]
    return None


def summarise(out: dict) -> str:
    """Markdown tables from the JSON (also printed)."""
    lines = []
    for scen, sd in out["scenarios"].items():
        for seed, res in sd["seeds"].items():
            ref, a0 = res["reference"]["bacc"], res["a_model_on_b"]
            cols = sorted({r["labels"] for rows in res["arms"].values() for r in rows})
            lines += [
                f"\n### {scen}, seed {seed}\n",
                f"Reference ({res['reference']['labels']:,} truth labels of B, "
                f"{res['reference']['epochs']} epochs, {res['reference']['train_s']} s): "
                f"**{ref['high']:.3f} / {ref['low']:.3f}** (high / low S/N). "
                f"The A-model on B (0 labels): {a0['high']:.3f} / {a0['low']:.3f}.\n",
                "| arm | "
                + " | ".join(f"{n:,}" for n in cols)
                + " | within 1 pt (both) | high | low | at 1,000: >= 0.94 / 0.80? |",
                "|---|" + "---|" * (len(cols) + 4),
            ]
            for arm, rows in res["arms"].items():
                by_n = {r["labels"]: r for r in rows}
                cells = " | ".join(
                    f"{by_n[n]['bacc_high']:.3f} / {by_n[n]['bacc_low']:.3f}" if n in by_n else "-"
                    for n in cols
                )
                regimes = (("both", ("high", "low")), ("high", ("high",)), ("low", ("low",)))
                w = {k: labels_within(rows, ref, keys) for k, keys in regimes}
                at1k = next((r for r in rows if r["labels"] == 1000), None)
                hit = at1k and at1k["bacc_high"] >= 0.94 and at1k["bacc_low"] >= 0.80
                met = "-" if at1k is None else ("yes" if hit else "no")
                fmt = {k: (f"{v:,}" if v else f"not by {rows[-1]['labels']:,}")
                       for k, v in w.items()}  # fmt: skip
                lines.append(f"| {arm} | {cells} | {fmt['both']} | {fmt['high']} | "
                             f"{fmt['low']} | {met} |")  # fmt: skip
            la = {arm: rows[-1] for arm, rows in res["arms"].items()}
            n_last = max(r["labels"] for r in la.values())
            agree = ", ".join(
                f"{arm} {r['label_acc']:.3f} (low S/N {r['label_acc_low']:.3f})"
                for arm, r in la.items()
            )
            lines.append(
                f"\nVolunteer labels (Dawid-Skene over {out['config']['votes']} votes each) "
                f"agreed with the truth on {agree} of the labelled candidates at {n_last:,} labels."
            )
    text = "\n".join(lines)
    print(text)
    return text


COLOURS = {"al_ft": (200, 30, 30), "al_ft_lowlr": (240, 140, 20), "al_scratch": (30, 90, 200),
           "rand_ft": (120, 120, 120), "rand_scratch": (20, 160, 90),
           "al_ft_lowlr_truth": (150, 60, 200)}  # fmt: skip


def plot(out: dict, path: Path) -> None:
    """One panel per scenario (seed: the first) and regime: balanced accuracy vs labels
    (square-root axis),
    the reference as a solid line and 1 point below it dashed (PIL: no matplotlib here)."""
    from PIL import Image, ImageDraw

    panels = [(s, reg) for s in out["scenarios"] for reg in ("high", "low")]
    W, H, L, B, T = 460, 340, 60, 40, 30
    img = Image.new("RGB", (W * 2, H * ((len(panels) + 1) // 2) + 40), "white")
    dr = ImageDraw.Draw(img)
    xs = {r["labels"] for sd in out["scenarios"].values() for res in sd["seeds"].values()
          for rows in res["arms"].values() for r in rows}  # fmt: skip
    xmax = max(xs)
    for i, (scen, reg) in enumerate(panels):
        res = next(iter(out["scenarios"][scen]["seeds"].values()))
        ox, oy = (i % 2) * W, (i // 2) * H
        ref = res["reference"]["bacc"][reg]
        vals = [r[f"bacc_{reg}"] for rows in res["arms"].values() for r in rows]
        vals += [res["a_model_on_b"][reg], ref]
        lo, hi = np.floor(min(vals) * 50) / 50, np.ceil(max(vals) * 50) / 50 + 0.005

        def xy(x, y, ox=ox, oy=oy, lo=lo, hi=hi):
            px = ox + L + (W - L - 20) * np.sqrt(x / xmax)
            return (px, oy + T + (H - T - B) * (hi - y) / (hi - lo))

        dr.rectangle([xy(0, hi), xy(xmax, lo)], outline="black")
        step = 0.02 if hi - lo <= 0.2 else 0.05
        for yv in np.arange(np.ceil(lo / step - 1e-9) * step, hi + 1e-9, step):
            p = xy(0, yv)
            dr.text((p[0] - 40, p[1] - 6), f"{yv:.2f}", fill="black")
            dr.line([p, xy(xmax, yv)], fill=(230, 230, 230))
        for xv in [0, *sorted(xs)]:
            p = xy(xv, lo)
            dr.text((p[0] - 12, p[1] + 4), f"{xv}", fill="black")
        dr.line([xy(0, ref), xy(xmax, ref)], fill="black", width=2)
        for f in np.arange(0.0, 1.0, 0.04):  # dashes even on the square-root axis
            dr.line([xy(xmax * f**2, ref - 0.01), xy(xmax * (f + 0.02) ** 2, ref - 0.01)],
                    fill="black")  # fmt: skip
        dr.text((ox + L + 5, oy + 8), f"{scen}: {reg} S/N balanced accuracy vs labels on B",
                fill="black")  # fmt: skip
        for arm, rows in res["arms"].items():
            start = [(0, res["a_model_on_b"][reg])] if "ft" in arm else []
            pts = [xy(x, y) for x, y in start + [(r["labels"], r[f"bacc_{reg}"]) for r in rows]]
            if len(pts) > 1:
                dr.line(pts, fill=COLOURS[arm], width=2)
            for p in pts:
                dr.ellipse([p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3], fill=COLOURS[arm])
    y0 = img.height - 30
    shown = {arm for sd in out["scenarios"].values() for res in sd["seeds"].values()
             for arm in res["arms"]}  # fmt: skip
    for j, (arm, c) in enumerate((k, v) for k, v in COLOURS.items() if k in shown):
        dr.line([(20 + 150 * j, y0 + 6), (50 + 150 * j, y0 + 6)], fill=c, width=3)
        dr.text((55 + 150 * j, y0), arm, fill="black")
    n_ref = out["config"]["n_ref"]
    note = (
        f"labels on a square-root axis; black: reference ({n_ref:,} truth labels of B), "
        "dashed 1 point below; the fine-tune arms start at the A-model (0 labels)"
    )
    dr.text((20, y0 + 14), note, fill="black")
    img.save(path)


def main() -> None:
    global CACHE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=["correlated_noise", "psf_seeing"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--arms", nargs="+", default=list(ARMS[:5]), choices=ARMS)
    ap.add_argument("--n-a", type=int, default=30_000)
    ap.add_argument("--n-ref", type=int, default=30_000)
    ap.add_argument("--n-test", type=int, default=16_000)
    ap.add_argument("--loop-pool", type=int, default=15_000)
    ap.add_argument("--schedule", type=int, nargs="+", default=[250, 500, 1000, 1500, 2000])
    ap.add_argument("--ref-epochs", type=int, default=12)
    ap.add_argument("--loop-epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--low-lr", type=float, default=1e-3)
    ap.add_argument("--votes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "bench" / "shift_campaign.json"))
    ap.add_argument("--report", action="store_true", help="only rewrite the .md and PNG")
    ap.add_argument("--cache", default=str(CACHE), help="data and models (resumable)")
    a = ap.parse_args()
    CACHE = Path(a.cache)
    out_path = Path(a.out)
    if a.report:
        out = json.loads(out_path.read_text())
        write_report(out, out_path)
        return
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    out = json.loads(out_path.read_text()) if out_path.exists() else {"scenarios": {}}
    out["config"] = {k: v for k, v in vars(a).items() if k not in ("out", "report", "cache")}

    da = load("A", a.n_a, SEED_A, None)
    judge_a = Judge(load("A_test", a.n_test, SEED_A_TEST, None))
    a_model, a_info = cached_model(CACHE / f"model_A_n{a.n_a}_e{a.ref_epochs}.pt", da, da["y"],
                                   a, 0, judge_a, "A-model on A")  # fmt: skip
    out["a_model"] = a_info
    del da
    for si, scen in enumerate(a.scenarios):
        sd = out["scenarios"].setdefault(scen, {"seeds": {}})
        db = load(f"B_{scen}", a.n_ref, SEED_B + 100 * si, scen)
        judge = Judge(load(f"B_{scen}_test", a.n_test, SEED_B_TEST + 100 * si, scen))
        a_on_b = judge(a_model)
        print(f"{scen}: A-model on B {a_on_b} ({time.perf_counter() - t0:.0f} s)", flush=True)
        for seed in a.seeds:
            _, ref = cached_model(CACHE / f"model_ref_{scen}_n{a.n_ref}_e{a.ref_epochs}_s{seed}.pt",
                                  db, db["y"], a, seed, judge, f"{scen} reference")  # fmt: skip
            pool = np.sort(np.random.default_rng(seed).permutation(len(db["y"]))[: a.loop_pool])
            dp = {k: v[pool] for k, v in db.items()}
            votes = pool_votes(dp["y"], dp["sn"], a.votes, seed=1000 + seed)
            res = sd["seeds"].setdefault(str(seed), {"arms": {}})
            res.update(reference=ref, a_model_on_b=a_on_b)
            for arm in a.arms:
                res["arms"][arm] = run_arm(arm, scen, seed, dp, votes, a_model, judge, a)
                out["wall_s"] = round(time.perf_counter() - t0, 1)
                out_path.write_text(json.dumps(out, indent=1) + "\n")
    write_report(out, out_path)


def write_report(out: dict, out_path: Path) -> None:
    text = summarise(out)
    png = out_path.with_suffix(".png")
    plot(out, png)
    md = out_path.with_suffix(".md")
    head = md.read_text().split("<!-- tables -->")[0] if md.exists() else "# Shift campaign\n\n"
    md.write_text(head + "<!-- tables -->\n" + text + f"\n\nFigure: `{png.name}`\n")
    print(f"wrote {out_path}, {md}, {png}")


if __name__ == "__main__":
    main()
