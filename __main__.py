"""CERES: the whole platform as one Pulumi program. See README.md."""

import pulumi

from stacks.load import ConfigError
from stacks.program import run

try:
    outputs = run()
except ConfigError as error:
    # RunError ends the program with this message alone: no traceback, nothing registered.
    raise pulumi.RunError(f"invalid stack config:\n{error}") from None

for name, value in outputs.items():
    pulumi.export(name, value)
