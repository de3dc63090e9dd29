"""Threat-intel enrichment: the shared answer cache (and, later, budgets and providers)."""
