"""`mes demo` on embedded defaults: starts its own database, seeds, prints, leaves nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from mes.services.ports import wait_for_port


def test_demo_prints_the_seeded_organization() -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MES_") and k != "DATABASE_URL"}
    out = subprocess.run([sys.executable, "-m", "mes.cli", "demo"], capture_output=True,
                         text=True, env=env, timeout=180, check=False)
    assert out.returncode == 0, out.stderr
    assert "organization acme" in out.stdout
    for plant in ("north", "south"):
        assert f"plant {plant}" in out.stdout
        assert f"gateway gw-{plant}" in out.stdout
        assert f"machine {plant}-m1" in out.stdout
    port = re.search(r"on 127\.0\.0\.1:(\d+)", out.stdout)
    assert port, out.stdout
    assert not wait_for_port(int(port[1]), timeout=0.5), "the demo left PostgreSQL running"
