"""WSGI app for ``bench_votes.py``: the volunteer path alone, with the after_vote and
after_undo hooks (live consensus + retirement) turned into no-ops, to show what they cost."""

import importlib

from labelapp.wsgi import application  # noqa: F401 - sets Django up before models load

votes = importlib.import_module("labelapp.services.crowd.votes")
votes.after_vote = lambda vote: None
votes.after_undo = lambda vote: None
