"""Folding: which case an alert belongs to, and the record of why it joined."""
