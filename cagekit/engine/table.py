"""The blue table: what each blue agent knows of its hosts, as CAGE-2's 4 bits per host.

Our lean re-implementation of CybORG's `BlueTableWrapper` rules: activity (None/Scan/Exploit) is
read from this step's monitor events; compromise (No/Unknown/User/Privileged) is remembered, set by
exploit activity and malware found by Analyse, cleared by Restore, made Unknown by Remove.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ACTIVITY_BITS = {"None": (0, 0), "Scan": (1, 0), "Exploit": (1, 1)}
COMPROMISE_BITS = {"No": (0, 0), "Unknown": (1, 0), "User": (0, 1), "Privileged": (1, 1)}


def interpret_connections(activity: list[dict[str, Any]]) -> str:
    """CAGE-2's reading of a host's new processes/connections as None, Scan or Exploit."""
    num_connections = len(activity)
    ports = {item["Connections"][0]["local_port"] for item in activity if "Connections" in item}
    remote_ports = {item["Connections"][0].get("remote_port") for item in activity if "Connections" in item}
    remote_ports.discard(None)
    if num_connections >= 3 and len(ports) >= 3:
        return "Scan"
    if 4444 in remote_ports:
        return "Exploit"
    if num_connections >= 3 and len(ports) == 1:
        return "Exploit"
    if "Service Name" in activity[0]:
        return "None"
    return "Scan"


class BlueTable:
    """One blue agent's table over its own hosts (in a fixed order)."""

    def __init__(self, hosts: tuple[str, ...]):
        self.hosts = hosts
        self._index = {h: i for i, h in enumerate(hosts)}
        self.reset()

    def reset(self) -> None:
        self.compromised = ["No"] * len(self.hosts)
        self.activity = ["None"] * len(self.hosts)

    def update(self, last_action: Any, observations: list[dict[str, Any]]) -> None:
        """Apply this step's own action, then the anomalies in its action result and monitor report."""
        name = type(last_action).__name__
        host = getattr(last_action, "hostname", None)
        if host in self._index:
            i = self._index[host]
            if "Restore" in name:
                self.compromised[i] = "No"
            elif "Remove" in name and self.compromised[i] != "No":
                self.compromised[i] = "Unknown"
        processes: dict[str, list[dict[str, Any]]] = {}
        files: dict[str, list[dict[str, Any]]] = {}
        for obs in observations:
            for hostid, info in obs.items():
                if hostid not in self._index or not isinstance(info, dict):
                    continue
                if info.get("Processes"):
                    processes.setdefault(hostid, []).extend(info["Processes"])
                if info.get("Files"):
                    files.setdefault(hostid, []).extend(info["Files"])
        self.activity = ["None"] * len(self.hosts)
        for hostid, procs in processes.items():
            i = self._index[hostid]
            kind = interpret_connections(procs)
            self.activity[i] = kind
            if kind == "Exploit":
                self.compromised[i] = "User"
        for hostid, host_files in files.items():
            if any(f.get("Density", 0) >= 0.9 for f in host_files):
                self.compromised[self._index[hostid]] = "Privileged"

    def codes(self) -> np.ndarray:
        """Per host, the 4-bit row as an integer 0-15 (activity bits high, compromise bits low)."""
        return np.fromiter((_ACTIVITY_CODE[a] | _COMPROMISE_CODE[c]
                            for a, c in zip(self.activity, self.compromised, strict=True)),
                           dtype=np.int64, count=len(self.hosts))

    def bits(self) -> np.ndarray:
        """The CAGE-2 vector: 4 values per host, in host order."""
        return CODE_BITS[self.codes()].reshape(-1)


_ACTIVITY_CODE = {k: (a0 << 3) | (a1 << 2) for k, (a0, a1) in ACTIVITY_BITS.items()}
_COMPROMISE_CODE = {k: (c0 << 1) | c1 for k, (c0, c1) in COMPROMISE_BITS.items()}
#: host codes that show nothing beyond a bare scan (None/No and Scan/No: 0b0000, 0b1000): the rows on which SAU
#: masks a host's Analyse, Remove and Restore (cagekit.wrappers.sau) and DIAL reads no alarm
QUIET_CODES = tuple(_ACTIVITY_CODE[a] | _COMPROMISE_CODE["No"] for a in ("None", "Scan"))
#: lookup table, host code (0-15) -> shows nothing beyond a bare scan (indexing beats np.isin on hot paths)
IS_QUIET = np.zeros(16, dtype=bool)
IS_QUIET[list(QUIET_CODES)] = True
#: code 0-15 -> its four bits (activity0, activity1, compromise0, compromise1)
CODE_BITS = np.array([[(code >> 3) & 1, (code >> 2) & 1, (code >> 1) & 1, code & 1] for code in range(16)],
                      dtype=np.int8)

#: what each blue agent's observation holds: "own" (its own hosts' rows, as in the paper and CAGE) or
#: "team" (its own, then every teammate's rows and block bits of the same step: an oracle channel, the
#: most any message protocol could tell it; an ablation, see docs/dial.md)
VIEWS = ("own", "team")


def check_view(view: str) -> str:
    if view not in VIEWS:
        raise ValueError(f"unknown observation view {view!r}; valid: {', '.join(VIEWS)}")
    return view
