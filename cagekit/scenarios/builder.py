"""Turn a `ScenarioSpec` into the scenario dict the CybORG engine (csle-cyborg 0.0.3) reads.

The engine wants a dict, not a path, with each host's image content merged in (the `Test_Host`
mapping in place of an `image:` key). It mutates what it is given, so every call builds anew.
"""

from __future__ import annotations

from typing import Any

from cagekit.scenarios.spec import BlueAgentSpec, ScenarioSpec

_SEEN = {"Interfaces": "All", "System info": "All", "User info": "All"}

BLUE_ACTIONS: dict[str, list[str]] = {
    "paper": ["Sleep", "CostedAnalyse", "CostedRemove", "CostedRestore", "Block"],
    "cage2": ["Sleep", "Monitor", "Analyse", "Remove", "DecoyApache", "DecoyFemitter", "DecoyHarakaSMPT",
              "DecoySmss", "DecoySSHD", "DecoySvchost", "DecoyTomcat", "DecoyVsftpd", "Restore"],
}
RED_ACTIONS: dict[str, list[str]] = {
    "paper": ["Sleep", "PingSweep", "PortScan", "BruteForceSSH", "WebExploit", "StealthyEscalate", "ARPSpoof",
              "StolenCredentialSSH", "Impact"],
    "cage2": ["Sleep", "DiscoverRemoteSystems", "DiscoverNetworkServices", "ExploitRemoteService", "BlueKeep",
              "EternalBlue", "FTPDirectoryTraversal", "HarakaRCE", "HTTPRFI", "HTTPSRFI", "SQLInjection",
              "PrivilegeEscalate", "Impact", "SSHBruteForce"],
}
GREEN_ACTIONS: dict[str, list[str]] = {
    "paper": ["Sleep", "FalseAlarms"],
    "cage2": ["Sleep", "GreenPingSweep", "GreenPortScan", "GreenConnection"],
}

#: Name of the engine's red agent. The engine's exploit code hard-codes sessions['Red'].
RED_AGENT = "Red"
GREEN_AGENT = "Green"


def _subnet_order(spec: ScenarioSpec) -> list[str]:
    """Subnet names in the order red reaches them: breadth-first from the foothold's subnet along the
    hosts' `reveals`, then any unreached subnet in spec order.

    CAGE-2 lists its agents' AllowedSubnets and blue's monitoring sessions in this order (User,
    Enterprise, Operational). The session order matters: each session draws a random PID in turn.
    """
    order = [spec.subnet_of(spec.red_foothold)]
    i = 0
    while i < len(order):
        subnet = next(s for s in spec.subnets if s.name == order[i])
        for h in subnet.hosts:
            for other in spec.host(h).reveals:
                if (name := spec.subnet_of(other)) not in order:
                    order.append(name)
        i += 1
    return order + [s.name for s in spec.subnets if s.name not in order]


def _blue_agent(spec: ScenarioSpec, agent: BlueAgentSpec) -> dict[str, Any]:
    seen = list(dict.fromkeys([spec.defender, *agent.hosts]))  # the Defender may be one of the hosts
    order = _subnet_order(spec)
    wanted = {spec.subnet_of(h) for h in seen} | set(agent.block_subnets)
    subnets = [s for s in order if s in wanted]
    # monitoring clients: subnet by subnet in `order`, each subnet's hosts in spec order (as CAGE-2)
    by_name = {s.name: s for s in spec.subnets}
    clients = [h for s in order for h in by_name[s].hosts if h in seen]
    sessions: list[dict[str, Any]] = [
        {"hostname": h, "name": f"Velo{h}", "parent": "VeloServer", "type": "VelociraptorClient",
         "username": _client_user(spec, h)}
        for h in clients
    ]
    sessions.append({"artifacts": ["NetworkConnections", "ProcessCreation"], "hostname": spec.defender,
                     "name": "VeloServer", "num_children_sessions": 2, "type": "VelociraptorServer",
                     "username": "ubuntu"})
    return {
        "AllowedSubnets": subnets,
        "INT": {"Hosts": {h: dict(_SEEN) for h in seen}},
        "adversary": RED_AGENT,
        "actions": list(BLUE_ACTIONS[agent.action_set]),
        "agent_type": "SleepAgent",
        "reward_calculator_type": "HybridAvailabilityConfidentiality",
        "starting_sessions": sessions,
        "wrappers": [],
    }


def _client_user(spec: ScenarioSpec, host: str) -> str:
    """The image's `monitor_user` if it names one; else SYSTEM on Windows hosts, ubuntu elsewhere."""
    image = spec.host(host).image
    user = getattr(image, "monitor_user", None)
    if user is not None:
        return user
    os_type = image.to_cyborg()["System info"]["OSType"]
    return "SYSTEM" if os_type == "WINDOWS" else "ubuntu"


def _red_agent(spec: ScenarioSpec) -> dict[str, Any]:
    return {
        "AllowedSubnets": _subnet_order(spec),
        "INT": {"Hosts": {spec.red_foothold: {"Interfaces": "All", "System info": "All"}}},
        "actions": list(RED_ACTIONS[spec.reward]),
        "agent_type": "SleepAgent",
        "reward_calculator_type": "HybridImpactPwn",
        "starting_sessions": [{"hostname": spec.red_foothold, "name": "RedPhish", "type": "RedAbstractSession",
                               "username": "SYSTEM"}],
        "wrappers": [],
    }


def _green_agent(spec: ScenarioSpec, hosts: list[str]) -> dict[str, Any]:
    return {
        "AllowedSubnets": _subnet_order(spec),
        "INT": {"Hosts": {h: dict(_SEEN) for h in spec.host_names}},
        "actions": list(GREEN_ACTIONS[spec.reward]),
        "agent_type": "SleepAgent",
        "reward_calculator_type": "None",
        "starting_sessions": [{"hostname": h, "name": "GreenSession", "type": "green_session",
                               "username": "GreenAgent"} for h in hosts],
        "wrappers": [],
    }


def _host(spec: ScenarioSpec, name: str) -> dict[str, Any]:
    host = spec.host(name)
    out: dict[str, Any] = {"AWS_Info": []}
    out.update(host.image.to_cyborg())
    if name != spec.defender:
        info: dict[str, Any] = {name: {"Interfaces": "All"}}
        if host.info_services:
            info[name]["Services"] = list(host.info_services)
        for other in host.reveals:
            info[other] = {"Interfaces": "IP Address"}
        out["info"] = info
    out["ConfidentialityValue"] = host.confidentiality
    out["AvailabilityValue"] = host.availability
    return out


def build_scenario_dict(spec: ScenarioSpec, layout: str | None = None, *, green: bool = True) -> dict[str, Any]:
    """A fresh CybORG scenario dict for `spec` with the blue agents of `layout`.

    Agents are listed blue first, then red, then green: the engine steps them in that order.
    """
    agents: dict[str, Any] = {a.name: _blue_agent(spec, a) for a in spec.layout(layout)}
    agents[RED_AGENT] = _red_agent(spec)
    if green:
        green_hosts = list(spec.green_hosts) or [
            h for h in spec.host_names if h not in (spec.defender, spec.red_foothold)]
        agents[GREEN_AGENT] = _green_agent(spec, green_hosts)
    return {
        "Agents": agents,
        "Hosts": {h.name: _host(spec, h.name) for h in spec.hosts},
        "Subnets": {
            s.name: {"Hosts": list(s.hosts), "NACLs": {k: dict(v) for k, v in s.nacls.items()},
                     "Size": s.engine_size}
            for s in spec.subnets
        },
    }
