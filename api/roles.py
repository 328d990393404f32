"""Who may write what. A route lists the roles of which the caller needs one (`requires`);
reading needs only a valid token (every role, viewer included, may read its scope)."""

ADMINS = ("plant_admin", "org_admin")
MACHINE_EDITORS = ADMINS
DOWNTIME_EDITORS = ("operator", "maintenance", *ADMINS)
PRODUCTION_EDITORS = ("operator", *ADMINS)
NCR_RAISERS = ("quality", "operator", *ADMINS)
QUALITY = ("quality", *ADMINS)
INSPECTORS = ("quality", "operator", *ADMINS)
SHIFT_PLANNERS = ADMINS
SHIFT_STAFF = ("operator", "maintenance", "quality", *ADMINS)
MAINTENANCE_PLANNERS = ("maintenance", *ADMINS)
# Only maintenance people act on PM tasks: acknowledging, starting, completing, skipping.
TECHNICIANS = ("maintenance",)
