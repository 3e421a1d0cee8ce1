"""Units and their live availability: reference data, declarations, search."""
