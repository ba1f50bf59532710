"""Host images written as data: an OS, the processes it runs (with the ports they listen on), its users.

Our own compact format; `HostImage.to_cyborg()` expands it into the `Test_Host` mapping that the
CybORG engine expects inside each host of a scenario dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OS:
    os_type: str  # LINUX | WINDOWS
    distribution: str  # UBUNTU | WINDOWS_SVR_2008 | ...
    version: str  # U18_04_3 | W6_1_7601 | ...
    architecture: str = "x64"


LINUX = OS("LINUX", "UBUNTU", "U18_04_3")
WINDOWS = OS("WINDOWS", "WINDOWS_SVR_2008", "W6_1_7601")


@dataclass(frozen=True)
class Conn:
    """One listening connection of a process, for `Proc.conns`."""

    port: int
    address: str = "0.0.0.0"
    #: CybORG "Transport Protocol" ("TCP", "UDP"); None leaves the key out (some CAGE-2 images do)
    protocol: str | None = "TCP"

    def to_cyborg(self) -> dict[str, Any]:
        out: dict[str, Any] = {"local_address": self.address, "local_port": self.port}
        if self.protocol is not None:
            out["Transport Protocol"] = self.protocol
        return out


@dataclass(frozen=True)
class Proc:
    """A process; `ports` are TCP ports it listens on (one CybORG connection entry each).

    `conns` instead lists the connections of a single process entry (CybORG images sometimes give a
    process several connections in one entry, or a connection without a transport protocol).
    """

    name: str
    pid: int
    user: str
    #: None leaves "Path" out of the entry (several CAGE-2 Windows processes have none)
    path: str | None
    ppid: int = 1
    ports: tuple[int, ...] = ()
    ptype: str | None = None  # CybORG "Process Type" (ssh, webserver, smb, femitter, ...)
    version: str | None = None  # CybORG "Process Version"
    properties: tuple[str, ...] = ()
    #: listen on a UDP port instead of TCP (DNS, DHCP)
    udp: bool = False
    #: the connections of one entry; exclusive with `ports`
    conns: tuple[Conn, ...] = ()

    def __post_init__(self) -> None:
        if self.ports and self.conns:
            raise ValueError(f"process {self.name!r}: give `ports` or `conns`, not both")

    def to_cyborg(self) -> list[dict[str, Any]]:
        base: dict[str, Any] = {"PID": self.pid, "PPID": self.ppid, "Process Name": self.name,
                                "Username": self.user}
        if self.path is not None:
            base["Path"] = self.path
        if self.ptype is not None:
            base["Process Type"] = self.ptype
        if self.version is not None:
            base["Process Version"] = self.version
        if self.properties:
            base["Properties"] = list(self.properties)
        if self.conns:
            base["Connections"] = [c.to_cyborg() for c in self.conns]
            return [base]
        if not self.ports:
            return [base]
        # CybORG lists a multi-port process once per port, each with one connection.
        out = []
        for port in self.ports:
            entry = dict(base)
            if "Properties" in entry:  # each entry its own list: the engine keeps them by reference
                entry["Properties"] = list(entry["Properties"])
            entry["Connections"] = [{"local_address": "0.0.0.0", "local_port": port,
                                     "Transport Protocol": "UDP" if self.udp else "TCP"}]
            out.append(entry)
        return out


@dataclass(frozen=True)
class User:
    name: str
    #: None leaves "UID" out (CAGE-2's Windows SYSTEM user); Windows images use SID strings
    uid: int | str | None
    #: (GID, name) pairs; None leaves "Groups" out
    groups: tuple[tuple[int, str], ...] | None
    password: str | None = None
    bruteforceable: bool = False

    def to_cyborg(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Username": self.name}
        if self.uid is not None:
            out["UID"] = self.uid
        if self.groups is not None:
            out["Groups"] = [{"GID": g, "Group Name": n} for g, n in self.groups]
        if self.bruteforceable:
            out["Bruteforceable"] = True
        if self.password is not None:
            out["Password"] = self.password
        return out


@dataclass(frozen=True)
class HostImage:
    name: str
    os: OS
    processes: tuple[Proc, ...]
    users: tuple[User, ...]
    #: services the engine tracks as running (name -> pid); Impact stops OTService
    services: dict[str, int] = field(default_factory=dict)
    #: user the blue monitoring client (Velociraptor) runs as on this host; None: the builder's
    #: default by OS (SYSTEM on Windows, ubuntu elsewhere)
    monitor_user: str | None = None

    def to_cyborg(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Processes": [entry for p in self.processes for entry in p.to_cyborg()],
            "System info": {"Architecture": self.os.architecture, "OSDistribution": self.os.distribution,
                            "OSType": self.os.os_type, "OSVersion": self.os.version},
            "User Info": [u.to_cyborg() for u in self.users],
        }
        if self.services:
            out["Services"] = {n: {"active": True, "PID": pid} for n, pid in self.services.items()}
        return out


# --- building blocks -------------------------------------------------------------------------

def sshd(pid: int = 1091, user: str = "root", ptype: str | None = "ssh") -> Proc:
    """OpenSSH on port 22; `ptype=None` leaves the type to the engine (it reads "sshd" as ssh)."""
    return Proc("sshd", pid, user, "/usr/sbin", ports=(22,), ptype=ptype)


def apache(pid: int = 1100, ports: tuple[int, ...] = (80, 443)) -> Proc:
    """A web server vulnerable to remote file inclusion (CybORG's HTTPRFI / HTTPSRFI exploits)."""
    return Proc("apache2", pid, "www-data", "/usr/sbin", ports=ports, ptype="webserver", properties=("rfi",))


def femitter_ftp(pid: int = 1200) -> Proc:
    return Proc("femitter.exe", pid, "SYSTEM", "C:\\Program Files (x86)\\Femitter", ports=(21,),
                ptype="femitter")


def ot_service(pid: int = 1043) -> Proc:
    return Proc("OTService", pid, "root", "/root")


def mysql(port: int = 3389, pid: int = 1101) -> Proc:
    """MySQL as CAGE-2's Linux user hosts run it (from /etc/init.d, as root, on an odd port)."""
    return Proc("mysql", pid, "root", "/etc/init.d", ports=(port,))


def haraka_smtp(pid: int = 1102) -> Proc:
    """Haraka 2.7.0 mail server on port 25 (CybORG's HarakaRCE exploit)."""
    return Proc("smtp", pid, "root", "/usr/sbin", ports=(25,), ptype="smtp", version="haraka 2.7.0")


LINUX_USERS = (
    User("root", 0, ((0, "root"),)),
    User("www-data", 33, ((33, "www-data"),)),
    User("pi", 1001, ((1001, "pi"),), password="raspberry", bruteforceable=True),
    User("ubuntu", 1000, ((1000, "ubuntu"),)),
)

WINDOWS_USERS = (
    User("SYSTEM", 0, ((0, "SYSTEM"),)),
    User("Administrator", 500, ((500, "Administrators"),)),
    User("vagrant", 1000, ((1000, "vagrant"),), password="vagrant", bruteforceable=True),
)
