"""One production worker: the Faust app assembled from settings, agents and web routes.

``run`` is ``kairos worker``. The modules beside the assembly are what the worker needs
around the agents: the Faust app factory with its fixes and the Tansu accommodations, the
HTTP routes, and the gauges read at scrape time (consumer lag, state sizes).
"""

from app.worker.assembly import build, run, runtime_config
from app.worker.faust_app import create_app

__all__ = ["build", "create_app", "run", "runtime_config"]
