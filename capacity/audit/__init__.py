"""The append-only audit log (models) and its query (controllers)."""

from capacity.audit.models import AuditEntry

__all__ = ["AuditEntry"]
