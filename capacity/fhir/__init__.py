"""A FHIR R4 read API (issue 16 item 4): units as Locations, providers as Organizations, their services,
schedules and places as Slots, under /fhir (capacity.fhir.controllers)."""
