"""Score a blue team by the CAGE-2 protocol: `python evaluation.py [SUBMISSION_OR_CHECKPOINT] [OUT_DIR] [options]`.

With no arguments it scores the `react` heuristic on paper-small into results/; `--help` lists the options.
"""

import sys

from cagekit.evaluation import cli_main

if __name__ == "__main__":
    sys.exit(cli_main(sys.argv[1:]))
