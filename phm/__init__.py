"""PHM Intelligence: command line and settings. `phm.settings` is the foundation layer;
`phm.cli` is the top layer that wires features, training, evaluation and serving together."""

__version__ = "0.1.0"
