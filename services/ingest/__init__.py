"""Ingestion: the HTTP gateway, source keys and the Segment-compatible mapping."""
