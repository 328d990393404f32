"""The one SQLAlchemy model set: importing this package registers every table on one MetaData."""

from core.models.access import ApiToken, BrokerCredential
from core.models.base import Base
from core.models.dead_letter import DeadLetter
from core.models.downtime import DowntimeReason
from core.models.machine import Gateway, Machine
from core.models.maintenance import PmSchedule, PmTask, PmTaskHistory
from core.models.maintenance_checkpoints import PmConditionCursor, PmMeterCheckpoint
from core.models.maintenance_rules import PmConditionEpisode, PmConditionRule, PmCorrectiveRule
from core.models.maintenance_webhooks import PmWebhook, PmWebhookDelivery
from core.models.organization import Organization, Plant
from core.models.production import Material, WorkOrder, WorkOrderMachine
from core.models.quality import InspectionLog, Ncr
from core.models.shift import Shift, ShiftHandover
from core.models.timeseries import (
    DowntimeEvent,
    MachineCounter,
    MachineStatusHistory,
    MachineTelemetry,
)
from core.models.user import User

__all__ = [
    "ApiToken",
    "Base",
    "BrokerCredential",
    "DeadLetter",
    "DowntimeEvent",
    "DowntimeReason",
    "Gateway",
    "InspectionLog",
    "Machine",
    "MachineCounter",
    "MachineStatusHistory",
    "MachineTelemetry",
    "Material",
    "Ncr",
    "Organization",
    "Plant",
    "PmConditionCursor",
    "PmConditionEpisode",
    "PmConditionRule",
    "PmCorrectiveRule",
    "PmMeterCheckpoint",
    "PmSchedule",
    "PmTask",
    "PmTaskHistory",
    "PmWebhook",
    "PmWebhookDelivery",
    "Shift",
    "ShiftHandover",
    "User",
    "WorkOrder",
    "WorkOrderMachine",
]
