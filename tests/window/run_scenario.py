"""Entry point a windowed Blender runs: ``blender FILE --python tests/window/run_scenario.py -- NAME``
runs the scenario ``NAME`` of scenarios.py with the driver (driver.py), then quits."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402
import scenarios  # noqa: E402

driver.main(getattr(scenarios, sys.argv[sys.argv.index("--") + 1]))
