"""The MES API: FastAPI routers (machines, work orders, quality, shifts, maintenance) over
repositories over the `core` models. Every request is one unit of work under its caller's
tenant (core.tenancy); row-level security confines every query, so no code here filters by
organization or plant. `create_app(settings)` builds the app; `mes api` serves it."""
