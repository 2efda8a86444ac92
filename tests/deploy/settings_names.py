"""Every environment variable that names a setting of foundation/settings.py: STREAMSCRIBE_ + the field path
in capitals, nested models joined with __ (pydantic-settings' env_nested_delimiter)."""

from __future__ import annotations

from pydantic import BaseModel

from foundation.settings import Settings

PREFIX = "STREAMSCRIBE_"


def setting_env_names(model: type[BaseModel] = Settings, prefix: str = PREFIX) -> set[str]:
    names: set[str] = set()
    for field_name, info in model.model_fields.items():
        name = prefix + field_name.upper()
        names.add(name)  # a nested model can also be given whole, as JSON
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= setting_env_names(annotation, name + "__")
    return names


# The typed Kafka security settings the streams refactoring (branch i10-streams) adds to KafkaSettings. The chart
# uses them for SASL/TLS; until that branch is merged they are not fields of foundation/settings.py yet. Remove
# this set when they are (test_helm_chart checks that each name here is either pending or real, never neither).
PENDING_KAFKA_SECURITY = {
    "STREAMSCRIBE_KAFKA__SECURITY_PROTOCOL", "STREAMSCRIBE_KAFKA__SASL_MECHANISM",
    "STREAMSCRIBE_KAFKA__SASL_USERNAME", "STREAMSCRIBE_KAFKA__SASL_PASSWORD",
    "STREAMSCRIBE_KAFKA__SSL_CA_LOCATION", "STREAMSCRIBE_KAFKA__SSL_CERTIFICATE_LOCATION",
    "STREAMSCRIBE_KAFKA__SSL_KEY_LOCATION", "STREAMSCRIBE_KAFKA__SSL_KEY_PASSWORD",
    "STREAMSCRIBE_KAFKA__SSL_ENDPOINT_IDENTIFICATION",
}
