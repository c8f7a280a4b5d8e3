"""The edges facing untrusted traffic: reading requests, answering verdicts, gateway,
forward auth and middleware (docs/architecture.md)."""
