"""Full-page PNG of an HTML report (a campaign's campaign.html, with its plotly figures
drawn) in headless Chromium, so the figure can be kept in bench/ next to the figures.

    python bench/report_screenshot.py var/campaign/campaign.html bench/campaign/NAME.png
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    args = parser.parse_args()
    if not args.html.is_file():
        sys.exit(f"no report at {args.html}")
    exe = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not exe:
        sys.exit("no chromium on PATH: apt-get install chromium (or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        page.goto(args.html.resolve().as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length > 0")
        args.png.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.png), full_page=True)
        browser.close()
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
