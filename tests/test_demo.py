"""`mes demo` on embedded defaults: the whole pipeline, every published record landed, and
nothing left running afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from mes.services.ports import wait_for_port


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


def test_demo_runs_the_pipeline_and_everything_lands() -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MES_") and k != "DATABASE_URL"}
    out = subprocess.run([sys.executable, "-m", "mes.cli", "demo", "--seconds", "30"],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "organization acme" in out.stdout
    assert "gateway gw-north" in out.stdout and "machine m001" in out.stdout
    assert "every published record landed, exactly once" in out.stdout
    # The board's address and a ready token of the live plant's technician.
    assert re.search(r"board: http://127\.0\.0\.1:\d+/board", out.stdout)
    assert re.search(r"^  mes_[0-9a-f]{32}_\S+$", out.stdout, re.MULTILINE)
    total = re.search(r"total\s+published\s+(\d+)\s+landed\s+(\d+)\s+dead-lettered (\d+)",
                      out.stdout)
    assert total, out.stdout[-2000:]
    published, landed, dead = map(int, total.groups())
    assert published > 100 and landed == published and dead == 0
    # Stops were seen live, with their reasons and categories, on the machine's row.
    assert re.search(r"m00\d\W+(idle|starved|blocked|setup|planned_stop|fault)\W+[\d:]+\W+"
                     r"[\w-]+\W+(planned|unplanned)\b", out.stdout), out.stdout[-3000:]
    # Counters are whole numbers.
    assert not re.search(r"m00\d.*\d\.\d+\s*\W*$", out.stdout, re.MULTILINE)
    # Nothing left behind: no process of the demo's work folder or database, no listener.
    workdir = re.search(r"work folder (\S+)", out.stdout)[1]  # type: ignore[index]
    assert not _processes_mentioning(workdir)
    port = re.search(r"PostgreSQL .* on 127\.0\.0\.1:(\d+)", out.stdout)
    assert port and not wait_for_port(int(port[1]), timeout=0.5)
    for status in re.findall(r"http://127\.0\.0\.1:(\d+)/metrics", out.stdout):
        assert not wait_for_port(int(status), timeout=0.5)
    assert not Path(workdir).exists()
