"""``python -m npmobilenet`` is the ``npmobilenet`` command."""
import sys

from .cli import main

sys.exit(main())
