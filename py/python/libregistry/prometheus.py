"""Exposes a registry's metrics on ``prometheus_client``'s ``/metrics``
(``pip install libregistry[prometheus]``)::

    from prometheus_client import REGISTRY
    from libregistry.prometheus import RegistryCollector
    REGISTRY.register(RegistryCollector(registry))
"""

from typing import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from ._registry import RegistryBase


class RegistryCollector:
    """A ``prometheus_client`` collector reading ``registry``'s metrics at each scrape."""

    def __init__(self, registry: RegistryBase) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        if self._registry._native is not None and not self._registry.closed:
            yield from text_string_to_metric_families(self._registry.metrics_text())
