"""Logging in through the site's own form, as a person does, for the browser tests."""

from __future__ import annotations

from tests.factories_console import PASSWORD, make_scientist


def log_in(
    page, site: str, username: str, *, next_path: str = "", lands: str | None = "**/classify/**"
) -> None:
    """Fill /accounts/login/ with ``username`` (every factory account has ``PASSWORD``) and
    wait for the page it lands on: ``lands`` (a URL glob), or the network going idle."""
    page.goto(f"{site}/accounts/login/" + (f"?next={next_path}" if next_path else ""))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    if lands:
        page.wait_for_url(lands)
    else:
        page.wait_for_load_state("networkidle")


def scientist_page(chromium, site: str, username: str = "astro"):
    """A new scientist logged in on a 1280 x 900 page; returns (context, page), with the
    page's uncaught script errors collected in ``page.errors``."""
    make_scientist(username=username)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    log_in(page, site, username)
    return context, page
