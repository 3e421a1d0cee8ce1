"""Section 136 detentions at places of safety that are not bookable units."""
