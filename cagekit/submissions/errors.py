"""How a submission fails, as the parent reports it: `SubmissionError`, and `SubmissionTimeout` when it is
too slow."""

from __future__ import annotations


class SubmissionError(RuntimeError):
    """The submission failed: refused, crashed, broke the protocol or gave an invalid action. `agent` names the
    agent whose call failed when the worker knows it (one call asks every agent of a step, so the agent whose
    call reached the worker first is not always the one at fault), else None."""

    def __init__(self, message: str, agent: str | None = None):
        super().__init__(message)
        self.agent = agent


class SubmissionTimeout(SubmissionError):
    """The submission took longer than its time limit (the worker is killed)."""
