"""The zBI Pulumi program. One project; each stack's `zbi:role` selects what it builds.

Configuration is validated in full before anything is registered, so a bad stack file deploys nothing.
"""

import role_dr
import role_local
import role_primary

from zbi_infra.config import StackRole, load_stack_config, runtime_config

config = load_stack_config(runtime_config())

BUILDERS = {
    StackRole.PRIMARY: role_primary.build,
    StackRole.DR: role_dr.build,
    StackRole.LOCAL: role_local.build,
}
BUILDERS[config.role](config)
