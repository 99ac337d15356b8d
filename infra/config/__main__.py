"""`python -m infra.config` prints the reference table docs/configuration.md shows."""

from infra.config.reference import reference_table

print(reference_table(), end="")
