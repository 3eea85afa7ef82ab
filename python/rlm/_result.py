"""What a run returns: :class:`RunResult` with its :class:`Step` list and :class:`Usage`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .core.exceptions import RLMError, error_from_json

__all__ = ["RunResult", "OrchestratorResult", "Step", "Usage"]


@dataclass(frozen=True)
class Step:
    """One action of a run.

    ``kind`` is ``"llm_call"``, ``"code_execution"``, ``"sub_query"``, ``"final_answer"``,
    ``"partial_answer"``, ``"tool_call"`` or ``"compaction"``. Times are in seconds.
    """

    iteration: int
    kind: str
    input: str
    output: str
    success: bool
    error: Optional[str] = None
    started: float = 0.0
    duration: float = 0.0
    findings: List[Dict[str, Any]] = field(default_factory=list)
    model: Optional[str] = None
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    cost_usd: Optional[float] = None
    child_run_id: Optional[str] = None

    @property
    def action(self) -> str:
        """``kind`` under the name the RLM Python package used."""
        return self.kind

    @property
    def input_data(self) -> str:
        """``input`` under the name the RLM Python package used."""
        return self.input

    @property
    def output_data(self) -> str:
        """``output`` under the name the RLM Python package used."""
        return self.output

    @classmethod
    def _from_dict(cls, d: Dict[str, Any]) -> "Step":
        return cls(
            iteration=d["iteration"],
            kind=d["kind"],
            input=d["input"],
            output=d["output"],
            success=d["success"],
            error=d.get("error"),
            started=d.get("started", 0.0) / 1000.0,
            duration=d.get("duration", 0.0) / 1000.0,
            findings=list(d.get("findings", [])),
            model=d.get("model"),
            prompt_tokens=d.get("prompt_tokens"),
            completion_tokens=d.get("completion_tokens"),
            cost_usd=d.get("cost_usd"),
            child_run_id=d.get("child_run_id"),
        )


@dataclass(frozen=True)
class Usage:
    """Tokens and cost of a run (``cost_usd`` is ``None`` when a model's price is unknown);
    ``per_model`` maps each model name to the same fields as a dict."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Optional[float] = None
    per_model: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def _from_dict(cls, d: Dict[str, Any]) -> "Usage":
        return cls(
            calls=d.get("calls", 0),
            prompt_tokens=d.get("prompt_tokens", 0),
            completion_tokens=d.get("completion_tokens", 0),
            cached_prompt_tokens=d.get("cached_prompt_tokens", 0),
            cache_write_tokens=d.get("cache_write_tokens", 0),
            cost_usd=d.get("cost_usd"),
            per_model=dict(d.get("per_model", {})),
        )


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run.

    A failed run is a result, not an exception: ``success`` is false, ``final_answer`` is
    ``None``, ``error`` is the message and ``exception`` the matching
    :class:`~rlm.core.exceptions.RLMError` subclass (``raise_for_error()`` raises it).
    ``duration`` is in seconds.
    """

    final_answer: Optional[str]
    success: bool
    iterations: int
    steps: List[Step]
    usage: Usage
    error: Optional[str] = None
    exception: Optional[RLMError] = field(default=None, compare=False)
    run_id: str = ""
    duration: float = 0.0
    partial_answer: Optional[str] = None
    answer_json: Optional[str] = None
    sandbox: Optional[Dict[str, Any]] = None

    @property
    def answer(self) -> Any:
        """With an ``answer_schema``: the validated answer as a Python value (else ``None``)."""
        return None if self.answer_json is None else json.loads(self.answer_json)

    def raise_for_error(self) -> "RunResult":
        """Raises :attr:`exception` when the run failed; returns the result otherwise."""
        if self.exception is not None:
            raise self.exception
        if not self.success:
            raise RLMError(self.error or "the run ended without an answer")
        return self

    @classmethod
    def _from_json(cls, text: str) -> "RunResult":
        d = json.loads(text)
        failure = d.get("failure")
        error = d.get("error")
        return cls(
            final_answer=d.get("final_answer"),
            success=d["success"],
            iterations=d["iterations"],
            steps=[Step._from_dict(s) for s in d.get("steps", [])],
            usage=Usage._from_dict(d.get("usage", {})),
            error=error,
            exception=None if failure is None else error_from_json(failure, error or ""),
            run_id=d.get("run_id", ""),
            duration=d.get("duration", 0.0) / 1000.0,
            partial_answer=d.get("partial_answer"),
            answer_json=d.get("answer_json"),
            sandbox=d.get("sandbox"),
        )


OrchestratorResult = RunResult
"""The name the RLM Python package used for :class:`RunResult`."""
