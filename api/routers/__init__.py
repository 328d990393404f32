"""The routers: HTTP in, a repository call, a schema out. No tenant filtering, no commits."""
