"""The routers: HTTP in, a repository call, a schema out. No tenant filtering, no commits."""

# In each router, not at include_router: the route a request matched then carries the whole
# template, which the metrics and access log name.
PREFIX = "/v1"
