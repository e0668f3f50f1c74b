"""``kairos console``: the campaign console for marketing ops, apart from the workers.

The pages (:mod:`app.console.web`) read the store through the contract in
:mod:`app.console.model`; :func:`run_console` assembles store, follower and web server.
"""

from app.console.model import (
    WINDOWS,
    CampaignDetail,
    CampaignQueries,
    CampaignRow,
    StoreStatus,
    Window,
)
from app.console.run import run_console
from app.console.web import Console, create_app

__all__ = [
    "WINDOWS",
    "CampaignDetail",
    "CampaignQueries",
    "CampaignRow",
    "Console",
    "StoreStatus",
    "Window",
    "create_app",
    "run_console",
]
