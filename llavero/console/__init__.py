"""The web console: server-rendered pages in es-419 and English, working offline."""
