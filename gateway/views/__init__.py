"""What people look at: pages of studies, orders, HL7 messages, audit records and users,
built once from the database and shown by the API as JSON and by the web UI as HTML.
Read-only; no HTTP here (the callers check their parameters)."""
