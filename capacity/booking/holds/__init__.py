"""Holds: a place reserved for one person for a limited time, and its conveyance."""
