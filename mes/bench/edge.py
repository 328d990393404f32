"""`mes bench edge`: how many tag values per second one agent process sustains, at what cost.

    mes bench edge                        # 100 machines x 100 tags at 2 Hz, 60 s measured
    mes bench edge --minutes 10           # the flat-memory check
    mes bench edge --machines 50 --tags 50 --seconds 60    # 5,000 values/s offered
    mes bench edge --machines 110         # over 20,000 values/s that really change (below)
    mes bench edge --protocols modbus     # one protocol's cost alone (all machines on it)
    mes bench edge --protocols modbus --modbus-depth 4    # a poll's requests pipelined

The simulator (`mes sim`, half the machines on Modbus, half on OPC UA, ticking at the poll
rate) runs as two processes, one per protocol, so that its CPU is not the agent's and neither
server's work delays the other's replies; a private mosquitto takes what the agent publishes.
The agent runs in this process, with the simulator's tag map (every tag of every machine read;
the analog tags are telemetry with the map's deadband), so the figures include the whole path:
drivers, state derivation, the outbox and publishing.
After a warm-up the benchmark measures, over the same interval:

- tag values per second handed to the state layer (read by Modbus polls, or notified by OPC UA
  data-change subscriptions, which send only values that changed), against what is offered
  (machines x tags x rate), in total and per protocol: the OPC UA half offers only the values
  the simulator changes (about 92 % of them with 100 tags), so the total stays under the
  offer (about 19,200 values/s for the default 20,000);
- the CPU share of each simulator process (and the broker's): a simulator near 100 % of a
  core is saturated, and then it, not the agent, limits the rate;
- CPU seconds of this process (every thread: loop, publisher, outbox) per 1,000 values, and
  its share of one core;
- resident memory at the start and end of the measurement (and each minute in between);
- Modbus requests issued against the minimum the map needs: per poll and unit, the registers
  each table spans divided by the per-request limit, rounded up (exact here: the simulator's
  registers are contiguous), times the polls made;
- records handed to the outbox and acknowledged by the broker, and the backlog left;
- bytes on the wire (MQTT PUBLISH packets: header, topic, payload) per value read and per value
  published, in the form the agent publishes (`--wire-form`, columns by default) and, for the
  same messages, in the other form (each message's records encoded again, after the run), with
  the ratio: the columns form (envelope v 2) against the records form (v 1).

It ends with one JSON line (`{"bench": "edge", ...}`) for scripts, after a human summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import struct
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from core.wire import RECORD_KINDS, Kind, Topic, WireForm, decode, encode_piece, form_of, payload
from edge_agent.agent import EdgeAgent
from edge_agent.delivery.outbox import Outbox, StoredMessage
from edge_agent.drivers.modbus.config import ModbusDevice, ModbusTag
from edge_agent.drivers.modbus.driver import ModbusDriver
from edge_agent.tagmap import AgentConfig
from mes.services.broker import BrokerServer
from mes.sim.config import Assignment, Protocol, SimConfig
from mes.sim.handle import SimulatorHandle
from mes.sim.layout import BASE_TAGS
from mes.sim.tagmap import build

TARGET_VALUES_PER_S = 20_000
LIGHT_VALUES_PER_S = 5_000
LIGHT_CPU_SHARE = 0.25


@dataclass(frozen=True)
class BenchOptions:
    machines: int = 100
    tags: int = 100
    hz: float = 2.0
    seconds: float = 60.0
    warmup_s: float = 15.0
    seed: int = 1
    protocols: tuple[Protocol, ...] = (Protocol.MODBUS, Protocol.OPCUA)
    modbus_depth: int = 1
    wire_form: WireForm = WireForm.COLUMNS


@dataclass(frozen=True)
class _Sample:
    at: float
    cpu_s: float
    values: int
    records: int
    acked_records: int
    modbus_requests: int
    modbus_values: int
    rss_mb: float
    children_cpu_s: dict[str, float]
    slowdown: float


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def helper_processes() -> dict[str, int]:
    """This process's children worth watching, by role: the simulators and the broker."""
    roles = {}
    me = str(os.getpid())
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1] != me:
                continue
            argv = Path(entry.path, "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "mes.sim" in argv and "--protocols" in argv:
            roles[f"sim_{argv[argv.index('--protocols') + 1]}"] = int(entry.name)
        elif any(a.endswith("mosquitto") for a in argv[:1]):
            roles["broker"] = int(entry.name)
    return roles


def _sample(agent: EdgeAgent, helpers: dict[str, int]) -> _Sample:
    modbus = [d.health() for d in agent.drivers.values() if isinstance(d, ModbusDriver)]
    return _Sample(
        at=time.monotonic(),
        cpu_s=time.process_time(),
        values=agent.values_in,
        records=sum(agent.records_out.values()),
        acked_records=agent.publisher.stats().acked_records,
        modbus_requests=sum(h.requests for h in modbus),
        modbus_values=sum(h.reads + h.read_errors for h in modbus),
        rss_mb=_rss_mb(),
        children_cpu_s={role: _cpu_s(pid) for role, pid in helpers.items()},
        slowdown=agent.pace.factor,
    )


class WireTap:
    """Keeps the payload of every message the outbox assembles while `on`, in a file (holding
    them would grow the agent's memory), to size them in both wire forms after the run.

    It wraps `outbox.assemble`, which makes each message once: one write per message (tens a
    second) is all it costs the agent while measuring.
    """

    _HEAD = struct.Struct("<BI")

    def __init__(self, path: Path, outbox: Outbox) -> None:
        self.on = False
        self._form = outbox.form
        self._path = path
        self._file: IO[bytes] = path.open("wb")
        assemble = outbox.assemble

        def tapped(*args: Any, **kwargs: Any) -> list[StoredMessage]:
            messages = assemble(*args, **kwargs)
            if self.on:
                for m in messages:
                    self._file.write(self._HEAD.pack(RECORD_KINDS.index(m.kind), len(m.payload)))
                    self._file.write(m.payload)
            return messages

        outbox.assemble = tapped  # type: ignore[method-assign]

    def sizes(self, topics: dict[Kind, str], v5: bool) -> dict[str, Any]:
        """Messages and records seen, and their bytes in each form: payloads and PUBLISH
        packets. The form published is measured; the other is the same records encoded."""
        self._file.close()
        data = self._path.read_bytes()
        totals = dict.fromkeys(["messages", "records", *(f"{f}_{what}" for f in WireForm
                                                         for what in ("payload", "packet"))], 0)
        at = 0
        while at < len(data):
            index, length = self._HEAD.unpack_from(data, at)
            at += self._HEAD.size
            kind, sent = RECORD_KINDS[index], data[at : at + length]
            at += length
            envelope = decode(kind, sent)
            totals["messages"] += 1
            totals["records"] += len(envelope.records)  # type: ignore[attr-defined]
            for form in WireForm:
                if form_of(kind, form) is form_of(kind, self._form):
                    size = len(sent)
                else:
                    size = len(payload(kind, form, envelope.gateway, envelope.seq,
                                       envelope.sent_at, [encode_piece(
                                           kind, form, envelope.records)]))  # type: ignore[attr-defined]
                totals[f"{form}_payload"] += size
                totals[f"{form}_packet"] += packet_bytes(topics[kind], size, v5)
        return totals


def packet_bytes(topic: str, payload_bytes: int, v5: bool) -> int:
    """The size of a QoS 1 MQTT PUBLISH packet: fixed header, topic, packet id, properties
    (MQTT 5: none, one length byte), payload."""
    remaining = 2 + len(topic.encode()) + 2 + (1 if v5 else 0) + payload_bytes
    length_bytes = next(n for n in (1, 2, 3, 4) if remaining < 128**n)  # a varint
    return 1 + length_bytes + remaining


def minimum_requests_per_poll(config: AgentConfig) -> tuple[int, int]:
    """(requests one poll of every Modbus unit needs at least, tags those polls read), from
    the registers each (unit, table) spans and the per-request limits."""
    spans: dict[tuple[str, int, str], list[int]] = defaultdict(lambda: [math.inf, -1])
    limits: dict[tuple[str, int, str], int] = {}
    devices = {d.name: d for d in config.devices if isinstance(d, ModbusDevice)}
    tags = 0
    for m in config.machines:
        device = devices.get(m.device)
        if device is None:
            continue
        for t in m.tags.values():
            assert isinstance(t, ModbusTag)
            tags += 1
            key = (device.name, t.unit_id if t.unit_id is not None else device.unit_id, t.table)
            span = spans[key]
            span[0], span[1] = min(span[0], t.address), max(span[1], t.address + t.count)
            w = device.workarounds
            limits[key] = w.max_bits_per_request if t.table.is_bits else w.max_registers_per_request
    return sum(math.ceil((hi - lo) / limits[k]) for k, (lo, hi) in spans.items()), tags


def bench_config(
    sim: SimConfig, broker: BrokerServer, outbox: Path, hz: float, modbus_depth: int = 1,
    wire_form: WireForm = WireForm.COLUMNS,
) -> AgentConfig:
    """The simulator's tag map for `sim`, publishing to `broker` in `wire_form`, Modbus
    requests pipelined `modbus_depth` deep."""
    data = build(sim, poll_interval_s=1 / hz)
    data["broker"].update(port=broker.port, wire_form=wire_form.value)
    data["outbox"]["path"] = str(outbox)
    for device in data["devices"]:
        if device["protocol"] == "modbus":
            device["max_outstanding_requests"] = modbus_depth
    return AgentConfig.model_validate(data)


async def _measure(
    agent: EdgeAgent, opts: BenchOptions, out: Any, helpers: dict[str, int], tap: WireTap
) -> tuple[list[_Sample], int]:
    """Samples from the end of the warm-up to the end, and the outbox's backlog then."""
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        deadline = time.monotonic() + opts.warmup_s
        while time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.5)
        tap.on = True
        samples = [_sample(agent, helpers)]
        print(f"measuring for {opts.seconds:g} s ...", file=out, flush=True)
        end = samples[0].at + opts.seconds
        step = 60.0 if opts.seconds >= 120 else 10.0
        while (now := time.monotonic()) < end and not task.done():
            await asyncio.sleep(min(step - (now - samples[0].at) % step, end - now))
            s = _sample(agent, helpers)
            prev = samples[-1]
            rate = (s.values - prev.values) / (s.at - prev.at)
            share = (s.cpu_s - prev.cpu_s) / (s.at - prev.at)
            others = "  ".join(
                f"{role} {(cpu - prev.children_cpu_s[role]) / (s.at - prev.at):4.0%}"
                for role, cpu in s.children_cpu_s.items()
            )
            print(f"  {s.at - samples[0].at:6.0f} s  {rate:9.0f} values/s  cpu {share:5.0%}"
                  f"  rss {s.rss_mb:6.1f} MB  {others}", file=out, flush=True)  # fmt: skip
            samples.append(s)
        tap.on = False
        depth = agent.outbox.depth()
        return samples, depth.records + depth.messages
    finally:
        stop.set()
        await task


def run_bench(opts: BenchOptions, out: Any = sys.stdout) -> dict[str, Any]:
    """Run the benchmark; prints progress and the summary to `out`, returns the results."""
    extra = opts.tags - len(BASE_TAGS)
    if extra < 0:
        raise ValueError(f"--tags must be at least {len(BASE_TAGS)} (the simulator's own tags)")
    # One simulator process per protocol, the same seeded model in each: the map reads the
    # first half of the machines from the Modbus one and the rest from the OPC UA one. (A
    # simulator running one protocol serves every machine on it; the agent ignores the rest.)
    # With one protocol, every machine is on it.
    sim_config = SimConfig(
        machines=opts.machines, seed=opts.seed, extra_tags=extra, tick_s=1 / opts.hz,
        assignment=Assignment.SPLIT, protocols=opts.protocols,
    ).with_ports()  # fmt: skip
    per_protocol = [sim_config.model_copy(update={"protocols": (p,)}) for p in opts.protocols]
    with tempfile.TemporaryDirectory(prefix="mes-bench-edge-") as tmp:
        work = Path(tmp)
        print(f"starting mosquitto and the simulators ({opts.machines} machines x {opts.tags} "
              f"tags, {opts.hz:g} Hz) ...", file=out, flush=True)  # fmt: skip
        with ExitStack() as running:
            broker = running.enter_context(BrokerServer.create(work))
            for sim in per_protocol:
                running.enter_context(SimulatorHandle(sim, process=True))
            config = bench_config(sim_config, broker, work / "outbox.sqlite", opts.hz,
                                  opts.modbus_depth, opts.wire_form)  # fmt: skip
            min_per_poll, modbus_tags = minimum_requests_per_poll(config)
            agent = EdgeAgent(config)
            tap = WireTap(work / "payloads.bin", agent.outbox)
            planned = sum(len(d.plan) for d in agent.drivers.values()
                          if isinstance(d, ModbusDriver))  # fmt: skip
            rss_before = _rss_mb()
            helpers = helper_processes()
            samples, backlog = asyncio.run(_measure(agent, opts, out, helpers, tap))
            gw = config.gateway
            topics = {k: str(Topic(gw.org, gw.plant, gw.gateway, k)) for k in RECORD_KINDS}
            wire = tap.sizes(topics, config.broker.v5)
    results = _results(opts, samples, rss_before, min_per_poll, modbus_tags)
    return {**results,
            **_wire_results(wire, samples[-1].values - samples[0].values, opts.wire_form),
            "modbus_plan_requests_per_poll": planned,
            "modbus_min_requests_per_poll": min_per_poll,
            "outbox_backlog_records": backlog}  # fmt: skip


def _wire_results(wire: dict[str, Any], values: int, form: WireForm) -> dict[str, Any]:
    """Bytes per value read and per value published in both forms, and their ratio."""
    records = wire["records"]
    per = {f.value: {
        "packet_bytes_per_value_read": round(wire[f"{f}_packet"] / values, 2) if values else None,
        "packet_bytes_per_value_published":
            round(wire[f"{f}_packet"] / records, 2) if records else None,
        "payload_bytes_per_value_published":
            round(wire[f"{f}_payload"] / records, 2) if records else None,
    } for f in WireForm}  # fmt: skip
    old, new = wire[f"{WireForm.RECORDS}_packet"], wire[f"{WireForm.COLUMNS}_packet"]
    return {"wire_form": form.value, "wire_messages": wire["messages"], "wire_records": records,
            "wire": per, "wire_columns_to_records_ratio": round(new / old, 3) if old else None}


def _results(
    opts: BenchOptions, samples: list[_Sample], rss_before: float, min_per_poll: int, tags: int
) -> dict[str, Any]:
    a, b = samples[0], samples[-1]
    elapsed = b.at - a.at
    values = b.values - a.values
    cpu = b.cpu_s - a.cpu_s
    polls = (b.modbus_values - a.modbus_values) / tags if tags else 0.0
    modbus_values = b.modbus_values - a.modbus_values
    minimum = polls * min_per_poll
    requests = b.modbus_requests - a.modbus_requests
    return {
        "bench": "edge",
        "machines": opts.machines,
        "tags_per_machine": opts.tags,
        "hz": opts.hz,
        "seconds": round(elapsed, 1),
        "offered_values_per_s": opts.machines * opts.tags * opts.hz,
        "values_per_s": round(values / elapsed, 1),
        "modbus_values_per_s": round(modbus_values / elapsed, 1),
        "opcua_values_per_s": round((values - modbus_values) / elapsed, 1),
        "modbus_polls_per_s": round(polls / elapsed, 3),
        "cpu_s_per_1000_values": round(cpu / values * 1000, 4) if values else None,
        "cpu_share_of_one_core": round(cpu / elapsed, 3),
        "helper_cpu_share_of_one_core": {
            role: round((cpu_s - a.children_cpu_s[role]) / elapsed, 3)
            for role, cpu_s in b.children_cpu_s.items()
        },
        "protocols": [p.value for p in opts.protocols],
        "modbus_depth": opts.modbus_depth,
        "poll_slowdown_end": round(b.slowdown, 2),
        "rss_mb_before_agent": round(rss_before, 1),
        "rss_mb_start": round(a.rss_mb, 1),
        "rss_mb_end": round(b.rss_mb, 1),
        "rss_mb_samples": [round(s.rss_mb, 1) for s in samples],
        "modbus_requests": requests,
        "modbus_min_requests": round(minimum),
        "modbus_requests_ratio": round(requests / minimum, 4) if minimum else None,
        "records_per_s": round((b.records - a.records) / elapsed, 1),
        "acked_records_per_s": round((b.acked_records - a.acked_records) / elapsed, 1),
    }


def summary(r: dict[str, Any]) -> str:
    """The results for a person, with the issue's targets."""
    cpu_per_value = r["cpu_s_per_1000_values"]
    helpers = ", ".join(f"{k} {v:.1%}" for k, v in r["helper_cpu_share_of_one_core"].items())
    lines = [
        f"edge agent: {r['machines']} machines x {r['tags_per_machine']} tags at {r['hz']:g} Hz "
        f"({r['offered_values_per_s']:,.0f} values/s offered), {r['seconds']:g} s measured",
        f"  tag values/s sustained   {r['values_per_s']:12,.0f}"
        f"   target >= {TARGET_VALUES_PER_S:,}",
        f"  CPU share of one core    {r['cpu_share_of_one_core']:12.1%}"
        f"   target < {LIGHT_CPU_SHARE:.0%} at {LIGHT_VALUES_PER_S:,} values/s",
        f"  CPU s per 1,000 values   {cpu_per_value:12.4f}" if cpu_per_value is not None else "",
        f"  by protocol              Modbus {r['modbus_values_per_s']:,.0f}/s (each unit polled "
        f"{r['modbus_polls_per_s']:.2f} times/s of {r['hz']:g}, {r['modbus_depth']} request(s) "
        f"in flight per unit, poll slow-down {r['poll_slowdown_end']:g}x at the end), OPC UA "
        f"{r['opcua_values_per_s']:,.0f}/s (changed values only)",
        f"  helpers' share of a core {helpers} (a simulator near 100 % is saturated: then it "
        "limits the rate)",
        f"  resident memory (MB)     {r['rss_mb_start']:12.1f} -> {r['rss_mb_end']:.1f}",
        f"  Modbus requests          {r['modbus_requests']:12,} / minimum "
        f"{r['modbus_min_requests']:,} = {r['modbus_requests_ratio']} (per poll of every unit: "
        f"{r['modbus_plan_requests_per_poll']} planned, {r['modbus_min_requests_per_poll']} "
        "minimum; polls in flight at the window's edges blur the ratio)",
        f"  records/s to the outbox  {r['records_per_s']:12,.0f}   acknowledged "
        f"{r['acked_records_per_s']:,.0f}/s, backlog at the end {r['outbox_backlog_records']:,}",
        *_wire_summary(r),
    ]
    return "\n".join(line for line in lines if line)


def _wire_summary(r: dict[str, Any]) -> list[str]:
    wire, sent = r["wire"], r["wire_form"]
    if not r["wire_records"]:
        return ["  bytes on the wire        no message assembled while measuring"]
    lines = [f"  bytes on the wire        MQTT packets, {r['wire_messages']:,} messages of "
             f"{r['wire_records']:,} records; published as {sent}, the other form re-encoded"]
    for form in WireForm:
        w = wire[form.value]
        lines.append(f"    {form.value:8} (v {1 if form is WireForm.RECORDS else 2})"
                     f"  {w['packet_bytes_per_value_read']:6.1f} per value read"
                     f"  {w['packet_bytes_per_value_published']:6.1f} per value published"
                     f"  (payload {w['payload_bytes_per_value_published']:.1f})")
    lines.append(f"    columns / records      {r['wire_columns_to_records_ratio']:6.3f}")
    return lines


def register_bench(benches: Any) -> None:
    """Add `mes bench edge` to the `mes bench` group."""
    p = benches.add_parser(
        "edge",
        help="tag values per second one agent sustains, CPU, memory, Modbus requests",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = BenchOptions()
    p.add_argument("--machines", type=int, default=d.machines, help=f"(default {d.machines})")
    p.add_argument("--tags", type=int, default=d.tags, help=f"per machine (default {d.tags})")
    p.add_argument("--hz", type=float, default=d.hz, help=f"reads per second (default {d.hz:g})")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=d.seconds,
                        help=f"measured time (default {d.seconds:g})")  # fmt: skip
    length.add_argument("--minutes", type=float, help="measured time in minutes")
    p.add_argument("--warmup", type=float, default=d.warmup_s,
                   help=f"seconds before measuring (default {d.warmup_s:g})")  # fmt: skip
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--protocols", choices=["both", *(p.value for p in Protocol)], default="both",
                   help="simulate and read machines on both protocols (split) or on one")
    p.add_argument("--modbus-depth", type=int, default=d.modbus_depth,
                   help="max_outstanding_requests of the Modbus device (default 1)")
    p.add_argument("--wire-form", choices=[f.value for f in WireForm], default=d.wire_form.value,
                   help="the agent's broker.wire_form (default columns); bytes are reported for "
                        "both forms either way")  # fmt: skip
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    from core.logging import configure

    configure("warning", "text")
    seconds = args.minutes * 60 if args.minutes is not None else args.seconds
    protocols = tuple(Protocol) if args.protocols == "both" else (Protocol(args.protocols),)
    opts = BenchOptions(machines=args.machines, tags=args.tags, hz=args.hz, seconds=seconds,
                        warmup_s=args.warmup, seed=args.seed, protocols=protocols,
                        modbus_depth=args.modbus_depth,
                        wire_form=WireForm(args.wire_form))  # fmt: skip
    results = run_bench(opts)
    print(summary(results))
    print(json.dumps(results))
    return 0
