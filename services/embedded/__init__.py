"""The embedded stack: a Tansu broker, a worker and the API as supervised child processes."""
