"""Scheduled jobs (APScheduler 3.11 AsyncIOScheduler), started in the app's lifespan.

Every instance runs every job; the jobs are idempotent set-based statements, so that is safe.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from capacity.booking.sweep import sweep
from capacity.db.engine import Database
from capacity.errors import ServiceBusy
from capacity.notify.alerts import send_alerts

log = logging.getLogger("capacity.jobs")


async def run_sweep(db: Database) -> None:
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


def make_scheduler(db: Database) -> AsyncIOScheduler:
    # APScheduler logs every run at INFO; the sweep logs what it did itself.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        run_sweep, "interval", seconds=db.settings.sweep_seconds, args=[db], id="sweep", max_instances=1, coalesce=True
    )
    return scheduler
