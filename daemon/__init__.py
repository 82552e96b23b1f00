"""Accord: governed streaming sync between CRM, PSA and ERP."""

__version__ = "0.1.0"
