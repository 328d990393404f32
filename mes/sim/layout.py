"""Where the simulator's machines live on the wire: the one map from machine index to addresses.

Both servers, the generated agent tag map and the tests read this module, so the layout and
the map that reads it cannot drift apart. Everything a plant engineer writing a tag map by hand
needs is here.

Machines
    Machine index `i` (0-based) is the machine code `m001`, `m002`, ... (`machine_code(i)`).

Modbus TCP (one server, one unit id per machine)
    Unit id = index + 1 (`modbus_unit(i)`), so up to 247 machines. Every unit has the same
    register layout, with zero-based protocol addresses (what goes on the wire):

    ======================  =====  =======  ==========================================
    table                   addr   type     meaning
    ======================  =====  =======  ==========================================
    holding register        0      uint16   state code (PackML state number, below)
    holding register        1      uint16   stop reason code (0 none, below)
    holding register        2      uint16   cycle counter, rolls over 65535 -> 0
    holding register        3-4    uint32   parts counter
    holding register        5-6    uint32   runtime seconds (machine time in running)
    holding register        7      uint16   status word: bit n set when in STATUS_BITS[n]
    input register          0-1    float32  spindle speed, rpm (0 when stopped)
    input register          2-3    float32  temperature, degrees C
    input register          4+2k   float32  extra analog tag k (`--extra-tags N`)
    coil / discrete input   0      bool     running
    coil / discrete input   1      bool     faulted
    ======================  =====  =======  ==========================================

    32-bit values are big-endian in both senses: the high word first (lower address) and the
    high byte first within each register ("ABCD"). Coils mirror the discrete inputs so that
    either table can be mapped. All data is read-only: writes get an illegal-address exception.

OPC UA (one server, one object per machine)
    Namespace URI `urn:mes:sim`, registered first, so its index is 2 (`OPCUA_NS_INDEX`).
    Object `Objects/<code>` with one variable per tag; node ids are strings
    `ns=2;s=<code>.<Name>` (`opcua_node_id(i, name)`), e.g. `ns=2;s=m001.State`. Types: UInt16
    for uint16, UInt32 for uint32, Float for float32, Boolean for bool. Every value carries
    the source timestamp of the model tick that produced it.

State model
    The state code uses the PackML (ISA-TR88.00.02) state numbers. PackML has no states of its
    own for starved, blocked or setup, so those share a number with another canonical state and
    the stop reason register tells them apart: an agent with the `packml` preset reads the state
    code, and the reason code refines Suspended into starved/blocked and Held into setup.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from core.wire import DowntimeCategory, MachineState

MAX_MODBUS_MACHINES = 247
OPCUA_NAMESPACE = "urn:mes:sim"
OPCUA_NS_INDEX = 2


class PackML(IntEnum):
    """PackML state numbers (the subset the simulator exposes)."""

    STOPPED = 2
    IDLE = 4
    SUSPENDED = 5
    EXECUTE = 6
    ABORTED = 9
    HELD = 11


# Which PackML number each canonical state shows on the state-code register.
PACKML_OF_STATE: dict[MachineState, PackML] = {
    MachineState.RUNNING: PackML.EXECUTE,
    MachineState.IDLE: PackML.IDLE,
    MachineState.STARVED: PackML.SUSPENDED,
    MachineState.BLOCKED: PackML.SUSPENDED,
    MachineState.SETUP: PackML.HELD,
    MachineState.PLANNED_STOP: PackML.STOPPED,
    MachineState.FAULT: PackML.ABORTED,
}


class Reason(IntEnum):
    """Stop reason register values: 0 none, 1xx faults, 2xx stops that are not faults."""

    NONE = 0
    EMERGENCY_STOP = 101
    MOTOR_OVERLOAD = 102
    JAM = 103
    TOOL_BREAKAGE = 104
    LOW_HYDRAULIC_PRESSURE = 105
    STARVED = 201
    BLOCKED = 202
    SETUP = 203
    NO_ORDER = 204
    PLANNED_BREAK = 211
    PLANNED_MAINTENANCE = 212


FAULT_REASONS = (
    Reason.EMERGENCY_STOP,
    Reason.MOTOR_OVERLOAD,
    Reason.JAM,
    Reason.TOOL_BREAKAGE,
    Reason.LOW_HYDRAULIC_PRESSURE,
)
PLANNED_REASONS = (Reason.PLANNED_BREAK, Reason.PLANNED_MAINTENANCE)

# The reasons that, on a shared PackML number, name the canonical state. The agent's map uses
# exactly this to refine Suspended and Held; every other reason keeps the PackML state.
STATE_OF_REASON: dict[Reason, MachineState] = {
    Reason.STARVED: MachineState.STARVED,
    Reason.BLOCKED: MachineState.BLOCKED,
    Reason.SETUP: MachineState.SETUP,
}

# Planned or unplanned, by canonical state: what the ground truth says about each stop.
CATEGORY_OF_STATE: dict[MachineState, DowntimeCategory] = {
    MachineState.IDLE: DowntimeCategory.UNPLANNED,
    MachineState.STARVED: DowntimeCategory.UNPLANNED,
    MachineState.BLOCKED: DowntimeCategory.UNPLANNED,
    MachineState.FAULT: DowntimeCategory.UNPLANNED,
    MachineState.SETUP: DowntimeCategory.PLANNED,
    MachineState.PLANNED_STOP: DowntimeCategory.PLANNED,
}

# Status word (holding register 7): bit n is set while the machine is in STATUS_BITS[n].
STATUS_BITS: tuple[MachineState, ...] = (
    MachineState.RUNNING,
    MachineState.IDLE,
    MachineState.STARVED,
    MachineState.BLOCKED,
    MachineState.SETUP,
    MachineState.PLANNED_STOP,
    MachineState.FAULT,
)


def reason_code(reason: int) -> str | None:
    """The reason code the shipped tag map publishes for a reason register value (its name,
    e.g. 103 -> "jam"); None for 0, which means no reason."""
    return Reason(reason).name.lower() if reason else None


class Table(StrEnum):
    """Modbus data tables."""

    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE = "discrete"


class DType(StrEnum):
    """Value types on the wire; 32-bit types take two registers, high word first."""

    BOOL = "bool"
    UINT16 = "uint16"
    UINT32 = "uint32"
    FLOAT32 = "float32"

    @property
    def registers(self) -> int:
        return 2 if self in (DType.UINT32, DType.FLOAT32) else 1


@dataclass(frozen=True, slots=True)
class TagSpec:
    """One PLC tag of every machine: its snapshot field, OPC UA name and Modbus location."""

    field: str  # attribute of model.Snapshot
    name: str  # OPC UA browse name and node id suffix
    dtype: DType
    tables: tuple[Table, ...]  # bools sit at the same address in coils and discrete inputs
    address: int


BASE_TAGS: tuple[TagSpec, ...] = (
    TagSpec("packml", "State", DType.UINT16, (Table.HOLDING,), 0),
    TagSpec("reason", "StopReason", DType.UINT16, (Table.HOLDING,), 1),
    TagSpec("cycle_counter", "CycleCounter", DType.UINT16, (Table.HOLDING,), 2),
    TagSpec("parts", "Parts", DType.UINT32, (Table.HOLDING,), 3),
    TagSpec("runtime_s", "RuntimeSeconds", DType.UINT32, (Table.HOLDING,), 5),
    TagSpec("status_word", "StatusWord", DType.UINT16, (Table.HOLDING,), 7),
    TagSpec("spindle_speed", "SpindleSpeed", DType.FLOAT32, (Table.INPUT,), 0),
    TagSpec("temperature", "Temperature", DType.FLOAT32, (Table.INPUT,), 2),
    TagSpec("running", "Running", DType.BOOL, (Table.COIL, Table.DISCRETE), 0),
    TagSpec("faulted", "Faulted", DType.BOOL, (Table.COIL, Table.DISCRETE), 1),
)
HOLDING_COUNT = 8
EXTRA_BASE_ADDRESS = 4  # first input register of the extra analog tags


def extra_name(k: int) -> str:
    """OPC UA name of extra analog tag k."""
    return f"Extra{k:03d}"


def extra_address(k: int) -> int:
    """First input register of extra analog tag k (float32, two registers)."""
    return EXTRA_BASE_ADDRESS + 2 * k


def input_count(extra_tags: int) -> int:
    """Input registers a unit serves with `extra_tags` extra analog tags."""
    return EXTRA_BASE_ADDRESS + 2 * extra_tags


def machine_code(index: int) -> str:
    """The machine code of machine `index` (0-based): m001, m002, ..."""
    return f"m{index + 1:03d}"


def modbus_unit(index: int) -> int:
    """The Modbus unit id that serves machine `index`."""
    if not 0 <= index < MAX_MODBUS_MACHINES:
        raise ValueError(f"machine index {index} has no Modbus unit id (at most 247 machines)")
    return index + 1


def opcua_node_id(index: int, name: str) -> str:
    """The OPC UA node id string of tag `name` of machine `index`."""
    return f"ns={OPCUA_NS_INDEX};s={machine_code(index)}.{name}"
