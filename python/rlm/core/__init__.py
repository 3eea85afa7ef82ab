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

__all__ = [
    "Orchestrator",
    "OrchestratorResult",
    "RunResult",
    "Step",
    "Usage",
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
]
