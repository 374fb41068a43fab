"""A stand-in for neutron, answering only the calls nova makes for servers booted with
``"networks": "none"``.

Why not a real neutron: neutron's server needs an ML2 mechanism driver with agents (OVS or OVN,
which need Open vSwitch, network namespaces and root on the host), its own database, RPC workers
and a DHCP/L3 agent set before a port can even be bound.  None of that is installable from PyPI
into a test venv on a shared 2-core machine, and none of it is under test: fastnova never talks to
neutron, and every server in these tests is booted with ``networks: none``, for which nova
allocates nothing.  nova still looks things up in neutron around such a server, and each look-up
expects a well-formed, empty answer.  These are the calls, all ``GET``, all answered with an empty
collection (nothing here stores or invents a resource):

* ``/v2.0/ports?device_id=<server>…``: nova-api, for a server's ``security_groups`` in show and
  detail (security_group_api.get_instances_security_groups_bindings); nova-compute, building a
  server's network info (``_build_network_info_model``, the ``_heal_instance_info_cache``
  periodic task), and on resize/confirm when it moves port bindings
  (``migrate_instance_start/finish``, ``setup_networks_on_host``).
* ``/v2.0/security-groups?id=…``: nova-api, the groups of those ports (none here).
* ``/v2.0/networks?…``: nova-compute's network-info refresh, for the networks of the ports.
* ``/v2.0/floatingips?…``: the same, for the ports' floating IPs.
* ``/v2.0/extensions``: nova's extension check (``has_extended_resource_request_extension`` and
  friends) before it touches ports.
* ``/`` and ``/v2.0``: keystoneauth's version discovery of the endpoint.

Every other request is answered 404 with neutron's fault body and logged as ``UNANSWERED``, so a
nova change that starts making a new call shows up in this service's log instead of being hidden.

Run as ``python -m tests.cloud.neutron_standin --fd N`` (a listening socket inherited from the
test session, like the gunicorn services).
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

EMPTY = {
    "/v2.0/ports": "ports",
    "/v2.0/security-groups": "security_groups",
    "/v2.0/networks": "networks",
    "/v2.0/floatingips": "floatingips",
    "/v2.0/extensions": "extensions",
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "neutron-standin"

    def do_GET(self):
        path = urlsplit(self.path).path.rstrip("/")
        path = path[:-5] if path.endswith(".json") else path
        if path in EMPTY:
            return self._send(200, {EMPTY[path]: []})
        if path == "":
            return self._send(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
                {"href": "http://%s/v2.0/" % self.headers.get("Host", ""), "rel": "self"}]}]})
        if path == "/v2.0":
            return self._send(200, {"resources": []})
        self._unanswered()

    def do_POST(self):
        self._unanswered()

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _unanswered(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        sys.stderr.write("UNANSWERED %s %s %r\n" % (self.command, self.path, body[:300]))
        self._send(404, {"NeutronError": {"type": "HTTPNotFound", "detail": "",
                                          "message": "The neutron stand-in does not answer "
                                                     "%s %s" % (self.command, self.path)}})

    def _send(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    server = ThreadingHTTPServer(sock.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.daemon_threads = True
    sys.stderr.write("neutron stand-in on %s:%d\n" % sock.getsockname())
    sys.stderr.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
