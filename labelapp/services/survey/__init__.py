"""Survey data in: ingest of survey files, the cutout stores, rendering."""
