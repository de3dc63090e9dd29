"""Casefold: Wazuh and network-sensor alerts in, folded cases out."""

__version__ = "0.1.0"
