"""Shared fixtures: a real embedded broker and a real PostgreSQL cluster per session, and
unique topics, consumer group and database per test.

Neither is ever skipped: a missing broker or PostgreSQL fails the tests that need them
(always, and so also under CI=true).
"""

pytest_plugins = ["tests.support.services"]
