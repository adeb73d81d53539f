"""docker-compose.yml works as written, proven without a Docker engine.

The file is validated against the Compose Specification schema (vendored, see data/README.md)
and then *run*: every service in `depends_on` order, each Wheelyard container's own command
and environment as a local process, with the container world mapped onto this machine:

- hostnames -> 127.0.0.1 ports: `postgres` -> the local Postgres (a fresh database), `redis`
  -> the local Redis, `minio` -> SeaweedFS S3 (the test plugin's `seaweedfs_s3`), each
  Wheelyard service -> the free port it listens on, the gateway's published port -> its URL;
- named volumes -> directories (one per volume), container paths rewritten to them;
- the image (Dockerfile: `PATH=/opt/wheelyard/bin`, `WHEELYARD_DATA_DIR=/data`) -> this venv's
  bin directory and a data directory per container;
- a healthcheck -> its own `test` command, run as compose would until it passes, before any
  `service_healthy` dependant starts;
- the `bucket` step (`mc mb`) -> the same request through the minio client, after checking its
  credentials and bucket match MinIO's and Wheelyard's.

The keygen step runs as compose runs it (as root: it hands the key to uid 10001), so the test
checks that uid 10001, and only it, can read the private key; the services themselves run as
the test's user (this venv is not readable by uid 10001). Then twine uploads through the
gateway and pip installs what it uploaded.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from minio import Minio

from wheelyard.shared.storage import S3Options
from wheelyard.testing.clients import installed_version, make_venv, run, twine_command
from wheelyard.testing.db_fixtures import create_database, drop_database
from wheelyard.testing.dist_factory import make_sdist, make_wheel
from wheelyard.testing.server import clean_env
from wheelyard.testing.server_fixtures import unique_project
from wheelyard.testing.tcp_proxy import free_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
SCHEMA_FILE = Path(__file__).parent / "data" / "compose-spec.json"
WHEELYARD_SERVICES = ("index", "upload", "proxy-cache", "gateway")
#: The uid:gid of the image's user (Dockerfile) that must own, and alone read, the private key.
APP_USER = "10001:10001"
CONTAINER_PORT = 8000


def load_compose() -> dict:
    """docker-compose.yml as compose sees it (YAML anchors and `<<` merges resolved)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def depends_on(service: dict) -> dict[str, str]:
    """{dependency: condition} of a service (the short list form means service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec["condition"] for name, spec in deps.items()}


def start_waves(services: dict[str, dict]) -> list[list[str]]:
    """The services in the waves compose starts them in: each wave depends only on earlier
    ones, and compose starts the members of a wave together."""
    waves: list[list[str]] = []
    done: set[str] = set()
    pending = dict(services)
    while pending:
        ready = [n for n, s in pending.items() if set(depends_on(s)) <= done]
        assert ready, f"dependency cycle among {sorted(pending)}"
        waves.append(ready)
        done.update(ready)
        for name in ready:
            del pending[name]
    return waves


# --- static checks -----------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    # It declares draft-07 as "https://json-schema.org/draft-07/schema" (no "#"), a spelling
    # jsonschema does not look up: name the draft explicitly.
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(load_compose()), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_every_image_is_pinned_by_tag_and_digest() -> None:
    for name, service in load_compose()["services"].items():
        if "build" in service:
            continue  # built here from the Dockerfile, whose base image is checked below
        image = service["image"]
        reference, _, digest = image.partition("@")
        tag = reference.rpartition(":")[2]
        assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64, (name, image)
        assert "/" not in tag and tag and tag != "latest", (name, image)
    froms = [
        ln.split()[1]
        for ln in (REPO / "Dockerfile").read_text().splitlines()
        if ln.startswith("FROM ")
    ]
    assert froms and all("@sha256:" in image for image in froms), froms


def test_dockerfile_copies_every_workspace_member() -> None:
    import tomllib

    members = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    copied = {
        line.split()[1]
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    }
    for member in members["members"]:
        top = member.split("/")[0]
        assert top in copied, f"workspace member {member} is not copied: uv sync --frozen fails"


def test_only_the_gateway_mounts_or_names_the_private_key() -> None:
    services = load_compose()["services"]
    keygen = services["keygen"]
    private_volumes = {v.split(":")[0] for v in keygen["volumes"] if "/private" in v}
    assert private_volumes == {"jwt-private"}
    for name, service in services.items():
        mounts = {v.split(":")[0] for v in service.get("volumes", [])}
        env = service.get("environment") or {}
        if name in ("gateway", "keygen"):
            continue
        assert "jwt-private" not in mounts, name
        assert "WHEELYARD_INTERNAL_JWT_PRIVATE_KEY" not in env, name
    gateway = services["gateway"]
    assert "jwt-private:/keys/private:ro" in gateway["volumes"]
    assert gateway["environment"]["WHEELYARD_INTERNAL_JWT_PRIVATE_KEY"].startswith("/keys/private/")


def test_wheelyard_services_wait_for_setup_and_have_healthchecks() -> None:
    services = load_compose()["services"]
    for name in WHEELYARD_SERVICES:
        service = services[name]
        deps = depends_on(service)
        assert deps["migrate"] == "service_completed_successfully", name
        assert deps["keygen"] == "service_completed_successfully", name
        assert deps["bucket"] == "service_completed_successfully", name
        assert service["user"] == APP_USER, name
        assert "/readyz" in " ".join(service["healthcheck"]["test"]), name
    assert depends_on(services["migrate"])["postgres"] == "service_healthy"
    for name, service in services.items():
        if service.get("restart") != "no":  # every long-running service says when it is ready
            assert "healthcheck" in service, name


# --- the stack as processes --------------------------------------------------------------------


@dataclass
class Stack:
    """The compose file mapped onto this machine, and the processes it started."""

    compose: dict
    root: Path
    s3: S3Options
    redis_netloc: str
    database_url: str
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    data_dirs: dict[str, Path] = field(default_factory=dict)
    #: The stand-in Redis is shared with other runs (other stacks, other checkouts): keys of
    #: this stack's own, or another stack's cached `admin` record is read as this one's.
    cache_prefix: str = field(default_factory=lambda: f"wy-compose-{uuid.uuid4().hex[:8]}:")

    @property
    def services(self) -> dict[str, dict]:
        return self.compose["services"]

    def volume_dir(self, volume: str) -> Path:
        assert volume in self.compose["volumes"], f"undeclared volume {volume}"
        path = self.root / "volumes" / volume
        path.mkdir(parents=True, exist_ok=True)
        return path

    def url_of(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def translate(self, name: str, value: str) -> str:
        """A value as service `name` sees it, with hostnames and volume paths mapped."""
        for volume_spec in self.services[name].get("volumes", []):
            volume, target = volume_spec.split(":")[:2]
            value = value.replace(target, str(self.volume_dir(volume)))
        for service in WHEELYARD_SERVICES:
            if service in self.ports:
                value = value.replace(
                    f"//{service}:{CONTAINER_PORT}", f"//127.0.0.1:{self.ports[service]}"
                )
        # The gateway's published port: what a client on the host (and the public URL) uses.
        (published,) = self.services["gateway"]["ports"]
        host_port = published.split(":")[0]
        if "gateway" in self.ports:
            value = value.replace(
                f"//localhost:{host_port}", f"//127.0.0.1:{self.ports['gateway']}"
            )
        return value.replace("redis://redis:6379", f"redis://{self.redis_netloc}")

    def environment(self, name: str) -> dict[str, str]:
        """The container's environment: the image's (Dockerfile ENV) and the compose file's."""
        data = self.root / "containers" / name / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.data_dirs[name] = data
        env = clean_env(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            WHEELYARD_DATA_DIR=str(data),
        )
        for key, value in (self.services[name].get("environment") or {}).items():
            env[key] = self.translate(name, str(value))
        if "WHEELYARD_DATABASE_URL" in env:
            env["WHEELYARD_DATABASE_URL"] = self.database_url
        if "WHEELYARD_CACHE_URL" in env:
            env["WHEELYARD_CACHE_PREFIX"] = self.cache_prefix
        if "WHEELYARD_S3_ENDPOINT" in env:
            env["WHEELYARD_S3_ENDPOINT"] = self.s3.endpoint
            env["WHEELYARD_S3_ACCESS_KEY"] = self.s3.access_key
            env["WHEELYARD_S3_SECRET_KEY"] = self.s3.secret_key
        for key, value in env.items():  # every container hostname was mapped
            host = urlsplit(value).hostname if "://" in value else value.rpartition(":")[0]
            assert host not in self.services, (key, value)
        return env

    def command(self, name: str) -> list[str]:
        """The container's command, listening on a free local port instead of 8000."""
        argv = [self.translate(name, str(a)) for a in self.services[name]["command"]]
        if argv[0] == "wheelyard":
            argv = [sys.executable, "-m", "wheelyard.cli", *argv[1:]]
        if "--port" in argv:
            argv[argv.index("--port") + 1] = str(self.ports[name])
            argv[argv.index("--host") + 1] = "127.0.0.1"
        return argv

    def run_once(self, name: str, *, prefix: tuple[str, ...] = ()) -> None:
        """A one-shot service: run it to completion (after `prefix`); it must exit 0."""
        log = self.root / f"{name}.log"
        env = self.environment(name)
        with log.open("wb") as out:
            result = subprocess.run(
                [*prefix, *self.command(name)],
                env=env,
                cwd=self.data_dirs[name],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            )
        assert result.returncode == 0, f"{name} exited {result.returncode}:\n{log.read_text()}"

    def start(self, name: str) -> None:
        """A long-running service: start it in its own process group."""
        self.ports[name] = free_port()
        env = self.environment(name)
        with (self.root / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                self.command(name),
                env=env,
                cwd=self.data_dirs[name],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_healthy(self, name: str) -> None:
        """Run the service's healthcheck as compose does, until it passes or compose would
        call the service unhealthy (start_period, then `retries` failures)."""
        check = self.services[name]["healthcheck"]
        kind, *argv = check["test"]
        assert kind == "CMD", f"{name}: exec-form healthcheck expected (no shell in the check)"
        argv = [sys.executable if a == "python" else a for a in argv]
        argv = [
            a.replace(f"127.0.0.1:{CONTAINER_PORT}", f"127.0.0.1:{self.ports[name]}") for a in argv
        ]
        deadline = time.monotonic() + seconds(check["start_period"])
        deadline += check["retries"] * seconds(check["interval"])
        while True:
            proc = self.procs[name]
            assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{self.log(name)}"
            probe = subprocess.run(argv, capture_output=True, timeout=seconds(check["timeout"]))
            if probe.returncode == 0:
                return
            assert time.monotonic() < deadline, (
                f"{name} never became healthy: {probe.stderr.decode()[-800:]}\n{self.log(name)}"
            )
            time.sleep(seconds(check.get("start_interval", check["interval"])))

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def seconds(duration: str) -> float:
    """A compose duration such as `10s`, `1m` or `500ms` in seconds (the forms this file uses)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if duration.endswith(unit) and duration[: -len(unit)].replace(".", "").isdigit():
            return float(duration[: -len(unit)]) * units[unit]
    raise ValueError(f"unsupported duration {duration!r}")


def _check_backing_services(compose: dict) -> None:
    """What the mapped stand-ins assume: the Wheelyard settings match Postgres and MinIO."""
    services = compose["services"]
    env = compose["services"]["migrate"]["environment"]
    pg = services["postgres"]["environment"]
    url = urlsplit(env["WHEELYARD_DATABASE_URL"])
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert (url.username, url.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    assert url.path == "/" + pg["POSTGRES_DB"]
    minio = services["minio"]["environment"]
    assert env["WHEELYARD_S3_ENDPOINT"] == "minio:9000"
    assert env["WHEELYARD_S3_ACCESS_KEY"] == minio["MINIO_ROOT_USER"]
    assert env["WHEELYARD_S3_SECRET_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert urlsplit(env["WHEELYARD_CACHE_URL"]).hostname == "redis"


def _make_bucket(stack: Stack) -> str:
    """The `bucket` step (`mc mb --ignore-existing ALIAS/BUCKET`) against the S3 stand-in."""
    service = stack.services["bucket"]
    assert service["entrypoint"] == ["mc"]
    verb, flag, target = service["command"]
    assert (verb, flag) == ("mb", "--ignore-existing")
    alias, bucket = target.split("/")
    host = urlsplit(service["environment"][f"MC_HOST_{alias}"])
    minio = stack.services["minio"]["environment"]
    assert (host.username, host.password) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    assert host.netloc.endswith("@minio:9000")
    blob_url = stack.services["migrate"]["environment"]["WHEELYARD_BLOB_URL"]
    assert blob_url == f"s3://{bucket}", "the bucket made is not the one Wheelyard uses"
    client = _s3_client(stack.s3)
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    return bucket


def _s3_client(options: S3Options) -> Minio:
    return Minio(
        options.endpoint,
        access_key=options.access_key,
        secret_key=options.secret_key,
        secure=options.secure,
        region=options.region,
    )


def container_privileges(service: dict) -> tuple[str, ...]:
    """A `setpriv` prefix that gives a root process what the container's root gets: only the
    capabilities in `cap_add` (the file drops ALL), and no new privileges."""
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    caps = ",".join(["-all", *(f"+{c.lower()}" for c in service.get("cap_add", []))])
    # Root's capabilities after exec are its bounding and inheritable sets: restrict both.
    return ("setpriv", "--no-new-privs", f"--bounding-set={caps}", f"--inh-caps={caps}", "--")


def _keygen(stack: Stack) -> None:
    """The keygen step exactly as compose runs it: as root, with only the capabilities the
    compose file grants it, without network; and twice (compose runs it at every `up`)."""
    service = stack.services["keygen"]
    assert service["user"] == "0:0" and service["network_mode"] == "none"
    assert os.geteuid() == 0, "the keygen step runs as root in compose (it chowns the key)"
    privileges = container_privileges(service)
    stack.run_once("keygen", prefix=privileges)
    private_dir = stack.volume_dir("jwt-private")
    (private_key,) = private_dir.iterdir()
    # A second run (the next `up`) keeps the key the services verify with.
    first = private_key.read_bytes()
    stack.run_once("keygen", prefix=privileges)
    assert private_key.read_bytes() == first
    public_key = stack.volume_dir("jwt-public") / "internal-jwt-public.pem"
    uid, gid = (int(part) for part in APP_USER.split(":"))
    for path, mode in ((private_dir, 0o700), (private_key, 0o600)):
        info = path.stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (uid, gid, mode), path
    assert stat.S_IMODE(public_key.stat().st_mode) == 0o644
    # The proof that matters: uid 10001 reads the private key, another unprivileged uid cannot,
    # and anyone can read the public key.
    reads = {
        (user, str(path)): subprocess.run(
            ["/bin/cat", str(path)], user=user, group=user, capture_output=True, check=False
        ).returncode
        for user in (uid, uid + 1)
        for path in (private_key, public_key)
    }
    assert reads == {
        (uid, str(private_key)): 0,
        (uid + 1, str(private_key)): 1,
        (uid, str(public_key)): 0,
        (uid + 1, str(public_key)): 0,
    }, reads


@pytest.fixture
def stack(seaweedfs_s3: S3Options, redis_url: str) -> Iterator[Stack]:
    compose = load_compose()
    _check_backing_services(compose)
    pg_url, dbname = asyncio.run(create_database())
    # Traversable by uid 10001 (pytest's tmp dirs are private to root), removed afterwards.
    root = Path(tempfile.mkdtemp(prefix="wy-compose-"))
    root.chmod(0o755)
    stack = Stack(
        compose,
        root,
        seaweedfs_s3,
        redis_netloc=urlsplit(redis_url).netloc,
        database_url=pg_url.rsplit("/", 1)[0] + "/" + dbname,
    )
    try:
        yield stack
    finally:
        stack.stop()
        asyncio.run(drop_database(pg_url, dbname))
        shutil.rmtree(root, ignore_errors=True)


def test_the_stack_runs_from_the_compose_file_and_serves_twine_and_pip(
    stack: Stack, tmp_path: Path
) -> None:
    stand_ins = {"postgres", "redis", "minio"}  # the fixtures' servers, already healthy
    bucket = ""
    waves = start_waves(stack.services)
    for wave in waves:
        for name in wave:
            if name in stand_ins:
                pass
            elif name == "bucket":
                bucket = _make_bucket(stack)
            elif name == "keygen":
                _keygen(stack)
            elif stack.services[name].get("restart") == "no":
                stack.run_once(name)
            else:
                stack.start(name)
        for name in wave:
            if name in stack.procs:
                stack.wait_healthy(name)  # compose starts dependants only once this passes
    assert waves[-1] == ["gateway"], waves
    assert set(WHEELYARD_SERVICES) <= set(stack.procs)

    gateway = stack.url_of("gateway")
    admin_password = (stack.data_dirs["gateway"] / "admin-password").read_text().strip()
    project = unique_project("compose")
    dist = tmp_path / "dist"
    dist.mkdir()
    files = [make_wheel(dist, project, "1.0"), make_sdist(dist, project, "1.0")]
    upload = [*twine_command(), "upload", "--non-interactive", "--disable-progress-bar"]
    upload += ["--repository-url", f"{gateway}/repositories/default/local/"]
    upload += ["--username", "admin", "--password", admin_password, *map(str, files)]
    run(upload).succeeded()

    python = make_venv(tmp_path / "venv", with_pip=True)
    index = f"{gateway}/repositories/default/local/simple/"
    pip = [python, "-m", "pip", "install", "--isolated", "--no-cache-dir", "--no-input"]
    run([*pip, "--disable-pip-version-check", "--index-url", index, project]).succeeded()
    assert installed_version(python, project) == "1.0"

    # The files went to the S3 stand-in through the bucket the `bucket` step made.
    sizes = sorted(o.size for o in _s3_client(stack.s3).list_objects(bucket, recursive=True))
    for path in files:
        assert path.stat().st_size in sizes, (path.name, sizes)
    # Still healthy after the work, every one of them.
    for name in WHEELYARD_SERVICES:
        stack.wait_healthy(name)
