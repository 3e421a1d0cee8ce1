"""Crisis alternatives: help that is not a bookable bed (safe havens, crisis lines, street triage, host
families, liaison and CAMHS crisis teams), with whom they serve, when they are open and how to refer."""
