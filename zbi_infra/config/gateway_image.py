"""What an override of the gateway's image (`gateway.image`) must agree with: the engine whose modules nginx.conf
loads, and the nginx version whose syntax it uses. An image that disagrees would crash at start (an unknown
directive) or never be pulled, which the kubelet would only report as a pod that does not come up."""

from __future__ import annotations

import re

from zbi_infra.config.image import ImageConfig

# Each engine's images by the last segment of their repository: nginx's own (nginx-unprivileged, nginx) carry njs,
# OpenResty's carry lua-nginx-module.
ENGINE_IMAGE_NAMES = {"njs": ("nginx", "nginx-unprivileged"), "lua": ("openresty",)}
# nginx.conf turns HTTP/2 on with `http2 on;`, a directive since nginx 1.25.1. OpenResty numbers its releases after
# the nginx it carries, with a fourth number of its own (1.27.1.2 is nginx 1.27.1).
HTTP2_DIRECTIVE_SINCE = (1, 25, 1)
NGINX_TAG = {"njs": re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-|$)"), "lua": re.compile(r"^(\d+)\.(\d+)\.(\d+)\.\d+(?:-|$)")}


def check_gateway_image(engine: str, image: ImageConfig, engine_named: bool) -> None:
    """Raises ValueError naming the fix when `image` cannot run `engine`'s nginx.conf. `engine_named`: the stack
    set gateway.engine itself (the default changed from njs to lua after zBI 0.1.0)."""
    other = "njs" if engine == "lua" else "lua"
    default = "" if engine_named else " (the default; it was njs in zBI 0.1.0)"
    name = (image.repository or "").rsplit("/", 1)[-1]
    if name in ENGINE_IMAGE_NAMES[other]:
        raise ValueError(
            f"image.repository {image.repository} is an image for engine {other}, but engine is {engine}{default}. "
            f"Fix: set engine: {other}, or name an image of {engine}'s kind"
        )
    if image.repository is None and (image.tag or image.digest) and not engine_named:
        # A version without a repository is a version of the default engine's image, which a stack written for
        # 0.1.0 meant for nginx-unprivileged: OpenResty has no such tag, or a digest of another image.
        raise ValueError(
            f"image.{'tag' if image.tag else 'digest'} without image.repository names a version of the default "
            f"engine's image, which is {engine}'s now (it was njs's in zBI 0.1.0). Fix: set engine: {engine} to keep "
            f"this version for it, or engine: {other}"
        )
    version = NGINX_TAG[engine].match(image.tag or "")
    if version and tuple(int(part) for part in version.groups()) < HTTP2_DIRECTIVE_SINCE:
        floor = ".".join(map(str, HTTP2_DIRECTIVE_SINCE))
        raise ValueError(
            f"image.tag {image.tag} carries nginx {'.'.join(version.groups())}, older than {floor}, which nginx.conf's "
            f"`http2 on;` needs. Fix: name a tag of nginx {floor} or later"
        )
