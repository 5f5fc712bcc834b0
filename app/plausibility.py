"""`python -m app.plausibility --dataset NAME --model VERSION_OR_FOLDER [--split val] [--limit N]`: the plausibility
table (every explanation method against the stored rationales, faithfulness beside it) of one model version.

The work and its command line live in app.services.plausibility; the Experiments page's `plausibility` job runs
the same function.
"""

import sys

from app.services.plausibility import main

if __name__ == "__main__":
    sys.exit(main())
