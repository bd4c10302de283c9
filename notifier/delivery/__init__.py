"""Fan-out, batch delivery, admission, outcomes, scheduling and ingest."""
