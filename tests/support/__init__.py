"""Helpers every test package shares (plain functions; the fixtures live in tests/fixtures)."""
