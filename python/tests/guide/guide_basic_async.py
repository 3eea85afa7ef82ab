# From the async guide, unchanged (python/tests/test_guide.py runs it).
import asyncio
from rlm import Orchestrator

async def main():
    agent = Orchestrator()
    
    result = await agent.arun("Calculate fibonacci(20)")
    print(result.final_answer)

asyncio.run(main())
