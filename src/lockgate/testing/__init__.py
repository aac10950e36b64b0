"""The test kit: real adapters used by tests and benchmarks instead of mocks."""
