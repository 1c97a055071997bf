"""TLS for REST and gRPC from one set of PEM material, reloaded when its files change.

The material comes from TF Serving's `--ssl_config_file` (a text-format SSLConfig with the PEM
texts inline) or from `--ssl_cert_dir`, a folder in cert-manager's Secret shape (`tls.crt`,
`tls.key`, optional `ca.crt`). `client_verify` (mTLS) requires a client certificate signed by the
custom CA on both protocols, at the handshake.

Reloading: a thread reads the files every `--ssl_poll_wait_seconds`; when their bytes change and
the new material is valid, new connections get it. Established connections keep the certificate
they were opened with (TLS never re-handshakes them), so nothing in flight is dropped.
  - REST: the listening SSLContext's SNI callback, which OpenSSL runs on every ClientHello,
    moves the new connection onto the newest context.
  - gRPC: the same, with its own pair of contexts offering ALPN "h2" (gRPC clients refuse a
    connection that does not negotiate it).
Whether client certificates are required is fixed for the life of the process (an OpenSSL
connection takes it from the listening context).
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import tempfile
import threading
from pathlib import Path

from google.protobuf import text_format

from .proto import serving_config_pb2

log = logging.getLogger("modelship_server.tls")

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
CA_FILE = "ca.crt"
REST_ALPN = "http/1.1"
GRPC_ALPN = "h2"


class TlsError(Exception):
    """TLS material that cannot be used; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class TlsMaterial:
    key: bytes
    cert: bytes
    ca: bytes | None
    client_verify: bool

    def ssl_context(self, alpn: str = REST_ALPN) -> ssl.SSLContext:
        """A server-side context; raises TlsError when the key and certificate do not fit.

        alpn: the one protocol the listener speaks; a client offering ALPN is told so.
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols([alpn])
        with tempfile.TemporaryDirectory() as folder:
            # load_cert_chain reads files only; the folder is private (0700) and gone at once.
            cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
            cert.write_bytes(self.cert)
            key.write_bytes(self.key)
            try:
                ctx.load_cert_chain(cert, key)
            except ssl.SSLError as exc:
                raise TlsError(f"server key and certificate do not load: {exc.reason}") from None
        if self.ca:
            try:
                ctx.load_verify_locations(cadata=self.ca.decode("ascii", "replace"))
            except ssl.SSLError as exc:
                raise TlsError(f"custom CA does not load: {exc.reason}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED if self.client_verify else ssl.CERT_NONE
        return ctx


class SslConfigFile:
    """TF Serving's --ssl_config_file: SSLConfig in text format, PEM texts inline."""

    def __init__(self, path: str) -> None:
        self.path = path

    def files(self) -> list[Path]:
        return [Path(self.path)]

    def load(self) -> TlsMaterial:
        msg = serving_config_pb2.SSLConfig()
        try:
            text_format.Parse(Path(self.path).read_text(), msg)
        except OSError as exc:
            raise TlsError(f"cannot read {self.path}: {exc.strerror}") from None
        except text_format.ParseError as exc:
            raise TlsError(f"{self.path}: {exc}") from None
        for field in ("server_key", "server_cert"):
            if not getattr(msg, field).strip():
                raise TlsError(f"{self.path}: {field} is empty (it holds the PEM text itself)")
        if msg.client_verify and not msg.custom_ca.strip():
            raise TlsError(
                f"{self.path}: client_verify needs custom_ca, the CA that signs client certificates"
            )
        return TlsMaterial(
            key=msg.server_key.encode(),
            cert=msg.server_cert.encode(),
            ca=msg.custom_ca.encode() if msg.custom_ca.strip() else None,
            client_verify=msg.client_verify,
        )


class CertDir:
    """--ssl_cert_dir: tls.crt, tls.key and optional ca.crt (a mounted cert-manager Secret)."""

    def __init__(self, path: str, client_verify: bool) -> None:
        self.path = path
        self.client_verify = client_verify

    def files(self) -> list[Path]:
        return [Path(self.path, name) for name in (CERT_FILE, KEY_FILE, CA_FILE)]

    def load(self) -> TlsMaterial:
        folder = Path(self.path)
        found: dict[str, bytes] = {}
        for name in (CERT_FILE, KEY_FILE, CA_FILE):
            try:
                found[name] = (folder / name).read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise TlsError(f"cannot read {folder / name}: {exc.strerror}") from None
        for name in (CERT_FILE, KEY_FILE):
            if not found.get(name, b"").strip():
                raise TlsError(f"{folder / name} is missing or empty")
        ca = found.get(CA_FILE, b"").strip() or None
        if self.client_verify and ca is None:
            raise TlsError(
                f"{folder / CA_FILE} is missing or empty: client certificate verification "
                "(clientAuth) needs the CA that signs client certificates as ca.crt in the Secret"
            )
        return TlsMaterial(found[KEY_FILE], found[CERT_FILE], ca, self.client_verify)


TlsSource = SslConfigFile | CertDir


def check(source: TlsSource) -> TlsMaterial:
    """Load and build once: bad material fails at startup, with its reason."""
    material = source.load()
    material.ssl_context()
    return material


class TlsReloader:
    """The current material for both servers, and the thread that watches its files."""

    def __init__(self, source: TlsSource, poll_seconds: float) -> None:
        self._source = source
        self._poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._material = check(source)
        self._snapshot = self._read_files()
        self._context = self._material.ssl_context()
        self._context.sni_callback = self._pick_context
        self._listening = self._context
        self._grpc_context = self._material.ssl_context(GRPC_ALPN)
        self._grpc_context.sni_callback = self._pick_grpc_context
        self._grpc_listening = self._grpc_context
        self._refused: list[bytes | None] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tls-reloader", daemon=True)
        self.reloads = 0

    @property
    def client_verify(self) -> bool:
        return self._material.client_verify

    def ssl_context(self) -> ssl.SSLContext:
        """The context REST listens with (its SNI callback switches to the newest one)."""
        return self._listening

    def grpc_ssl_context(self) -> ssl.SSLContext:
        """The context gRPC listens with (ALPN h2; it too switches to the newest one)."""
        return self._grpc_listening

    def start(self) -> None:
        if self._poll_seconds > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _pick_context(self, conn: ssl.SSLObject, _name: str | None, ctx: ssl.SSLContext) -> None:
        current = self._context
        if current is not ctx:
            conn.context = current

    def _pick_grpc_context(
        self, conn: ssl.SSLObject, _name: str | None, ctx: ssl.SSLContext
    ) -> None:
        current = self._grpc_context
        if current is not ctx:
            conn.context = current

    def _read_files(self) -> list[bytes | None]:
        snapshot: list[bytes | None] = []
        for path in self._source.files():
            try:
                snapshot.append(path.read_bytes())
            except OSError:
                snapshot.append(None)
        return snapshot

    def _loop(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            self.poll()

    def poll(self) -> bool:
        """Read the files once; True when new material was taken."""
        snapshot = self._read_files()
        if snapshot == self._snapshot:
            return False
        try:
            material = self._source.load()
            context = material.ssl_context()
            grpc_context = material.ssl_context(GRPC_ALPN)
        except TlsError as exc:
            # A Secret being rewritten, or a bad edit: keep serving with what works.
            if snapshot != self._refused:
                log.error("TLS material not reloaded, the previous one stays: %s", exc)
                self._refused = snapshot
            return False
        self._snapshot = snapshot
        if material.client_verify != self._material.client_verify:
            log.error(
                "TLS material not reloaded: client_verify changed to %s; restart to apply it",
                material.client_verify,
            )
            return False
        with self._lock:
            self._material = material
            self._context = context
            self._grpc_context = grpc_context
        self.reloads += 1
        log.info("TLS certificate reloaded: new connections use it")
        return True
