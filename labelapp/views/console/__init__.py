"""The scientist console: one module per page area, all behind ``scientist_required``."""
