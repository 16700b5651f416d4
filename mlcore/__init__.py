"""Science core of the platform: pure Python + numpy/torch/astropy, never Django.

Usable from a notebook or a GPU box with no database: simulator, survey file I/O,
validation, cutout store, rendering, and (in later modules) the CNN and aggregation maths.
"""

__version__ = "0.1.0"
