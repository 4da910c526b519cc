"""The Kubernetes manifests (k8s/): every overlay renders with `kubectl kustomize`, every rendered
object passes `kubernetes-validate --strict`, and the properties a rollout depends on hold.

Offline: kubectl renders, the validator's schemas ship in its wheel. Without kubectl or the
validator this skips locally and fails under CI=true.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderfast.config import ENV_PREFIX, Settings
from orderfast.config.settings import options
from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod", "full")  # full: prod with the grpc and temporal components
SECRET_EXAMPLE = K8S / "base" / "secret.example.yaml"
# kubectl's own version here, and the newest the validator's wheel ships (no API removed since).
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
UID = 10001  # the image's user (Dockerfile)
SECRETS_DIR = "/run/secrets/orderfast"
WRITABLE = {"/tmp", "/var/lib/orderfast"}  # the image's writable paths, each an emptyDir
LIVE_DIR = "/etc/orderfast/live"  # the ConfigMap orderfast-live: files read again when they change
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
FAKE_SECRETS = {  # what the Secret's keys hold, for reading the settings as a pod would
    "database-url": "postgresql://db.test:5432/orderfast",
    "redis-url": "redis://redis.test:6379/0",
    "jwt-secret": "k" * 48,
    "webhook-secret": "s" * 32,
}

Doc = dict[str, Any]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        unavailable("kubectl (kustomize)")
    assert path is not None
    return path


def render(overlay: str) -> str:
    done = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize k8s/overlays/{overlay}:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, str, list[Doc]]:
    text = render(request.param)
    return request.param, text, [d for d in yaml.safe_load_all(text) if d]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    for d in docs:
        if d["kind"] in WORKLOADS:
            spec = d["spec"]["jobTemplate"]["spec"] if d["kind"] == "CronJob" else d["spec"]
            yield f"{d['kind']}/{d['metadata']['name']}", spec["template"]["spec"]


def containers(pod: Doc) -> list[Doc]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def api_container(docs: list[Doc]) -> Doc:
    pod = one(docs, "Deployment", "orderfast-api")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return container


def test_renders_and_validates_strictly(rendered: tuple[str, str, list[Doc]], tmp_path: Path) -> None:
    overlay, text, docs = rendered
    validator = Path(sys.executable).with_name("kubernetes-validate")
    if not validator.exists():
        unavailable("kubernetes-validate (the dev install)")
    target = tmp_path / f"{overlay}.yaml"
    target.write_text(text)
    assert {d["kind"] for d in docs} >= {"Deployment", "Job", "Service", "ConfigMap", "NetworkPolicy"}
    for version in KUBERNETES_VERSIONS:
        done = subprocess.run(
            [str(validator), "--strict", "--quiet", "-k", version, str(target), str(SECRET_EXAMPLE)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{overlay}, Kubernetes {version}:\n{done.stdout}{done.stderr}"


def test_every_container_is_locked_down(rendered: tuple[str, str, list[Doc]]) -> None:
    _, _, docs = rendered
    specs = list(pod_specs(docs))
    assert len(specs) >= 3  # API, relay, migration Job
    for where, pod in specs:
        assert pod.get("automountServiceAccountToken") is False, where
        assert pod.get("enableServiceLinks") is False, where  # ORDERFAST_<SERVICE>_PORT=tcp://… is refused
        pod_ctx = pod.get("securityContext", {})
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in containers(pod):
            at = f"{where} container {c['name']}"
            ctx = {**pod_ctx, **c.get("securityContext", {})}
            assert ctx.get("runAsNonRoot") is True, at
            assert ctx.get("runAsUser") == UID, at
            assert ctx.get("readOnlyRootFilesystem") is True, at
            assert ctx.get("allowPrivilegeEscalation") is False, at
            assert not ctx.get("privileged"), at
            assert "ALL" in ctx.get("capabilities", {}).get("drop", []), at
            assert not ctx.get("capabilities", {}).get("add"), at
            assert ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", at
            assert c["image"].split(":")[0].rsplit("/", 1)[-1] == "orderfast", at
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), at
            assert "memory" in c["resources"]["limits"], at
            mounts = {m["mountPath"]: volumes[m["name"]] for m in c.get("volumeMounts", [])}
            for path in WRITABLE:
                assert "emptyDir" in mounts.get(path, {}), f"{at}: {path} must be an emptyDir"
            for path, volume in mounts.items():
                live = path == LIVE_DIR and volume.get("configMap", {}).get("name") == "orderfast-live"
                assert path in WRITABLE or "secret" in volume or live, f"{at}: unexpected mount {path}"
            for m in c.get("volumeMounts", []):
                # subPath mounts are never updated by kubelet: a live file would be frozen.
                assert "subPath" not in m or m["mountPath"] != LIVE_DIR, at


def test_api_probes_are_on_the_right_paths(rendered: tuple[str, str, list[Doc]]) -> None:
    _, _, docs = rendered
    c = api_container(docs)
    assert c["args"][0] == "serve" and "command" not in c  # the image's ENTRYPOINT is orderfast
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8000, "metrics": 9100}
    for probe, path in (("startupProbe", "/startupz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        assert c[probe]["httpGet"]["path"] == path, probe
        assert c[probe]["httpGet"]["port"] in ("http", 8000), probe
    # /readyz waits up to 2 s for the database: a shorter timeout would fail a healthy pod.
    assert c["readinessProbe"]["timeoutSeconds"] > 2
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


def test_rollouts_never_drop_capacity(rendered: tuple[str, str, list[Doc]]) -> None:
    _, _, docs = rendered
    for d in of_kind(docs, "Deployment"):
        spec = d["spec"]
        assert spec["strategy"]["type"] == "RollingUpdate"
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] in (0, "0%"), d["metadata"]["name"]
        assert spec["strategy"]["rollingUpdate"]["maxSurge"] not in (0, "0%")
        assert 1 <= spec["revisionHistoryLimit"] <= 10


def settings_of(docs: list[Doc], container: Doc, tmp_path: Path) -> Settings:
    """The container's settings as the server would read them, its secret files replaced by test ones."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    live = one(docs, "ConfigMap", "orderfast-live")["data"]
    for name, value in env.items():
        if name.endswith("_FILE"):
            file = tmp_path / Path(value).name
            if value.startswith(LIVE_DIR + "/"):
                file.write_text(live[file.name])  # read as the server reads it: a bad file fails here
            else:
                assert value.startswith(SECRETS_DIR + "/"), name
                file.write_text(FAKE_SECRETS[file.name])
            env[name] = str(file)
    return Settings.from_env(env)


def test_settings_are_known_and_valid(rendered: tuple[str, str, list[Doc]], tmp_path: Path) -> None:
    _, _, docs = rendered
    known = set()
    for _, option in options():
        known.add(ENV_PREFIX + option.env)
        if option.secret:
            known.add(ENV_PREFIX + option.env + "_FILE")
    settings_maps = [cm for cm in of_kind(docs, "ConfigMap") if cm["metadata"]["name"] != "orderfast-live"]
    for cm in settings_maps:
        assert set(cm["data"]) <= known, f"unknown settings: {set(cm['data']) - known}"
    for where, pod in pod_specs(docs):
        for c in containers(pod):
            names = {e["name"] for e in c.get("env", [])}
            assert names <= known, f"{where}: unknown settings {names - known}"
            settings_of(docs, c, tmp_path)  # raises ConfigError on a value the server would refuse
    api = settings_of(docs, api_container(docs), tmp_path)
    assert (api.host, api.port, api.workers) == ("0.0.0.0", 8000, 1)
    assert str(api.data_dir) == "/var/lib/orderfast"
    assert api.flags_file is not None and api.ratelimit_file is not None and api.tax_file is not None


def test_grace_period_exceeds_the_drain(rendered: tuple[str, str, list[Doc]], tmp_path: Path) -> None:
    _, _, docs = rendered
    pod = one(docs, "Deployment", "orderfast-api")["spec"]["template"]["spec"]
    c = api_container(docs)
    settings = settings_of(docs, c, tmp_path)
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    assert "exec" not in c.get("lifecycle", {}).get("preStop", {})  # a shell `sleep` may not exist
    assert settings.drain_delay > 0
    needed = pre_stop + settings.drain_delay + settings.shutdown_timeout
    assert pod["terminationGracePeriodSeconds"] > needed


def test_no_real_secret_is_rendered_or_committed(rendered: tuple[str, str, list[Doc]]) -> None:
    _, text, docs = rendered
    assert not of_kind(docs, "Secret"), "the Secret is created out of band, never rendered from git"
    secret_settings = {ENV_PREFIX + o.env for _, o in options() if o.secret}
    for cm in of_kind(docs, "ConfigMap"):
        assert not set(cm["data"]) & secret_settings, "secrets go in the Secret, as *_FILE"
    assert not re.search(r"://[^/\s:@]+:[^@\s]+@", text), "credentials in a URL"
    assert "PRIVATE KEY" not in text
    # Every pod reads the one Secret by name, and only keys the example documents.
    example = yaml.safe_load(SECRET_EXAMPLE.read_text())
    assert example["kind"] == "Secret" and example["metadata"]["name"] == "orderfast"
    for where, pod in pod_specs(docs):
        for v in pod.get("volumes", []):
            if "secret" in v:
                assert v["secret"]["secretName"] == "orderfast", where
                assert {i["key"] for i in v["secret"]["items"]} <= set(example["stringData"]), where


def test_the_secret_example_holds_placeholders_only() -> None:
    example = yaml.safe_load(SECRET_EXAMPLE.read_text())
    assert "data" not in example
    for key, value in example["stringData"].items():
        assert "CHANGE-ME" in value, key
    assert len(example["stringData"]["jwt-secret"]) < 32  # the server refuses to start with it
    for kustomization in K8S.rglob("kustomization.yaml"):
        listed = yaml.safe_load(kustomization.read_text()).get("resources", [])
        assert not [r for r in listed if "secret" in r], f"{kustomization}: a Secret from git"


def test_service_hpa_pdb_and_network_policy(rendered: tuple[str, str, list[Doc]]) -> None:
    overlay, _, docs = rendered
    api = one(docs, "Deployment", "orderfast-api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    svc = one(docs, "Service", "orderfast-api")
    assert not [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == "orderfast"]  # ORDERFAST_PORT
    assert svc["spec"]["type"] == "ClusterIP"
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(80, "http")]
    assert svc["spec"]["selector"].items() <= labels.items()

    pdb = one(docs, "PodDisruptionBudget", "orderfast-api")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpas = [h for h in of_kind(docs, "HorizontalPodAutoscaler") if h["metadata"]["name"] == "orderfast-api"]
    if overlay == "dev":
        assert not hpas and api["spec"]["replicas"] == 1
    else:
        (hpa,) = hpas
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orderfast-api"}
        assert "replicas" not in api["spec"], "each apply would reset the HPA's count"
        assert hpa["spec"]["minReplicas"] >= 3 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        least = hpa["spec"]["minReplicas"]
        min_available = pdb["spec"]["minAvailable"]
        if isinstance(min_available, str):  # a percentage rounds up
            min_available = math.ceil(least * int(min_available.rstrip("%")) / 100)
        assert 2 <= min_available < least, "keeps two pods up and still lets a node drain"

    policies = of_kind(docs, "NetworkPolicy")
    api_policies = [np for np in policies if np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
    ingress_ports = {p["port"] for np in api_policies for rule in np["spec"].get("ingress", []) for p in rule["ports"]}
    assert ingress_ports == {8000, 9100}
    # The API port only from the ingress controller, metrics only from Prometheus's namespace.
    sources = {
        p["port"]: [
            frm["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for frm in rule["from"]
        ]
        for np in api_policies for rule in np["spec"].get("ingress", []) for p in rule["ports"]
    }  # fmt: skip
    assert sources == {8000: ["ingress-nginx"], 9100: ["monitoring"]}
    egress = {
        (p.get("protocol", "TCP"), p["port"])
        for np in policies for rule in np["spec"].get("egress", []) for p in rule["ports"]
    }  # fmt: skip
    assert egress >= {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 6379)}


def test_migration_job_stands_alone(rendered: tuple[str, str, list[Doc]]) -> None:
    """The runbook applies the Job alone (`-l app.kubernetes.io/component=migrate`) before the rest:
    it must select the Job only, and the Job must need nothing else of the release."""
    _, _, docs = rendered
    selected = [d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "migrate"]
    assert [d["kind"] for d in selected] == ["Job"]
    (pod,) = [p for _, p in pod_specs(selected)]
    (c,) = pod["containers"]
    assert c["args"] == ["migrate"] and "envFrom" not in c and pod["restartPolicy"] == "Never"
    assert not pod.get("serviceAccountName")


def test_each_overlay_has_its_own_image_tag() -> None:
    tags = {}
    for overlay in OVERLAYS:
        images = {
            c["image"] for _, pod in pod_specs(list(yaml.safe_load_all(render(overlay)))) for c in containers(pod)
        }
        assert len(images) == 1, f"{overlay}: one image for every container, got {images}"
        (image,) = images
        name, _, tags[overlay] = image.rpartition(":")
        assert name.endswith("orderfast") and tags[overlay] not in ("", "latest"), image
    assert len(set(tags.values())) == len(OVERLAYS), tags


def selects(selector: dict[str, str], pod_labels: dict[str, str]) -> bool:
    return selector.items() <= pod_labels.items()


def test_the_grpc_component_serves_probes_and_scales_its_own_deployment() -> None:
    docs = [d for d in yaml.safe_load_all(render("full")) if d]
    deployment = one(docs, "Deployment", "orderfast-grpc")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["serve-grpc", "--port", "50051"] and "command" not in c
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": 50051, "metrics": 9100}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == 50051, probe  # the kubelet asks grpc.health.v1
    assert "replicas" not in deployment["spec"]
    svc = one(docs, "Service", "orderfast-grpc")
    assert selects(svc["spec"]["selector"], labels)
    assert [(p["port"], p["targetPort"], p["appProtocol"]) for p in svc["spec"]["ports"]] == [
        (50051, "grpc", "kubernetes.io/h2c")
    ]
    hpa = one(docs, "HorizontalPodAutoscaler", "orderfast-grpc")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "orderfast-grpc" and hpa["spec"]["minReplicas"] >= 2
    assert selects(one(docs, "PodDisruptionBudget", "orderfast-grpc")["spec"]["selector"]["matchLabels"], labels)
    admitted = {
        p["port"] for np in of_kind(docs, "NetworkPolicy") if selects(np["spec"]["podSelector"]["matchLabels"], labels)
        for rule in np["spec"].get("ingress", []) for p in rule["ports"]
    }  # fmt: skip
    assert admitted == {50051, 9100}
    # The API's own Service and policies are untouched: nothing else reaches the gRPC pods.
    assert not selects(one(docs, "Service", "orderfast-api")["spec"]["selector"], labels)


def test_the_temporal_component_moves_expiry_off_the_api(tmp_path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(render("full")) if d]
    worker = one(docs, "Deployment", "orderfast-temporal-worker")
    (c,) = worker["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["worker", "temporal"]
    settings = settings_of(docs, c, tmp_path)
    assert settings.temporal_address == "temporal-frontend.temporal.svc.cluster.local:7233"
    assert settings.redis_url is not None, "the worker reads the order events from the relay's stream"
    # The same address in the API pods' settings: they run no sweeper then.
    assert settings_of(docs, api_container(docs), tmp_path).temporal_address == settings.temporal_address
    labels = worker["spec"]["template"]["metadata"]["labels"]
    egress = {
        p["port"] for np in of_kind(docs, "NetworkPolicy") if selects(np["spec"]["podSelector"]["matchLabels"], labels)
        for rule in np["spec"].get("egress", []) for p in rule["ports"]
    }  # fmt: skip
    assert egress >= {7233, 5432, 6379, 53}
