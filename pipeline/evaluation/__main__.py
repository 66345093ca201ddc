"""``python -m pipeline.evaluation CONLLU ...``: the same as ``qkgraph eval``."""

import sys

from pipeline.evaluation.run import main

sys.exit(main())
