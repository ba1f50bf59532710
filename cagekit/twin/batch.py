"""`TwinBatch`: B copies of a paper scenario stepped at once with numpy.

State per environment (arrays with a leading batch axis B, hosts H in spec order, subnets S):

- truth: red's session on each host (`level`: 0 none, 1 user, 2 root), whether that session's process
  was seen by the monitor (`sus`, what Remove can stop), the malware files on each host (`f_cmd` from a
  web exploit, `f_esc` from an escalation) and which of them an Analyse already reported (`found_*`),
  captured credentials, whether the OT service is down;
- red's knowledge, as the engine's scripted agents keep it: known addresses, scanned hosts, believed
  access and its insertion order, escalation delays, spoofed hosts, known and swept subnets, the first
  target; and the per-episode address order (the engine draws random subnets and addresses);
- the blue tables (activity and compromise per host, per agent), block bits, the channel.

One step: blue acts, then red (`cagekit.twin.red`), then green (as the engine), then each blue agent's monitor reads the
step's events into its table. See docs/twin.md for what is modelled and what is not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cagekit.scenarios import get_scenario
from cagekit.scenarios.spec import ScenarioSpec
from cagekit.twin import red as red_turn
from cagekit.twin.model import ALERT_LOCAL_PORT, B_ANALYSE, B_BLOCK, B_REMOVE, B_RESTORE, GREEN_SCAN_PORTS, TwinModel
from cagekit.twin.red import R_SLEEP

_RED_KINDS = {"KillChainAgent": "killchain", "ExplorerAgent": "explorer", "SleepAgent": "sleep"}
_GREEN_KINDS = {"FalseAlarmGreen": "alerts", "SleepAgent": "none"}

# blue table values: activity 0 None, 1 Scan, 2 Exploit; compromise 0 No, 1 Unknown, 2 User, 3 Privileged
_ACT_BITS = np.array([0b00, 0b10, 0b11], dtype=np.int64)  # (a0, a1)
_COMP_BITS = np.array([0b00, 0b10, 0b01, 0b11], dtype=np.int64)  # (c0, c1)
ACCESS_LEVELS = ("none", "user", "root")


def _popcount(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    count = np.zeros(x.shape, dtype=np.int64)
    while np.any(x):
        count += (x & np.uint64(1)).astype(np.int64)
        x = x >> np.uint64(1)
    return count


_POPCOUNT_8 = _popcount(np.arange(256))


class TwinBatch:
    """B environments of one paper scenario, stepped together.

    `reset()` returns the observation dict; `step(actions)` takes int[B, A] actions, encoded as the
    multi-agent env encodes them (`2 * defence + bit` with the channel on, `defence` without), and returns
    `(obs, rewards[B], env_rewards[B], done[B], info)`.

    Observation dict (A agents in layout order; padding is 0):
      - "observation": int8 (B, A, obs_size_max) -- per agent its 4 bits per own host, its block bits and
        the bits its teammates sent last step, then with view="team" each teammate's rows and block bits
        (`obs_size[a]` entries valid);
      - "action_mask": int8 (B, A, n_actions_max) -- the SAU mask (all ones without SAU), repeated per
        message bit when the channel is on (`n_actions[a]` entries valid);
      - "host_codes": int64 (B, A, max_hosts) -- each own host's row as a code 0-15 (activity << 2 | compromise).
    """

    def __init__(self, scenario: str | ScenarioSpec = "paper-small", batch_size: int = 1, seed: int | None = None, *,
                 red: str | None = None, green: str | None = None, episode_length: int = 30,
                 message_cost: float | None = None, sau: bool = True, channel: bool = True,
                 layout: str | None = None, detection: float | None = None, green_rate: float | None = None,
                 view: str = "own"):
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.spec = get_scenario(scenario)
        self.model = m = TwinModel(self.spec, layout, channel=channel, detection=detection, green_rate=green_rate,
                                   view=view)
        self.red_name = red if red is not None else self.spec.default_red
        behaviour = self.spec.behaviour("red", red)
        if behaviour not in _RED_KINDS:  # CAGE-2's own red agents, which a scenario of one's own may name
            raise ValueError(f"the twin models the red behaviours {', '.join(_RED_KINDS)}; red {self.red_name!r} of "
                             f"scenario {self.spec.name!r} is {behaviour!r}: run it on the engine (training: --backend "
                             f"engine; evaluation: any --backend but twin; the Python API: simulator='engine')")
        self.red_kind = _RED_KINDS[behaviour]
        self.green_name = green if green is not None else self.spec.default_green
        self.green_kind = _GREEN_KINDS[self.spec.behaviour("green", green)]
        self.B = int(batch_size)
        self.episode_length = int(episode_length)
        self.message_cost = self.spec.setting("message_cost", message_cost)
        self.sau = sau
        self.channel = channel
        self.rng = np.random.default_rng(seed)
        self.agent_names = m.agent_names
        self.A, self.H, self.S = m.A, m.H, m.S
        self.obs_size = m.obs_size
        self.own_obs_size = m.own_obs_size
        self.n_actions = m.n_actions
        self.t = 0
        self._alloc()

    # state ----------------------------------------------------------------------------------------
    def _alloc(self) -> None:
        B, H, S, A, m = self.B, self.H, self.S, self.A, self.model
        z = np.zeros
        self.level = z((B, H), np.int64)
        self.sus = z((B, H), bool)
        self.f_cmd = z((B, H), bool)
        self.f_esc = z((B, H), bool)
        self.found_cmd = z((B, H), bool)
        self.found_esc = z((B, H), bool)
        self.cred = z((B, H), bool)  # captured credentials (engine) == red's cred_ips
        self.ot_down = z(B, bool)
        self.ot_known = z(B, bool)
        # red knowledge
        self.known_ip = z((B, H), bool)
        self.ports = z((B, H), bool)
        self.owned = z((B, H), np.int64)  # believed access 0/1/2
        self.owned_seq = z((B, H), np.int64)
        self.seq = z(B, np.int64)
        self.ready_at = z((B, H), np.int64)  # -1: not set
        self.spoofed = z((B, H), bool)
        self.subnet_known = z((B, S), bool)
        self.swept = z((B, S), bool)
        self.first_target = z(B, np.int64)
        self.ip_rank = z((B, H), np.int64)
        self.subnet_rank = z((B, S), np.int64)
        self.ever_root = z((B, H), bool)
        # blue
        self.activity = z((B, A, m.max_hosts), np.int64)
        self.compromise = z((B, A, m.max_hosts), np.int64)
        self.block_bits = z((B, A, max(1, max(len(a.block_subnets) for a in m.agents))), np.int8)
        self.received = z((B, A, max(1, A - 1)), np.int8)
        self.invalid_count = z((B, A), np.int64)
        self.last_red_action = z(B, np.int64)
        self.last_red_target = z(B, np.int64)
        self.last_red_success = z(B, bool)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if seed is not None:
            self.seed(seed)
        m, B = self.model, self.B
        self._alloc()
        self.t = 0
        self.level[:, m.home] = 2
        self.ever_root[:, m.home] = True
        self.known_ip[:, m.home] = True
        self.owned[:, m.home] = 2
        self.seq[:] = 1
        self.ready_at[:] = -1
        self.subnet_known[:, m.home_subnet] = True
        self.first_target[:] = -1
        # the engine draws random subnets and addresses: subnets in a random order, hosts in a random
        # order within their subnet
        self.subnet_rank = np.argsort(self.rng.random((B, self.S)), axis=1).argsort(axis=1)
        within = np.argsort(self.rng.random((B, self.H)), axis=1).argsort(axis=1)
        self.ip_rank = self.subnet_rank[:, m.subnet_of] * (self.H + 1) + within
        self.last_red_action[:] = R_SLEEP
        self.last_red_target[:] = -1
        return self._observe()

    # observations -----------------------------------------------------------------------------------
    def host_codes(self) -> np.ndarray:
        return (_ACT_BITS[self.activity] << 2) | _COMP_BITS[self.compromise]

    def _observe(self) -> dict[str, np.ndarray]:
        m, B, A = self.model, self.B, self.A
        codes = self.host_codes()
        obs = np.zeros((B, A, m.obs_size_max), dtype=np.int8)
        mask = np.zeros((B, A, m.n_actions_max), dtype=np.int8)
        arrived = np.asarray(self.received.any(axis=2)) if self.channel else np.zeros((B, A), bool)
        for ai, ag in enumerate(m.agents):
            nh = len(ag.hosts)
            c = codes[:, ai, :nh]
            rows = np.stack([(c >> 3) & 1, (c >> 2) & 1, (c >> 1) & 1, c & 1], axis=2).reshape(B, 4 * nh)
            obs[:, ai, :4 * nh] = rows
            nb = len(ag.block_subnets)
            obs[:, ai, 4 * nh: 4 * nh + nb] = self.block_bits[:, ai, :nb]
            if self.channel:
                obs[:, ai, 4 * nh + nb: 4 * nh + nb + A - 1] = self.received[:, ai, :A - 1]
            nd = ag.n_defence
            if self.sau:
                alarming = (c != 0b0000) & (c != 0b1000)  # (B, nh)
                hostly = ag.local >= 0
                alarm_d = np.ones((B, nd), dtype=bool)
                alarm_d[:, hostly] = alarming[:, ag.local[hostly]]
                analyse = ag.kind == B_ANALYSE
                dm = np.where(hostly[None, :], alarm_d | (analyse[None, :] & arrived[:, ai, None]), True)
            else:
                dm = np.ones((B, nd), dtype=bool)
            dm = dm.astype(np.int8)
            mask[:, ai, :m.n_actions[ai]] = np.repeat(dm, 2, axis=1) if self.channel else dm
        if m.view == "team":  # after each agent's own part: every teammate's rows and block bits, team order
            own = [obs[:, bi, :4 * len(bg.hosts) + len(bg.block_subnets)] for bi, bg in enumerate(m.agents)]
            for ai, ag in enumerate(m.agents):
                start = ag.own_obs_size
                for bi in range(A):
                    if bi != ai:
                        obs[:, ai, start: start + own[bi].shape[1]] = own[bi]
                        start += own[bi].shape[1]
        self._defence_mask = mask
        return {"observation": obs, "action_mask": mask, "host_codes": codes}

    # green ----------------------------------------------------------------------------------------------
    def _green(self) -> None:
        if self.green_kind != "alerts":
            return
        m = self.model
        g = m.green_hosts
        u = self.rng.random((self.B, len(g)))
        v = self.rng.random((self.B, len(g)))
        fire = u < m.green_rate
        scan = fire & (v < 0.5)
        alert = fire & ~scan
        scan_mask = sum({m.port_bit[p] for p in GREEN_SCAN_PORTS})
        self.ev_n[:, g] += 3 * scan + alert
        self.ev_ports[:, g] |= np.where(scan, scan_mask, 0) | np.where(alert, m.port_bit[ALERT_LOCAL_PORT], 0)
        self.ev_4444[:, g] |= alert

    # step -------------------------------------------------------------------------------------------------
    def decode(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(actions, dtype=np.int64).reshape(self.B, self.A)
        if np.any(a < 0) or np.any(a >= self.n_actions[None, :]):
            bad = np.argwhere((a < 0) | (a >= self.n_actions[None, :]))[0]
            raise ValueError(f"action {a[tuple(bad)]} of agent {self.agent_names[bad[1]]!r} (env {bad[0]}) outside "
                             f"0..{self.n_actions[bad[1]] - 1}")
        if self.channel:
            return a // 2, a % 2
        return a, np.zeros_like(a)

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict]:
        m, B, A, H = self.model, self.B, self.A, self.H
        if self.t >= self.episode_length:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        defence, bits = self.decode(actions)
        rows = np.arange(B)
        # masked actions run as Sleep
        legal = self._defence_mask[rows[:, None], np.arange(A)[None, :],
                                   defence * (2 if self.channel else 1)].astype(bool)
        invalid = ~legal
        defence = np.where(invalid, 0, defence)
        self.invalid_count += invalid
        kind = m.kind_tab[np.arange(A)[None, :], defence]
        target = m.target_tab[np.arange(A)[None, :], defence]
        costs = np.zeros((B, A))
        blocked = np.zeros((B, self.S), bool)
        self.block_bits[:] = 0
        analyse_seen = np.zeros((B, A, m.max_hosts), bool)
        for ai in range(A):
            k, tg = kind[:, ai], target[:, ai]
            loc = m.local_tab[ai, defence[:, ai]]
            # Analyse
            i = np.flatnonzero(k == B_ANALYSE)
            if len(i):
                h = tg[i]
                files = self.f_cmd[i, h] | self.f_esc[i, h]
                new = (self.f_cmd[i, h] & ~self.found_cmd[i, h]) | (self.f_esc[i, h] & ~self.found_esc[i, h])
                self.found_cmd[i, h] |= self.f_cmd[i, h]
                self.found_esc[i, h] |= self.f_esc[i, h]
                costs[i, ai] = np.where(new, 0.0, m.analyse_cost)
                analyse_seen[i, ai, loc[i]] = files
            # Remove: stops the monitor's suspicious processes that are not root's
            i = np.flatnonzero(k == B_REMOVE)
            if len(i):
                h = tg[i]
                killed = (self.level[i, h] == 1) & self.sus[i, h]
                self.level[i[killed], h[killed]] = 0
                self.sus[i[killed], h[killed]] = False
                costs[i, ai] = np.where(killed, 0.0, m.remove_cost)
                comp = self.compromise[i, ai, loc[i]]
                self.compromise[i, ai, loc[i]] = np.where(comp != 0, 1, 0)
            # Restore
            i = np.flatnonzero(k == B_RESTORE)
            if len(i):
                h = tg[i]
                for arr in (self.level, self.sus, self.f_cmd, self.f_esc, self.found_cmd, self.found_esc):
                    arr[i, h] = 0
                self.ot_down[i[m.ot_host[h]]] = False
                costs[i, ai] = m.restore_cost[h]
                self.compromise[i, ai, loc[i]] = 0
            # Block (this step only)
            i = np.flatnonzero(k == B_BLOCK)
            if len(i):
                blocked[i, tg[i]] = True
                self.block_bits[i, ai, m.bslot_tab[ai, defence[i, ai]]] = 1
                costs[i, ai] = m.block_cost
        # red, then green; their events are read by the monitor at the end of the step
        self.ev_n = np.zeros((B, H), np.int64)
        self.ev_ports = np.zeros((B, H), np.int64)
        self.ev_eph = np.zeros((B, H), np.int64)
        self.ev_4444 = np.zeros((B, H), bool)
        self.t += 1
        if self.red_kind != "sleep":
            code, rtarget = red_turn.choose(self)
            self.last_red_success = red_turn.act(self, code, rtarget, blocked)
            self.last_red_action, self.last_red_target = code, rtarget
        self._green()
        self.ever_root |= self.level == 2
        # monitor -> tables
        n = self.ev_n
        ports = self.ev_ports
        nports = _POPCOUNT_8[ports & 0xFF] + self.ev_eph
        if ports.max(initial=0) > 0xFF:
            nports = _popcount(ports) + self.ev_eph
        scan_rule = (n >= 3) & (nports >= 3)
        exploit = ~scan_rule & (self.ev_4444 | ((n >= 3) & (nports == 1)))
        act = np.where(n == 0, 0, np.where(exploit, 2, 1))
        for ai, ag in enumerate(m.agents):
            nh = len(ag.hosts)
            a_act = act[:, ag.hosts]
            self.activity[:, ai, :nh] = a_act
            comp = self.compromise[:, ai, :nh]
            comp = np.where(a_act == 2, 2, comp)
            comp = np.where(analyse_seen[:, ai, :nh], 3, comp)
            self.compromise[:, ai, :nh] = comp
        # rewards
        confidentiality = np.round((self.level == 2).astype(float) @ m.conf, 1)
        availability = np.round(self.ot_down.astype(float) * float(m.avail[m.ot_host].sum()), 1) \
            if m.ot_host.any() else np.zeros(B)
        env_reward = -availability - confidentiality + costs.sum(axis=1)
        channel_cost = self.message_cost * bits
        reward = env_reward - channel_cost.sum(axis=1)
        if self.channel and A > 1:
            for ai in range(A):
                self.received[:, ai, :A - 1] = np.delete(bits, ai, axis=1)
        obs = self._observe()
        done = np.full(B, self.t >= self.episode_length)
        info: dict[str, Any] = {
            "bits_sent": bits, "channel_cost": channel_cost, "env_reward": env_reward, "action_cost": costs,
            "invalid_action": invalid, "invalid_actions": self.invalid_count.copy(), "action": defence,
            "impacted": self.ot_down.copy(), "red_access": self.level.copy(),
        }
        return obs, reward, env_reward, done, info

    # introspection ------------------------------------------------------------------------------------------
    def red_access(self, b: int = 0) -> dict[str, str]:
        return {h: ACCESS_LEVELS[int(self.level[b, i])] for i, h in enumerate(self.model.host_names)}

    def access_onehot(self) -> np.ndarray:
        """(B, 3 H) red's access to each host one-hot (none, user, root): the tail of the global state."""
        return np.eye(len(ACCESS_LEVELS), dtype=np.int8)[self.level].reshape(self.B, -1)

    def action_label(self, agent: int, defence: int) -> str:
        return self.model.agents[agent].catalog.label(int(defence))
