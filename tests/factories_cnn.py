"""Small CNN configurations for tests: a tiny network and a few-second training recipe."""

from mlcore.cnn.model import CNNConfig
from mlcore.cnn.training import TrainConfig

TINY = CNNConfig(width=6, hidden=16)


def fast_config(**kw) -> TrainConfig:
    """Two quick CPU epochs on small batches (``kw`` overrides any field)."""
    base = dict(epochs=2, batch_size=128, min_epoch_samples=1024, device="cpu", seed=0)
    return TrainConfig(**{**base, **kw})
