"""Providers' declared operational pressure (OPEL 1-4): declaring it, its history, and when it is stale."""
