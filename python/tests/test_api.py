"""Settings, results and exceptions: the library's own validation and messages, and failed
runs reported as results carrying typed exceptions."""

from __future__ import annotations

import asyncio
import datetime

import pytest

import rlm
from rlm import Orchestrator
from rlm.core.exceptions import (
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


# The library's messages (src/settings.rs), with the keyword argument as the source.
@pytest.mark.parametrize(
    "name,value,message",
    [
        ("max_iterations", 0, 'expected a positive integer, got "0"'),
        ("temperature", 3.5, 'must be within 0..=2, got "3.5"'),
        (
            "provider",
            "mistral",
            'unknown provider "mistral"; use "openai" (also any OpenAI-compatible server), '
            '"anthropic" or "gemini"',
        ),
        ("base_url", "ftp://x", 'expected an http:// or https:// URL, got "ftp://x"'),
        ("raise_on_leak", "maybe", 'expected 1/0, true/false, yes/no or on/off, got "maybe"'),
        ("execution_timeout", -1, 'must be a positive duration, got "-1"'),
    ],
)
def test_bad_values_raise_the_librarys_messages(rlm_env, name, value, message):
    with pytest.raises(ConfigurationError) as e:
        Orchestrator(**{name: value})
    assert str(e.value) == f"configuration error in {name}: {message}"
    assert e.value.setting_name == name


def test_the_environment_is_validated_the_same_way(rlm_env, monkeypatch):
    monkeypatch.setenv("RLM_MAX_ITERATIONS", "0")
    with pytest.raises(ConfigurationError) as e:
        Orchestrator()
    assert str(e.value) == (
        'configuration error in RLM_MAX_ITERATIONS: expected a positive integer, got "0"'
    )
    # A keyword argument wins over the environment.
    assert Orchestrator(max_iterations=3).max_iterations == 3


def test_unknown_keyword_names_every_valid_one(rlm_env):
    with pytest.raises(ConfigurationError) as e:
        Orchestrator(max_iteration=5)
    msg = str(e.value)
    assert msg.startswith("configuration error in max_iteration: unknown setting; known settings are ")
    for s in rlm.known_settings():
        assert s["keyword"] in msg
    assert "api_key" in msg


def test_a_remote_provider_needs_a_key(rlm_env, monkeypatch):
    monkeypatch.delenv("RLM_LLM_BASE_URL")
    with pytest.raises(ConfigurationError) as e:
        Orchestrator()
    assert e.value.setting_name == "OPENAI_API_KEY"
    assert "OPENAI_API_KEY" in str(e.value)
    assert Orchestrator(api_key="sk-test-0123456789abcdef").provider == "openai"


def test_keyword_values_and_none(rlm_env):
    o = Orchestrator(
        model="other-model",
        execution_timeout=datetime.timedelta(seconds=30),
        run_timeout="5m",
        allowed_models=["a", "b"],
        raise_on_leak=True,
        max_cost_usd=0.5,
        answer_schema={"type": "string"},
        max_depth=None,  # None: not given (environment, then default)
    )
    assert o.model == "other-model"
    assert Orchestrator(model=None).model == "gpt-4o-mini"  # from RLM_LLM_MODEL
    assert o.sandbox == "bwrap"
    with pytest.raises(ConfigurationError) as e:
        Orchestrator(max_depth=object())
    assert e.value.setting_name == "max_depth"


def test_exception_hierarchy():
    for cls in (
        ConfigurationError,
        LLMError,
        SandboxError,
        ContextError,
        BudgetExceededError,
        RLMTimeoutError,
        NoCodeError,
        RunCancelledError,
        SecurityViolationError,
        DataLeakageError,
    ):
        assert issubclass(cls, RLMError)
    assert issubclass(DataLeakageError, SecurityViolationError)
    assert issubclass(RLMTimeoutError, TimeoutError)
    assert BudgetError is BudgetExceededError and LeakError is DataLeakageError
    assert rlm.RLMError is RLMError and rlm.core.exceptions.RLMError is RLMError
    # The constructors of the package this one replaces.
    e = BudgetExceededError("over", spent=1.5, limit=1.0)
    assert (str(e), e.spent, e.limit) == ("over", 1.5, 1.0)
    e = DataLeakageError(leak_type="secret_pattern")
    assert (str(e), e.violation_type, e.leak_type) == (
        "Potential data leakage detected",
        "data_leakage",
        "secret_pattern",
    )
    assert ConfigurationError("bad", setting_name="x").details == {"setting": "x"}
    assert isinstance(RLMTimeoutError("slow"), TimeoutError)


def failing(rlm_env, **settings):
    return Orchestrator(best_effort=False, **settings)


@pytest.mark.parametrize(
    "query,settings,cls,message",
    [
        (
            "no final",
            {"max_iterations": 1},
            BudgetExceededError,
            "budget exceeded: max iterations (1) reached without a final answer (RLM_MAX_ITERATIONS)",
        ),
        (
            "sleep",
            {"run_timeout": 2},
            RLMTimeoutError,
            "timeout: the run exceeded its wall-clock limit of 2s (RLM_RUN_TIMEOUT)",
        ),
        (
            "leak",
            {"raise_on_leak": True},
            DataLeakageError,
            "data leak blocked (aws_access_key_id) in stdout",
        ),
    ],
)
def test_failed_runs_are_results_with_typed_exceptions(rlm_env, query, settings, cls, message):
    r = failing(rlm_env, **settings).run(query)
    assert (r.success, r.final_answer) == (False, None)
    assert r.error == message
    assert type(r.exception) is cls and str(r.exception) == message
    with pytest.raises(cls):
        r.raise_for_error()


def test_leak_error_fields(rlm_env):
    r = failing(rlm_env, raise_on_leak=True).run("leak")
    assert (r.exception.leak_type, r.exception.source) == ("aws_access_key_id", "stdout")
    # Only the model's own reply holds the pieces of the key; no step holds the key itself.
    assert "AKIAIOSFODNN7EXAMPLE" not in r.error
    assert all("AKIAIOSFODNN7EXAMPLE" not in s.output for s in r.steps)


def test_llm_and_context_errors_through_arun(rlm_env, tmp_path):
    async def main():
        down = Orchestrator(base_url="http://127.0.0.1:9/v1", max_attempts=1)
        a = await down.arun("What is 2 + 2?")
        b = await Orchestrator().arun("context", context_path=tmp_path / "missing.txt")
        return a, b

    a, b = asyncio.run(main())
    assert isinstance(a.exception, LLMError) and a.exception.provider == "openai"
    assert a.error.startswith("LLM error from openai: ")
    assert isinstance(b.exception, ContextError)
    assert b.error.startswith("context error: cannot open context file ")
    assert b.iterations == 0 and b.steps == []


def test_result_fields(rlm_env):
    r = Orchestrator().run("What is 2 + 2?")
    assert r.raise_for_error() is r
    assert (r.final_answer, r.success, r.iterations, r.error, r.exception) == ("4", True, 1, None, None)
    assert [s.kind for s in r.steps] == ["llm_call", "code_execution", "final_answer"]
    llm, code, final = r.steps
    assert llm.model == "gpt-4o-mini" and llm.prompt_tokens == 100 and llm.completion_tokens == 20
    assert "FINAL(str(2 + 2))" in code.input and code.success
    assert (final.action, final.output_data) == ("final_answer", "4")
    assert r.usage.calls == 1 and r.usage.total_tokens == 120
    assert r.usage.cost_usd == pytest.approx((100 * 0.15 + 20 * 0.60) / 1e6)
    assert "gpt-4o-mini" in r.usage.per_model
    assert r.run_id.startswith("run-") and 0 < r.duration < 60
    assert r.sandbox["kind"] == "bwrap"
    assert rlm.OrchestratorResult is rlm.RunResult


def test_contexts(rlm_env, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("hello")
    b.write_text("world!")
    o = Orchestrator()
    assert o.run("context", context_path=str(a)).final_answer == "5"
    assert o.run("context", context_path=a).final_answer == "5"  # a PathLike
    assert o.run("context", context_path=[a, b]).final_answer == "2"  # two documents
    assert o.run("context", context="some text").final_answer == "9"
    assert o.run("context", context=["x", "y", "z"]).final_answer == "3"
    with pytest.raises(ValueError):
        o.run("context", context_path=a, context="x")
    with pytest.raises(TypeError):
        o.run("context", context=b"bytes")


def test_answer_schema_gives_a_python_value(rlm_env):
    r = Orchestrator(answer_schema={"type": "string"}).run("What is 2 + 2?")
    assert r.success and r.answer == "4"


def test_the_key_never_shows(rlm_env):
    """A key given as a keyword is in no repr and no configuration error."""
    key = "sk-test-" + "9" * 32
    agent = Orchestrator(api_key=key)
    assert key not in repr(agent)
    with pytest.raises(ConfigurationError) as e:
        Orchestrator(api_key=key, max_iterations=0)
    assert key not in str(e.value) and key not in repr(e.value)
    r = agent.run("What is 2 + 2?")
    assert r.final_answer == "4" and key not in repr(r)


def test_a_forked_child_is_refused_clearly(rlm_env):
    """rlm's threads do not survive fork(): a run in a child forked after the parent's
    first run raises at once instead of hanging."""
    import os

    agent = Orchestrator()
    assert agent.run("What is 2 + 2?").final_answer == "4"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what happened, then leave without cleanup
        try:
            agent.run("What is 2 + 2?")
            msg = b"ran"
        except RuntimeError as e:
            msg = b"refused: " + str(e).encode()
        except BaseException as e:  # noqa: BLE001
            msg = b"other: " + repr(e).encode()
        os.write(write, msg[:500])
        os._exit(0)
    os.close(write)
    import select
    import signal

    ready, _, _ = select.select([read], [], [], 30)
    got = os.read(read, 600).decode() if ready else "(no answer: the child hangs)"
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read)
    assert got.startswith("refused: ") and "forked" in got, got
