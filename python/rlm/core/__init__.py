"""The orchestrator, its result and the exceptions (``from rlm.core import Orchestrator``)."""

# The exceptions first: the modules below import them from here.
from .exceptions import (
    BudgetError,
    BudgetExceededError,
    ConfigurationError,
    ContextError,
    DataLeakageError,
    LeakError,
    LLMError,
    NoCodeError,
    RLMError,
    RLMTimeoutError,
    RunCancelledError,
    SandboxError,
    SecurityViolationError,
)
from .._result import OrchestratorResult, RunResult, Step, Usage  # noqa: E402
from .._orchestrator import Orchestrator  # noqa: E402

from . import exceptions as _exceptions  # noqa: E402

# The exceptions' names come from their module's own list (its helper excepted).
__all__ = [
    "Orchestrator",
    "OrchestratorResult",
    "RunResult",
    "Step",
    "Usage",
    *(n for n in _exceptions.__all__ if n != "error_from_json"),
]
