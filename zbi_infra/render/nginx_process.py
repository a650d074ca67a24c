"""What every nginx zBI renders needs to run unprivileged on a read-only root filesystem: its process settings and
the writable paths nginx would otherwise put under its compiled-in prefix. Shared by the gateway and the RPC guard."""

from __future__ import annotations


def main_context(*, user: str | None, workers: int | str, worker_connections: int, temp_dir: str) -> str:
    """The main context's process lines (no trailing newline): user, workers, pid file, error log, events."""
    return f"""{f"user {user};" if user else ""}
worker_processes {workers};
pid {temp_dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections {worker_connections}; }}"""


def http_writable_paths(temp_dir: str) -> str:
    """The http context's temporary paths, inside `temp_dir`, and no version in answers (indented for `http {`)."""
    return f"""    client_body_temp_path {temp_dir}/body;
    proxy_temp_path {temp_dir}/proxy;
    fastcgi_temp_path {temp_dir}/fastcgi;
    uwsgi_temp_path {temp_dir}/uwsgi;
    scgi_temp_path {temp_dir}/scgi;
    server_tokens off;"""
