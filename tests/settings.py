"""The site's settings for the test process: the same wiring, with a fast password hasher for the test users
and, on a shared Redis (REDIS_URL), a key prefix of this run's own.

Servers the end-to-end tests start use `muster_project.settings` unchanged; only users created inside the test
process (pytest-django's database) are hashed quickly.
"""

import dataclasses
import uuid

from muster_project.derived_settings import derived_settings
from muster_project.settings import *  # noqa: F403
from muster_project.settings import MUSTER_CONFIG, PASSWORD_HASHERS, VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]

# Tests empty the cache between them (tests/conftest.py): on a Redis someone else may use, only this run's keys.
if MUSTER_CONFIG.storage.type == "valkey":
    TEST_KEY_PREFIX = f"test-{uuid.uuid4()}:"
    _valkey = dataclasses.replace(MUSTER_CONFIG.storage.valkey, key_prefix=TEST_KEY_PREFIX)
    MUSTER_CONFIG = dataclasses.replace(
        MUSTER_CONFIG, storage=dataclasses.replace(MUSTER_CONFIG.storage, valkey=_valkey)
    )
    CACHES = derived_settings(MUSTER_CONFIG, VAR_DIR)["CACHES"]
