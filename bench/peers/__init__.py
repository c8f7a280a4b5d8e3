"""Servers Llavero is compared with; each one is started by `bench.scenarios`."""
