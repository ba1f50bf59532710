"""Score a blue team by the CAGE-2 protocol: `python evaluation.py [SUBMISSION_OR_CHECKPOINT] [OUT_DIR] [options]`.

With no arguments it scores the shipped paper-small team (submissions/dial-sau-paper-small.zip; the `react`
heuristic where a checkout lacks it) into results/; `--help` lists the options.
"""

import sys

from cagekit.evaluation import cli_main

if __name__ == "__main__":
    sys.exit(cli_main(sys.argv[1:]))
