"""Tooling, not product: the local control plane under the end-to-end tests, demo, soak and benchmarks."""
