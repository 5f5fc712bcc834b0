"""`python -m app.retrain`: retrain on curated labels.

The work and its command line live in app.services.retrain; this entry keeps the command where the README names it.
"""

import sys

from app.services.retrain import main

if __name__ == "__main__":
    sys.exit(main())
