"""Many runs from one event loop: every answer checked, the loop never blocked."""

from __future__ import annotations

import asyncio
import random
import time

from conftest import wait_no_descendants
from rlm import Orchestrator, _native


def test_200_concurrent_aruns_every_answer_checked(rlm_env, llm_server):
    rng = random.Random(16)
    jobs = [(j, rng.randrange(1000, 99999), rng.randrange(1000, 99999)) for j in range(200)]

    async def main():
        agent = Orchestrator()
        return await asyncio.gather(*[agent.arun(f"job {j}: {a} * {b}") for j, a, b in jobs])

    started = time.monotonic()
    results = asyncio.run(main())
    elapsed = time.monotonic() - started
    assert len(results) == 200
    for (j, a, b), r in zip(jobs, results):
        assert r.success, (j, r.error)
        assert r.final_answer == f"{j}:{a * b}", (j, r.final_answer)
        assert r.iterations == 1
        assert [s.kind for s in r.steps] == ["llm_call", "code_execution", "final_answer"]
        assert r.usage.calls == 1 and r.usage.total_tokens == 120
    assert len({r.run_id for r in results}) == 200
    assert sorted(llm_server.queries()) == sorted(f"job {j}: {a} * {b}" for j, a, b in jobs)
    assert _native.live_runs() == 0
    assert wait_no_descendants(10) == [], "sandboxes left behind"
    print(f"200 runs in {elapsed:.1f}s")


def test_arun_never_blocks_the_event_loop(rlm_env):
    """Five runs whose LLM answers after a second each, next to a 10 ms ticker: the runs
    overlap (about two seconds in all, not ten) and the ticker keeps ticking (the GIL is
    released and nothing waits on the loop's thread)."""
    ticks = 0

    async def ticker(stop: asyncio.Event):
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    async def main():
        agent = Orchestrator()
        stop = asyncio.Event()
        t = asyncio.create_task(ticker(stop))
        started = time.monotonic()
        results = await asyncio.gather(*[agent.arun(f"slow {i}") for i in range(5)])
        elapsed = time.monotonic() - started
        stop.set()
        await t
        return results, elapsed

    results, elapsed = asyncio.run(main())
    assert [r.final_answer for r in results] == [f"slow {i}" for i in range(5)]
    assert elapsed < 8.0, f"the runs did not overlap: {elapsed:.1f}s"
    assert ticks >= elapsed / 0.01 / 4, f"the loop was blocked: {ticks} ticks in {elapsed:.1f}s"


def test_runs_use_the_modules_own_threads_and_no_tokio(rlm_env):
    import os

    Orchestrator().run("What is 2 + 2?")
    names = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.add(f.read().strip())
        except OSError:
            pass
    assert {"rlm-py-exec-0", "rlm-py-exec-1", "rlm-py-deliver"} <= names, names
    assert not any("tokio" in n for n in names), names
