"""HomeLabPi: a Discord voice memory for a home lab."""

__version__ = "0.1.0"
