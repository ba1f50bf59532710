"""Project-defined engine actions, registered in one place.

CybORG looks action classes up by name on `csle_cyborg.shared.actions`, so `register()` puts ours
there. Red's stealthy steps raise a monitor alert only with the scenario's `detection` probability;
a detected step leaves the signature (a connection to remote port 4444) that the blue table reads as
Exploit. Blocks last one step: the adapter clears them before blue acts.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address
from typing import Any

import csle_cyborg.shared.actions as engine_actions
from csle_cyborg.shared.actions.abstract_actions.analyse import Analyse
from csle_cyborg.shared.actions.abstract_actions.discover_network_services import DiscoverNetworkServices
from csle_cyborg.shared.actions.abstract_actions.discover_remote_systems import DiscoverRemoteSystems
from csle_cyborg.shared.actions.abstract_actions.exploit_remote_service import (
    ExploitActionSelector,
    ExploitRemoteService,
)
from csle_cyborg.shared.actions.abstract_actions.impact import Impact
from csle_cyborg.shared.actions.abstract_actions.privilege_escalate import PrivilegeEscalate
from csle_cyborg.shared.actions.abstract_actions.remove import Remove
from csle_cyborg.shared.actions.abstract_actions.restore import Restore
from csle_cyborg.shared.actions.action import Action
from csle_cyborg.shared.actions.concrete_actions.exploit_action import ExploitAction
from csle_cyborg.shared.actions.concrete_actions.http_rfi import HTTPRFI
from csle_cyborg.shared.actions.concrete_actions.ssh_brute_force import SSHBruteForce
from csle_cyborg.shared.enums import TrinaryEnum
from csle_cyborg.shared.observation import Observation
from csle_cyborg.simulator.state import State

ALERT_PORT = 4444  # the remote port CAGE's blue table reads as an exploit


# --- shared state kept on the engine's State object ----------------------------------------------

def blocked_subnets(state: State) -> set[str]:
    """Names of subnets isolated this step (set by Block, cleared by the adapter before blue acts)."""
    if not hasattr(state, "cagekit_blocked"):
        state.cagekit_blocked = set()
    return state.cagekit_blocked


def captured_credentials(state: State) -> set[str]:
    """Hostnames whose login credentials red has captured by ARP spoofing."""
    if not hasattr(state, "cagekit_credentials"):
        state.cagekit_credentials = set()
    return state.cagekit_credentials


def found_malware(state: State) -> set[tuple[str, str, str]]:
    """(hostname, path, name) of malware files that some Analyse has already reported."""
    if not hasattr(state, "cagekit_found"):
        state.cagekit_found = set()
    return state.cagekit_found


def reset_project_state(state: State) -> None:
    """Forget what our actions keep on the engine's State: it outlives `reset()`, episodes must not."""
    for attr in ("cagekit_blocked", "cagekit_credentials", "cagekit_found"):
        if hasattr(state, attr):
            delattr(state, attr)


def subnet_name_of(state: State, hostname: str) -> str:
    ip = next(ip for ip, h in state.ip_addresses.items() if h == hostname)
    for subnet in state.subnets.values():
        if ip in subnet.cidr:
            return subnet.name
    raise KeyError(hostname)


def crosses_block(state: State, from_host: str, to_host: str) -> bool:
    """Whether traffic between the two hosts crosses the boundary of a blocked subnet."""
    blocked = blocked_subnets(state)
    if not blocked:
        return False
    a, b = subnet_name_of(state, from_host), subnet_name_of(state, to_host)
    return a != b and (a in blocked or b in blocked)


def raise_alert(state: State, hostname: str, pid: int | None = None, local_port: int = 22) -> None:
    host = state.hosts[hostname]
    event: dict[str, Any] = {"local_address": host.interfaces[0].ip_address, "local_port": local_port,
                             "remote_port": ALERT_PORT}
    if pid is not None:
        event["pid"] = pid
    host.events["NetworkConnections"].append(event)


def red_source_host(state: State, agent: str, session: int) -> str:
    return state.sessions[agent][session].host


def _hostname_of_ip(state: State, ip: IPv4Address) -> str | None:
    return state.ip_addresses.get(ip)


def _red_sessions_on(state: State, hostname: str) -> list:
    return [s for agent, sessions in state.sessions.items() if agent == "Red"
            for s in sessions.values() if s.host == hostname and s.active]


def _privileged_on(state: State, agent: str, hostname: str) -> bool:
    return any(s.host == hostname and s.username in ("root", "SYSTEM") and s.active
               for s in state.sessions[agent].values())


# --- blue --------------------------------------------------------------------------------------

class Block(Action):
    """Isolate a subnet for this step: no red network action crosses its boundary."""

    def __init__(self, session: int, agent: str, subnet_name: str, cost: float = -2.0):
        super().__init__()
        self.session = session
        self.agent = agent
        self.subnet_name = subnet_name
        self._cost = cost

    def sim_execute(self, state: State) -> Observation:
        blocked_subnets(state).add(self.subnet_name)
        return Observation(True)

    @property
    def cost(self) -> float:
        return self._cost

    def __str__(self) -> str:
        return f"Block {self.subnet_name}"


class CostedRemove(Remove):
    """Remove that costs something unless it removed a red session (the paper's cost model)."""

    def __init__(self, session: int, agent: str, hostname: str, cost: float = -0.5):
        super().__init__(session=session, agent=agent, hostname=hostname)
        self._miss_cost = cost
        self._cost = 0.0

    def sim_execute(self, state: State) -> Observation:
        before = len(_red_sessions_on(state, self.hostname))
        obs = super().sim_execute(state)
        after = len(_red_sessions_on(state, self.hostname))
        self._cost = 0.0 if after < before else self._miss_cost
        return obs

    @property
    def cost(self) -> float:
        return self._cost


class CostedAnalyse(Analyse):
    """Analyse that costs something unless it found malware no earlier Analyse had reported."""

    def __init__(self, session: int, agent: str, hostname: str, cost: float = -0.5):
        super().__init__(session=session, agent=agent, hostname=hostname)
        self._miss_cost = cost
        self._cost = 0.0

    def sim_execute(self, state: State) -> Observation:
        obs = super().sim_execute(state)
        found = found_malware(state)
        new = False
        for host in obs.data.values():
            if not isinstance(host, dict):
                continue
            for f in host.get("Files", []):
                key = (self.hostname, str(f.get("Path")), str(f.get("File Name")))
                if f.get("Density", 0) >= 0.9 and key not in found:
                    found.add(key)
                    new = True
        self._cost = 0.0 if new else self._miss_cost
        return obs

    @property
    def cost(self) -> float:
        return self._cost


class CostedRestore(Restore):
    """Restore whose cost is the paper's: the host's value, with Low (and None) counted as 1."""

    def __init__(self, session: int, agent: str, hostname: str, cost: float = -1.0):
        super().__init__(session=session, agent=agent, hostname=hostname)
        self._cost = cost

    def sim_execute(self, state: State) -> Observation:
        obs = super().sim_execute(state)
        found = found_malware(state)
        for key in [k for k in found if k[0] == self.hostname]:
            found.discard(key)
        return obs

    @property
    def cost(self) -> float:
        return self._cost


# --- red ---------------------------------------------------------------------------------------

class _Selector(ExploitActionSelector):
    """Always picks one exploit class, with a set detection rate where the exploit has one."""

    def __init__(self, exploit: type[ExploitAction], detection: float | None):
        self.exploit = exploit
        self.detection = detection

    def get_exploit_action(self, *, state: State, session: int, agent: str, ip_address: IPv4Address,
                           priority: Any = None) -> ExploitAction | None:
        if self.exploit is SSHBruteForce and 22 not in state.sessions[agent][session].ports.get(ip_address, []):
            return None
        action = self.exploit(session=session, agent=agent, ip_address=ip_address, target_session=session)
        if self.detection is not None:
            action.detection_rate = self.detection
        return action


class _GuardedExploit(ExploitRemoteService):
    def sim_execute(self, state: State) -> Observation:
        target = _hostname_of_ip(state, self.ip_address)
        if target is None or crosses_block(state, red_source_host(state, self.agent, self.session), target):
            return Observation(success=False)
        return super().sim_execute(state)


class BruteForceSSH(_GuardedExploit):
    """Initial access by SSH brute force (sshpass): ten failed logins, always seen as an exploit."""

    def __init__(self, session: int, agent: str, ip_address: IPv4Address):
        super().__init__(session=session, agent=agent, ip_address=ip_address)
        self.exploit_action_selector = _Selector(SSHBruteForce, None)


class WebExploit(_GuardedExploit):
    """Initial access by a web exploit (remote file inclusion), seen with probability `detection`."""

    def __init__(self, session: int, agent: str, ip_address: IPv4Address, detection: float = 0.1):
        super().__init__(session=session, agent=agent, ip_address=ip_address)
        self.exploit_action_selector = _Selector(HTTPRFI, detection)


class PortScan(DiscoverNetworkServices):
    """nmap-style port scan of one address: always seen as a Scan."""

    def sim_execute(self, state: State) -> Observation:
        target = _hostname_of_ip(state, self.ip_address)
        if target is None or crosses_block(state, red_source_host(state, self.agent, self.session), target):
            return Observation(success=False)
        return super().sim_execute(state)


class PingSweep(DiscoverRemoteSystems):
    """nmap-style ping sweep of a subnet (not seen by the monitor, as in CAGE-2)."""

    def sim_execute(self, state: State) -> Observation:
        source = red_source_host(state, self.agent, self.session)
        for subnet in state.subnets.values():
            if subnet.cidr == self.subnet and subnet.name in blocked_subnets(state) \
                    and subnet_name_of(state, source) != subnet.name:
                return Observation(success=False)
        return super().sim_execute(state)


class StealthyEscalate(PrivilegeEscalate):
    """Privilege escalation, seen with probability `detection`."""

    def __init__(self, session: int, agent: str, hostname: str, detection: float = 0.1):
        super().__init__(session=session, agent=agent, hostname=hostname)
        self.detection = detection

    def sim_execute(self, state: State) -> Observation:
        obs = super().sim_execute(state)
        if obs.data["success"] is TrinaryEnum.TRUE and random.random() < self.detection:
            raise_alert(state, self.hostname)
        return obs


class ARPSpoof(Action):
    """From root on a host, poison its subnet's ARP caches and capture the credentials that cross it.

    Captures the logins for every host that a host of this subnet talks to (its `reveals`), and
    reports their addresses. Seen with probability `detection`.
    """

    def __init__(self, session: int, agent: str, hostname: str, detection: float = 0.1):
        super().__init__()
        self.session = session
        self.agent = agent
        self.hostname = hostname
        self.detection = detection

    def sim_execute(self, state: State) -> Observation:
        if not _privileged_on(state, self.agent, self.hostname):
            return Observation(success=False)
        subnet = subnet_name_of(state, self.hostname)
        obs = Observation(success=True)
        creds = captured_credentials(state)
        for hostname, host in state.hosts.items():
            if subnet_name_of(state, hostname) != subnet or not host.info:
                continue
            for target in host.info:
                if target == hostname or target not in state.hosts:
                    continue
                creds.add(target)
                ip = next(ip for ip, h in state.ip_addresses.items() if h == target)
                subnet_obj = next(s for s in state.subnets.values() if ip in s.cidr)
                obs.add_interface_info(hostid=str(ip), ip_address=ip, subnet=subnet_obj.cidr)
        if random.random() < self.detection:
            raise_alert(state, self.hostname)
        return obs


class StolenCredentialSSH(Action):
    """SSH login with captured credentials: a user session on the target, seen with `detection`."""

    def __init__(self, session: int, agent: str, ip_address: IPv4Address, detection: float = 0.1):
        super().__init__()
        self.session = session
        self.agent = agent
        self.ip_address = ip_address
        self.detection = detection

    def sim_execute(self, state: State) -> Observation:
        target = _hostname_of_ip(state, self.ip_address)
        source_session = state.sessions[self.agent].get(self.session)
        if target is None or source_session is None or target not in captured_credentials(state):
            return Observation(success=False)
        if crosses_block(state, source_session.host, target):
            return Observation(success=False)
        host = state.hosts[target]
        sshd = next((p for p in host.processes if p.name == "sshd"), None)
        user = next((u for u in host.users if u.password and u.username not in ("root", "SYSTEM")), None)
        if sshd is None or user is None:
            return Observation(success=False)
        proc = host.add_process(name="sshd", ppid=sshd.pid, path=sshd.path, user=user.username,
                                process_type="ssh")
        session = state.add_session(host=target, agent=self.agent, user=user.username, session_type="ssh",
                                    parent=source_session, process=proc.pid)
        red_session = state.sessions[self.agent][self.session]
        red_session.addos(target, host.os_type)
        obs = Observation(success=True)
        obs.add_session_info(hostid=str(self.ip_address), username=user.username, session_id=session.ident,
                             session_type="ssh", agent=self.agent)
        obs.add_system_info(hostid=str(self.ip_address), hostname=target, os_type=host.os_type)
        obs.add_interface_info(hostid=str(self.ip_address), ip_address=self.ip_address)
        if random.random() < self.detection:
            raise_alert(state, target, pid=proc.pid)
        return obs


# --- green -------------------------------------------------------------------------------------

class FalseAlarms(Action):
    """Benign users' scans and logins: on each green host, with probability `rate`, an alert fires."""

    def __init__(self, session: int, agent: str, hostnames: tuple[str, ...] = (), rate: float = 0.05):
        super().__init__()
        self.session = session
        self.agent = agent
        self.hostnames = hostnames
        self.rate = rate

    def sim_execute(self, state: State) -> Observation:
        for hostname in self.hostnames:
            if random.random() < self.rate:
                host = state.hosts[hostname]
                ip = host.interfaces[0].ip_address
                if random.random() < 0.5:  # a benign scan: three ports
                    for port in (22, 80, 443):
                        host.events["NetworkConnections"].append({"local_address": ip, "local_port": port})
                else:  # a login that looks like an exploit
                    raise_alert(state, hostname)
        return Observation(True)


PROJECT_ACTIONS: tuple[type[Action], ...] = (
    Block, CostedRemove, CostedAnalyse, CostedRestore, BruteForceSSH, WebExploit, PortScan, PingSweep,
    StealthyEscalate, ARPSpoof, StolenCredentialSSH, FalseAlarms,
)


def register() -> None:
    """Make our actions resolvable by name where the engine looks them up."""
    for cls in PROJECT_ACTIONS:
        setattr(engine_actions, cls.__name__, cls)


__all__ = [c.__name__ for c in PROJECT_ACTIONS] + ["Impact", "register", "ALERT_PORT"]
