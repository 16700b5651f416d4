"""Bad input: fuzz the JSON API and feed ingest a corpus of broken survey files; print counts.

Ingest: the unit corpus of ``tests/corpus.py`` (every category, FITS and HDF5, and files
that are not surveys at all) plus ``--sweep`` truncation offsets and ``--random`` random
byte corruptions per format, each ingested next to a good batch that must stay intact.
API: ``--api-examples`` hypothesis requests (a third shaped by the OpenAPI schema, the rest
hostile, including bodies over Django's 2.5 MB limit) from two volunteer sessions with CSRF
tokens, through Django's test client (``tests/test_fuzz_api.py``: the same properties).
Then a few requests that Django answers before any API view runs, to show what they get.

Counts: cases tried, crashes (an exception other than IngestError / a 5xx), data lost (the
good batch changed, or an acknowledged vote missing / an unacknowledged one stored),
partial data (rows, a batch or a store directory left by a refused file), unexpected (a
refusal whose message does not name the problem, a valid file refused). Fresh SQLite
database in a temporary directory; nothing is timed against a target.

    .venv/bin/python bench/bench_bad_input.py [--api-examples 3000] [--random 150] [--sweep 40]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup(work: Path) -> None:
    (work / "data").mkdir(parents=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="labelapp.settings",
        LABELAPP_DATA_DIR=str(work / "data"),
        DATABASE_URL="",
        REDIS_URL="",
    )
    import logging

    import django

    django.setup()
    # Thousands of 4xx warnings and Django's own refusals; a 5xx is counted with its exception.
    logging.disable(logging.CRITICAL)
    from django.core.management import call_command
    from django.test.utils import override_settings, setup_test_environment

    setup_test_environment()  # DEBUG off, 'testserver' allowed, as under pytest
    override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        VOTE_RATE_LIMIT=1_000_000,  # limits are tested elsewhere; here they would hide votes
    ).enable()
    call_command("migrate", verbosity=0)


def run_ingest_corpus(work: Path, *, n_random: int, n_sweep: int) -> dict:
    from tests.corpus import corpus, ingest_good_batch, random_cases, run_case, truncation_sweep

    cases = corpus(random_per_format=0) + truncation_sweep(n_sweep) + random_cases(n_random)
    good = ingest_good_batch(work / "good")
    table: dict[str, Counter] = defaultdict(Counter)
    bad, examples = [], {}
    t0 = time.perf_counter()
    for i, case in enumerate(cases):
        case_dir = work / "cases" / str(i)
        outcome = run_case(case, case_dir, good)
        shutil.rmtree(case_dir, ignore_errors=True)
        row = table[case.category]
        row["cases"] += 1
        row[outcome.status] += 1
        row["partial"] += bool(outcome.partial)
        row["lost"] += bool(outcome.lost)
        row["unexpected"] += outcome.status != "crash" and not outcome.expected
        if not outcome.ok:
            bad.append(outcome)
        if outcome.status == "refused" and case.category not in examples:
            examples[case.category] = outcome.message.splitlines()[-1].strip()
    seconds = time.perf_counter() - t0

    print(f"\n## Ingest: {len(cases)} broken or odd files ({seconds:.0f} s)\n")
    cols = ("cases", "refused", "accepted", "crash", "partial", "lost", "unexpected")
    print(f"| {'category':<11} | " + " | ".join(f"{c:>10}" for c in cols) + " |")
    print(f"|{'-' * 13}|" + "|".join("-" * 12 for _ in cols) + "|")
    total = Counter()
    for category in sorted(table):
        total.update(table[category])
        print(f"| {category:<11} | " + " | ".join(f"{table[category][c]:>10}" for c in cols) + " |")
    print(f"| {'total':<11} | " + " | ".join(f"{total[c]:>10}" for c in cols) + " |")
    print("\nOne refusal per category (last line of the message):")
    for category, message in sorted(examples.items()):
        print(f"  {category:<11} {message[:150]}")
    for outcome in bad[:15]:
        print(f"\nNOT OK {outcome.case.id}: {outcome.status} {outcome.partial} {outcome.lost}")
        print("  " + outcome.message[-600:].replace("\n", "\n  "))
    return {
        "cases": total["cases"],
        "crashes": total["crash"],
        "lost": total["lost"],
        "partial": total["partial"],
        "unexpected": total["unexpected"],
    }


def run_api_fuzz(work: Path, *, examples: int) -> dict:
    from labelapp.models import Vote
    from tests.test_fuzz_api import ApiFuzzer, api_requests, fuzz, make_fuzz_candidates

    ids = make_fuzz_candidates(work)
    fuzzer = ApiFuzzer()
    t0 = time.perf_counter()
    schema_n = examples // 3
    fuzz(fuzzer, api_requests(ids, hostile=False), max_examples=schema_n, stop_on_failure=False)
    fuzz(
        fuzzer,
        api_requests(ids, hostile=True, big=True),
        max_examples=examples - schema_n,
        stop_on_failure=False,
    )
    seconds = time.perf_counter() - t0
    table: dict[str, Counter] = defaultdict(Counter)
    for (kind, status), n in fuzzer.counts.items():
        table[kind][status] += n
        table[kind]["requests"] += n
    sent = sum(row["requests"] for row in table.values())
    print(f"\n## API: {sent} requests ({seconds:.0f} s)\n")
    cols = ("requests", "2xx", "4xx", "5xx")
    print(f"| {'kind':<30} | " + " | ".join(f"{c:>8}" for c in cols) + " |")
    print(f"|{'-' * 32}|" + "|".join("-" * 10 for _ in cols) + "|")
    total = Counter()
    for kind in sorted(table):
        total.update(table[kind])
        print(f"| {kind:<30} | " + " | ".join(f"{table[kind][c]:>8}" for c in cols) + " |")
    print(f"| {'total':<30} | " + " | ".join(f"{total[c]:>8}" for c in cols) + " |")
    stored = Vote.objects.count()
    acknowledged = fuzzer.votes_acknowledged
    print(
        f"\nvotes created (201): {fuzzer.created}, repeats answered 200: {fuzzer.repeats}, "
        f"undone: {fuzzer.undone}; acknowledged and not undone: {acknowledged}; "
        f"votes in the database: {stored}"
    )
    print(f"property failures: {len(fuzzer.failures)} {dict(fuzzer.broken) or ''}")
    seen = set()
    for line in fuzzer.failures:  # one line per distinct failure
        key = line.split("-> ", 1)[-1][:60]
        if key not in seen and len(seen) < 15:
            seen.add(key)
            print("  " + line[:300])
    missing, unacknowledged = fuzzer.vote_drift()
    return {
        "cases": sent,
        "crashes": total["5xx"],
        "lost": len(missing) + len(unacknowledged),
        "failures": len(fuzzer.failures),
    }


def run_framework_edges() -> None:
    """Requests Django itself answers before an API view runs (outside the views' reach)."""
    from tests.test_fuzz_api import browser

    c = browser()
    token = {"X-CSRFToken": c.cookies["csrftoken"].value}
    edges = [
        ("POST form body over 2.5 MB", "POST", "/api/votes/", b"a=" + b"x" * 3_000_000,
         "application/x-www-form-urlencoded"),
        ("POST form body, 2,000 fields", "POST", "/api/votes/", b"a=1&" * 2000,
         "application/x-www-form-urlencoded"),
        ("POST multipart without boundary", "POST", "/api/votes/", b"junk", "multipart/form-data"),
        ("GET on a POST endpoint", "GET", "/api/votes/", b"", ""),
        ("URL outside the patterns", "GET", "/api/candidates/-5/spectrum/", b"", ""),
    ]  # fmt: skip
    print("\n## Answered by Django before the API views\n")
    for label, method, url, body, ctype in edges:
        if method == "GET":
            resp = c.get(url)
        else:
            resp = c.generic(method, url, body, content_type=ctype, headers=token)
        kind = resp.get("Content-Type", "").split(";")[0] or "(empty)"
        print(f"  {label:<34} -> {resp.status_code} {kind}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-examples", type=int, default=3000)
    parser.add_argument("--random", type=int, default=150, help="random corruptions per format")
    parser.add_argument("--sweep", type=int, default=40, help="truncation offsets per format")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-bad-input-"))
    try:
        _setup(work)
        ingest = run_ingest_corpus(work / "ingest", n_random=args.random, n_sweep=args.sweep)
        api = run_api_fuzz(work / "api", examples=args.api_examples)
        run_framework_edges()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n## Summary\n")
    for name, r in (("ingest corpus", ingest), ("API fuzz", api)):
        print(
            f"  {name:<14} cases tried {r['cases']:>6}   crashes {r['crashes']:>3}   "
            f"data lost {r['lost']:>3}"
            + (
                f"   partial {r['partial']}   unexpected {r['unexpected']}"
                if "partial" in r
                else ""
            )
            + (f"   property failures {r['failures']}" if "failures" in r else "")
        )
    print(
        f"  {'total':<14} cases tried {ingest['cases'] + api['cases']:>6}   "
        f"crashes {ingest['crashes'] + api['crashes']:>3}   "
        f"data lost {ingest['lost'] + api['lost']:>3}"
    )


if __name__ == "__main__":
    main()
