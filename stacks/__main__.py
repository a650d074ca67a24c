"""The zBI Pulumi program. One project; each stack's `zbi:role` selects what it builds.

Configuration is validated in full before anything is registered, so a bad stack file deploys nothing.
"""

import pulumi
import role_dr
import role_local
import role_primary

from zbi_infra.config import StackRole, load_stack_config, runtime_config
from zbi_infra.config.stack import plan_date

config = load_stack_config(runtime_config())
for warning in config.release_problems(plan_date())[1]:
    pulumi.log.warn(warning)

BUILDERS = {
    StackRole.PRIMARY: role_primary.build,
    StackRole.DR: role_dr.build,
    StackRole.LOCAL: role_local.build,
}
BUILDERS[config.role](config)
