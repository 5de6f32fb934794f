"""``python -m app.sim`` runs the emulators, like ``perpterm sim``."""

import sys

from app.sim.runner import main

sys.exit(main())
