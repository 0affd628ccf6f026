"""Authentication and authorisation: users, roles, API tokens, UI sessions, route policy."""
