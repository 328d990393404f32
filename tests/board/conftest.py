"""The board under test: `mes api` as a real process (tests/api/conftest.py) driven by Debian's
chromium through Playwright, never a browser Playwright downloads. Screenshots of each page go
to build/board-screenshots/ (git-ignored, emptied at the start of each run, printed at the end)
for a person to look at."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from core.staging import write_staged
from core.tenancy import Tenant, tenant_transaction
from tests.api.conftest import Api, api, api_users  # noqa: F401  (fixtures used here)
from tests.fixtures.database import TestDatabase
from tests.fixtures.services import ON_CI
from tests.fixtures.tenants import Org

SHOTS = Path(__file__).resolve().parents[2] / "build" / "board-screenshots"

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="playwright (the dev extra) is not installed")


def _install_chromium() -> str | None:
    """Install Debian's chromium with the machine's package manager when we may (root and
    apt-get); None when it is there afterwards, else why not."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "no chromium, and no apt-get as root to install it"
    print("\ninstalling Debian's chromium for the board tests (once) ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900,
                              check=False)
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}"
    return None if Path(CHROMIUM).exists() else f"chromium installed but not at {CHROMIUM}"


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if not Path(CHROMIUM).exists() and (why := _install_chromium()):
        if ON_CI:
            pytest.fail(f"CI must run the board tests in a browser: {why}")
        pytest.skip(f"board tests need Debian's chromium: {why}")
    with playwright_api.sync_playwright() as p:
        # launch() gives every run a fresh temporary profile; contexts isolate the sessions.
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


class Board:
    """Browser sessions (each its own profile and cookies) against the running API."""

    def __init__(self, server: Api, browser: object, shots: Path) -> None:
        self.api = server
        self.browser = browser
        self.shots = shots
        self.contexts: list[object] = []

    def session(self, width: int = 1280, height: int = 900) -> object:
        context = self.browser.new_context(viewport={"width": width, "height": height},
                                           base_url=self.api.base_url)
        self.contexts.append(context)
        return context.new_page()

    def signed_in(self, user: str, **kw: int) -> object:
        page = self.session(**kw)
        page.goto("/board/login")
        page.get_by_label("Your API token").fill(self.api.users.tokens[user])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/board")
        return page

    @staticmethod
    def overflow(page: object) -> int:
        """Pixels of horizontal scroll the page needs (0 when it fits its viewport)."""
        return page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")

    def shot(self, page: object, name: str) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture(scope="session")
def shots() -> Iterator[Path]:
    """This run's screenshot folder, emptied first so that it shows this run only."""
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    yield SHOTS
    print(f"\nboard screenshots: {SHOTS}")


@pytest.fixture
def board(api: Api, chromium: object, shots: Path) -> Iterator[Board]:  # noqa: F811
    b = Board(api, chromium, shots)
    try:
        yield b
    finally:
        b.close()


def write_state(database: TestDatabase, org: Org, plant_code: str, ts: datetime,
                state: str, reason: str | None = None) -> None:
    """A state row through the ingest's write path (COPY -> staging -> definer function)
    under the machine's tenant, as the ingest writes it."""
    machine, plant = org.machines[plant_code], org.machine_plant[plant_code]
    with psycopg.connect(database.app_url) as conn, tenant_transaction(conn, Tenant(org.id)):
        assert write_staged(conn, "machine_status",
                            [(org.id, plant, machine, ts, state, reason)]) == 1
