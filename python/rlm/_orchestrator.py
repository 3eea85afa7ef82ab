"""``Orchestrator``: the guide's API over the compiled library.

Threads and futures: ``arun`` hands the run to ``rlm._native``, whose own threads (no tokio,
no asyncio, no thread of yours) drive it; when it ends, the module's delivery thread calls
:func:`_deliver`, which completes the asyncio future with ``loop.call_soon_threadsafe``. The
event loop only ever runs :func:`_settle`. ``run`` blocks the calling thread on the same
machinery with the GIL released and never touches asyncio, so it also works inside a running
event loop (Jupyter) without ``nest_asyncio``.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime
import functools
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from . import _native
from ._result import RunResult
from .core.exceptions import ConfigurationError, RLMError, error_from_json

__all__ = ["Orchestrator", "known_settings"]

PathLike = Union[str, "os.PathLike[str]"]


def known_settings() -> List[Dict[str, str]]:
    """Every setting ``Orchestrator(**settings)`` accepts besides ``api_key`` and
    ``sub_api_key``: ``{"keyword", "env", "default", "help"}`` per setting."""
    return [
        {"keyword": key, "env": env, "default": default, "help": help_}
        for env, key, default, help_ in _native.known_settings()
    ]


def _from_native(e: BaseException) -> RLMError:
    """The ``RLMError`` subclass for a ``_native.NativeError(json, message)``."""
    error_json, message = e.args
    try:
        error = json.loads(error_json) if error_json else {}
    except ValueError:
        error = {}
    return error_from_json(error, message)


def _setting_text(name: str, value: Any) -> str:
    """A keyword argument's value as the text the library parses (as if from the
    environment), so every value is validated by the same code with the same messages."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float, str)):
        return str(value) if not isinstance(value, float) else repr(value)
    if isinstance(value, datetime.timedelta):
        return f"{value.total_seconds()!r}s"
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    raise ConfigurationError(
        f"configuration error in {name}: expected a string, number, boolean, timedelta, "
        f"list of strings or (answer_schema) a dict, got {type(value).__name__}",
        setting_name=name,
    )


def _context_args(context_path: Any, context: Any) -> Dict[str, Any]:
    """The compiled ``submit``/``run`` keyword arguments for a run's context."""
    if context_path is not None and context is not None:
        raise ValueError("give context_path or context, not both")
    if context_path is not None:
        if isinstance(context_path, (str, bytes, os.PathLike)):
            return {"file": os.fsdecode(context_path)}
        return {"files": [os.fsdecode(p) for p in context_path]}
    if context is not None:
        if isinstance(context, str):
            return {"text": context}
        if isinstance(context, (bytes, bytearray)):
            raise TypeError("context must be text (str) or a list of str, not bytes")
        docs = list(context)
        if not all(isinstance(d, str) for d in docs):
            raise TypeError("context must be text (str) or a list of str")
        return {"documents": docs}
    return {}


def _deliver(
    loop: asyncio.AbstractEventLoop,
    fut: "asyncio.Future[RunResult]",
    result_json: Optional[str],
    panic: Optional[str],
) -> None:
    """Runs on the module's delivery thread when a run ends: builds the result there and
    schedules :func:`_settle` on the future's own loop (the only thread-safe way in)."""
    result: Optional[RunResult] = None
    exc: Optional[BaseException] = None
    if result_json is not None:
        try:
            result = RunResult._from_json(result_json)
        except Exception as e:  # a bug: make it the awaiting task's error, not a hang
            exc = RLMError(f"internal error in rlm: the result could not be read: {e}")
    else:
        exc = RLMError(panic or "internal error in rlm")
    try:
        loop.call_soon_threadsafe(_settle, fut, result, exc)
    except RuntimeError:
        # The loop is closed: nobody is waiting for this run any more.
        pass


def _settle(
    fut: "asyncio.Future[RunResult]", result: Optional[RunResult], exc: Optional[BaseException]
) -> None:
    """On the event loop: completes the future unless it was cancelled meanwhile (setting the
    result of a cancelled future would raise ``InvalidStateError``)."""
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


class Orchestrator:
    """Runs Recursive Language Model tasks; one instance serves any number of concurrent
    runs (each with its own history, budget, sandbox and egress filter).

    ``Orchestrator(**settings)`` takes the library's settings as keyword arguments, by their
    keyword (``model="gpt-4o-mini"``, ``base_url="http://127.0.0.1:8080/v1"``,
    ``max_iterations=10``, ``execution_timeout=30``, ``api_key=...``; see
    :func:`rlm.known_settings` or the README's settings table). Anything not given comes
    from the environment (``RLM_LLM_MODEL``, ``OPENAI_API_KEY``, ...), then the defaults.
    ``None`` counts as not given. Values are checked by the library itself, with its
    messages: a bad value or an unknown keyword raises
    :class:`~rlm.core.exceptions.ConfigurationError` naming the keyword (and, for an
    unknown one, every valid keyword).
    """

    def __init__(self, **settings: Any) -> None:
        pairs: List[Tuple[str, str]] = [
            (name, _setting_text(name, value))
            for name, value in settings.items()
            if value is not None
        ]
        try:
            self._native = _native.Orchestrator(pairs)
        except _native.NativeError as e:
            raise _from_native(e) from None

    async def arun(
        self,
        query: str,
        context_path: Union[PathLike, Iterable[PathLike], None] = None,
        context: Union[str, Iterable[str], None] = None,
    ) -> RunResult:
        """Runs ``query`` and returns its :class:`~rlm.RunResult`, without blocking the event
        loop.

        :param context_path: a file (memory-mapped, never read whole), or a list of files
            (the REPL sees a list of documents).
        :param context: text, or a list of texts, instead of a file.

        A run that fails returns a result with ``success`` false (``error``, ``exception``);
        it does not raise. Cancelling the awaiting task cancels the run and kills its
        sandbox. The run starts when this coroutine is first awaited (or wrapped in a task).
        """
        args = _context_args(context_path, context)
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[RunResult]" = loop.create_future()
        handle = self._native.submit(query, functools.partial(_deliver, loop, fut), **args)
        try:
            return await fut
        except BaseException:
            # The task was cancelled (CancelledError), or its coroutine closed without being
            # cancelled (GeneratorExit): nobody will take the result, so the run stops and its
            # sandbox is killed. Cancelling a run that already ended does nothing.
            handle.cancel()
            raise

    def run(
        self,
        query: str,
        context_path: Union[PathLike, Iterable[PathLike], None] = None,
        context: Union[str, Iterable[str], None] = None,
    ) -> RunResult:
        """Blocking :meth:`arun`: same arguments, same result.

        Works in a plain script and inside a running event loop (Jupyter): it never uses
        asyncio, it blocks the calling thread (with the GIL released) until the run ends.
        Inside a loop prefer ``await arun(...)``, which lets the loop serve others meanwhile.
        Ctrl-C cancels the run (its sandbox is killed) and raises ``KeyboardInterrupt``.
        """
        args = _context_args(context_path, context)
        try:
            text = self._native.run(query, **args)
        except _native.NativeError as e:
            raise _from_native(e) from None
        return RunResult._from_json(text)

    @property
    def model(self) -> str:
        """The model the runs use."""
        return self._native.model

    @property
    def provider(self) -> str:
        """The provider's wire format: ``openai``, ``anthropic`` or ``gemini``."""
        return self._native.provider

    @property
    def base_url(self) -> str:
        """The provider's base URL."""
        return self._native.base_url

    @property
    def sandbox(self) -> str:
        """The sandbox backend (``bwrap``, ``docker``, ...)."""
        return self._native.sandbox

    @property
    def max_iterations(self) -> int:
        """Maximum LLM turns per run."""
        return self._native.max_iterations

    def __repr__(self) -> str:
        return repr(self._native)


def _at_exit() -> None:
    # Runs still going when the interpreter exits are cancelled and their sandboxes killed
    # and reaped before the process ends.
    _native.shutdown(5.0)


atexit.register(_at_exit)
