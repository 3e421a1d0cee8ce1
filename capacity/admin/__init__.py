"""Administration: users, providers, units and areas (API.md "Administration")."""
