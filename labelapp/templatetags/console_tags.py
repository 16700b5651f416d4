"""Small template helpers for the console tables."""

from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    """``{{ dict|get_item:key }}``: look up a key that is itself a variable."""
    if mapping is None:
        return None
    return mapping.get(key)
