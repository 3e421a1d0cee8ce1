"""capacity: live booking of mental-health crisis places in England."""
