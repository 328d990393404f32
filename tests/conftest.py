"""Fixture plugins shared by every test package (services and databases come from pyproject's
addopts; the seeded tenants from here)."""

pytest_plugins = ["tests.fixtures.tenants"]
