"""Settings, read once from ``ORDERFAST_*`` environment variables (and ``*_FILE`` for secrets).

Secrets are held in :class:`Secret` so that no repr, log line or settings dump shows them.
"""

from orderfast.config.flags import Flags, load_flags
from orderfast.config.ratelimits import POLICY_KEYS, PolicyFile, RatePolicy, RateQuota, load_rate_policies
from orderfast.config.settings import ENV_PREFIX, Settings, describe, docs_table
from orderfast.config.taxes import TaxFile, load_tax_table
from orderfast.config.values import ConfigError, Secret

__all__ = [
    "ENV_PREFIX",
    "POLICY_KEYS",
    "ConfigError",
    "Flags",
    "PolicyFile",
    "RatePolicy",
    "RateQuota",
    "Secret",
    "Settings",
    "TaxFile",
    "describe",
    "docs_table",
    "load_flags",
    "load_rate_policies",
    "load_tax_table",
]
