"""Bulk imports from CSV files (history for backfill and reports)."""
