"""Reports for commissioners: read-only SQL aggregations, rendered as JSON, CSV or XLSX.

Kept free of imports so that `capacity.db.engine` can register the SQLite functions of `reports.sql`.
"""
