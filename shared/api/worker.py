"""The queue worker (`jobs` queue) and the recovery timer."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.jobs.messages import Delivery
from shared.services import services
from shared.storage.clients import JOBS_QUEUE

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="msg", queue_name=JOBS_QUEUE, connection="AzureWebJobsStorage")
def run_job(msg: func.QueueMessage) -> None:
    """Run one job; raising leaves the message for a retry (then `jobs-poison`)."""
    body = msg.get_body().decode("utf-8", errors="replace")
    services().jobs.run(
        body, Delivery(message_id=msg.id or "", dequeue_count=msg.dequeue_count or 1)
    )


# Every minute: enqueue jobs accepted but never enqueued, and jobs whose worker died for good;
# charge jobs a dead process left owed; give back quota held for jobs never accepted; chain
# the ledger's new entries; delete expired idempotency keys.
@bp.timer_trigger(arg_name="timer", schedule="0 * * * * *", run_on_startup=False)
def recover_jobs(timer: func.TimerRequest) -> None:
    svc = services()
    recovered = svc.jobs.recover()
    if recovered:
        logger.warning("recovery timer re-enqueued %d job(s)", recovered)
    settled = svc.jobs.settle(svc.network.exists)
    if settled:
        logger.warning("recovery timer settled %d owed charge(s) or quota hold(s)", settled)
    sealed = svc.ledger.seal()
    if sealed:
        logger.info("recovery timer sealed %d ledger entr(y/ies)", sealed)
    swept = svc.idempotency.sweep()
    if swept:
        logger.info("recovery timer deleted %d expired idempotency key(s)", swept)
