"""nginx as the ceiling: one worker serving the bytes fastnova returned, from files.

Configured to be as fast as nginx gets on static files here (open_file_cache so a request costs no
open(), sendfile, no access log, no ETag) and to keep connections open as long as wrk wants:
nginx's default ``keepalive_requests`` (1000 since 1.19.10) would otherwise reconnect every 1000
requests and tax only the reference.  The same header set fastnova sends is added with fixed
values, so both answers have about the same size on the wire.
"""
from __future__ import annotations

import os
import shutil

from bench.bare_server import FIXED_HEADERS

CONFIG = """\
worker_processes 1;
daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    etag off;
    server_tokens off;
    open_file_cache max=20000 inactive=300s;
    open_file_cache_valid 300s;
    types { }
    default_type application/json;
    client_body_temp_path %(dir)s/tmp/body;
    proxy_temp_path %(dir)s/tmp/proxy;
    fastcgi_temp_path %(dir)s/tmp/fastcgi;
    uwsgi_temp_path %(dir)s/tmp/uwsgi;
    scgi_temp_path %(dir)s/tmp/scgi;
    server {
        listen 127.0.0.1:%(port)d backlog=2048;
        root %(root)s;
        location / {
%(headers)s
        }
    }
}
"""


def _add_headers() -> str:
    lines = []
    for raw in FIXED_HEADERS.decode().split("\r\n"):
        if raw:
            name, _, value = raw.partition(": ")
            lines.append('            add_header %s "%s";' % (name, value))
    return "\n".join(lines)


def write_config(directory: str, root: str, port: int) -> str:
    """nginx.conf for ``root`` on 127.0.0.1:port, in ``directory`` (a run's temp dir)."""
    os.makedirs(os.path.join(directory, "tmp"), exist_ok=True)
    path = os.path.join(directory, "nginx.conf")
    with open(path, "w") as f:
        f.write(CONFIG % {"dir": directory, "root": root, "port": port,
                          "headers": _add_headers()})
    return path


def command(conf_path: str) -> list[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return [nginx, "-p", os.path.dirname(conf_path), "-c", conf_path]


def write_tree(root: str, bodies: dict[str, bytes]) -> None:
    """One file per URL path; readable by nginx's unprivileged worker (temp dirs are 0700)."""
    for url_path, body in bodies.items():
        path = os.path.join(root, url_path.split("?", 1)[0].lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)
    for folder, dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
