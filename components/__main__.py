"""The zBI component package: Pulumi runs this to serve zBI's components to programs in any language.

pulumi package add <path to this directory, or the repository's git URL>/components
"""

import sys
from pathlib import Path

# The components are built on the zBI library next to this directory (requirements.txt installs it too).
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from pulumi.provider.experimental import component_provider_host
from zbi_components import COMPONENTS

if __name__ == "__main__":
    component_provider_host(name="zbi", components=COMPONENTS, namespace="zbi")
