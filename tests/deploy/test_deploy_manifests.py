"""The Kubernetes overlays: valid, hardened, and consistent with the code they deploy.

Rendered with the pinned kustomize, validated with kubernetes-validate in strict mode, scanned
with checkov, then checked against wiki_lib itself: every variable is a setting, every
endpoint a Service, every CronJob a wikipulse command, every topic as the producer makes it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from k8stools import (
    K8S,
    OWN_IMAGES,
    PROJECT_VERSION,
    Container,
    containers,
    environment,
    expand,
    find,
    pod_labels,
    pod_spec,
    spark_properties,
    tool,
    workloads,
)
from kubernetes_validate.utils import latest_version

from wiki_lib.alerts.notify import AlertPublisher
from wiki_lib.cli import build_parser
from wiki_lib.commands import alerts as alerts_command
from wiki_lib.config import Settings
from wiki_lib.hub import PASSWORD_ENV
from wiki_lib.kafka_admin import ingest_topic_specs

Docs = list[dict[str, Any]]
VERSIONS = ("1.30.0", latest_version())
KNOWN_SETTINGS = {
    f"WIKI__{section.upper()}__{name.upper()}"
    for section, info in Settings.model_fields.items()
    for name in info.annotation.model_fields  # type: ignore[union-attr]
}
# Variables the third-party images read themselves (not wikipulse settings).
THIRD_PARTY_ENV = {
    "apache/kafka": {"KAFKA_NODE_COUNT", "KAFKA_CLUSTER_ID", "KAFKA_HEAP_OPTS", "LOG_DIR"},
    "postgres": {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD", "PGDATA"},
}
# Which workloads may log in as which PostgreSQL role: only the pipeline (and alerts) write.
WRITERS = {"stream-driver", "batch-layer", "retention", "alerts"}
KAFKA_CLIENTS = {"producer", "stream-driver", "alerts"}
# Deployments without probes, and why (their checkov skips must say so too).
UNPROBED = {"alerts": "listens on no port and writes no heartbeat"}
PRIVILEGED = {"WIKI__POSTGRES__WRITER_PASSWORD", "WIKI__POSTGRES__ADMIN_PASSWORD"}
ADMINS = {"db-init"}
HUB_VALUES = yaml.safe_load((K8S / "jupyterhub" / "values.yaml").read_text())


def _settings_for(docs: Docs, container: Container) -> Settings:
    """The Settings a wikipulse container builds from its environment (secrets stubbed)."""
    env = environment(docs, container)
    data: dict[str, dict[str, Any]] = {}
    for key, value in env.items():
        if not key.startswith("WIKI__"):
            continue
        section, name = key.removeprefix("WIKI__").lower().split("__")
        data.setdefault(section, {})[name] = "stub" if isinstance(value, dict) else value
    return Settings(**data)


def _wikipulse(docs: Docs) -> list[Container]:
    return [c for c in containers(docs) if c.own_image]


# -- validity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_overlay_validates_strictly(rendered: dict[str, Docs], overlay: str, version: str) -> None:
    for doc in rendered[overlay]:
        kubernetes_validate.validate(doc, version, strict=True)


def test_executor_pod_template_validates(rendered: dict[str, Docs], overlay: str) -> None:
    template = find(rendered[overlay], "ConfigMap", "spark-conf")["data"]["executor-pod.yaml"]
    pod = yaml.safe_load(template)
    pod["spec"]["containers"][0]["image"] = "placeholder"  # Spark sets the image
    for version in VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)


def test_strict_validation_rejects_an_unknown_field(rendered: dict[str, Docs]) -> None:
    broken = json.loads(json.dumps(find(rendered["dev"], "Deployment", "producer")))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


CHECKOV_CONTROL = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: control, namespace: control}
spec:
  selector: {matchLabels: {app: control}}
  template:
    metadata: {labels: {app: control}}
    spec:
      containers: [{name: control, image: "busybox:latest"}]
"""


def test_checkov_finds_nothing_and_every_exception_is_justified(
    rendered: dict[str, Docs], tmp_path: Path
) -> None:
    for overlay, docs in rendered.items():
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(docs))
        for doc in docs:
            for key, value in doc["metadata"].get("annotations", {}).items():
                if key.startswith("checkov.io/skip"):
                    check, _, reason = value.partition("=")
                    assert re.fullmatch(r"CKV2?_K8S_\d+", check), value
                    assert len(reason.split()) >= 5, f"unjustified {value} on {doc['kind']}"
    # a deliberately careless Deployment proves the scan really looks
    (tmp_path / "control.yaml").write_text(CHECKOV_CONTROL)
    out = subprocess.run(
        [
            tool("checkov"),
            "--directory",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"BC_SKIP_MAPPING": "TRUE", "PATH": "/usr/bin:/bin"},
    )
    report = json.loads(out.stdout)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] > sum(len(d) for d in rendered.values()) / 2
    failed = report["results"]["failed_checks"]
    ours = [f"{c['check_id']} {c['resource']}" for c in failed if "control" not in c["file_path"]]
    assert ours == []
    assert len(failed) > 10, "checkov did not flag the careless control Deployment"


# -- hardening --------------------------------------------------------------------------------


def test_every_container_has_resources_and_a_locked_down_context(
    rendered: dict[str, Docs], overlay: str
) -> None:
    for doc in workloads(rendered[overlay]):
        pod = pod_spec(doc)["securityContext"]
        assert pod["runAsNonRoot"] is True, doc["metadata"]["name"]
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod.get("runAsUser", 0) > 0
    for container in containers(rendered[overlay]):
        resources = container.spec["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[bound]), container.name
        context = container.spec["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, container.name
        assert context["readOnlyRootFilesystem"] is True, container.name
        assert context["capabilities"]["drop"] == ["ALL"], container.name


def test_long_running_containers_have_probes(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    for container in containers(docs):
        if container.workload["kind"] not in ("Deployment", "StatefulSet"):
            continue
        name = container.workload["metadata"]["name"]
        probes = {"startupProbe", "readinessProbe", "livenessProbe"}
        if name in UNPROBED:
            # an exemption only for a pod nothing connects to, with both checkov skips
            assert not probes & set(container.spec), f"{container.name}: drop it from UNPROBED"
            skips = container.workload["metadata"].get("annotations", {}).values()
            assert {s.partition("=")[0] for s in skips} >= {"CKV_K8S_8", "CKV_K8S_9"}
            assert not container.spec.get("ports"), container.name
            labels = pod_labels(container.workload)
            for service in _services(docs).values():
                assert not service["spec"]["selector"].items() <= labels.items(), name
        else:
            missing = probes - set(container.spec)
            assert not missing, f"{container.name} has no {missing}"


def test_no_secret_values_anywhere(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    assert not [d for d in docs if d["kind"] == "Secret"]
    for container in containers(docs):
        for item in container.spec.get("env", []):
            if re.search(r"PASSWORD|SECRET|TOKEN", item["name"]):
                assert "secretKeyRef" in item.get("valueFrom", {}), container.name
    for key, value in HUB_VALUES["singleuser"]["extraEnv"].items():
        if "PASSWORD" in key:
            assert "secretKeyRef" in value["valueFrom"]
    assert not list(_secret_scalars(HUB_VALUES))


def _secret_scalars(node: Any, path: str = "") -> Any:
    """Paths in a values tree where a password, secret or token is given as a plain value."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if re.search(r"password|secret|token", str(key), re.IGNORECASE) and not isinstance(
                value, dict
            ):
                yield here
            yield from _secret_scalars(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _secret_scalars(value, f"{path}[{i}]")


# -- consistency with wiki_lib ----------------------------------------------------------------


def test_every_variable_is_a_known_setting(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    for container in containers(docs):
        names = set(environment(docs, container))
        if container.own_image or container.image.startswith("apache/kafka"):
            wiki = {n for n in names if n.startswith("WIKI__")}
            assert wiki <= KNOWN_SETTINGS, f"{container.name}: {wiki - KNOWN_SETTINGS}"
            names -= wiki
        allowed = next(
            (env for prefix, env in THIRD_PARTY_ENV.items() if container.image.startswith(prefix)),
            set(),
        )
        assert names <= allowed, f"{container.name} sets unknown variables {names - allowed}"
    for container in _wikipulse(docs):
        _settings_for(docs, container)  # values parse into the settings model


def test_hub_values_only_set_known_settings() -> None:
    single = set(HUB_VALUES["singleuser"]["extraEnv"])
    assert single <= KNOWN_SETTINGS, single - KNOWN_SETTINGS
    assert set(HUB_VALUES["hub"]["extraEnv"]) == {PASSWORD_ENV}
    assert PASSWORD_ENV in HUB_VALUES["hub"]["extraConfig"]["wikipulse-login"]


def _services(docs: Docs) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}


def _assert_endpoint(docs: Docs, host: str, port: int, what: str) -> None:
    """``host:port`` is a Service port (or a StatefulSet pod behind its headless Service)."""
    services = _services(docs)
    pod = re.fullmatch(r"(?P<set>[a-z0-9-]+)-(?P<ordinal>\d+)\.(?P<svc>[a-z0-9-]+)", host)
    if pod:
        statefulset = find(docs, "StatefulSet", pod["set"])
        assert statefulset["spec"]["serviceName"] == pod["svc"], what
        assert int(pod["ordinal"]) < statefulset["spec"]["replicas"], f"{what}: no pod {host}"
        host = pod["svc"]
    assert host in services, f"{what}: no Service {host}"
    ports = {p["port"] for p in services[host]["spec"]["ports"]}
    assert port in ports, f"{what}: Service {host} has no port {port}"


def test_every_endpoint_a_component_uses_exists(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    for container in _wikipulse(docs):
        settings = _settings_for(docs, container)
        if "WIKI__KAFKA__BOOTSTRAP" in environment(docs, container):
            for server in settings.kafka.bootstrap.split(","):
                host, port = server.split(":")
                _assert_endpoint(docs, host, int(port), f"{container.name} kafka")
        _assert_endpoint(docs, settings.postgres.host, settings.postgres.port, container.name)
    spark = spark_properties(find(docs, "ConfigMap", "spark-conf")["data"]["spark-defaults.conf"])
    _assert_endpoint(docs, spark["spark.driver.host"], int(spark["spark.driver.port"]), "driver")
    _assert_endpoint(
        docs, spark["spark.driver.host"], int(spark["spark.driver.blockManager.port"]), "bm"
    )
    kafka = find(docs, "StatefulSet", "kafka")
    for ordinal in range(kafka["spec"]["replicas"]):
        _assert_endpoint(docs, f"kafka-{ordinal}.kafka-headless", 9093, "controller quorum")
        _assert_endpoint(docs, f"kafka-{ordinal}.kafka-headless", 9092, "advertised listener")
    hub_env = HUB_VALUES["singleuser"]["extraEnv"]
    _assert_endpoint(
        docs, hub_env["WIKI__POSTGRES__HOST"], int(hub_env["WIKI__POSTGRES__PORT"]), "notebooks"
    )


def test_every_service_selects_pods_with_its_ports(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    for name, service in _services(docs).items():
        selector = service["spec"]["selector"]
        pods = [d for d in workloads(docs) if selector.items() <= pod_labels(d).items()]
        assert pods, f"Service {name} selects no pods"
        ports = {
            value
            for pod in pods
            for c in pod_spec(pod)["containers"]
            for p in c.get("ports", [])
            for value in (p["containerPort"], p.get("name"))
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name} targets {port['targetPort']}"


def test_all_images_carry_one_version(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    images = {c.image for c in containers(docs)}
    driver = next(c for c in containers(docs) if c.name == "stream-driver/driver")
    images |= {a.split("=", 1)[1] for a in driver.argv if a.startswith("spark.kubernetes.conta")}
    single = HUB_VALUES["singleuser"]["image"]
    images.add(f"{single['name']}:{single['tag']}")
    own = {i for i in images if i.split(":")[0] in OWN_IMAGES}
    assert {i.split(":")[0] for i in own} == set(OWN_IMAGES)
    assert {i.split(":")[1] for i in own} == {PROJECT_VERSION}, own
    for image in images - own:
        tag = image.partition(":")[2]
        assert re.fullmatch(r"\d+(\.\d+)+(-[a-z0-9]+)?", tag), f"{image} is not pinned"


def test_cronjobs_run_valid_wikipulse_commands(rendered: dict[str, Docs], overlay: str) -> None:
    parser = build_parser()
    cronjobs = [d for d in rendered[overlay] if d["kind"] == "CronJob"]
    assert {d["metadata"]["name"] for d in cronjobs} == {
        "evaluate-pipeline",
        "data-quality",
        "batch-layer",
        "retention",
    }
    for doc in cronjobs:
        (container,) = pod_spec(doc)["containers"]
        argv = [*container.get("command", []), *container.get("args", [])]
        assert argv[:3] == ["wikipulse", "notebook", "run"], argv
        args = parser.parse_args(argv[1:])
        assert args.handler is not None
        assert re.fullmatch(r"[\d*/,-]+( [\d*/,-]+){4}", doc["spec"]["schedule"])


def test_cronjob_notebooks_exist() -> None:
    notebooks = sorted((K8S.parent / "notebooks").glob("*.ipynb"))
    if not notebooks:
        pytest.skip("no notebooks in notebooks/ yet")
    text = (K8S / "base" / "notebooks" / "cronjobs.yaml").read_text()
    names = re.findall(r'"notebook", "run", "([a-z_]+)"', text)
    assert names and set(names) <= {p.stem for p in notebooks}


def test_topics_job_creates_what_the_producer_expects(
    rendered: dict[str, Docs], overlay: str
) -> None:
    docs = rendered[overlay]
    job = [c for c in containers(docs) if c.workload["metadata"]["name"] == "kafka-topics"]
    settings = _settings_for(docs, job[0])
    created = {}
    for container in job:
        env = environment(docs, container)
        args = dict(
            a.removeprefix("--").split("=", 1)
            for a in (expand(arg, env) for arg in container.spec["args"])
            if "=" in a and not a.startswith("--config")
        )
        configs = dict(
            expand(a, env).removeprefix("--config=").split("=", 1)
            for a in container.spec["args"]
            if a.startswith("--config=")
        )
        assert {"--create", "--if-not-exists"} <= set(container.spec["args"])
        host, port = args["bootstrap-server"].split(":")
        _assert_endpoint(docs, host, int(port), "topics")
        created[args["topic"]] = (int(args["partitions"]), int(args["replication-factor"]), configs)
    specs = dict(ingest_topic_specs(settings))
    alerts = AlertPublisher(settings)  # connects on first publish only
    specs[alerts.topic] = alerts.spec
    wanted = {
        name: (spec.partitions, spec.replication_factor, dict(spec.configs))
        for name, spec in specs.items()
    }
    assert created == wanted
    assert created[settings.alerts.topic][:2] == (1, settings.kafka.replication_factor)
    # the alerts service publishes where the Job created the topic
    service = next(c for c in containers(docs) if c.name == "alerts/alerts")
    assert _settings_for(docs, service).alerts.topic == settings.alerts.topic


def test_kafka_cluster_size_and_replication(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    kafka = find(docs, "StatefulSet", "kafka")
    replicas = kafka["spec"]["replicas"]
    (container,) = pod_spec(kafka)["containers"]
    assert environment(docs, Container(kafka, container, False))["KAFKA_NODE_COUNT"] == str(
        replicas
    )
    settings = _settings_for(docs, next(c for c in _wikipulse(docs)))
    assert settings.kafka.replication_factor <= replicas
    assert find(docs, "PodDisruptionBudget", "kafka")["spec"]["maxUnavailable"] == 1
    assert kafka["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    if overlay == "prod":
        assert replicas == 3
        assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (3, 2)
        spread = pod_spec(kafka)["topologySpreadConstraints"]
        assert {s["topologyKey"] for s in spread} == {"topology.kubernetes.io/zone"}
        anti = pod_spec(kafka)["affinity"]["podAntiAffinity"]
        assert anti["requiredDuringSchedulingIgnoredDuringExecution"]
    else:
        assert replicas == 1


def test_only_the_pipeline_gets_the_writer_role(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    for container in _wikipulse(docs):
        env = environment(docs, container)
        workload = container.workload["metadata"]["name"]
        role = pod_labels(container.workload).get("wikipulse.io/db-role")
        if "WIKI__POSTGRES__ADMIN_PASSWORD" in env:
            assert workload in ADMINS and role == "admin", workload
        if "WIKI__POSTGRES__WRITER_PASSWORD" in env:
            assert workload in WRITERS | ADMINS and role in ("writer", "admin"), workload
        if role == "reader":
            assert not set(env) & PRIVILEGED, workload
    assert HUB_VALUES["singleuser"]["extraLabels"]["wikipulse.io/db-role"] == "reader"
    policy = find(docs, "NetworkPolicy", "postgres")
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    allowed = peer["podSelector"]["matchExpressions"][0]["values"]
    assert sorted(allowed) == ["admin", "reader", "writer"]
    readers = find(docs, "NetworkPolicy", "readers-egress")
    assert readers["spec"]["podSelector"]["matchLabels"] == {"wikipulse.io/db-role": "reader"}


def test_kafka_is_reachable_only_by_its_clients(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    for container in _wikipulse(docs):
        labels = pod_labels(container.workload)
        uses_kafka = container.workload["metadata"]["name"] in KAFKA_CLIENTS
        assert (labels.get("wikipulse.io/kafka-client") == "true") == uses_kafka, container.name
    template = yaml.safe_load(find(docs, "ConfigMap", "spark-conf")["data"]["executor-pod.yaml"])
    assert template["metadata"]["labels"]["wikipulse.io/kafka-client"] == "true"
    assert find(docs, "NetworkPolicy", "default-deny-ingress")["spec"]["podSelector"] == {}


def test_spark_submit_against_kubernetes(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    deployment = find(docs, "Deployment", "stream-driver")
    driver = next(c for c in containers(docs) if c.name == "stream-driver/driver")
    argv = driver.argv
    assert argv[0] == "driver"  # the image entrypoint's spark-submit mode
    options = dict(zip(argv[1:-1:2], argv[2:-1:2], strict=False))
    master = argv[argv.index("--master") + 1]
    assert master.startswith("k8s://https://")
    assert _settings_for(docs, driver).spark.master == master
    assert "--load-spark-defaults" in argv
    assert argv[-1] == "/opt/wikipulse/streaming/jobs/speed_layer.py"
    assert f"spark.kubernetes.container.image={driver.image}" in argv

    mounts = {m["name"]: m["mountPath"] for m in driver.spec["volumeMounts"]}
    sizing_file = options.get("--properties-file") or argv[argv.index("--properties-file") + 1]
    assert sizing_file == f"{mounts['spark-sizing']}/sizing.conf"
    sizing = spark_properties(find(docs, "ConfigMap", "spark-sizing")["data"]["sizing.conf"])
    assert int(sizing["spark.executor.instances"]) == (2 if overlay == "prod" else 1)
    conf = spark_properties(find(docs, "ConfigMap", "spark-conf")["data"]["spark-defaults.conf"])
    assert mounts["spark-conf"] == "/etc/wikipulse/spark"  # SPARK_CONF_DIR of the image
    assert conf["spark.kubernetes.executor.podTemplateFile"].startswith(mounts["spark-conf"])
    assert conf["spark.kubernetes.namespace"] == deployment["metadata"]["namespace"]
    account = conf["spark.kubernetes.authenticate.driver.serviceAccountName"]
    assert pod_spec(deployment)["serviceAccountName"] == account
    binding = find(docs, "RoleBinding", account)
    assert binding["subjects"][0]["name"] == account
    role = find(docs, "Role", binding["roleRef"]["name"])
    assert "create" in next(r["verbs"] for r in role["rules"] if "pods" in r["resources"])
    checkpoints = _settings_for(docs, driver).checkpoint_dir
    volume = "spark.kubernetes.executor.volumes.persistentVolumeClaim.checkpoints"
    claim = conf[f"{volume}.options.claimName"]
    assert conf[f"{volume}.mount.path"] == str(checkpoints)
    assert mounts["checkpoints"] == str(checkpoints)
    assert find(docs, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]


def test_producer_keeps_its_resume_state_on_a_volume(
    rendered: dict[str, Docs], overlay: str
) -> None:
    docs = rendered[overlay]
    producer = next(c for c in containers(docs) if c.name == "producer/producer")
    state = _settings_for(docs, producer).producer_state_file
    mounts = {m["mountPath"]: m["name"] for m in producer.spec["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(producer.workload)["volumes"]}
    assert "persistentVolumeClaim" in volumes[mounts[str(state.parent)]]
    assert str(state) in json.dumps(producer.spec["livenessProbe"])
    args = build_parser().parse_args(producer.argv[1:])
    assert args.source == "live" and args.no_create_topics


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects ``labels``."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _to_internet(rule: dict[str, Any]) -> bool:
    """Whether an egress rule lets traffic out to any address."""
    peers = rule.get("to", [])
    return not peers or any(p.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for p in peers)


def _port_open(rule: dict[str, Any], port: int) -> bool:
    """Whether a network policy rule allows TCP ``port``."""
    ports = rule.get("ports", [])
    return not ports or any(
        p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports
    )


def _image_of(docs: Docs, workload: str) -> str:
    """The image of a workload's only container."""
    (container,) = pod_spec(find(docs, "Deployment", workload))["containers"]
    return str(container["image"])


def test_alerts_service_runs_alerts_run(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    deployment = find(docs, "Deployment", "alerts")
    assert deployment["spec"]["replicas"] == 1
    (container,) = [c for c in containers(docs) if c.workload is deployment]
    assert container.argv == ["wikipulse", "alerts", "run"]
    assert container.image == _image_of(docs, "producer")
    args = build_parser().parse_args(container.argv[1:])
    assert args.alerts_cmd == "run"
    assert args.handler is alerts_command._run
    env = environment(docs, container)
    refs = {name: value["secretKeyRef"] for name, value in env.items() if isinstance(value, dict)}
    assert refs == {
        "WIKI__POSTGRES__READER_PASSWORD": {"name": "postgres-reader", "key": "password"},
        "WIKI__POSTGRES__WRITER_PASSWORD": {"name": "postgres-writer", "key": "password"},
        "WIKI__ALERTS__WEBHOOK_URL": {"name": "alerts-webhook", "key": "url", "optional": True},
    }
    settings = _settings_for(docs, container)
    assert settings.alerts.webhook_url is not None  # the Secret reaches the setting
    labels = pod_labels(deployment)
    assert labels["wikipulse.io/db-role"] == "writer"
    assert labels["wikipulse.io/kafka-client"] == "true"
    # the webhook is on the internet: an egress policy selecting the pod must allow HTTPS out
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        spec = policy["spec"]
        if "Egress" in spec["policyTypes"] and _selects(spec["podSelector"], labels):
            assert any(
                _to_internet(rule) and _port_open(rule, 443) for rule in spec.get("egress", [])
            ), f"NetworkPolicy {policy['metadata']['name']} blocks the webhook"
    deploy = (K8S / "deploy.sh").read_text()
    assert "WIKIPULSE_ALERTS_WEBHOOK_URL" in deploy and "secret generic alerts-webhook" in deploy


def test_dashboard_serves_on_its_service_port(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    voila = next(c for c in containers(docs) if c.name == "dashboard/voila")
    build_parser().parse_args(voila.argv[1:])
    settings = _settings_for(docs, voila)
    assert settings.dashboard.host == "0.0.0.0"
    service = find(docs, "Service", "dashboard")
    assert [p["port"] for p in service["spec"]["ports"]] == [settings.dashboard.port]
    replicas = find(docs, "Deployment", "dashboard")["spec"]["replicas"]
    assert replicas == (2 if overlay == "prod" else 1)
    if overlay == "prod":
        assert find(docs, "PodDisruptionBudget", "dashboard")["spec"]["minAvailable"] == 1


def test_hub_chart_pinned_once() -> None:
    deploy = (K8S / "deploy.sh").read_text()
    (pinned,) = re.findall(r"^HUB_CHART_VERSION=(\S+)$", deploy, re.MULTILINE)
    header = (K8S / "jupyterhub" / "values.yaml").read_text()
    assert f"jupyterhub/jupyterhub {pinned} " in header
    assert '--version "$HUB_CHART_VERSION"' in deploy


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = [K8S / "deploy.sh", K8S / "base" / "kafka" / "start-kafka.sh"]
    out = subprocess.run(
        [tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout
