"""Engines and sessions, made by a command's entry point or an app's lifespan, never at import."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


def sqlalchemy_url(url: str) -> str:
    """`postgresql://...` (libpq form, what settings hold) -> SQLAlchemy's psycopg 3 dialect."""
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 5) -> Engine:
    return create_engine(
        sqlalchemy_url(url), pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
    )


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
