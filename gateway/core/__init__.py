"""Core every step uses: settings, database and sessions, the durable job queue, events, the
instance store, audit, logs."""
