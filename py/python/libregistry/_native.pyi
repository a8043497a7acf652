# Stubs of the private native module (py/src/*.rs). The public API is the
# pure-Python package around it; these names may change without notice.

import asyncio
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union, final

__all__ = [
    "RegistryError",
    "InvalidArgumentError",
    "UnavailableError",
    "RequestTimeoutError",
    "PermissionDeniedError",
    "AlreadyRegisteredError",
    "NotRegisteredError",
    "ConflictError",
    "ClosedError",
    "ForkedError",
    "EtcdError",
    "Client",
    "Registration",
    "dispatch_next",
    "dispatch_stop",
    "BenchCore",
    "CORE_VERSION",
]

CORE_VERSION: str

class RegistryError(Exception): ...

class InvalidArgumentError(RegistryError, ValueError):
    field: str
    reason: str

class UnavailableError(RegistryError): ...

class RequestTimeoutError(RegistryError):
    operation: str
    after: float

class PermissionDeniedError(RegistryError): ...

class AlreadyRegisteredError(RegistryError):
    key: str

class NotRegisteredError(RegistryError):
    key: str

class ConflictError(RegistryError):
    key: str
    other_lease: int

class ClosedError(RegistryError): ...

class ForkedError(RegistryError):
    created_in: int
    now_in: int

class EtcdError(RegistryError): ...

_Endpoints = Union[str, Sequence[str]]
_Metadata = Mapping[str, Union[str, int]]
_Spec = Union[Tuple[str, str], Tuple[str, str, Optional[_Metadata]]]

@final
class Client:
    def __new__(
        cls,
        endpoints: Optional[_Endpoints] = None,
        ttl: Optional[int] = None,
        prefix: Optional[str] = None,
        request_timeout: Optional[float] = None,
        heal_deleted_keys: Optional[bool] = None,
        on_event: Optional[Callable[[Any], object]] = None,
    ) -> Client: ...
    @staticmethod
    def connect_async(
        endpoints: Optional[_Endpoints] = None,
        ttl: Optional[int] = None,
        prefix: Optional[str] = None,
        request_timeout: Optional[float] = None,
        heal_deleted_keys: Optional[bool] = None,
        on_event: Optional[Callable[[Any], object]] = None,
    ) -> asyncio.Future[Client]: ...
    def register(self, name: str, addr: str, metadata: Optional[_Metadata] = None) -> Registration: ...
    def register_async(
        self, name: str, addr: str, metadata: Optional[_Metadata] = None
    ) -> asyncio.Future[Registration]: ...
    def register_many(self, services: Iterable[_Spec]) -> List[Registration]: ...
    def register_many_async(self, services: Iterable[_Spec]) -> asyncio.Future[List[Registration]]: ...
    def close(self) -> None: ...
    def close_async(self) -> asyncio.Future[None]: ...
    def key_of(self, name: str, addr: str) -> str: ...
    @property
    def lease_id(self) -> Optional[int]: ...
    @property
    def granted_ttl(self) -> int: ...
    @property
    def ttl(self) -> int: ...
    @property
    def endpoints(self) -> List[str]: ...
    @property
    def prefix(self) -> str: ...
    @property
    def request_timeout(self) -> float: ...
    @property
    def heal_deleted_keys(self) -> bool: ...
    @property
    def closed(self) -> bool: ...

@final
class Registration:
    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def addr(self) -> str: ...
    @property
    def metadata(self) -> Dict[str, str]: ...
    @property
    def registered(self) -> bool: ...
    def update(self, changes: _Metadata) -> None: ...
    def update_async(self, changes: _Metadata) -> asyncio.Future[None]: ...
    def deregister(self) -> None: ...
    def deregister_async(self) -> asyncio.Future[None]: ...

def dispatch_next(timeout: float) -> Optional[Tuple[Any, ...]]: ...
def dispatch_stop() -> None: ...
@final
class BenchCore:
    def __new__(cls, endpoints: List[str]) -> BenchCore: ...
    def register(self, name: str, addr: str, metadata: Optional[_Metadata] = None) -> int: ...
    def close(self) -> None: ...
