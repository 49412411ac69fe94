"""The teacher's API key: read once at start-up from a variable or a mounted Secret.

An :class:`ApiKey` says where it came from but never what it is (repr, str,
pickling), and registers itself with :func:`~.errors.register_secret` so every
error message is scrubbed of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from apprentice.config import ProviderConfig
from apprentice.teachers.errors import TeacherConfigError, register_secret

__all__ = ["ApiKey", "resolve_api_key"]


class ApiKey:
    """A secret that says where it came from but never what it is."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source
        register_secret(value)  # every error message is scrubbed of it from now on

    def reveal(self) -> str:
        """The key itself, for the request header only."""
        return self._value

    def __repr__(self) -> str:
        return f"ApiKey(source={self.source!r}, value='***')"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:  # pickling would write the key to disk or a queue
        raise TypeError("ApiKey is not picklable")


def resolve_api_key(
    config: ProviderConfig, env: Mapping[str, str], *, default_env: str | None
) -> ApiKey | None:
    """Read the key from ``api_key_file``, ``api_key_env`` or the provider's usual variable.

    ``default_env=None`` means the provider may run keyless (a local vLLM used as
    teacher); then a missing key is fine unless the config names a source.
    """
    provider = config.provider.value
    if config.api_key_file:
        path = Path(config.api_key_file)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TeacherConfigError(
                f"cannot read api_key_file {str(path)!r} ({exc.strerror}); mount the Secret "
                "there or use api_key_env",
                provider=provider,
            ) from None
        if not value:
            raise TeacherConfigError(
                f"api_key_file {str(path)!r} is empty; put the key in the Secret",
                provider=provider,
            )
        return ApiKey(value, f"file:{path}")
    name = config.api_key_env or default_env
    if name is None:
        return None
    value = env.get(name, "").strip()
    if not value:
        raise TeacherConfigError(
            f"environment variable {name} is not set; export {name}=<your key> "
            "(or set api_key_env / api_key_file in the provider block)",
            provider=provider,
        )
    return ApiKey(value, f"env:{name}")
