"""The in-silico research harness (simulated volunteers and campaigns, verdicts over
seeds). Production code never imports it."""
