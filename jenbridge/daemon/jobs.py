"""The bounded job queue and the one worker thread that runs model jobs.

One job runs at a time (the engine's sessions already use every core); up to `queue_size`
more wait in order. A full queue refuses the next job at once (`submit` returns False and the
server answers /jb/error "busy"): nothing is ever dropped silently. Every job ends with exactly
one final report through `report(job, "done" | "error", ...)`: done, or an error ("cancelled",
"shutting_down", "bad_audio", "engine_error", "write_failed").

Cancelling a queued job removes it from the queue; cancelling the running job sets its event,
which the engine's should_stop polls before every sampler step, so it stops within one step.
`stop()` (shutdown) cancels everything the same way and joins the worker, so a result is either
written completely or not at all.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jenbridge.daemon.protocol import Request

log = logging.getLogger("jenbridge.daemon")
KEEP_FINISHED = 32  # finished jobs /jb/status still lists

Report = Callable[["Job", str, tuple[Any, ...]], None]
Runner = Callable[["Job"], tuple[Any, ...]]  # job -> the /jb/done arguments after the id


class JobFailed(Exception):
    """A job ended with an error reply; `code` goes into /jb/error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Job:
    """One request in the queue. `reply_to` is the (host, port) its replies go to."""

    request: Request
    reply_to: tuple[str, int]
    state: str = "queued"  # queued | running | done | error | cancelled
    progress: float = 0.0
    stage: str = "queued"
    submitted: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def job_id(self) -> str:
        return self.request.job_id


class JobQueue:
    """A bounded FIFO of jobs and the worker thread that runs them with `runner`."""

    def __init__(self, size: int, runner: Runner, report: Report) -> None:
        self.size = size
        self.runner = runner
        self.report = report
        self.lock = threading.Lock()
        self.wakeup = threading.Condition(self.lock)
        self.waiting: collections.deque[Job] = collections.deque()
        self.running: Job | None = None
        self.finished: collections.deque[Job] = collections.deque(maxlen=KEEP_FINISHED)
        self.closed = False
        self.thread = threading.Thread(target=self._work, name="jenbridge-worker", daemon=True)
        self.thread.start()

    def submit(self, job: Job, accepted: Callable[[int], None]) -> int | None:
        """Queue a job; its queue position (0 = runs next), or None when the queue is full
        or closed (the caller answers "busy" / "shutting_down"). `accepted(position)` is
        called before the worker can see the job, so /jb/accepted precedes its progress."""
        with self.lock:
            if self.closed or len(self.waiting) >= self.size:
                return None
            position = len(self.waiting) + (self.running is not None)
            accepted(position)
            self.waiting.append(job)
            self.wakeup.notify()
            return position

    def find(self, job_id: str) -> Job | None:
        with self.lock:
            for job in (self.running, *self.waiting):
                if job is not None and job.job_id == job_id:
                    return job
        return None

    def cancel(self, job_id: str, acknowledge: Callable[[str], None]) -> str | None:
        """Cancel a job by id: "cancelled" (was queued: its error reply follows at once),
        "stopping" (running: it stops within one sampler step), None (no such live job).
        `acknowledge(outcome)` is called first, so the cancel's answer precedes the job's."""
        with self.lock:
            if self.running is not None and self.running.job_id == job_id:
                acknowledge("stopping")
                self.running.cancel.set()
                return "stopping"
            for job in self.waiting:
                if job.job_id == job_id:
                    self.waiting.remove(job)
                    break
            else:
                return None
            acknowledge("cancelled")
        self._finish(job, "cancelled", "error", ("cancelled", "cancelled while queued"))
        return "cancelled"

    def status(self) -> list[tuple[str, str, float]]:
        """(job id, state, progress) of the running, the waiting and recently finished jobs."""
        with self.lock:
            jobs = [j for j in (self.running, *self.waiting) if j is not None]
            jobs += list(self.finished)[::-1]
        return [(j.job_id, j.state, j.progress) for j in jobs]

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new jobs, cancel the waiting ones ("shutting_down") and the running one,
        and wait for the worker to finish what it was doing."""
        with self.lock:
            self.closed = True
            waiting = list(self.waiting)
            self.waiting.clear()
            if self.running is not None:
                self.running.cancel.set()
            self.wakeup.notify_all()
        for job in waiting:
            self._finish(job, "cancelled", "error", ("shutting_down", "the daemon is stopping"))
        self.thread.join(timeout)

    def _finish(self, job: Job, state: str, kind: str, args: tuple[Any, ...]) -> None:
        job.state = state
        with self.lock:
            self.finished.append(job)
        try:
            self.report(job, kind, args)
        except Exception:  # a failed send must not kill the worker
            log.exception("could not send the final reply of job %s", job.job_id)

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.waiting and not self.closed:
                    self.wakeup.wait()
                if not self.waiting:  # closed and drained
                    return
                job = self.waiting.popleft()
                self.running = job
                job.state = "running"
            try:
                done = self.runner(job)
            except JobFailed as err:
                state = "cancelled" if err.code in ("cancelled", "shutting_down") else "error"
                result: tuple[str, tuple[Any, ...]] = ("error", (err.code, str(err)))
            except Exception as err:  # the engine or the writer failed: report, keep serving
                log.exception("job %s failed", job.job_id)
                state, result = "error", ("error", ("engine_error", f"{type(err).__name__}: "
                                                    f"{err}"[:500]))
            else:
                state, result = "done", ("done", done)
            with self.lock:
                self.running = None
            self._finish(job, state, *result)
