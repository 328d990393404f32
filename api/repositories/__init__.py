"""One repository module per aggregate: functions over a session, keyword-only arguments.

They never filter by organization or plant: the session is a unit of work under the caller's
tenant, and row-level security (and the tenant views) decide what exists. An object outside
the caller's scope is therefore simply not found.
"""
