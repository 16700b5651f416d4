"""One comparison report (campaign.json + campaign.html) from single-strategy campaign
reports, for strategies run as separate processes (``run_campaign --compare bald`` and
``--compare random`` at the same time) or taken from different campaigns:

    python bench/campaign_pair.py --out var/pair bald=var/a/bald.json random=var/b/random.json

Each argument is NAME=PATH: PATH a strategy's own report (``<strategy>.json``) or a
campaign.json, from which the strategy NAME is taken. The reports go into
:func:`labelapp.research.simulated_campaign.write_comparison` unchanged, under NAME (so a
pretrained BALD can be set against a from-scratch random run: their settings lines say
which is which). ``manage.py campaign_seeds`` reads the campaign.json it writes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from _util import ROOT  # noqa: F401 (puts the repository on sys.path)


def load(spec: str) -> tuple[str, dict]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        sys.exit(f"expected NAME=PATH, got {spec!r}")
    data = json.loads(Path(path).read_text())
    if "strategies" in data:  # a comparison: take the one strategy
        if name not in data["strategies"]:
            sys.exit(f"{path} has no {name!r} campaign (has {sorted(data['strategies'])})")
        data = data["strategies"][name]
    if "rounds" not in data:
        sys.exit(f"{path}: not a campaign report (no 'rounds')")
    return name, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", help="NAME=PATH, e.g. bald=var/x/bald.json")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    reports = dict(load(spec) for spec in args.reports)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelapp.settings")
    import django

    django.setup()
    from labelapp.research.simulated_campaign import write_comparison

    path = write_comparison(reports, args.out)
    print(f"wrote {path} and {args.out / 'campaign.json'}")


if __name__ == "__main__":
    main()
