"""Scheduled jobs (APScheduler 3.11 AsyncIOScheduler), started in the app's lifespan.

Every process schedules the sweep, but only the holder of the sweeper lock (capacity.notify.leader) runs
it; the jobs are idempotent set-based statements besides, so two running at once would still be safe.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from capacity.booking.sweep import sweep
from capacity.db.engine import Database
from capacity.errors import ServiceBusy
from capacity.logs import with_run_id
from capacity.notify.alerts import send_alerts
from capacity.notify.leader import SweepLock

log = logging.getLogger("capacity.jobs")


async def run_sweep(db: Database, lock: SweepLock) -> None:
    if not await lock.held():
        return  # another process is the sweeper
    try:
        result = await sweep(db)
        alerts = await send_alerts(db)
    except ServiceBusy:
        log.warning("sweep skipped: database busy; the next run will catch up")
        return
    if result.expired or result.breached or alerts:
        log.info(
            "sweep: %d holds expired, %d s136 breaches, %d alerts", len(result.expired), len(result.breached), alerts
        )


def make_scheduler(db: Database, lock: SweepLock) -> AsyncIOScheduler:
    # APScheduler logs every run at INFO; the sweep logs what it did itself.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        # Each run's lines, and the events it publishes, under an id of that run's own.
        with_run_id(run_sweep, "sweep"),
        "interval",
        seconds=db.settings.sweep_seconds,
        args=[db, lock],
        id="sweep",
        max_instances=1,
        coalesce=True,
    )
    return scheduler
