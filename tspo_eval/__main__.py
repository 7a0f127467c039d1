"""``python -m tspo_eval`` is ``tspo-eval``."""
import sys

from tspo_eval.cli import main

sys.exit(main())
