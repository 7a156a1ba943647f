"""clanpulse: a self-hosted activity tracker for gaming communities."""

__version__ = "0.1.0"
