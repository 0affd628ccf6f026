"""HTTP API (FastAPI): health, studies, and the routes later issues add."""
