"""The split topology as local processes: one gateway and N replicas of each service, every one
a real `wheelyard service ...` process with its own data dir, sharing only the stores.

The caller gives the store settings (database, blobs, cache); the key pair is made here, the
private half for the gateway only. The gateway migrates and bootstraps, so it starts first;
it does not wait for the services (its readiness never depends on them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from wheelyard.shared.auth.internal_jwt import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, generate_key_files
from wheelyard.testing.server import ServerProcess

SERVICES = ("index", "upload", "proxy-cache")
_URL_SETTING = {
    "index": "WHEELYARD_INDEX_URL",
    "upload": "WHEELYARD_UPLOAD_URL",
    "proxy-cache": "WHEELYARD_PROXY_CACHE_URL",
}


class SplitTopology:
    """A gateway and `replicas[service]` processes of each service (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        env: dict[str, str],
        replicas: dict[str, int] | None = None,
        *,
        gateway_env: dict[str, str] | None = None,
    ) -> None:
        keys = root / "keys"
        generate_key_files(keys)
        common = env | {"WHEELYARD_INTERNAL_JWT_PUBLIC_KEY": str(keys / PUBLIC_KEY_FILE)}
        counts = {name: 1 for name in SERVICES} | (replicas or {})
        self.services: dict[str, list[ServerProcess]] = {
            name: [
                ServerProcess(
                    root / f"{name}-{i}",
                    common,
                    command=("service", name),
                    log_name="service.log",
                )
                for i in range(counts[name])
            ]
            for name in SERVICES
        }
        self.gateway = ServerProcess(
            root / "gateway",
            common
            | {
                "WHEELYARD_INTERNAL_JWT_PRIVATE_KEY": str(keys / PRIVATE_KEY_FILE),
                **{_URL_SETTING[n]: ",".join(p.url for p in ps) for n, ps in self.services.items()},
                **(gateway_env or {}),
            },
            command=("service", "gateway"),
            log_name="service.log",
        )

    @property
    def url(self) -> str:
        """The gateway's base URL: the registry's one address."""
        return self.gateway.url

    def processes(self) -> Iterator[tuple[str, ServerProcess]]:
        """(service name, process) of the gateway and every replica."""
        yield "gateway", self.gateway
        for name, group in self.services.items():
            for proc in group:
                yield name, proc

    def start(self) -> SplitTopology:
        """Start the gateway, then every replica; returns self."""
        try:
            self.gateway.start()
            for group in self.services.values():
                for proc in group:
                    proc.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process."""
        for _name, proc in self.processes():
            proc.stop()

    def __enter__(self) -> SplitTopology:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`GET <url>/metrics`, parsed with the Prometheus text parser: {(sample name, sorted
    labels): value}. The parser raises on anything that is not the exposition format."""
    response = httpx.get(url + "/metrics", timeout=30)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and wanted <= set(sample_labels)
    )
