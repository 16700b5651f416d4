"""The crowd: volunteers, votes, the queue, consensus, gold standards, curation."""
