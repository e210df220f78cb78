"""PHM Intelligence: command line and settings. `phm.core.settings` is the foundation layer;
`phm.cli` is the top layer that wires features, training, evaluation and serving together."""

import os as _os

__version__ = "0.1.0"

# No hidden network: the tools of this stack otherwise look up telemetry hosts.
_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
_os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
_os.environ.setdefault("DO_NOT_TRACK", "1")

# LightGBM's idle OpenMP threads sleep instead of spinning (set before any LightGBM loads; see phm.core.threads)
import phm.core.threads  # noqa: E402,F401
