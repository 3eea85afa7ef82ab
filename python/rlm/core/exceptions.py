"""The exceptions of ``rlm``: one hierarchy under :class:`RLMError`.

The names and constructors follow the RLM Python package this one replaces, so existing
``except`` clauses keep working::

    RLMError
    ├── ConfigurationError       a setting is missing or invalid (raised by ``Orchestrator(...)``)
    ├── LLMError                 the provider failed after retries, or refused the call
    ├── SandboxError             the sandbox could not start or broke down
    ├── ContextError             the context could not be loaded
    ├── BudgetExceededError      a cost, token, call or turn limit was reached (alias BudgetError)
    ├── RLMTimeoutError          a wall-clock limit was reached (also a builtin TimeoutError)
    ├── NoCodeError              the model kept replying without code or an answer
    ├── RunCancelledError        the run was cancelled
    └── SecurityViolationError
        └── DataLeakageError     the egress filter blocked a leak (alias LeakError)

``str(error)`` is exactly the library's message (the same text the Rust crate and the ``rlm``
command print); structured fields are attributes and ``details``.

Where they surface: ``Orchestrator(**settings)`` raises :class:`ConfigurationError`. A run that
fails does not raise: ``arun``/``run`` return a result with ``success`` false, ``error`` (the
message) and ``exception`` (the matching instance of these classes); call
``result.raise_for_error()`` to raise it.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

__all__ = [
    "RLMError",
    "ConfigurationError",
    "LLMError",
    "SandboxError",
    "ContextError",
    "BudgetExceededError",
    "BudgetError",
    "RLMTimeoutError",
    "NoCodeError",
    "RunCancelledError",
    "SecurityViolationError",
    "DataLeakageError",
    "LeakError",
    "error_from_json",
]


class RLMError(Exception):
    """Base class of every error ``rlm`` raises or reports.

    :param message: what went wrong (``str(error)``).
    :param details: structured fields (also available as attributes on the subclasses).
    """

    def __init__(self, message: str = "", details: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: Dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return self.message


class ConfigurationError(RLMError):
    """A setting is missing or invalid; ``setting_name`` names the keyword argument or
    environment variable to fix."""

    def __init__(
        self,
        message: str = "",
        setting_name: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        d = dict(details or {})
        if setting_name is not None:
            d.setdefault("setting", setting_name)
        super().__init__(message, d)
        self.setting_name = setting_name


class LLMError(RLMError):
    """An LLM provider call failed after retries (or with a status that is not retried)."""

    def __init__(
        self,
        message: str = "",
        provider: Optional[str] = None,
        status_code: Optional[int] = None,
        details: Optional[Dict[str, Any]] = None,
        retryable: bool = False,
    ) -> None:
        d = dict(details or {})
        d.setdefault("provider", provider)
        d.setdefault("status_code", status_code)
        d.setdefault("retryable", retryable)
        super().__init__(message, d)
        self.provider = provider
        self.status_code = status_code
        self.retryable = retryable


class SandboxError(RLMError):
    """The sandbox could not be started or broke down (the model's own exceptions and
    timeouts inside a code block are not errors: the model sees them and carries on)."""

    def __init__(
        self,
        message: str = "",
        exit_code: Optional[int] = None,
        stderr: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, details)
        self.exit_code = exit_code
        self.stderr = stderr


class ContextError(RLMError):
    """The context could not be loaded (missing file, binary data, changed during the run)."""

    def __init__(
        self,
        message: str = "",
        path: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, details)
        self.path = path


class BudgetExceededError(RLMError):
    """A run limit was reached: cost, tokens, LLM calls or turns (``max_iterations``)."""

    def __init__(
        self,
        message: str = "",
        spent: float = 0.0,
        limit: float = 0.0,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, details)
        self.spent = spent
        self.limit = limit


BudgetError = BudgetExceededError


class RLMTimeoutError(RLMError, TimeoutError):
    """A wall-clock limit was reached (``run_timeout``); also a builtin ``TimeoutError``."""

    def __init__(self, message: str = "", details: Optional[Dict[str, Any]] = None) -> None:
        RLMError.__init__(self, message, details)


class NoCodeError(RLMError):
    """The model kept replying without code or a final answer (``max_no_code_replies``)."""


class RunCancelledError(RLMError):
    """The run was cancelled (an awaiting asyncio task sees ``asyncio.CancelledError``
    instead; this appears only in results of runs cancelled another way)."""


class SecurityViolationError(RLMError):
    """A security rule stopped the run."""

    def __init__(
        self,
        message: str = "Security violation detected",
        violation_type: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, details)
        self.violation_type = violation_type


class DataLeakageError(SecurityViolationError):
    """The egress filter found a leak and the orchestrator was built with
    ``raise_on_leak=True``. ``leak_type`` is the rule that fired, ``source`` where
    (``stdout``, ``stderr``, ``final_answer``, ...); the leaked text is never included."""

    def __init__(
        self,
        message: str = "Potential data leakage detected",
        leak_type: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
        source: Optional[str] = None,
    ) -> None:
        super().__init__(message, "data_leakage", details)
        self.leak_type = leak_type
        self.source = source


LeakError = DataLeakageError


def error_from_json(error: Dict[str, Any], message: str) -> RLMError:
    """The exception for one of the library's errors, given as its JSON form (``{"kind":
    ..., ...}``, as in ``RunResult.failure`` or a trajectory) and its message."""
    kind = error.get("kind")
    if kind == "config":
        return ConfigurationError(message, setting_name=error.get("setting"))
    if kind == "llm":
        return LLMError(
            message,
            provider=error.get("provider"),
            status_code=error.get("status"),
            retryable=bool(error.get("retryable")),
        )
    if kind == "sandbox":
        return SandboxError(message)
    if kind == "context":
        return ContextError(message)
    if kind == "budget_exceeded":
        return BudgetExceededError(message)
    if kind == "data_leak":
        return DataLeakageError(
            message,
            leak_type=error.get("rule"),
            source=error.get("source_name"),
            details={"rule": error.get("rule"), "source": error.get("source_name")},
        )
    if kind == "timeout":
        return RLMTimeoutError(message)
    if kind == "no_code":
        return NoCodeError(message)
    if kind == "cancelled":
        return RunCancelledError(message)
    return RLMError(message, {"kind": kind} if kind else None)
