"""Science outputs: N(z) and spikes, external validation, exports."""
