"""``python -m faceaudit.cli``."""

import sys

from faceaudit.cli import app

sys.exit(app())
