"""`python -m app.label_errors`: Find label errors from the command line.

The work and its command line live in app.services.label_errors; this entry keeps the command where the README names it.
"""

import sys

from app.services.label_errors import main

if __name__ == "__main__":
    sys.exit(main())
