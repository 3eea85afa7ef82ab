"""Type stub of the compiled module ``rlm._native`` (python/src/lib.rs). Internal: use
:class:`rlm.Orchestrator`."""

from os import PathLike
from typing import Callable, List, Optional, Sequence, Tuple, Union

__version__: str

_Path = Union[str, PathLike[str]]

class NativeError(Exception):
    """``args == (error_json, message)``; turned into an ``RLMError`` subclass by ``rlm``."""

class RunHandle:
    @property
    def id(self) -> int: ...
    def cancel(self) -> None: ...

class Orchestrator:
    def __init__(self, settings: Sequence[Tuple[str, str]]) -> None: ...
    def submit(
        self,
        query: str,
        done: Callable[[Optional[str], Optional[str]], None],
        file: Optional[_Path] = None,
        files: Optional[Sequence[_Path]] = None,
        text: Optional[str] = None,
        documents: Optional[Sequence[str]] = None,
    ) -> RunHandle: ...
    def run(
        self,
        query: str,
        file: Optional[_Path] = None,
        files: Optional[Sequence[_Path]] = None,
        text: Optional[str] = None,
        documents: Optional[Sequence[str]] = None,
    ) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def sandbox(self) -> str: ...
    @property
    def max_iterations(self) -> int: ...

def live_runs() -> int: ...
def shutdown(timeout: float) -> bool: ...
def known_settings() -> List[Tuple[str, str, str, str]]: ...
