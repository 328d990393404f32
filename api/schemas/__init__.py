"""Request and response bodies, apart from the SQLAlchemy models: what a client sends and
sees, with examples for the OpenAPI document (the tests use them as request bodies)."""
