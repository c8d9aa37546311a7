"""Where a stream source may lead: the allow-list of stream hosts and networks (``EMOTUNE_STREAM_ALLOW``).

A stream source (``rtsp://...``, ``http(s)://...``) makes the capture service connect wherever its URL says.
Unchecked, a user who may start stream sessions points it at the server's own ports
(``http://127.0.0.1:6379/``), the cloud's metadata service (``http://169.254.169.254/``) or the private
network behind it: server-side request forgery. So no stream connection is made before it passes the list:

- The host is resolved (``getaddrinfo``: every address, IPv4 and IPv6) and every address must be allowed: a
  name is no way around the check, and a name with one public and one internal address is refused. The
  resolver reads the forms ``inet_aton`` reads (``2130706433``, ``0177.0.0.1``, ``0x7f000001``) as the address
  a connection would reach, so those are checked as what they are.
- An IPv6 address that carries an IPv4 one (``::ffff:127.0.0.1``, 6to4) is checked as that IPv4 address too.
- Loopback, private, link-local, shared, reserved, multicast, unspecified and the cloud metadata addresses are
  refused unless the list names them: a network (or address) that holds the address, or the URL's host name.
  The entry ``public`` allows every other address: one that is globally routable.

The gateway checks a stream when a session starts (and follows its HTTP redirects, each hop checked, so that a
refused one is a clear answer then); capture checks again right before it connects, since a name may resolve
elsewhere by then, and connects only to an address it has just checked (:meth:`StreamAllow.connect`).
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import SplitResult, urljoin, urlsplit

from emotune_common.sources import SourceError

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

PUBLIC = "public"
#: The cloud instance metadata service (AWS, GCP, Azure, ... on IPv4; AWS's on IPv6).
METADATA = frozenset({ip_address("169.254.169.254"), ip_address("fd00:ec2::254")})
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 8  # as many as FFmpeg follows
_NAT64 = ip_network("64:ff9b::/96")
_INTERNAL = (
    ("is_loopback", "a loopback address"),
    ("is_unspecified", "the unspecified address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_private", "a private address"),
    ("is_reserved", "a reserved address"),
)
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")
#: Where URL parsers disagree (a backslash, white space, control characters): refused rather than guessed.
_AMBIGUOUS = re.compile(r"[\\\s\x00-\x1f\x7f]")


class StreamRefused(SourceError):
    """A stream that leads where ``EMOTUNE_STREAM_ALLOW`` does not allow; the text says which address and why."""


@dataclass(frozen=True)
class Endpoint:
    """The scheme, host and port a stream URL connects to, as every parser of it reads them."""

    scheme: str
    host: str
    port: int


@dataclass(frozen=True)
class StreamAllow:
    """The hosts, networks and kinds of address stream sources may reach (the text: :meth:`parse`)."""

    public: bool = True
    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str) -> StreamAllow:
        """Entries separated by spaces or commas: ``public``, host names, addresses, CIDR networks."""
        public, networks, hosts = False, [], set()
        for entry in text.replace(",", " ").split():
            if entry.lower() == PUBLIC:
                public = True
                continue
            try:
                networks.append(ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if not _HOST_NAME.match(name):
                raise ValueError(f"{entry!r} is not 'public', a host name, an address or a network")
            hosts.add(name)
        return cls(public=public, networks=tuple(networks), hosts=frozenset(hosts))

    def why_refused(self, address: IPAddress, host: str = "") -> str | None:
        """None when ``address`` (of the URL's ``host``) is allowed; else why not.

        An IPv4-mapped address is the IPv4 address it maps; one that carries an IPv4 address otherwise (6to4,
        NAT64) must be allowed as itself and as that address.
        """
        if host.lower().rstrip(".") in self.hosts:
            return None
        mapped = address.ipv4_mapped if isinstance(address, IPv6Address) else None
        for candidate in (mapped,) if mapped else (address, *carried_ipv4(address)):
            why = self._why_refused(candidate)
            if why is not None:
                return f"{candidate} is {why}" if candidate == address else f"{address} carries {candidate}, {why}"
        return None

    def _why_refused(self, address: IPAddress) -> str | None:
        if any(address in network for network in self.networks):
            return None
        kind = special_kind(address)
        if kind is not None:
            return f"{kind}, not named in EMOTUNE_STREAM_ALLOW"
        return None if self.public else "not named in EMOTUNE_STREAM_ALLOW (which allows no public address)"

    def addresses(self, endpoint: Endpoint) -> list[IPAddress]:
        """Every address of ``endpoint``'s host, each one allowed; :class:`StreamRefused` says which is not."""
        found = resolve(endpoint.host, endpoint.port)
        for address in found:
            why = self.why_refused(address, endpoint.host)
            if why is not None:
                named = "" if _is_literal(endpoint.host, address) else f"{endpoint.host} resolves to {address}; "
                raise StreamRefused(f"{named}{why}")
        return found

    def check(self, url: str) -> list[IPAddress]:
        """The addresses stream ``url`` connects to, all allowed (:class:`StreamRefused` otherwise)."""
        try:
            return self.addresses(endpoint(url))
        except StreamRefused as e:
            raise StreamRefused(f"{redacted(url)}: {e}") from None

    def connect(self, endpoint: Endpoint, timeout: float) -> socket.socket:
        """A TCP connection to an allowed address of ``endpoint``, resolved once here and checked: the address
        connected to is the one checked, so no later lookup (DNS rebinding) can send it elsewhere."""
        failure: OSError | None = None
        for address in self.addresses(endpoint):
            try:
                return socket.create_connection((str(address), endpoint.port), timeout)
            except OSError as e:
                failure = e
        assert failure is not None  # resolve() returns at least one address
        raise failure

    def follow_redirects(self, url: str, timeout: float = 3.0) -> str:
        """Where an HTTP(S) stream ends after its redirects, each hop checked before it is asked.

        Every hop is asked once (GET; the status and headers only, no redirect followed by the client), over
        :meth:`connect`. A hop that cannot be reached ends the walk there: whether the stream plays is for
        capture to find out. :class:`StreamRefused` names the first hop that is not allowed.
        """
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                if urlsplit(current).scheme.lower() not in ("http", "https"):
                    raise StreamRefused("an HTTP stream may redirect only to http:// or https://")
                target = endpoint(current)
                location = _redirect_of(self, target, current, timeout)
            except StreamRefused as e:
                via = "" if current == url else f"redirects to {redacted(current)}: "
                raise StreamRefused(f"{redacted(url)}: {via}{e}") from None
            except (OSError, http.client.HTTPException, SourceError):
                return current
            if not location:
                return current
            current = urljoin(current, location)
        raise StreamRefused(f"{redacted(url)}: more than {MAX_REDIRECTS} redirects")


def special_kind(address: IPAddress) -> str | None:
    """What makes ``address`` internal (a phrase), or None for a public one."""
    if address in METADATA:
        return "the cloud metadata address"
    for attribute, phrase in _INTERNAL:
        if getattr(address, attribute):
            return phrase
    return None if address.is_global else "not a public address"


def carried_ipv4(address: IPAddress) -> tuple[IPv4Address, ...]:
    """The IPv4 address an IPv6 one carries (6to4, NAT64), which is where it may lead."""
    if not isinstance(address, IPv6Address):
        return ()
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address in _NAT64:
        return (IPv4Address(int(address) & 0xFFFFFFFF),)
    return ()


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (IPv4 and IPv6, as a connection would find them)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise SourceError(f"cannot resolve {host!r}: {e}") from None
    addresses = list(dict.fromkeys(ip_address(info[4][0].partition("%")[0]) for info in found))
    if not addresses:
        raise SourceError(f"cannot resolve {host!r}: no address")
    return addresses


def endpoint(url: str) -> Endpoint:
    """Where stream ``url`` connects; :class:`SourceError` for a URL that parsers could read differently."""
    if _AMBIGUOUS.search(url):
        raise SourceError(f"{url!r}: white space, control characters or backslashes in a stream URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise SourceError(f"{url!r}: a stream is rtsp://, rtsps://, http:// or https://")
    if parts.fragment or "#" in url:
        raise SourceError(f"{url!r}: a stream URL has no #fragment")
    if parts.netloc.count("@") > 1:
        raise SourceError(f"{url!r}: more than one '@' before the host")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise SourceError(f"{url!r}: bad port") from None
    if not parts.hostname:
        raise SourceError(f"{url!r}: no host")
    return Endpoint(scheme, parts.hostname, port)


def with_host(url: str, address: IPAddress) -> str:
    """``url`` with its host replaced by ``address`` (user, port, path and query kept)."""
    parts: SplitResult = urlsplit(url)
    user, _, _ = parts.netloc.rpartition("@")
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = (f"{user}@" if user else "") + host + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def redacted(url: str) -> str:
    """``url`` without its user and password, for answers and logs."""
    parts = urlsplit(url)
    _, at, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=host).geturl() if at else url


def _is_literal(host: str, address: IPAddress) -> bool:
    try:
        return ip_address(host) == address
    except ValueError:
        return False


class _CheckedHTTP(http.client.HTTPConnection):
    """An HTTP connection made by :meth:`StreamAllow.connect` (to a checked address of the host)."""

    def __init__(self, allow: StreamAllow, target: Endpoint, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.allow, self.target = allow, target

    def connect(self) -> None:
        self.sock = self.allow.connect(self.target, self.timeout)


class _CheckedHTTPS(_CheckedHTTP):
    def connect(self) -> None:
        # Only the status and Location of the answer are read, and nothing secret is sent: a camera's
        # self-signed certificate is no reason to miss a redirect.
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        self.sock = context.wrap_socket(self.allow.connect(self.target, self.timeout), server_hostname=self.host)


def _redirect_of(allow: StreamAllow, target: Endpoint, url: str, timeout: float) -> str | None:
    """The Location an HTTP(S) URL redirects to, or None when it does not redirect."""
    kind = _CheckedHTTPS if target.scheme == "https" else _CheckedHTTP
    connection = kind(allow, target, timeout)
    parts = urlsplit(url)
    try:
        connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                           headers={"User-Agent": "emotune", "Accept": "*/*"})  # fmt: skip
        response = connection.getresponse()
        return response.getheader("Location") if response.status in REDIRECTS else None
    finally:
        connection.close()
