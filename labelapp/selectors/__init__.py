"""Reads for the scientist console: aggregated in the database (or cached), never a Python
loop over candidate rows, so the pages stay fast on a 2.5-million-row catalogue."""
