"""Minimal JSON Schemas for the custom resources the chart renders (KEDA, Prometheus Operator, Strimzi).

kubernetes-validate knows only the built-in kinds. Rather than vendoring the operators' CRDs, these schemas pin
down what the chart relies on, written from the operators' documentation: the fields the chart sets must be
the ones each operator reads, with the types its CRD declares (KEDA's trigger metadata is a map of strings, so a
YAML number or boolean there would be rejected by the API server), and nothing else at the levels checked.
"""

from __future__ import annotations

from typing import Any

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "pattern": DNS_SUBDOMAIN, "maxLength": 253},
                   "namespace": {"type": "string"}, "labels": STRING_MAP, "annotations": STRING_MAP},
}
NAME_REF = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}}}


def _resource(spec: dict[str, Any], extra_metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata = {**METADATA, **(extra_metadata or {})}
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": metadata, "spec": spec},
            "additionalProperties": False}


SCALED_OBJECT = _resource({
    "type": "object",
    "required": ["scaleTargetRef", "triggers"],
    "properties": {
        "scaleTargetRef": {**NAME_REF, "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                                      "apiVersion": {"type": "string"}},
                           "additionalProperties": False},
        "pollingInterval": {"type": "integer", "minimum": 1},
        "cooldownPeriod": {"type": "integer", "minimum": 0},
        "initialCooldownPeriod": {"type": "integer", "minimum": 0},
        "idleReplicaCount": {"type": "integer", "minimum": 0},
        "minReplicaCount": {"type": "integer", "minimum": 0},
        "maxReplicaCount": {"type": "integer", "minimum": 1},
        "fallback": {"type": "object"},
        "advanced": {"type": "object", "properties": {
            "restoreToOriginalReplicaCount": {"type": "boolean"},
            "horizontalPodAutoscalerConfig": {"type": "object", "properties": {
                "name": {"type": "string"}, "behavior": {"type": "object"}}, "additionalProperties": False}},
            "additionalProperties": False},
        "triggers": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["type", "metadata"],
            "properties": {"type": {"type": "string"}, "name": {"type": "string"}, "metadata": STRING_MAP,
                           "authenticationRef": {**NAME_REF, "properties": {"name": {"type": "string"},
                                                                            "kind": {"type": "string"}}}},
            "additionalProperties": False,
            "if": {"properties": {"type": {"const": "kafka"}}},
            "then": {"properties": {"metadata": {"required": ["bootstrapServers", "consumerGroup"]}}}}},
    },
    "additionalProperties": False,
})

TRIGGER_AUTHENTICATION = _resource({
    "type": "object",
    "properties": {
        "secretTargetRef": {"type": "array", "items": {
            "type": "object", "required": ["parameter", "name", "key"],
            "properties": {"parameter": {"type": "string"}, "name": {"type": "string"}, "key": {"type": "string"}},
            "additionalProperties": False}},
        "env": {"type": "array", "items": {
            "type": "object", "required": ["parameter", "name"],
            "properties": {"parameter": {"type": "string"}, "name": {"type": "string"},
                           "containerName": {"type": "string"}},
            "additionalProperties": False}},
    },
    "additionalProperties": False,
})

SERVICE_MONITOR = _resource({
    "type": "object",
    "required": ["selector", "endpoints"],
    "properties": {
        "selector": {"type": "object", "properties": {"matchLabels": STRING_MAP}},
        "namespaceSelector": {"type": "object", "properties": {
            "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
        "jobLabel": {"type": "string"},
        "endpoints": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                           "interval": {"type": "string", "pattern": r"^(0|(([0-9]+)(ms|s|m|h))+)$"},
                           "scheme": {"enum": ["http", "https"]}},
            "additionalProperties": False}},
    },
    "additionalProperties": False,
})

KAFKA_TOPIC = _resource(
    {"type": "object",
     "required": ["partitions", "replicas"],
     "properties": {"topicName": {"type": "string", "minLength": 1, "maxLength": 249,
                                  "pattern": r"^[a-zA-Z0-9._-]+$"},
                    "partitions": {"type": "integer", "minimum": 1},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                    "config": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}},
     "additionalProperties": False},
    {"required": ["name", "labels"],
     "properties": {**METADATA["properties"],
                    "labels": {**STRING_MAP, "required": ["strimzi.io/cluster"]}}},
)

CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): TRIGGER_AUTHENTICATION,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): KAFKA_TOPIC,
    ("kafka.strimzi.io/v1", "KafkaTopic"): KAFKA_TOPIC,  # served by newer Strimzi releases; same spec
}
