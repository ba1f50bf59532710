"""Scripted red agents for the paper scenarios, and the lookup of every red/green behaviour id.

Red sees only its own observations (as CybORG agents do) and keeps what it learned: addresses,
open ports, hostnames, its footholds and the credentials it captured. An action that fails on a
host tells it that the foothold there is gone (blue removed or restored it).
"""

from __future__ import annotations

import functools
import random
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from csle_cyborg.agents.simple_agents.b_line import B_lineAgent
from csle_cyborg.agents.simple_agents.meander import RedMeanderAgent
from csle_cyborg.agents.simple_agents.sleep_agent import SleepAgent
from csle_cyborg.shared.actions.abstract_actions.impact import Impact
from csle_cyborg.shared.actions.action import Action, Sleep

from cagekit.engine.actions import (
    ARPSpoof,
    BruteForceSSH,
    FalseAlarms,
    PingSweep,
    PortScan,
    StealthyEscalate,
    StolenCredentialSSH,
    WebExploit,
)
from cagekit.scenarios.spec import GREEN_BEHAVIOURS, RED_BEHAVIOURS

SESSION = 0  # red's abstract session, as CybORG's own red agents use it


class _PaperRed:
    """Shared bookkeeping of the paper red agents."""

    def __init__(self, detection: float = 0.1, *, target: str | None):
        """`target`: the host red impacts once it has root there (the scenario's `red_target`; None: none)."""
        self.detection = detection
        self.target = target
        self.end_episode()

    # CybORG agent interface -----------------------------------------------------------------
    def train(self, results: Any) -> None:
        pass

    def set_initial_values(self, action_space: Any, observation: Any) -> None:
        pass

    def end_episode(self) -> None:
        self.ips: dict[IPv4Address, str | None] = {}  # address -> hostname once known
        self.subnets: set[IPv4Network] = set()
        self.swept: set[IPv4Network] = set()
        self.ports: dict[IPv4Address, set[int]] = {}
        self.owned: dict[str, str] = {}  # hostname -> "user" | "root"
        self.spoofed: set[str] = set()  # hostnames red has ARP-spoofed from
        self.cred_ips: set[IPv4Address] = set()
        self.last: Action | None = None
        self.home: str | None = None
        self.t = 0
        self.ready_at: dict[str, int] = {}  # host -> step from which red escalates there (a 2-4 step delay)
        self.first_target: IPv4Address | None = None

    def get_action(self, observation: dict, action_space: dict | None = None) -> Action:
        self._learn(observation)
        self.t += 1
        for host, level in self.owned.items():
            if level == "user" and host not in self.ready_at:
                self.ready_at[host] = self.t + random.randint(2, 4)
        self.last = self._choose()
        return self.last

    # learning from observations -------------------------------------------------------------
    def _learn(self, obs: dict) -> None:
        success = str(obs.get("success")) == "TRUE" or obs.get("success") is True
        last = self.last
        if last is not None and not success:
            lost = getattr(last, "hostname", None)
            if lost is not None and lost != self.home and not isinstance(last, (PortScan, PingSweep)):
                self.owned.pop(lost, None)
                self.ready_at.pop(lost, None)
        for key, info in obs.items():
            if key == "success" or not isinstance(info, dict):
                continue
            hostname = info.get("System info", {}).get("Hostname")
            for iface in info.get("Interface", []):
                ip = iface.get("IP Address")
                if ip is None or ip == IPv4Address("127.0.0.1"):
                    continue
                if ip not in self.ips or (hostname and self.ips[ip] is None and key == str(ip)):
                    self.ips[ip] = hostname if key == str(ip) or key == hostname else self.ips.get(ip)
                if iface.get("Subnet") is not None:
                    self.subnets.add(iface["Subnet"])
                if isinstance(last, ARPSpoof) and success:
                    self.cred_ips.add(ip)
            for proc in info.get("Processes", []):
                for conn in proc.get("Connections", []):
                    if "local_port" in conn and "local_address" in conn:
                        self.ports.setdefault(conn["local_address"], set()).add(conn["local_port"])
            for sess in info.get("Sessions", []):
                if sess.get("Agent") == "Red" and hostname:
                    level = "root" if sess.get("Username") in ("root", "SYSTEM") else "user"
                    if self.home is None:
                        self.home = hostname
                    if self.owned.get(hostname) != "root":
                        self.owned[hostname] = level
            if hostname and key != hostname:
                try:
                    self.ips[IPv4Address(key)] = hostname
                except ValueError:
                    pass
        if success and isinstance(last, StealthyEscalate):
            self.owned[last.hostname] = "root"
        if success and isinstance(last, ARPSpoof):
            self.spoofed.add(last.hostname)
        if success and isinstance(last, PingSweep):
            self.swept.add(last.subnet)

    # choosing -------------------------------------------------------------------------------
    def _options(self) -> list[Action]:
        """Every next step red could take, deepest first."""
        d = self.detection
        opts: list[Action] = []
        for host, level in self.owned.items():
            if host == self.target and level == "root":
                opts.append(Impact(session=SESSION, agent="Red", hostname=host))
        for host, level in self.owned.items():
            if level == "user" and self.t >= self.ready_at.get(host, 0):
                opts.append(StealthyEscalate(session=SESSION, agent="Red", hostname=host, detection=d))
        for ip in sorted(self.cred_ips):
            if self.ips.get(ip) in self.owned:
                continue
            if ip not in self.ports:
                opts.append(PortScan(session=SESSION, agent="Red", ip_address=ip))
            else:
                opts.append(StolenCredentialSSH(session=SESSION, agent="Red", ip_address=ip, detection=d))
        for host, level in self.owned.items():
            if level == "root" and host != self.home and host not in self.spoofed:
                opts.append(ARPSpoof(session=SESSION, agent="Red", hostname=host, detection=d))
        for subnet in sorted(self.subnets - self.swept):
            opts.append(PingSweep(session=SESSION, agent="Red", subnet=subnet))
        for ip, known_host in sorted(self.ips.items()):
            if known_host == self.home or (known_host is not None and known_host in self.owned) \
                    or ip in self.cred_ips:
                continue
            ports = self.ports.get(ip)
            if ports is None:
                opts.append(PortScan(session=SESSION, agent="Red", ip_address=ip))
            elif 80 in ports or 443 in ports:
                opts.append(WebExploit(session=SESSION, agent="Red", ip_address=ip, detection=d))
            elif 22 in ports:
                opts.append(BruteForceSSH(session=SESSION, agent="Red", ip_address=ip))
        return opts

    def _choose(self) -> Action:
        raise NotImplementedError


class KillChainAgent(_PaperRed):
    """Direct kill chain (like CAGE-2's B_line): always the deepest available step."""

    def _choose(self) -> Action:
        opts = self._options()
        if not opts:
            return Sleep()
        first = opts[0]
        if isinstance(first, (PortScan, WebExploit, BruteForceSSH)) and not self.owned.keys() - {self.home}:
            # initial access: one user host picked at random, then kept
            candidates = [o.ip_address for o in opts if isinstance(o, (PortScan, WebExploit, BruteForceSSH))
                          and o.ip_address not in self.cred_ips]
            if self.first_target not in candidates and candidates:
                self.first_target = random.choice(sorted(candidates))
            return next((o for o in opts if getattr(o, "ip_address", None) == self.first_target), first)
        return first


class ExplorerAgent(_PaperRed):
    """Exploring red (like CAGE-2's Meander): a random available step, deeper steps more likely."""

    def _choose(self) -> Action:
        opts = self._options()
        if not opts:
            return Sleep()
        weights = [1.0 / (i + 1) for i in range(len(opts))]
        return random.choices(opts, weights=weights)[0]


class FalseAlarmGreen:
    """Green: benign users whose scans and logins raise false alerts at the scenario's rate."""

    def __init__(self, hostnames: tuple[str, ...] = (), rate: float = 0.05):
        self.hostnames = hostnames
        self.rate = rate

    def train(self, results: Any) -> None:
        pass

    def set_initial_values(self, action_space: Any, observation: Any) -> None:
        pass

    def end_episode(self) -> None:
        pass

    def get_action(self, observation: dict, action_space: dict | None = None) -> Action:
        return FalseAlarms(session=0, agent="Green", hostnames=self.hostnames, rate=self.rate)


_ENGINE_AGENTS = {"B_lineAgent": B_lineAgent, "RedMeanderAgent": RedMeanderAgent, "SleepAgent": SleepAgent}


def red_agent_factory(behaviour: str, *, detection: float, target: str | None) -> Any:
    """A zero-argument constructor for the red behaviour id (CybORG calls `agent_class()`); the paper's reds go
    for `target` (the scenario's `red_target`), CAGE-2's for their own."""
    if behaviour in _ENGINE_AGENTS:
        return _ENGINE_AGENTS[behaviour]
    if behaviour == "KillChainAgent":
        return functools.partial(KillChainAgent, detection=detection, target=target)
    if behaviour == "ExplorerAgent":
        return functools.partial(ExplorerAgent, detection=detection, target=target)
    raise ValueError(f"unknown red behaviour {behaviour!r}; valid: {', '.join(RED_BEHAVIOURS)}")


def green_agent_factory(behaviour: str, *, hostnames: tuple[str, ...], rate: float) -> Any:
    if behaviour == "SleepAgent":
        return SleepAgent
    if behaviour == "FalseAlarmGreen":
        return functools.partial(FalseAlarmGreen, hostnames=hostnames, rate=rate)
    raise ValueError(f"unknown green behaviour {behaviour!r}; valid: {', '.join(GREEN_BEHAVIOURS)}")
