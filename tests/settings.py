"""The site's settings for the test process: the same wiring, with a fast password hasher for the test users.

Servers the end-to-end tests start use `muster_project.settings` unchanged; only users created inside the test
process (pytest-django's database) are hashed quickly.
"""

from muster_project.settings import *  # noqa: F403
from muster_project.settings import PASSWORD_HASHERS

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
