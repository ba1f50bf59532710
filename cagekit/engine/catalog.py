"""Each blue agent's enumerated actions: index <-> engine action object."""

from __future__ import annotations

from typing import Any

from csle_cyborg.shared.actions.action import Sleep

from cagekit.scenarios.spec import VALUE_WEIGHTS, BlueAgentSpec, ScenarioSpec

CAGE2_HOST_ACTIONS = ("Analyse", "Remove", "DecoyApache", "DecoyFemitter", "DecoyHarakaSMPT", "DecoySmss",
                      "DecoySSHD", "DecoySvchost", "DecoyTomcat", "DecoyVsftpd", "Restore")
PAPER_HOST_ACTIONS = ("Analyse", "Remove", "Restore")
SESSION = 0  # every blue agent's monitoring server session


class BlueActionCatalog:
    """Paper agents: Sleep, then Analyse/Remove/Restore per own host, then Block per subnet.
    CAGE-2 agents: Sleep, Monitor, then each host action over all own hosts (CAGE-2's 145 order)."""

    def __init__(self, spec: ScenarioSpec, agent: BlueAgentSpec):
        self.spec = spec
        self.agent = agent
        entries: list[tuple[str, str | None]] = [("Sleep", None)]
        if agent.action_set == "paper":
            for host in agent.hosts:
                entries += [(kind, host) for kind in PAPER_HOST_ACTIONS]
            entries += [("Block", s) for s in agent.block_subnets]
        else:
            entries.append(("Monitor", None))
            for kind in CAGE2_HOST_ACTIONS:
                entries += [(kind, host) for host in agent.hosts]
        self.entries = tuple(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, index: int) -> tuple[str, str | None]:
        """(kind, target) of action `index`; a ValueError naming the agent and the valid range outside it."""
        if not 0 <= index < len(self.entries):
            raise ValueError(f"agent {self.agent.name!r}: action {index} outside 0..{len(self.entries) - 1}")
        return self.entries[index]

    def label(self, index: int) -> str:
        kind, target = self.entry(index)
        return kind if target is None else f"{kind} {target}"

    def build(self, index: int) -> Any:
        kind, target = self.entry(index)
        name = self.agent.name
        if kind == "Sleep":
            return Sleep()
        if kind == "Monitor":  # CAGE-2's only other untargeted action
            from csle_cyborg.shared.actions import Monitor

            return Monitor(session=SESSION, agent=name)
        assert target is not None, f"{kind} names a host or subnet"  # __init__ gives every other entry one
        if self.agent.action_set == "paper":
            from cagekit.engine import actions as ours

            costs = self.spec.costs
            if kind == "Analyse":
                return ours.CostedAnalyse(SESSION, name, target, cost=costs.analyse_unless_found)
            if kind == "Remove":
                return ours.CostedRemove(SESSION, name, target, cost=costs.remove_unless_removed)
            if kind == "Restore":
                weight = VALUE_WEIGHTS[self.spec.host(target).confidentiality]
                cost = -max(weight, -costs.restore_floor) if costs.restore_by_value else costs.restore_floor
                return ours.CostedRestore(SESSION, name, target, cost=cost)
            return ours.Block(SESSION, name, target, cost=costs.block)
        import csle_cyborg.shared.actions as engine_actions

        return getattr(engine_actions, kind)(session=SESSION, agent=name, hostname=target)

    def blocks(self, action: Any) -> list[str]:
        """The subnets this executed action blocked (for the agent's block bits)."""
        subnet = getattr(action, "subnet_name", None)
        return [subnet] if subnet is not None else []
