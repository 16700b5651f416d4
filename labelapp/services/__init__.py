"""Business logic. Views, tasks and commands call these functions and hold no logic."""
