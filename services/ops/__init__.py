"""Stream health for operations: sampling the broker (offsets, groups, recent records), the
evaluation of consumer lag over a window of samples, and the report the API, ``/metrics``
and ``touchstream health`` show (docs/operations.md)."""
