"""screener: offline batch facial-emotion screening of recorded student videos."""

__version__ = "0.1.0"
