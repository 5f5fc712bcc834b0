"""`python -m app.prepare`: import the data and queue the trainings, without serving.

The work and its command line live in app.services.prepare; this entry keeps the command where the README names it.
"""

import sys

from app.services.prepare import main

if __name__ == "__main__":
    sys.exit(main())
