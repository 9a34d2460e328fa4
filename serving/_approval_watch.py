"""The ethics board's decision, watched while the service runs.

The gate is checked when the service starts; a board that withdraws its approval later
(``overblik review ... --reject``) must not have to find and restart every server. The
watch reads the gate for the served version again every few seconds, in a thread of its
own, and the service answers no scores (503, ``/readyz`` too) while the version may not
serve; it serves again when the board approves it again.
"""

from __future__ import annotations

import logging
import threading

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
        Time between two looks (0: never after the start).
    approval
        The board's decision the service started with.
    fairness_passed
        The fairness audit's verdict that decision was made with (None: no audit).

    Attributes
    ----------
    withdrawn
        Why the version may no longer serve (the gate's refusal), None while it may.
    approval, fairness_passed
        The board's latest decision on the version and the audit verdict it saw.
    """

    def __init__(self, name: str, version: str, *, tracking_uri: str, seconds: float,
                 approval: Approval, fairness_passed: bool | None = None) -> None:
        self.name, self.version = name, version
        self.tracking_uri = tracking_uri
        self.seconds = seconds
        self.approval = approval
        self.fairness_passed = fairness_passed
        self.withdrawn: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="approval-watch", daemon=True)

    def start(self) -> None:
        """Look every ``seconds`` from now on (in a daemon thread)."""
        if self.seconds > 0:
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
        if verdict.refusal != self.withdrawn:
            if verdict.refusal is None:
                logger.warning("%s version %s may serve again: %s", self.name, self.version,
                               "the ethics board approved it")
            else:
                logger.error("%s version %s may no longer serve; no scores are answered: %s",
                             self.name, self.version, verdict.refusal)
        self.withdrawn = verdict.refusal
        if verdict.approval is not None:
            self.approval = verdict.approval
            self.fairness_passed = verdict.fairness_passed

    def close(self) -> None:
        """Stop looking."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.check()
            except Exception as exc:  # the registry is away: keep the last verdict, say so
                logger.warning("cannot read the ethics board's decision on %s version %s "
                               "(%s); keeping the last one", self.name, self.version,
                               type(exc).__name__)
