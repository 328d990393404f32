# syntax=docker/dockerfile:1
# Two images from one file; the install steps are the README's ("Installing"):
#   docker build --target central -t plantfloor-mes .        ingest, maintenance, API, db, registry, sim
#   docker build --target edge -t plantfloor-mes-edge .      the edge agent alone (no extras)
# docker-compose.yml builds both. Both run as the unprivileged user `mes` (uid 10001).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: two virtualenvs, one per install, so the runtime stages copy no compiler
# leftovers, no pip cache and no source tree.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core/ core/
COPY edge_agent/ edge_agent/
COPY ingest/ ingest/
COPY api/ api/
COPY mes/ mes/
RUN python -m venv /opt/mes-edge \
    && /opt/mes-edge/bin/pip install --no-cache-dir .
RUN python -m venv /opt/mes \
    && /opt/mes/bin/pip install --no-cache-dir '.[central]'

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/mes --create-home \
        --shell /usr/sbin/nologin mes
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

FROM runtime AS edge
COPY --from=build /opt/mes-edge /opt/mes-edge
ENV PATH=/opt/mes-edge/bin:$PATH
# The outbox lives here: mount a volume, never tmpfs (docs/edge-agent.md).
RUN install -d -o mes -g mes -m 0750 /var/lib/mes-edge
VOLUME /var/lib/mes-edge
USER mes
WORKDIR /var/lib/mes-edge
ENTRYPOINT []
CMD ["mes", "edge", "--help"]

FROM runtime AS central
COPY --from=build /opt/mes /opt/mes
# The migrations are read from MES_SQL_DIR (core/migrations.py): an installed package has no
# sql/ beside it. The example configurations come along for `mes registry apply`.
COPY sql/ /opt/mes/sql/
COPY config/ /opt/mes/config/
ENV PATH=/opt/mes/bin:$PATH MES_SQL_DIR=/opt/mes/sql
USER mes
WORKDIR /var/lib/mes
ENTRYPOINT []
CMD ["mes", "--help"]
