"""os-keypairs: create (generate before 2.92) or import, list (pages from 2.35), show, delete.

A key pair lives in the store's meta database under ``keypair:<user_id> NUL <name>`` (the key
``POST /servers`` checks ``key_name`` against), so a user's list in nova's order (name ascending)
is a cursor walk from the marker.  The record holds every field nova's views show.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib

import orjson

from fastnova.api import errors
from fastnova.api.query import limit_and_marker
from fastnova.commands import common as cmd, quota, runtime
from fastnova.commands.schemas import NAME, NAME_WS, _obj, _wrap
from fastnova.commands.validation import by_minor
from fastnova.resources import common as C

PREFIX = b"keypair:"
RULE = "os_compute_api:os-keypairs:%s"

_NAME = {"allOf": [NAME, {"type": "string", "pattern": r"^[_\- a-zA-Z0-9]+$",
                          "minLength": 1, "maxLength": 255}]}
_NAME_292 = {"allOf": [NAME, {"type": "string", "pattern": r"^[_\-\@\. a-zA-Z0-9]+$",
                              "minLength": 1, "maxLength": 255}]}
_TYPE = {"type": "string", "enum": ["ssh", "x509"]}
_PUB = {"type": "string"}


def _schema(name, with_type, with_user, need_public=False):
    props = {"name": name}
    if with_type:
        props["type"] = _TYPE
    props["public_key"] = _PUB
    if with_user:
        props["user_id"] = {"type": "string"}
    required = ["name", "public_key"] if need_public else ["name"]
    return _wrap("keypair", _obj(props, required=required))


CREATE = by_minor([
    (0, 0, _schema(NAME_WS, False, False)), (1, 1, _schema(_NAME, False, False)),
    (2, 9, _schema(_NAME, True, False)), (10, 91, _schema(_NAME, True, True)),
    (92, 255, _schema(_NAME_292, True, True, need_public=True))])

_INDEX_KEYS = ("name", "public_key", "fingerprint")
_SHOW_KEYS = _INDEX_KEYS + ("user_id", "created_at", "deleted", "deleted_at", "id",
                            "updated_at")


def key(user_id: str, name: str) -> bytes:
    return C.fit(PREFIX + user_id.encode() + C.SEP + name.encode())


def _user(req, ctx, minor, q, action: str, allowed) -> str:
    C.reject_unknown(q, allowed, minor)
    user_id = ctx.user_id
    if minor >= 10:
        given = q.getall("user_id")
        if given:
            user_id = given[0]
    if user_id != ctx.user_id and not ctx.is_admin:
        raise C.forbidden(RULE % action)
    return user_id


def _view(kp: dict, keys, minor: int) -> dict:
    out = {k: kp[k] for k in keys}
    if minor >= 2:
        out["type"] = kp["type"]
    return out


async def index(app, req, ctx, minor, args, links):
    rt = runtime.get(app)
    q = C.query(req)
    allowed = ("user_id", "limit", "marker") if minor >= 35 else ("user_id",)
    user_id = _user(req, ctx, minor, q, "index", allowed)
    prefix = PREFIX + user_id.encode() + C.SEP
    limit, marker = limit_and_marker(q) if minor >= 35 else (None, None)
    with rt.begin() as txn:
        after = None
        if marker is not None:
            after = C.fit(prefix + marker.encode())
            if txn.get(after, db=C.meta_db(rt)) is None:
                raise errors.bad_request("Marker %s could not be found." % marker)
        rows = C.walk(rt, txn, prefix, after, limit)
    pairs = [orjson.loads(v) for _k, v in rows]
    doc = {"keypairs": [{"keypair": _view(kp, _INDEX_KEYS, minor)} for kp in pairs]}
    if minor >= 35 and pairs:
        keep = ("user_id", "limit", "marker")
        nxt = C.links_next(q, links, "os-keypairs", pairs[-1]["name"], "limit" in q.last,
                           limit, len(pairs), keep)
        if nxt:
            doc["keypairs_links"] = nxt
    return 200, orjson.dumps(doc)


async def show(app, req, ctx, minor, args, links):
    rt = runtime.get(app)
    q = C.query(req)
    user_id = _user(req, ctx, minor, q, "show", ("user_id",))
    with rt.begin() as txn:
        kp = C.get_json(rt, txn, key(user_id, args[0]))
    if kp is None:
        raise _not_found(args[0], user_id)
    return 200, orjson.dumps({"keypair": _view(kp, _SHOW_KEYS, minor)})


async def delete(app, req, ctx, minor, args, links):
    rt = runtime.get(app)
    q = C.query(req)
    user_id = _user(req, ctx, minor, q, "delete", ("user_id",))
    name = args[0]

    def change(b):
        if not C.delete(b, key(user_id, name)):
            raise _not_found(name, user_id)
    await rt.write(change)
    return (204 if minor >= 2 else 202), b""


def _not_found(name, user_id):
    return errors.not_found("Keypair %s not found for user %s" % (name, user_id))


async def create(app, req, ctx, minor, args, links):
    rt = runtime.get(app)
    body = cmd.parse_body(req)
    CREATE[minor].check(body)
    params = body["keypair"]
    name = params["name"].strip()
    kind = params.get("type", "ssh")
    user_id = (params.get("user_id") if minor >= 10 else None) or ctx.user_id
    if user_id != ctx.user_id and not ctx.is_admin:
        raise C.forbidden(RULE % "create")
    private = None
    if "public_key" in params:
        public = params["public_key"]
        fingerprint = fingerprint_of(public, kind)
    else:
        private, public, fingerprint = await asyncio.to_thread(generate, kind, user_id)
    kp = {"name": name, "user_id": user_id, "type": kind, "public_key": public,
          "fingerprint": fingerprint, "created_at": cmd.now(), "updated_at": None,
          "deleted": False, "deleted_at": None, "id": 0}

    def change(b):
        k = key(user_id, name)
        if b.get_meta(k) is not None:
            raise errors.fault(409, "Key pair '%s' already exists." % name)
        _check_quota(b, allowed, user_id)
        kp["id"] = C.next_id(b, b"keypair")
        C.put_json(b, k, kp)
    with rt.begin() as txn:
        allowed = quota.limits(rt, txn, ctx.project_id).get("key_pairs", -1)
        mine = quota.user_limits(rt, txn, ctx.project_id, user_id)
        if mine and "key_pairs" in mine:
            allowed = mine["key_pairs"]
    await rt.write(change)
    out = {}
    if private is not None and minor < 92:
        out["private_key"] = private
    if minor >= 2:
        out["type"] = kind
    out.update(_view(kp, _INDEX_KEYS + ("user_id",), 0))
    return (201 if minor >= 2 else 200), orjson.dumps({"keypair": out})


def _check_quota(b, allowed: int, user_id: str):
    """nova counts key pairs per user against the key_pairs quota (403 when over); counted in
    the write transaction, so two creates racing cannot both take the last one."""
    if allowed < 0:
        return
    if C.count_in(b.txn, b.dbs[C.L.DB_META], PREFIX + user_id.encode() + C.SEP) + 1 > allowed:
        raise errors.fault(403, "Quota exceeded, too many key pairs.")


def fingerprint_of(public_key: str, kind: str) -> str:
    """nova's fingerprints: MD5 of an OpenSSH key's blob, SHA-1 of an x509 certificate."""
    if kind == "x509":
        return _x509_fingerprint(public_key)
    try:
        from cryptography.hazmat.primitives import serialization
        serialization.load_ssh_public_key(public_key.encode())
        blob = base64.b64decode(public_key.split(" ")[1])
    except Exception:
        raise errors.bad_request("Keypair data is invalid: failed to generate fingerprint") \
            from None
    return _colons(hashlib.md5(blob, usedforsecurity=False).hexdigest())


def _x509_fingerprint(pem: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except (ValueError, TypeError, binascii.Error) as exc:
        raise errors.bad_request("Keypair data is invalid: failed to generate X509 "
                                 "fingerprint. Error message: %s" % exc) from None
    return _colons(binascii.hexlify(cert.fingerprint(hashes.SHA1())).decode())


def _colons(hexdigest: str) -> str:
    return ":".join(a + b for a, b in zip(hexdigest[::2], hexdigest[1::2]))


def generate(kind: str, user_id: str) -> tuple[str, str, str]:
    """A new key pair as nova makes one: RSA 2048 with the private key in PEM (traditional
    OpenSSL format) and the public key as ``ssh-rsa <b64> Generated-by-Nova``; for x509 a
    self-signed client certificate for ``<user_id>@localhost``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key_ = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key_.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption()).decode()
    if kind == "x509":
        cert = _certificate(key_, user_id)
        return private, cert, _x509_fingerprint(cert)
    public = key_.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                            serialization.PublicFormat.OpenSSH).decode()
    public += " Generated-by-Nova"
    return private, public, fingerprint_of(public, "ssh")


def _certificate(key_, user_id: str) -> str:
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key_.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key_, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()
