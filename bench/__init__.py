"""Benchmark harness: Llavero's verify path against a bare endpoint and against peers, under wrk."""
