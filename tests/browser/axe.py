"""Accessibility checks in the page under test.

``violations(page)`` runs axe-core's (Deque, MPL-2.0) WCAG 2.x A/AA rules and returns what
it found. The script is vendored next to this file (tests/browser/vendor/axe.min.js,
axe-core 4.10.3 from the npm registry) so the tests run offline; it is evaluated through
the DevTools protocol, which the site's Content-Security-Policy does not apply to (no inline
script is added to the page). ``small_targets(page)`` lists tap targets under 44 px."""

from __future__ import annotations

from pathlib import Path

AXE_JS = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def violations(page, *, impacts=("serious", "critical")) -> list[dict]:
    """axe's violations of ``impacts`` on the page as it is now: [{id, impact, help, nodes}]."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_JS.read_text())
    found = page.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})
             .then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))""",
        TAGS,
    )
    return [v for v in found if v["impact"] in impacts]


SMALL_TARGETS_JS = """() => [...document.querySelectorAll('a, button, input, select, textarea')]
  .filter(e => e.offsetParent !== null && e.type !== 'hidden')
  .map(e => {
    // a checkbox or radio inside its label is tapped through the label
    const t = (e.type === 'checkbox' || e.type === 'radio') && e.closest('label')
      ? e.closest('label') : e;
    const r = t.getBoundingClientRect();
    return {text: (e.textContent || e.name || e.id || '').trim().slice(0, 30),
            w: Math.round(r.width), h: Math.round(r.height)};
  })
  .filter(t => t.h < 44 || t.w < 44)"""


def small_targets(page) -> list[dict]:
    """Visible links, buttons and form fields under 44 x 44 css px (WCAG 2.5.5)."""
    return page.evaluate(SMALL_TARGETS_JS)
