"""Number formatting for the public results page."""

from django import template

register = template.Library()


@register.filter
def thousands(value) -> str:
    """12345 -> '12,345' (None -> '0')."""
    try:
        return f"{int(value or 0):,}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def pct(value, digits: int = 0) -> str:
    """0.873 -> '87%' (None -> 'not measured')."""
    if value is None:
        return "not measured"
    return f"{100 * float(value):.{int(digits)}f}%"
