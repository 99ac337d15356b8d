"""The site's one typed configuration: embedded defaults, then the MUSTER_CONFIG YAML, then MUSTER_* env."""

from infra.config.durations import format_go_duration, parse_go_duration
from infra.config.reference import reference_table
from infra.config.schema import (
    Config,
    DexConfig,
    GoogleConfig,
    McpConfig,
    MetricsConfig,
    OidcConfig,
    RateLimitConfig,
    ServerConfig,
    StorageConfig,
    ValkeyConfig,
)
from infra.config.sources import ConfigError, load_config
from infra.config.validators import OFFLINE_ACCESS

__all__ = [
    "OFFLINE_ACCESS",
    "Config",
    "ConfigError",
    "DexConfig",
    "GoogleConfig",
    "McpConfig",
    "MetricsConfig",
    "OidcConfig",
    "RateLimitConfig",
    "ServerConfig",
    "StorageConfig",
    "ValkeyConfig",
    "format_go_duration",
    "load_config",
    "parse_go_duration",
    "reference_table",
]
