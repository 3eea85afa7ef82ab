# From the async guide, unchanged (python/tests/test_guide.py runs it).
from aiohttp import web
from rlm import Orchestrator

orchestrator = Orchestrator()

async def handle_execute(request: web.Request) -> web.Response:
    data = await request.json()
    query = data.get("query", "")
    
    result = await orchestrator.arun(query)
    
    return web.json_response({
        "answer": result.final_answer,
        "success": result.success,
    })

app = web.Application()
app.router.add_post("/execute", handle_execute)
