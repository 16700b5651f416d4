"""Learning: training, scoring, promotion, the held-out sample, rounds, steering."""
