# From the async guide, unchanged (python/tests/test_guide.py runs it).
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from rlm import Orchestrator
from rlm.core.exceptions import RLMError

app = FastAPI()
orchestrator = Orchestrator()

class QueryRequest(BaseModel):
    query: str
    context_path: str | None = None

class QueryResponse(BaseModel):
    answer: str
    success: bool
    iterations: int

@app.post("/execute", response_model=QueryResponse)
async def execute(request: QueryRequest):
    try:
        result = await orchestrator.arun(
            request.query,
            context_path=request.context_path,
        )
        return QueryResponse(
            answer=result.final_answer or "",
            success=result.success,
            iterations=result.iterations,
        )
    except RLMError as e:
        raise HTTPException(status_code=500, detail=str(e))
