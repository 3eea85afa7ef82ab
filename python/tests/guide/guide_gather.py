# From the async guide, unchanged (python/tests/test_guide.py runs it).
import asyncio
from rlm import Orchestrator

async def process_query(agent: Orchestrator, query: str) -> str:
    result = await agent.arun(query)
    return result.final_answer

async def main():
    agent = Orchestrator()
    
    queries = [
        "What is 2 + 2?",
        "What is 10 * 10?",
        "What is sqrt(144)?",
    ]
    
    # Execute all concurrently
    results = await asyncio.gather(*[
        process_query(agent, q) for q in queries
    ])
    
    for query, answer in zip(queries, results):
        print(f"{query} → {answer}")

asyncio.run(main())
