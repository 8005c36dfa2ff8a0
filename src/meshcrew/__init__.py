"""meshcrew: a peer-to-peer node for microsolidarity crews."""

__version__ = "0.1.0"
