"""`streamlit run app/main.py` with the process warmed at server start, off every page's script run.

    python -m app.serve [streamlit run options, e.g. --server.port 8501]

A Streamlit server imports a page's modules and opens the label store in the first session's script run, and
loads the checkpoint in the first Inspect visit: 2-4 s that the first reviewer after a start waited for. Here a
daemon thread does that work once per process while the server starts:

1. the modules every page imports (pandas, pyarrow, Plotly, SQLAlchemy, the store's queries), the store opened
   (URL check, migrations check) through app.ui.resources.get_sessions, the sidebar's model status read once;
2. the active model loaded into app.ui.resources.load_model (the same st.cache_resource entry the pages read), the
   Inspect worker thread's own copy (app.ui.explanation_panels.worker_model, on that thread) and the offline grounder
   Inspect's scene graph uses for posts without stored boxes (app.ui.resources.load_cam_grounder).

st.cache_resource computes a value once per key under a lock, so a page that asks for the model while it is
being loaded here waits for this load instead of starting a second one. Nothing here blocks a page's script run,
but a session that opens while the model loads shares the CPU with it: with $MRELENS_WARM_FILE set, the file is
written when warming has ended (one line: "warm <seconds>" or "failed <error>"), and the launcher says "serving"
only then.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from app.services.paths import REPO_ROOT

MAIN = REPO_ROOT / "app" / "main.py"
WARM_FILE_ENV = "MRELENS_WARM_FILE"


def log(message: str) -> None:
    print(f"[serve {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def warm_pages():
    """Import what the pages import, open the store and read the sidebar's status; returns the active model
    version (db.model_versions.ModelVersionInfo; None without an active model)."""
    import pandas as pd
    import plotly.graph_objects as go
    import plotly.io as pio
    import pyarrow as pa

    import app.services.store  # noqa: F401  (imported for its import cost, paid here and not in a page's run)
    from app.services.model_status import model_status
    from app.ui.resources import get_sessions

    # the first DataFrame -> Arrow and figure -> JSON conversions import their own helpers
    pa.Table.from_pandas(pd.DataFrame({"pair": [1], "text": ["x"]}))
    pio.to_json(go.Figure(go.Bar(x=[1], y=[1])))
    with get_sessions()() as session:
        return model_status(session).active


def warm_model(version) -> None:
    """The active checkpoint in the pages' cache, and the Inspect worker thread's own copy queued on that thread."""
    from app.ui.explanation_panels import background, worker_model
    from app.ui.resources import load_cam_grounder, load_version

    load_version(version)
    background().executor.submit(worker_model, version).result()
    # Inspect's scene graph grounds posts that have no stored boxes with it
    load_cam_grounder()


def warm() -> str:
    """Warm the process; returns the line written to $MRELENS_WARM_FILE."""
    t0 = time.perf_counter()
    try:
        active = warm_pages()
        log(f"pages' modules imported and the label store opened in {time.perf_counter() - t0:.1f} s")
        if active is not None:
            t1 = time.perf_counter()
            warm_model(active)
            log(f"active model {active.version_id} loaded in {time.perf_counter() - t1:.1f} s")
        outcome = f"warm {time.perf_counter() - t0:.2f}"
    except Exception as err:  # the page that needs the failing part shows the same error to the reviewer
        log(f"warming stopped: {type(err).__name__}: {err}")
        outcome = f"failed {type(err).__name__}: {err}"
    if os.environ.get(WARM_FILE_ENV):
        Path(os.environ[WARM_FILE_ENV]).write_text(outcome + "\n")
    return outcome


def start_warming() -> threading.Thread:
    thread = threading.Thread(target=warm, name="mrelens-warm", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    from streamlit.web import cli

    args = list(sys.argv[1:] if argv is None else argv)
    start_warming()
    sys.argv = ["streamlit", "run", str(MAIN), *args]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
