"""rlm: Recursive Language Models with a sandboxed, persistent Python REPL.

The Python API of the ``rlm`` Rust crate, compiled into this package (no Python dependencies)::

    import asyncio
    from rlm import Orchestrator

    async def main():
        agent = Orchestrator()                       # settings from the environment
        result = await agent.arun("Calculate fibonacci(20)")
        print(result.final_answer)

    asyncio.run(main())

``agent.run(query)`` is the blocking form (also inside a running event loop). Errors live in
:mod:`rlm.core.exceptions`.
"""

from .core import (
    BudgetError,
    BudgetExceededError,
    ConfigurationError,
    ContextError,
    DataLeakageError,
    LeakError,
    LLMError,
    NoCodeError,
    Orchestrator,
    OrchestratorResult,
    RLMError,
    RLMTimeoutError,
    RunCancelledError,
    RunResult,
    SandboxError,
    SecurityViolationError,
    Step,
    Usage,
)
from ._orchestrator import known_settings
from ._native import __version__

from . import core as _core

__all__ = [*_core.__all__, "known_settings", "__version__"]
