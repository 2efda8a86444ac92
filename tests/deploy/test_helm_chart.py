"""The Helm chart (helm/streamscribe): `helm lint --strict`, rendering with default, production and inline-secret
values, every manifest checked against the Kubernetes schemas (kubernetes-validate) or, for the operators'
custom resources, against tests/deploy/crd_schemas.py; and the chart kept in step with the topic catalogue.

Helm v4 is embedded through PyPI's helm-python-sdk (no helm binary, no cluster).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from foundation.settings import KafkaSettings
from streams.kafka.topics import all_topics
from streams.stages.registry import names, state_groups
from streamscribe import chart_catalogue
from tests.deploy.crd_schemas import CRD_SCHEMAS
from tests.deploy.settings_names import setting_env_names

CHART = Path(__file__).resolve().parents[2] / "helm" / "streamscribe"
PRODUCTION = yaml.safe_load((CHART / "values-production.yaml").read_text())
# every Secret made by the chart, from values (the other two sets name existing Secrets)
INLINE_SECRETS: dict[str, Any] = {
    "kafka": {"security": {"protocol": "SASL_SSL", "username": "streamscribe"}},
    "secrets": {"database": {"existingSecret": "", "url": "postgresql://ss:pw@db:5432/ss"},
                "kafka": {"password": "pw", "caCert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
                "s3": {"accessKey": "AKIA", "secretKey": "secret"},
                "storageKeys": {"keys": "k1:AAAA"}, "auth": {"jwtSecret": "x" * 48}},
    "autoscaling": {"keda": {"enabled": True}},
}
VALUE_SETS = {"default": {}, "production": PRODUCTION, "inline-secrets": INLINE_SECRETS}
# oldest Kubernetes the chart declares (Chart.yaml kubeVersion) that the schemas cover, and the newest
KUBERNETES = ("1.28.0", "1.37.0")


def render(values: dict[str, Any], namespace: str = "transcription") -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(copy.deepcopy(values), name="ss", namespace=namespace)
    docs = []
    for path, text in manifests.items():
        if path.endswith(".txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            out.append((d["metadata"]["name"], d["spec"]["template"]["spec"]))
        elif d["kind"] == "CronJob":
            out.append((d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return out


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_strict(name: str) -> None:
    report = helm.lint(str(CHART), copy.deepcopy(VALUE_SETS[name]), strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert problems == [] and report["errors"] == [], report


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_manifest_is_valid_for_kubernetes(name: str) -> None:
    docs = render(VALUE_SETS[name])
    assert docs
    for doc in docs:
        where = f"{doc['kind']} {doc['metadata']['name']}"
        crd = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
        if crd is not None:
            jsonschema.validate(doc, crd)
            continue
        for version in KUBERNETES:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where} is not valid for Kubernetes {version}: {exc.message} at {list(exc.path)}")


def test_a_deployment_with_probes_requests_pdb_and_cpu_autoscaling_per_stage_by_default() -> None:
    docs = render({})
    deployments, pdbs = by_kind(docs, "Deployment"), by_kind(docs, "PodDisruptionBudget")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert sorted(deployments) == sorted(f"ss-streamscribe-{c}" for c in (*names(), "gateway"))
    assert sorted(pdbs) == sorted(deployments) and sorted(hpas) == sorted(deployments)
    assert by_kind(docs, "ScaledObject") == {}
    for name, deployment in deployments.items():
        assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns the replica count"
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
        probes = (container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"])
        if name.endswith("-gateway"):
            assert container["args"] == ["gateway"] and probes == ("/ready", "/health")
        else:
            stage = name.removeprefix("ss-streamscribe-")
            assert container["args"] == ["worker", stage, "--metrics-port", "9100"] and probes == ("/health", "/health")
            assert container["readinessProbe"]["httpGet"]["port"] == "metrics"
    asr = deployments["ss-streamscribe-asr"]["spec"]["template"]["spec"]["containers"][0]
    assert asr["resources"]["requests"]["cpu"] == "2"


def test_keda_scales_each_stage_on_its_own_consumer_groups_lag() -> None:
    catalogue = chart_catalogue.catalogue()
    docs = render(PRODUCTION)
    scaled = by_kind(docs, "ScaledObject")
    assert sorted(scaled) == sorted(f"ss-streamscribe-{s}" for s in names())
    for stage, spec in catalogue["stages"].items():
        obj = scaled[f"ss-streamscribe-{stage}"]
        assert obj["spec"]["scaleTargetRef"]["name"] == f"ss-streamscribe-{stage}"
        triggers = obj["spec"]["triggers"]
        assert [t["metadata"]["topic"] for t in triggers] == spec["inputs"]
        assert {t["metadata"]["consumerGroup"] for t in triggers} == {spec["group"]}
        assert all(t["metadata"]["sasl"] == "scram_sha512" and t["metadata"]["tls"] == "enable" for t in triggers)
        assert obj["spec"]["maxReplicaCount"] == PRODUCTION["stages"][stage]["autoscaling"]["maxReplicas"]
    stage_hpas = [n for n in by_kind(docs, "HorizontalPodAutoscaler") if not n.endswith("-gateway")]
    assert stage_hpas == [], "with KEDA on, no CPU autoscaler may fight the ScaledObjects"
    (auth,) = by_kind(docs, "TriggerAuthentication").values()
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"password", "ca"}
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"metrics", "http"}


def test_kafkatopics_are_the_catalogue() -> None:
    values = copy.deepcopy(PRODUCTION)
    values["kafka"]["topicPrefix"] = "acme."
    topics = {d["spec"]["topicName"]: d for d in render(values) if d["kind"] == "KafkaTopic"}
    expected = dict(all_topics(KafkaSettings(topic_prefix="acme."), state_groups()))
    assert sorted(topics) == sorted(expected)
    for name, config in expected.items():
        spec = topics[name]["spec"]
        assert spec["config"] == config, name
        assert spec["partitions"] == values["kafka"]["partitions"] and spec["replicas"] == 3
        assert topics[name]["metadata"]["labels"]["strimzi.io/cluster"] == "kafka"
    assert all(d["kind"] != "KafkaTopic" for d in render({})), "KafkaTopics only when strimzi.topics.enabled"


def test_chart_catalogue_file_is_current() -> None:
    assert chart_catalogue.CATALOGUE_FILE.read_text() == chart_catalogue.render(), \
        "helm/streamscribe/files/catalogue.yaml is out of date: run python -m streamscribe.chart_catalogue"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_streamscribe_variable_is_a_setting(name: str) -> None:
    real = setting_env_names()
    for workload, spec in pod_specs(render(VALUE_SETS[name])):
        for container in containers(spec):
            for env in container["env"]:
                if env["name"].startswith("STREAMSCRIBE_"):
                    assert env["name"] in real, f"{workload}: {env['name']} is no setting"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_secrets_referenced_by_pods_exist_or_are_named_in_values(name: str) -> None:
    values = VALUE_SETS[name]
    docs = render(values)
    rendered = by_kind(docs, "Secret")
    external = {v["existingSecret"] for v in {**yaml.safe_load((CHART / "values.yaml").read_text())["secrets"],
                                               **values.get("secrets", {})}.values() if v.get("existingSecret")}
    external.add(values.get("secrets", {}).get("kafka", {}).get("caSecret", ""))
    for workload, spec in pod_specs(docs):
        for container in containers(spec):
            for env in container["env"]:
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in rendered or ref["name"] in external, f"{workload}: {ref['name']}"
                    if ref["name"] in rendered:
                        data = {**rendered[ref["name"]].get("data", {}), **rendered[ref["name"]].get("stringData", {})}
                        assert ref["key"] in data, f"{workload}: {ref['name']} has no key {ref['key']}"
    for secret in rendered.values():  # made before the migration hook, and never deleted with the release
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    if name == "inline-secrets":
        assert sorted(rendered) == sorted(f"ss-streamscribe-{s}" for s in
                                          ("database", "kafka", "s3", "storage-keys", "auth"))


def test_migration_job_is_a_hook_that_migrates_and_creates_topics() -> None:
    (job,) = by_kind(render({}), "Job").values()
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    spec = job["spec"]["template"]["spec"]
    assert [c["args"] for c in spec["initContainers"]] == [["migrate"]]
    assert spec["containers"][0]["command"] == ["python", "-m", "streamscribe.provision"]
    (job,) = by_kind(render(PRODUCTION), "Job").values()  # Strimzi makes the topics: only migrations
    assert "initContainers" not in job["spec"]["template"]["spec"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_pods_run_as_non_root_with_a_read_only_root() -> None:
    for workload, spec in pod_specs(render(PRODUCTION)):
        assert spec["securityContext"]["runAsNonRoot"] is True, workload
        for container in containers(spec):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, workload
            assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/var/lib/streamscribe", "/tmp"}


@pytest.mark.parametrize(("values", "message"), [
    ({"secrets": {"database": {"existingSecret": ""}}}, "secrets.database: set existingSecret"),
    ({"kafka": {"security": {"protocol": "SASL_SSL"}}}, "kafka.security.username is required"),
    ({"kafka": {"security": {"protocol": "SASL_SSL", "username": "u"}}}, "secrets.kafka: SASL needs"),
    ({"stages": {"transcoder": {"replicas": 1, "resources": {}, "autoscaling":
                                {"minReplicas": 1, "maxReplicas": 2, "lagThreshold": 5}}}}, "stages: the values name"),
])
def test_bad_values_fail_the_render_with_what_to_set(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)
