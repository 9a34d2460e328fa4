"""The ethics board's decision, watched while the service runs.

The gate is checked when the service starts; a board that withdraws its approval later
(``overblik review ... --reject``) must not have to find and restart every server. The
watch reads the gate for the served version again every few seconds, in a thread of its
own, and the service answers no scores (503, ``/readyz`` too) while the version may not
serve; it serves again when the board approves it again. It fails closed: a version gone
from the registry is withdrawn at once, and a decision that cannot be read for
``grace_seconds`` (a damaged record, a registry away) withdraws it too.
"""

from __future__ import annotations

import logging
import threading
import time

from overblik.experiments._approval import Approval

__all__ = ["ApprovalWatch"]

logger = logging.getLogger("overblik.serving")


class ApprovalWatch:
    """Re-reads the gate of ``name`` version ``version`` every ``seconds``.

    Parameters
    ----------
    name, version
        The served registered model version.
    tracking_uri
        Its registry.
    seconds
        Time between two looks.
    approval
        The board's decision the service started with.
    fairness_passed
        The fairness audit's verdict that decision was made with (None: no audit).
    grace_seconds
        How long the decision may be unreadable before the version is withdrawn (default:
        a minute, or three looks if that is longer).

    Attributes
    ----------
    withdrawn
        Why the version may no longer serve (the gate's refusal), None while it may.
    approval, fairness_passed
        The board's latest decision on the version and the audit verdict it saw.
    """

    def __init__(self, name: str, version: str, *, tracking_uri: str, seconds: float,
                 approval: Approval, fairness_passed: bool | None = None,
                 grace_seconds: float | None = None) -> None:
        self.name, self.version = name, version
        self.grace_seconds = max(60.0, 3 * seconds) if grace_seconds is None else grace_seconds
        self.tracking_uri = tracking_uri
        self.seconds = seconds
        self.approval = approval
        self.fairness_passed = fairness_passed
        self.withdrawn: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="approval-watch", daemon=True)

    def start(self) -> None:
        """Look every ``seconds`` from now on (in a daemon thread)."""
        self._thread.start()

    def check(self) -> None:
        """Read the gate once and update :attr:`withdrawn` and :attr:`approval`."""
        import mlflow

        from overblik.experiments._review import gate

        client = mlflow.MlflowClient(tracking_uri=self.tracking_uri,
                                     registry_uri=self.tracking_uri)
        # The files are not read again: the service holds the model it loaded in memory.
        verdict = gate(client.get_model_version(self.name, self.version), client,
                       check_files=False)
        if verdict.refusal is not None:
            self._withdraw(verdict.refusal)
        elif self.withdrawn is not None:
            logger.warning("%s version %s may serve again: the ethics board approved it",
                           self.name, self.version)
            self.withdrawn = None
        if verdict.approval is not None:
            self.approval = verdict.approval
            self.fairness_passed = verdict.fairness_passed

    def close(self) -> None:
        """Stop looking."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _withdraw(self, why: str) -> None:
        if why != self.withdrawn:  # said once per reason, not at every look
            logger.error("%s version %s may no longer serve; no scores are answered: %s",
                         self.name, self.version, why)
        self.withdrawn = why

    def _run(self) -> None:
        failing_since: float | None = None
        while not self._stop.wait(self.seconds):
            try:
                self.check()
                failing_since = None
            except Exception as exc:  # fail closed, after a grace for a passing outage
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                what = f"{type(exc).__name__}: {str(exc)[:200]}"
                if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
                    self._withdraw(f"{self.name} version {self.version} is no longer in the "
                                   f"registry ({what})")
                elif now - failing_since >= self.grace_seconds:
                    self._withdraw(f"the ethics board's decision cannot be read ({what}) for "
                                   f"{self.grace_seconds:g} s or more, so the approval cannot "
                                   "be confirmed")
                else:
                    logger.warning("cannot read the ethics board's decision on %s version %s "
                                   "(%s); trying again", self.name, self.version,
                                   type(exc).__name__)
