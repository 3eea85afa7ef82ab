"""The async guide's examples, run as written (python/tests/guide/*.py are copies of the
guide's code blocks), against the loopback LLM server and the real bubblewrap sandbox. The
only set-up is what a user does: environment variables that point ``Orchestrator()`` at a
server (``RLM_LLM_BASE_URL``, ``RLM_LLM_MODEL``)."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).parent / "guide"


def run_example(name: str, env: dict) -> str:
    p = subprocess.run(
        [sys.executable, str(GUIDE / name)],
        env=env,
        cwd=GUIDE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def load_example(name: str):
    """Imports a guide example as a module (its module-level ``Orchestrator()`` reads the
    environment at import, as in a real service)."""
    spec = importlib.util.spec_from_file_location(name[:-3], GUIDE / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_basic_async_example(rlm_env):
    assert run_example("guide_basic_async.py", rlm_env) == "6765\n"


def test_concurrent_example_matches_each_answer_to_its_query(rlm_env, llm_server):
    out = run_example("guide_gather.py", rlm_env)
    assert out.splitlines() == [
        "What is 2 + 2? → 4",
        "What is 10 * 10? → 100",
        "What is sqrt(144)? → 12.0",
    ]
    assert sorted(llm_server.queries()) == sorted(
        ["What is 2 + 2?", "What is 10 * 10?", "What is sqrt(144)?"]
    )


def test_gather_on_one_orchestrator_in_process(rlm_env):
    from rlm import Orchestrator

    queries = ["What is 2 + 2?", "What is 10 * 10?", "What is sqrt(144)?"]

    async def main():
        agent = Orchestrator()
        return await asyncio.gather(*[agent.arun(q) for q in queries])

    results = asyncio.run(main())
    assert [r.final_answer for r in results] == ["4", "100", "12.0"]
    assert all(r.success and r.iterations == 1 and r.error is None for r in results)
    assert len({r.run_id for r in results}) == 3


def test_fastapi_service(rlm_env, tmp_path):
    from fastapi.testclient import TestClient

    app = load_example("guide_fastapi.py").app
    with TestClient(app) as client:
        r = client.post("/execute", json={"query": "What is 10 * 10?"})
        assert r.status_code == 200, r.text
        assert r.json() == {"answer": "100", "success": True, "iterations": 1}

        ctx = tmp_path / "notes.txt"
        ctx.write_text("x" * 1234)
        r = client.post("/execute", json={"query": "context", "context_path": str(ctx)})
        assert r.status_code == 200, r.text
        assert r.json()["answer"] == "1234" and r.json()["success"] is True

        # A failed run is a result (success false), not an exception: the guide's handler
        # answers 200 with an empty answer.
        r = client.post(
            "/execute", json={"query": "context", "context_path": str(tmp_path / "missing.txt")}
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"answer": "", "success": False, "iterations": 0}


def test_fastapi_service_serves_requests_concurrently(rlm_env):
    import httpx

    app = load_example("guide_fastapi.py").app
    queries = {"What is 2 + 2?": "4", "What is 10 * 10?": "100", "What is sqrt(144)?": "12.0"}

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as c:
            return await asyncio.gather(*[c.post("/execute", json={"query": q}) for q in queries])

    responses = asyncio.run(main())
    assert [r.json()["answer"] for r in responses] == list(queries.values())


def test_aiohttp_service(rlm_env):
    import aiohttp
    from aiohttp import web

    app = load_example("guide_aiohttp.py").app

    async def main():
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as s:
                queries = ["What is 2 + 2?", "Calculate fibonacci(20)"]
                rs = await asyncio.gather(
                    *[s.post(f"http://127.0.0.1:{port}/execute", json={"query": q}) for q in queries]
                )
                return [await r.json() for r in rs]
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) == [
        {"answer": "4", "success": True},
        {"answer": "6765", "success": True},
    ]


def test_run_inside_a_running_event_loop_without_nest_asyncio(rlm_env):
    """The guide's Jupyter section: ``orchestrator.run("query")`` in a thread whose event
    loop is running (as in a notebook cell), and its preferred ``await`` form."""
    from rlm import Orchestrator

    orchestrator = Orchestrator()

    async def cell():
        assert asyncio.get_running_loop().is_running()
        result = orchestrator.run("What is 2 + 2?")  # option 1, without nest_asyncio
        awaited = await orchestrator.arun("What is 10 * 10?")  # option 2
        return result, awaited

    result, awaited = asyncio.run(cell())
    assert (result.final_answer, awaited.final_answer) == ("4", "100")
    assert "nest_asyncio" not in sys.modules


@pytest.mark.asyncio
async def test_run_inside_pytest_asyncio_loop(rlm_env):
    from rlm import Orchestrator

    result = Orchestrator().run("Calculate fibonacci(20)")
    assert result.success and result.final_answer == "6765"


def test_run_in_a_plain_script(rlm_env):
    code = (
        "from rlm import Orchestrator\n"
        "r = Orchestrator().run('What is sqrt(144)?')\n"
        "print(r.final_answer, r.success, r.iterations)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], env=rlm_env, cwd=GUIDE, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == "12.0 True 1\n"
