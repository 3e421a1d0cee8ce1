"""The app as the browser tests serve it: settings from the environment, the clock started at a fixed
instant (CAPACITY_TEST_NOW) and running at the real rate, so pages and server agree on the day.

    python -m uvicorn --factory --app-dir tests support.page_server:create_app
"""

from __future__ import annotations

import os
from datetime import datetime

from litestar import Litestar

from capacity.app import create_app as create_capacity_app
from capacity.clock import ShiftedClock


def create_app() -> Litestar:
    return create_capacity_app(clock=ShiftedClock(datetime.fromisoformat(os.environ["CAPACITY_TEST_NOW"])))
