"""The HTTP API (FastAPI): health and readiness now; ingestion and read APIs build on it."""
