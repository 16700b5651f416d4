"""Acquisition: which candidates volunteers should label next.

From the catalogue-wide scores of :mod:`mlcore.cnn.scoring` (``prob``, ``bald``, in nats)
plus each candidate's S/N and line wavelength, :func:`select_batch` picks the next labelling
batch and :func:`priorities` turns that choice into a priority for every candidate, which
the platform writes into the volunteer queue (the atomic rebuild of the queue is the
Django side's job; nothing here touches a database).

A batch of ``batch_size`` is made of two shares:

    exploit  ``(1 - random_fraction)`` of the batch: the highest acquisition scores
             (BALD, entropy or margin), with low-S/N candidates (4.8 <= sn <= 5.5, where
             lowering the catalogue threshold gains most) multiplied by ``low_sn_weight``,
             then made diverse (below).
    random   ``random_fraction`` of the batch (at least one pick unless it is 0): uniform
             over the eligible candidates not already picked, unweighted by score, S/N or
             wavelength, so the model keeps seeing the catalogue as it is (never pure
             exploitation) and each round holds an unbiased sample for evaluation.

Random picks are spread evenly through the priority order, so a round cut short still
labels its random share.

Before both shares, up to ``carry_fraction`` of the batch (0 by default) can go to
``carry``: candidates the previous round started but did not settle (the platform passes
them, most votes first), so a round does not drop its half-voted candidates for new picks.
Off by default because it did not pay in the campaigns: what a round leaves unsettled is
mostly hard, or single votes from one very active volunteer, and took as many votes to
settle as a new pick (bench/RESULTS.md). The two shares split what is left of the batch.

The exploit share is drawn, not cut: with ``power`` (1 by default) it is a sample without
replacement with P proportional to ``score ** power`` (power acquisition, Kirsch et al. 2023,
"Stochastic Batch Acquisition"; a Gumbel-perturbed log score, so it costs one top-k), before
the diversity step. The strict top-k of a noisy BALD (5-10 MC passes) piles a batch onto
the few most ambiguous candidates, which volunteers cannot settle either; in the in-silico
campaigns the drawn batches reached random's final accuracy with 0.6-0.75x its labels where
top-k never did (bench/RESULTS.md). ``power=None`` restores the strict top-k.

Diversity, so a batch is not 500 copies of one sky residual:

    'wavelength'  greedy by score with a cap per wavelength stratum: ``wave_bin_A`` bins,
                  except that each known sky-residual window (``sky_windows_A``) is one
                  stratum of its own whatever its width. Needs no embeddings.
    'kcenter'     greedy k-center (farthest-first) in CNN embedding space
                  (``LineCNN.features``) over a pool of the ``pool_factor * batch_size``
                  top-scoring candidates: contaminant-like clusters collapse to a few
                  representatives. O(pool * batch) work, one mat-vec per pick.
    'none'        plain top-k.

Strategy 'random' scores every candidate with an i.i.d. uniform draw; with
``low_sn_weight=1`` and ``diversity='none'`` that is the uniform random baseline of an
in-silico campaign.

Everything is deterministic for a given ``seed`` and inputs; ties go to the lower index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mlcore.survey import SN_THRESHOLD, regime_index

STRATEGIES = ("bald", "entropy", "margin", "random")
DIVERSITY = ("wavelength", "kcenter", "none")
EXPLOIT, RANDOM, CARRY, SHIFT = "exploit", "random", "carry", "shift"

# Wavelengths (A) where sky-subtraction residuals pile up in HETDEX-like data; the same
# windows as the simulator's ``SimParams.sky_windows``.
SKY_RESIDUAL_WINDOWS_A: tuple[tuple[float, float], ...] = (
    (3534.0, 3556.0),
    (5194.0, 5205.0),
    (5456.0, 5466.0),
)

_EPS = 1e-7  # same clip as mlcore.cnn.scoring


# --- score functions: larger = more informative ------------------------------------------


def entropy_score(prob: np.ndarray) -> np.ndarray:
    """Binary predictive entropy H[p] in nats; largest (ln 2) at p = 0.5."""
    p = np.clip(np.asarray(prob, dtype=np.float64), _EPS, 1 - _EPS)
    return -(p * np.log(p) + (1 - p) * np.log1p(-p))


def margin_score(prob: np.ndarray) -> np.ndarray:
    """1 - |2p - 1|: 1 at p = 0.5, 0 at p = 0 or 1 (one minus the binary margin)."""
    p = np.clip(np.asarray(prob, dtype=np.float64), 0.0, 1.0)
    return 1.0 - np.abs(2.0 * p - 1.0)


def bald_score(bald: np.ndarray) -> np.ndarray:
    """BALD mutual information (nats) as given by scoring, clipped at 0 (rounding)."""
    return np.maximum(np.asarray(bald, dtype=np.float64), 0.0)


def bald_from_samples(p_samples: np.ndarray) -> np.ndarray:
    """BALD (nats) from (T, N) probabilities: T MC-dropout samples or T ensemble members.

    H[mean_t p_t] - mean_t H[p_t], the definition used by :mod:`mlcore.cnn.scoring`.
    """
    p_t = np.asarray(p_samples, dtype=np.float64)
    if p_t.ndim != 2 or p_t.shape[0] < 1:
        raise ValueError(f"p_samples must be (T, N) with T >= 1, got shape {p_t.shape}")
    return np.maximum(entropy_score(p_t.mean(0)) - entropy_score(p_t).mean(0), 0.0)


def random_score(n: int, rng: np.random.Generator) -> np.ndarray:
    """n i.i.d. uniform scores in [0, 1): top-k of these is a uniform sample."""
    return rng.random(n)


# --- configuration and result -------------------------------------------------------------


@dataclass(frozen=True)
class AcquisitionConfig:
    """How one round picks its batch; stored with the round so it can be replayed."""

    strategy: str = "bald"  # one of STRATEGIES
    batch_size: int = 500
    random_fraction: float = 0.1  # share picked uniformly at random; 0 only on purpose
    low_sn_weight: float = 2.0  # score multiplier for 4.8 <= sn <= 5.5; 1 = no emphasis
    diversity: str = "wavelength"  # one of DIVERSITY
    wave_bin_A: float = 20.0  # width of the wavelength strata
    max_per_bin: int | None = None  # cap per stratum (exploit share); None: from fraction
    max_bin_fraction: float = 0.05  # cap = ceil(fraction * exploit share) when no max_per_bin
    sky_windows_A: tuple[tuple[float, float], ...] = SKY_RESIDUAL_WINDOWS_A
    pool_factor: float = 5.0  # k-center pool = pool_factor * batch_size top-scoring
    power: float | None = 1.0  # exploit share drawn with P ~ score**power; None: top-k
    carry_fraction: float = 0.0  # most of the batch for the last round's unsettled ones
    # Share of the batch spent where the model is out of its depth: the best-scoring
    # candidates of the groups (batch / field) whose shift report says shifted or far.
    shift_fraction: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; use one of {STRATEGIES}")
        if self.diversity not in DIVERSITY:
            raise ValueError(f"unknown diversity {self.diversity!r}; use one of {DIVERSITY}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not 0.0 <= self.random_fraction <= 1.0:
            raise ValueError(f"random_fraction must be in [0, 1], got {self.random_fraction}")
        if not 0.0 <= self.carry_fraction <= 1.0:
            raise ValueError(f"carry_fraction must be in [0, 1], got {self.carry_fraction}")
        if not 0.0 <= self.shift_fraction <= 1.0:
            raise ValueError(f"shift_fraction must be in [0, 1], got {self.shift_fraction}")
        if not (math.isfinite(self.low_sn_weight) and self.low_sn_weight > 0):
            raise ValueError(f"low_sn_weight must be finite and > 0, got {self.low_sn_weight}")
        if not (math.isfinite(self.wave_bin_A) and self.wave_bin_A > 0):
            raise ValueError(f"wave_bin_A must be > 0, got {self.wave_bin_A}")
        if self.max_per_bin is not None and self.max_per_bin < 1:
            raise ValueError(f"max_per_bin must be >= 1 (or None), got {self.max_per_bin}")
        if not 0.0 < self.max_bin_fraction <= 1.0:
            raise ValueError(f"max_bin_fraction must be in (0, 1], got {self.max_bin_fraction}")
        if self.power is not None and not (math.isfinite(self.power) and self.power > 0):
            raise ValueError(f"power must be finite and > 0 (or None for top-k), got {self.power}")
        if not self.pool_factor >= 1.0:
            raise ValueError(f"pool_factor must be >= 1, got {self.pool_factor}")
        for lo, hi in self.sky_windows_A:
            if not lo < hi:
                raise ValueError(f"sky window ({lo}, {hi}) must have lo < hi")

    def split(self, n_eligible: int, size: int | None = None) -> tuple[int, int]:
        """(exploit, random) counts for a batch of ``size`` (default ``batch_size``) drawn
        from ``n_eligible`` candidates."""
        k = min(int(self.batch_size if size is None else size), n_eligible)
        n_random = int(math.floor(self.random_fraction * k + 0.5))
        if self.random_fraction > 0 and k > 0:
            n_random = max(n_random, 1)
        return k - n_random, n_random

    def bin_cap(self, n_exploit: int) -> int:
        """Most exploit picks any one wavelength stratum may hold."""
        if self.max_per_bin is not None:
            return int(self.max_per_bin)
        return max(1, math.ceil(self.max_bin_fraction * n_exploit))


@dataclass(frozen=True)
class SelectionResult:
    """The chosen batch, in priority order (first = label first)."""

    index: np.ndarray  # (k,) int64 candidate rows
    priority: np.ndarray  # (k,) float64, strictly decreasing; same values as priorities()
    reason: np.ndarray  # (k,) 'carry' | 'exploit' | 'random'
    score: np.ndarray  # (k,) acquisition score after the low-S/N weight
    n_eligible: int
    cap: int | None  # per-stratum cap used ('wavelength' diversity), else None
    cap_relaxed: bool  # True when too few strata forced picks beyond the cap
    config: AcquisitionConfig
    all_scores: np.ndarray = field(repr=False)  # (N,) weighted score, -inf where ineligible

    @property
    def n_random(self) -> int:
        return int(np.count_nonzero(self.reason == RANDOM))

    @property
    def n_exploit(self) -> int:
        return int(np.count_nonzero(self.reason == EXPLOIT))

    @property
    def n_carry(self) -> int:
        return int(np.count_nonzero(self.reason == CARRY))


# --- helpers ------------------------------------------------------------------------------


def low_sn_mask(sn: np.ndarray) -> np.ndarray:
    """True in the low regime, 4.8 <= sn <= 5.5 (as :func:`mlcore.survey.regime_of`)."""
    sn = np.asarray(sn)
    return (sn >= SN_THRESHOLD) & (regime_index(sn) == 0)


def wavelength_strata(
    wave: np.ndarray,
    bin_A: float = 20.0,
    sky_windows_A: tuple[tuple[float, float], ...] = SKY_RESIDUAL_WINDOWS_A,
) -> np.ndarray:
    """(N,) int64 stratum id: floor(wave / bin_A), or -(j + 1) inside sky window j."""
    wave = np.asarray(wave, dtype=np.float64)
    strata = np.floor(wave / bin_A).astype(np.int64)
    for j, (lo, hi) in enumerate(sky_windows_A):
        strata[(wave >= lo) & (wave <= hi)] = -(j + 1)
    return strata


def _ranked(score: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``rows`` sorted by score descending, ties by row ascending (rows ascending on input)."""
    return rows[np.argsort(-score[rows], kind="stable")]


def _top(score: np.ndarray, cand: np.ndarray, m: int) -> np.ndarray:
    """The m best of ``cand`` (ascending rows), ranked. O(len(cand)) + O(m log m)."""
    if m >= len(cand):
        return _ranked(score, cand)
    # threshold by partition, then keep everything strictly above it plus the lowest-row
    # ties at it: the exact prefix of the (score desc, row asc) order
    s = score[cand]
    kth = np.partition(s, len(s) - m)[len(s) - m]
    above = cand[s > kth]
    ties = cand[s == kth][: m - len(above)]
    return _ranked(score, np.sort(np.concatenate([above, ties])))


def _capped_greedy(ranked: np.ndarray, strata: np.ndarray, cap: int, k: int) -> np.ndarray:
    """First k of ``ranked`` whose stratum has fewer than ``cap`` earlier picks."""
    _, s = np.unique(strata[ranked], return_inverse=True)
    order = np.argsort(s, kind="stable")  # groups, each in ranked order
    s_sorted = s[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(s_sorted)]))
    rank_in_stratum = np.empty(len(ranked), np.int64)
    rank_in_stratum[order] = np.arange(len(ranked)) - group_start
    return ranked[rank_in_stratum < cap][:k]


def kcenter_greedy(x: np.ndarray, k: int) -> np.ndarray:
    """Farthest-first traversal of the rows of x (M, D): k row indices, in pick order.

    Starts at row 0 (pass rows ranked by score, so the best comes first); each next pick
    is the row farthest (Euclidean) from all picks so far, ties to the lower row. One
    (M, D) mat-vec per pick: O(M k D) time, O(M) extra memory.
    """
    x = np.asarray(x, dtype=np.float32)
    x = x - x.mean(0) if len(x) else x  # centred: less cancellation in |a|^2 - 2ab + |b|^2
    m = len(x)
    k = min(int(k), m)
    if k <= 0:
        return np.empty(0, np.int64)
    sq = np.einsum("ij,ij->i", x, x)
    picks = np.empty(k, np.int64)
    min_d2 = np.full(m, np.inf, np.float32)
    c = 0
    for j in range(k):
        picks[j] = c
        d2 = sq - 2.0 * (x @ x[c]) + sq[c]  # squared distance of every row to the new pick
        np.minimum(min_d2, d2, out=min_d2)
        min_d2[c] = -np.inf  # never again
        c = int(np.argmax(min_d2))
    return picks


def _interleave(exploit: np.ndarray, rand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spread the random picks evenly through the exploit order -> (index, is_random)."""
    k = len(exploit) + len(rand)
    is_random = np.zeros(k, bool)
    if len(rand):
        is_random[((np.arange(len(rand)) + 0.5) * k / len(rand)).astype(np.int64)] = True
    index = np.empty(k, np.int64)
    index[is_random] = rand
    index[~is_random] = exploit
    return index, is_random


def _as_1d(name: str, a: np.ndarray | None, n: int | None) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per candidate), got shape {a.shape}")
    if n is not None and len(a) != n:
        raise ValueError(f"{name} has {len(a)} values but prob has {n}: one per candidate")
    return a


def _check_finite(name: str, a: np.ndarray, rows: np.ndarray) -> None:
    bad = int(np.count_nonzero(~np.isfinite(a[rows])))
    if bad:
        raise ValueError(
            f"{name} is not finite for {bad} eligible candidates: rescore them or mark them "
            "ineligible"
        )


def _carried(carry: np.ndarray | None, elig: np.ndarray, cfg: AcquisitionConfig) -> np.ndarray:
    """The carried rows that lead the batch: eligible, each once, order kept, capped."""
    if carry is None:
        return np.empty(0, np.int64)
    rows = np.asarray(carry)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise ValueError(f"carry must be a 1-D array of row indices, got {rows.dtype} {rows.shape}")
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= len(elig)):
        raise ValueError(f"carry holds row indices outside 0..{len(elig) - 1}")
    _, first = np.unique(rows, return_index=True)
    rows = rows[np.sort(first)]
    rows = rows[elig[rows]]
    cap = math.floor(cfg.carry_fraction * min(int(cfg.batch_size), int(np.count_nonzero(elig))))
    return rows[:cap]


# --- selection ------------------------------------------------------------------------------


def select_batch(
    *,
    prob: np.ndarray,
    bald: np.ndarray | None = None,
    sn: np.ndarray,
    wave: np.ndarray,
    embeddings: np.ndarray | None = None,
    eligible: np.ndarray | None = None,
    carry: np.ndarray | None = None,
    shifted: np.ndarray | None = None,
    config: AcquisitionConfig | None = None,
) -> SelectionResult:
    """Pick the next labelling batch over N candidates.

    prob, bald, sn, wave: (N,) from scoring and the catalogue (``bald`` needed only for
    strategy 'bald'). embeddings: (N, D) ``LineCNN.features`` (any array indexable by
    rows, e.g. a memmap; only the pool's rows are read), needed for 'kcenter' and
    ignored otherwise. eligible: (N,) bool, False for retired / labelled / otherwise
    excluded candidates. carry: row indices of candidates started but not settled, in the
    order to serve them; the first ``carry_fraction * batch_size`` eligible ones lead the
    batch (ineligible or repeated rows are skipped). shifted: (N,) bool, True where the
    candidate's group is out of the model's training distribution (a shift report's
    verdict); ``shift_fraction`` of what carry leaves goes to the best-ranked eligible
    shifted candidates (reason ``shift``), right after the carried ones. When fewer than
    ``batch_size`` are eligible, all of them are returned.
    """
    cfg = config or AcquisitionConfig()
    prob = _as_1d("prob", prob, None)
    n = len(prob)
    sn = _as_1d("sn", sn, n)
    wave = _as_1d("wave", wave, n)
    if eligible is None:
        cand = np.arange(n, dtype=np.int64)
        elig = np.ones(n, bool)
    else:
        elig = _as_1d("eligible", eligible, n)
        if elig.dtype != bool:
            raise ValueError(f"eligible must be a boolean mask, got dtype {elig.dtype}")
        cand = np.flatnonzero(elig)
    if cfg.diversity == "kcenter":
        if embeddings is None:
            raise ValueError("diversity='kcenter' needs embeddings (N, D) from LineCNN.features")
        if getattr(embeddings, "shape", None) is None:
            embeddings = np.asarray(embeddings)
        if len(embeddings.shape) != 2 or embeddings.shape[0] != n:
            raise ValueError(
                f"embeddings must be (N, D) with N = {n} candidates, got {embeddings.shape}"
            )

    carried = _carried(carry, elig, cfg)
    if len(carried):
        rest = elig.copy()
        rest[carried] = False
        cand = np.flatnonzero(rest)

    # acquisition score over all N (-inf where ineligible); the seed drives every draw
    rng = np.random.default_rng(cfg.seed)
    if cfg.strategy == "bald":
        if bald is None:
            raise ValueError("strategy 'bald' needs the bald array from scoring")
        bald = _as_1d("bald", bald, n)
        _check_finite("bald", bald, cand)
        score = bald_score(bald)
    elif cfg.strategy == "random":
        score = random_score(n, rng)
    else:
        _check_finite("prob", prob, cand)
        score = entropy_score(prob) if cfg.strategy == "entropy" else margin_score(prob)
    if cfg.low_sn_weight != 1.0:
        score[low_sn_mask(sn)] *= cfg.low_sn_weight
    score[~elig] = -np.inf
    rank = score
    if cfg.power is not None and cfg.strategy != "random":
        # Power acquisition (Kirsch et al. 2023): a Gumbel-perturbed log score, so the top-k
        # of ``rank`` is a draw without replacement with P proportional to score**power.
        # Top-k of a noisy BALD piles the batch onto the few most ambiguous candidates.
        rank = np.full(n, -np.inf)
        rank[cand] = cfg.power * np.log(np.maximum(score[cand], 1e-12)) + rng.gumbel(size=len(cand))

    room = int(cfg.batch_size) - len(carried)
    from_shift = np.empty(0, np.int64)
    if shifted is not None and cfg.shift_fraction > 0 and room > 0:
        sh = _as_1d("shifted", shifted, n)
        if sh.dtype != bool:
            raise ValueError(f"shifted must be a boolean mask, got dtype {sh.dtype}")
        pool = cand[sh[cand]]
        n_shift = min(len(pool), int(math.floor(cfg.shift_fraction * room + 0.5)))
        if n_shift:
            from_shift = _top(rank, pool, n_shift)
            cand = np.setdiff1d(cand, from_shift, assume_unique=True)
            room -= n_shift
    n_exploit, n_random = cfg.split(len(cand), room)
    cap, relaxed = None, False
    if n_exploit == 0:
        exploit = np.empty(0, np.int64)
    elif cfg.diversity == "none":
        exploit = _top(rank, cand, n_exploit)
    elif cfg.diversity == "wavelength":
        _check_finite("wave", wave, cand)
        cap = cfg.bin_cap(n_exploit)
        m = n_exploit
        while True:  # grow the ranked pool until the capped greedy fills the share
            m = min(4 * m, len(cand))
            ranked = _top(rank, cand, m)
            strata = wavelength_strata(wave[ranked], cfg.wave_bin_A, cfg.sky_windows_A)
            picked = _capped_greedy(np.arange(m), strata, cap, n_exploit)
            if len(picked) == n_exploit or m == len(cand):
                break
        exploit = ranked[picked]
        if len(exploit) < n_exploit:  # too few strata: fill by score beyond the cap
            relaxed = True
            rest = np.ones(m, bool)
            rest[picked] = False
            exploit = np.concatenate([exploit, ranked[rest][: n_exploit - len(exploit)]])
    else:  # kcenter
        pool = _top(rank, cand, max(n_exploit, int(cfg.pool_factor * cfg.batch_size)))
        x = np.empty((len(pool), embeddings.shape[1]), np.float32)
        by_row = np.argsort(pool)  # read rows in increasing order (memmap, h5py)
        x[by_row] = embeddings[pool[by_row]]
        if not np.isfinite(x).all():
            raise ValueError("embeddings are not finite for some top-scoring candidates")
        exploit = pool[kcenter_greedy(x, n_exploit)]

    if n_random:
        left = elig.copy()
        left[exploit] = False
        left[carried] = False
        left[from_shift] = False
        rand = rng.choice(np.flatnonzero(left), size=n_random, replace=False)
    else:
        rand = np.empty(0, np.int64)
    index, is_random = _interleave(exploit, rand)
    reason = np.where(is_random, RANDOM, EXPLOIT)
    index = np.concatenate([carried, from_shift, index])
    reason = np.concatenate([np.full(len(carried), CARRY), np.full(len(from_shift), SHIFT), reason])
    k = len(index)
    return SelectionResult(
        index=index,
        priority=1.0 + (k - np.arange(k)) / max(k, 1),
        reason=reason,
        score=score[index],
        n_eligible=int(np.count_nonzero(elig)),
        cap=cap,
        cap_relaxed=relaxed,
        config=cfg,
        all_scores=score,
    )


def priorities(result: SelectionResult) -> np.ndarray:
    """(N,) float64 queue priority for every candidate; larger = serve first.

    Chosen batch: (1, 2], in the batch's order. Every other eligible candidate: (0, 1),
    by acquisition score (ties to the lower row), so the queue never runs dry when the
    batch is used up. Ineligible: 0.
    """
    score = result.all_scores
    out = np.zeros(len(score), np.float64)
    rest = np.isfinite(score)  # eligible
    rest[result.index] = False
    rows = _ranked(score, np.flatnonzero(rest))
    out[rows] = 1.0 - (np.arange(len(rows)) + 1.0) / (len(rows) + 1.0)
    out[result.index] = result.priority
    return out


def batch_diversity(
    wave: np.ndarray,
    idx: np.ndarray,
    *,
    bin_A: float = 20.0,
    sky_windows_A: tuple[tuple[float, float], ...] = SKY_RESIDUAL_WINDOWS_A,
) -> dict[str, float]:
    """How spread a batch is in wavelength, for reports and tests.

    n: batch size; n_strata: distinct strata (bins, each sky window one stratum);
    max_stratum_fraction: share of the fullest stratum; sky_fraction: share inside the
    sky-residual windows.
    """
    w = np.asarray(wave, dtype=np.float64)[np.asarray(idx, dtype=np.int64)]
    if len(w) == 0:
        return {"n": 0, "n_strata": 0, "max_stratum_fraction": 0.0, "sky_fraction": 0.0}
    strata = wavelength_strata(w, bin_A, sky_windows_A)
    _, counts = np.unique(strata, return_counts=True)
    return {
        "n": len(w),
        "n_strata": len(counts),
        "max_stratum_fraction": float(counts.max() / len(w)),
        "sky_fraction": float(np.count_nonzero(strata < 0) / len(w)),
    }
