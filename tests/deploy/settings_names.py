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

