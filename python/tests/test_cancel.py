"""Cancelling the asyncio task cancels the run and kills its sandbox; Ctrl-C does the same
for ``run()``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import descendants, wait_no_descendants
from rlm import Orchestrator, _native


async def wait_until_sandbox_runs(server, query: str = "sleep") -> None:
    """Until the server has answered ``query`` and a sandbox process exists."""
    deadline = time.monotonic() + 30
    while not (query in server.queries() and descendants()):
        assert time.monotonic() < deadline, "the run never started its sandbox"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the block is running `time.sleep(60)` by now


@pytest.mark.asyncio
async def test_cancelling_the_task_cancels_the_run_and_kills_its_sandbox(rlm_env, llm_server):
    assert wait_no_descendants(10) == [], "sandboxes of earlier tests are still there"
    loop_errors = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: loop_errors.append(ctx))
    agent = Orchestrator()
    task = asyncio.create_task(agent.arun("sleep"))
    await wait_until_sandbox_runs(llm_server)
    assert not task.done()
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    left = wait_no_descendants(5)
    assert left == [], f"sandbox processes left after cancel: {left}"
    assert time.monotonic() - cancelled_at < 5
    # The cancelled run's result still arrives; it must be dropped quietly (setting the
    # result of a cancelled future would raise InvalidStateError inside the loop).
    deadline = time.monotonic() + 5
    while _native.live_runs() > 0:
        assert time.monotonic() < deadline, "the cancelled run never ended"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert loop_errors == []


@pytest.mark.asyncio
async def test_wait_for_timeout_cancels_the_run(rlm_env, llm_server):
    assert wait_no_descendants(10) == []
    agent = Orchestrator()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(agent.arun("sleep"), timeout=3)
    assert wait_no_descendants(5) == []


@pytest.mark.asyncio
async def test_other_runs_go_on_when_one_is_cancelled(rlm_env, llm_server):
    agent = Orchestrator()
    sleeper = asyncio.create_task(agent.arun("sleep"))
    await wait_until_sandbox_runs(llm_server)
    sleeper.cancel()
    r = await agent.arun("What is 2 + 2?")
    assert r.final_answer == "4"
    with pytest.raises(asyncio.CancelledError):
        await sleeper


def test_ctrl_c_cancels_a_blocking_run(rlm_env, llm_server, tmp_path):
    """``run()`` in a script: SIGINT raises KeyboardInterrupt there, with the run cancelled
    and its sandbox gone."""
    script = tmp_path / "blocking.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from conftest import wait_no_descendants
            from rlm import Orchestrator
            agent = Orchestrator()
            started = time.monotonic()
            try:
                agent.run("sleep")
                print("finished")
            except KeyboardInterrupt:
                print("interrupted", len(wait_no_descendants(5)), round(time.monotonic() - started))
            """
        )
    )
    p = subprocess.Popen(
        [sys.executable, str(script)], env=rlm_env, cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not ("sleep" in llm_server.queries() and descendants(p.pid)):
            assert time.monotonic() < deadline and p.poll() is None, "the run never started"
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(p.pid, signal.SIGINT)
        out, _ = p.communicate(timeout=30)
    finally:
        p.kill()
        p.wait()
    words = out.split()
    assert words[:2] == ["interrupted", "0"], out
    assert int(words[2]) < 20, out
