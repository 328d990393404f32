"""`python -m mes.sim ...` is `mes sim ...` (used by SimulatorHandle's process mode)."""

import sys

from mes.sim.cli import main

sys.exit(main())
