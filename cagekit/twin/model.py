"""Static tables the twin derives from a `ScenarioSpec`: hosts, ports, reveals, costs, blue catalogues.

Everything numeric comes from the spec (host values, action costs, detection, green rate, message cost)
or from the host images it names (listening ports, exploitable services, users): there is no second copy
of a scenario's numbers here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from csle_cyborg.shared.enums import ProcessType

from cagekit.engine.catalog import BlueActionCatalog
from cagekit.engine.table import check_view
from cagekit.scenarios import build_scenario_dict
from cagekit.scenarios.builder import GREEN_AGENT
from cagekit.scenarios.spec import VALUE_WEIGHTS, ScenarioSpec

#: blue defence kinds, as the twin codes them
B_SLEEP, B_ANALYSE, B_REMOVE, B_RESTORE, B_BLOCK = range(5)
_BLUE_KIND = {"Sleep": B_SLEEP, "Analyse": B_ANALYSE, "Remove": B_REMOVE, "Restore": B_RESTORE, "Block": B_BLOCK}

#: ports that green's benign scan touches and the port an alert (a 4444 connection) is raised on
GREEN_SCAN_PORTS = (22, 80, 443)
ALERT_LOCAL_PORT = 22
HTTP_PORT = 80
SSH_PORT = 22
BRUTE_FORCE_ATTEMPTS = 10  # SSHBruteForce's word list: ten logins, one more on success


@dataclass(frozen=True)
class AgentTables:
    """One blue agent's catalogue as arrays: per defence index its kind and its target."""

    name: str
    hosts: np.ndarray  # global host indices, in the agent's order
    block_subnets: np.ndarray  # global subnet indices
    kind: np.ndarray  # (n_defence,) B_* code
    target: np.ndarray  # (n_defence,) host index (Analyse/Remove/Restore), subnet index (Block), -1
    local: np.ndarray  # (n_defence,) position of the target host in `hosts` (-1 if none)
    block_slot: np.ndarray  # (n_defence,) position of the blocked subnet in `block_subnets` (-1 if none)
    catalog: BlueActionCatalog
    n_received: int
    n_team: int = 0  # teammates' bits appended with view="team" (their host rows and block bits)

    @property
    def n_defence(self) -> int:
        return len(self.kind)

    @property
    def own_obs_size(self) -> int:
        """Its own rows, block bits and received bits: the observation without the team view's part."""
        return 4 * len(self.hosts) + len(self.block_subnets) + self.n_received

    @property
    def obs_size(self) -> int:
        return self.own_obs_size + self.n_team


def _listening_ports(image_dict: dict) -> tuple[list[int], bool, bool, bool]:
    """(listening ports, http process on port 80, that process vulnerable to RFI, ssh process on port 22)."""
    ports: list[int] = []
    http80 = rfi = ssh22 = False
    for proc in image_dict["Processes"]:
        ptype = proc.get("Process Type")
        kind = ProcessType.parse_string(ptype) if ptype is not None else ProcessType.parse_string(proc["Process Name"])
        for conn in proc.get("Connections", []):
            port = conn.get("local_port")
            if port is None or "remote_port" in conn:
                continue
            ports.append(int(port))
            if kind == ProcessType.WEBSERVER and port == HTTP_PORT and not http80:
                http80 = True
                rfi = "rfi" in proc.get("Properties", [])
            if kind == ProcessType.SSH and port == SSH_PORT:
                ssh22 = True
    return ports, http80, rfi, ssh22


class TwinModel:
    """The spec of one scenario + layout as the arrays the batched dynamics index."""

    def __init__(self, spec: ScenarioSpec, layout: str | None = None, *, channel: bool = True,
                 detection: float | None = None, green_rate: float | None = None, view: str = "own"):
        check_view(view)
        if spec.reward != "paper":
            raise ValueError(f"the twin models the paper networks' action set; scenario {spec.name!r} uses "
                             f"{spec.reward!r}: run it on the engine (training: --backend engine; evaluation: "
                             f"any --backend but twin; the Python API: simulator='engine')")
        self.spec = spec
        self.detection = spec.setting("detection", detection)
        self.green_rate = spec.setting("green_rate", green_rate)
        names = spec.host_names
        self.host_names = names
        self.H = len(names)
        hidx = {h: i for i, h in enumerate(names)}
        self.subnet_names = tuple(s.name for s in spec.subnets)
        self.S = len(self.subnet_names)
        sidx = {s: i for i, s in enumerate(self.subnet_names)}
        self.subnet_of = np.array([sidx[spec.subnet_of(h)] for h in names], dtype=np.int64)
        self.subnet_hosts = np.zeros((self.S, self.H), dtype=bool)
        self.subnet_hosts[self.subnet_of, np.arange(self.H)] = True
        self.home = hidx[spec.red_foothold]
        self.home_subnet = int(self.subnet_of[self.home])
        self.defender = hidx[spec.defender]

        # ports, exploitability, users ---------------------------------------------------------------
        images = [spec.host(h).image.to_cyborg() for h in names]
        port_lists = []
        self.http80 = np.zeros(self.H, dtype=bool)
        self.rfi = np.zeros(self.H, dtype=bool)
        self.ssh22 = np.zeros(self.H, dtype=bool)
        for i, img in enumerate(images):
            ports, self.http80[i], self.rfi[i], self.ssh22[i] = _listening_ports(img)
            port_lists.append(ports)
        vocab = sorted({p for ps in port_lists for p in ps} | set(GREEN_SCAN_PORTS) | {ALERT_LOCAL_PORT, HTTP_PORT})
        if len(vocab) > 62:
            raise ValueError("too many distinct listening ports for the twin's port bitmask")
        self.port_bit = {p: 1 << k for k, p in enumerate(vocab)}
        self.n_listen = np.array([len(ps) for ps in port_lists], dtype=np.int64)
        self.listen_mask = np.array([sum({self.port_bit[p] for p in ps}) for ps in port_lists], dtype=np.int64)
        self.web_port = np.array([bool({80, 443} & set(ps)) for ps in port_lists])  # red's WebExploit choice
        self.ssh_port = np.array([22 in ps for ps in port_lists])  # red's BruteForceSSH choice
        self.bruteforceable = np.array([any(u.get("Bruteforceable") for u in img["User Info"]) for img in images])
        has_sshd = np.array([any(p["Process Name"] == "sshd" for p in img["Processes"]) for img in images])
        cred_user = np.array([any(u.get("Password") and u["Username"] not in ("root", "SYSTEM")
                                  for u in img["User Info"]) for img in images])
        self.stolen_ok = has_sshd & cred_user
        self.ot_host = np.array([any(p["Process Name"] == "OTService" for p in img["Processes"]) for img in images])
        self.ot_info = np.array(["OTService" in spec.host(h).info_services for h in names])

        # what a root session reveals (its `reveals`) and what an ARP spoof in a subnet captures --------
        self.reveals = np.zeros((self.H, self.H), dtype=bool)
        for i, h in enumerate(names):
            if h == spec.defender:
                continue  # the builder gives the Defender no `info` block
            for other in spec.host(h).reveals:
                if other != h:
                    self.reveals[i, hidx[other]] = True
        self.spoof_targets = np.zeros((self.S, self.H), dtype=bool)
        for s in range(self.S):
            self.spoof_targets[s] = self.reveals[self.subnet_hosts[s]].any(axis=0)

        # values ------------------------------------------------------------------------------------
        self.conf = np.array([VALUE_WEIGHTS[spec.host(h).confidentiality] for h in names])
        self.avail = np.array([VALUE_WEIGHTS[spec.host(h).availability] for h in names])
        # the host red impacts, or None: a spec with no target (red impacts nothing), or whose reds go for none (a
        # sleeping red); the spec refuses a target that is not a host where its reds go for one
        self.red_target: int | None = None if spec.red_target is None else hidx.get(spec.red_target)

        # green ---------------------------------------------------------------------------------------
        scenario_dict = build_scenario_dict(spec, layout)
        green_hosts = [s["hostname"] for s in scenario_dict["Agents"][GREEN_AGENT]["starting_sessions"]]
        self.green_hosts = np.array([hidx[h] for h in green_hosts], dtype=np.int64)

        # blue ----------------------------------------------------------------------------------------
        agents = spec.layout(layout)
        self.agent_names = tuple(a.name for a in agents)
        self.A = len(agents)
        self.channel = channel
        self.view = view
        costs = spec.costs
        team_bits = [4 * len(a.hosts) + len(a.block_subnets) for a in agents]
        self.agents: list[AgentTables] = []
        self.owner = np.full(self.H, -1, dtype=np.int64)
        for ai, a in enumerate(agents):
            if a.action_set != "paper":
                raise NotImplementedError(f"agent {a.name!r}: the twin models the paper action set only")
            cat = BlueActionCatalog(spec, a)
            hosts = np.array([hidx[h] for h in a.hosts], dtype=np.int64)
            blocks = np.array([sidx[s] for s in a.block_subnets], dtype=np.int64)
            kind, target_, local, bslot = [], [], [], []
            for k, t in cat.entries:
                kind.append(_BLUE_KIND[k])
                if t is None:
                    target_.append(-1)
                    local.append(-1)
                    bslot.append(-1)
                elif k == "Block":
                    target_.append(sidx[t])
                    local.append(-1)
                    bslot.append(list(a.block_subnets).index(t))
                else:
                    target_.append(hidx[t])
                    local.append(list(a.hosts).index(t))
                    bslot.append(-1)
            self.owner[hosts] = ai
            self.agents.append(AgentTables(a.name, hosts, blocks, np.array(kind), np.array(target_),
                                           np.array(local), np.array(bslot), cat,
                                           self.A - 1 if channel else 0,
                                           sum(team_bits) - team_bits[ai] if view == "team" else 0))
        self.restore_cost = np.array([
            -max(VALUE_WEIGHTS[spec.host(h).confidentiality], -costs.restore_floor) if costs.restore_by_value
            else costs.restore_floor for h in names])
        self.analyse_cost = float(costs.analyse_unless_found)
        self.remove_cost = float(costs.remove_unless_removed)
        self.block_cost = float(costs.block)
        self.max_hosts = max(len(a.hosts) for a in self.agents)
        self.obs_size = np.array([a.obs_size for a in self.agents], dtype=np.int64)
        self.own_obs_size = np.array([a.own_obs_size for a in self.agents], dtype=np.int64)
        self.obs_size_max = int(self.obs_size.max())
        self.n_defence = np.array([a.n_defence for a in self.agents], dtype=np.int64)
        self.n_actions = self.n_defence * (2 if channel else 1)
        self.n_actions_max = int(self.n_actions.max())
        # padded catalogue arrays: (A, n_defence_max)
        dmax = int(self.n_defence.max())
        self.kind_tab = np.full((self.A, dmax), B_SLEEP, dtype=np.int64)
        self.target_tab = np.full((self.A, dmax), -1, dtype=np.int64)
        self.local_tab = np.full((self.A, dmax), -1, dtype=np.int64)
        self.bslot_tab = np.full((self.A, dmax), -1, dtype=np.int64)
        for ai, tab in enumerate(self.agents):
            n = tab.n_defence
            self.kind_tab[ai, :n] = tab.kind
            self.target_tab[ai, :n] = tab.target
            self.local_tab[ai, :n] = tab.local
            self.bslot_tab[ai, :n] = tab.block_slot
