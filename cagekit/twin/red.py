"""Red's turn in the twin: which action each environment's scripted red agent picks, and what it does.

Functions of a `TwinBatch`'s state (they read and write its arrays in place), kept apart from the batch's
bookkeeping, observations and blue turn: this is the part that mirrors the engine's scripted red agents
(`KillChainAgent`, `ExplorerAgent`) and their actions, and the part tests/test_twin.py holds against them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cagekit.twin.model import ALERT_LOCAL_PORT, BRUTE_FORCE_ATTEMPTS, HTTP_PORT, SSH_PORT

if TYPE_CHECKING:
    from cagekit.twin.batch import TwinBatch

# red action codes
R_SLEEP, R_IMPACT, R_ESCALATE, R_PORTSCAN, R_STOLEN, R_ARPSPOOF, R_PINGSWEEP, R_WEB, R_BRUTE = range(9)
RED_ACTION_NAMES = ("Sleep", "Impact", "StealthyEscalate", "PortScan", "StolenCredentialSSH", "ARPSpoof",
                    "PingSweep", "WebExploit", "BruteForceSSH")


def choose(tb: TwinBatch) -> tuple[np.ndarray, np.ndarray]:
    """Each environment's red action (code, target host or subnet), as the engine's agent picks it."""
    m, B, H, S = tb.model, tb.B, tb.H, tb.S
    rng = tb.rng
    t = tb.t
    # user footholds without an escalation time get one: 2-4 steps from now
    need = (tb.owned == 1) & (tb.ready_at < 0)
    if need.any():
        tb.ready_at[need] = t + rng.integers(2, 5, size=int(need.sum()))
    not_home = np.ones(H, bool)
    not_home[m.home] = False
    big = 1 << 40
    # option slots: impact(1) | escalate(H) | cred(H) | arpspoof(H) | pingsweep(S) | ip actions(H)
    valid = np.zeros((B, 1 + 4 * H + S), dtype=bool)
    key = np.zeros((B, 1 + 4 * H + S), dtype=np.int64)
    o_esc, o_cred, o_arp, o_ping, o_ip = 1, 1 + H, 1 + 2 * H, 1 + 3 * H, 1 + 3 * H + S
    valid[:, 0] = False if m.red_target is None else tb.owned[:, m.red_target] == 2
    key[:, 0] = 0
    valid[:, o_esc:o_cred] = (tb.owned == 1) & (t >= tb.ready_at)
    key[:, o_esc:o_cred] = 1 * big + tb.owned_seq
    valid[:, o_cred:o_arp] = tb.cred & (tb.owned == 0)
    key[:, o_cred:o_arp] = 2 * big + tb.ip_rank
    valid[:, o_arp:o_ping] = (tb.owned == 2) & not_home[None, :] & ~tb.spoofed
    key[:, o_arp:o_ping] = 3 * big + tb.owned_seq
    valid[:, o_ping:o_ip] = tb.subnet_known & ~tb.swept
    key[:, o_ping:o_ip] = 4 * big + tb.subnet_rank
    ip_valid = tb.known_ip & not_home[None, :] & (tb.owned == 0) & ~tb.cred & \
        (~tb.ports | m.web_port[None, :] | m.ssh_port[None, :])
    valid[:, o_ip:] = ip_valid
    key[:, o_ip:] = 5 * big + tb.ip_rank
    key = np.where(valid, key, np.iinfo(np.int64).max)
    n_valid = valid.sum(axis=1)
    if tb.red_kind == "killchain":
        choice = np.argmin(key, axis=1)
        first_is_ipish = ((choice >= o_ip) | ((choice >= o_cred) & (choice < o_arp) &
                                              ~tb.ports[np.arange(B), np.clip(choice - o_cred, 0, H - 1)]))
        no_foothold = ~((tb.owned > 0) & not_home[None, :]).any(axis=1)
        branch = (n_valid > 0) & first_is_ipish & no_foothold
        if branch.any():
            cand = ip_valid[branch]
            ft = tb.first_target[branch]
            rows = np.arange(cand.shape[0])
            keep = (ft >= 0) & cand[rows, np.clip(ft, 0, H - 1)]
            has = cand.any(axis=1)
            repick = ~keep & has
            if repick.any():
                # uniform over the candidates (the engine's random.choice of the sorted addresses)
                u = rng.random((int(repick.sum()), H))
                ft[repick] = np.argmax(np.where(cand[repick], u, -1.0), axis=1)
            tb.first_target[branch] = ft
            target_slot = np.where(keep | repick, o_ip + ft, -1)
            # no candidate: the option whose address is the stale first target (a credential option)
            stale = ~has & (ft >= 0)
            stale_ok = stale & valid[branch][rows, o_cred + np.clip(ft, 0, H - 1)]
            target_slot = np.where(stale_ok, o_cred + ft, target_slot)
            target_slot = np.where(target_slot < 0, choice[branch], target_slot)
            choice[branch] = target_slot
    elif tb.red_kind == "explorer":
        order = np.argsort(key, axis=1)
        pos = np.empty_like(order)
        np.put_along_axis(pos, order, np.arange(key.shape[1])[None, :].repeat(B, 0), axis=1)
        w = np.where(valid, 1.0 / (pos + 1.0), 0.0)
        cw = np.cumsum(w, axis=1)
        u = rng.random(B) * cw[:, -1]
        choice = np.minimum((cw <= u[:, None]).sum(axis=1), key.shape[1] - 1)
    else:
        return np.full(B, R_SLEEP), np.full(B, -1)
    code = np.full(B, R_SLEEP)
    target = np.full(B, -1)
    has = n_valid > 0
    c = choice
    rows = np.arange(B)
    if m.red_target is not None:  # with none, the impact slot is never valid
        sel = has & (c == 0)
        code[sel], target[sel] = R_IMPACT, m.red_target
    sel = has & (c >= o_esc) & (c < o_cred)
    code[sel], target[sel] = R_ESCALATE, c[sel] - o_esc
    sel = has & (c >= o_cred) & (c < o_arp)
    h = np.clip(c - o_cred, 0, H - 1)
    code[sel] = np.where(tb.ports[rows, h], R_STOLEN, R_PORTSCAN)[sel]
    target[sel] = h[sel]
    sel = has & (c >= o_arp) & (c < o_ping)
    code[sel], target[sel] = R_ARPSPOOF, c[sel] - o_arp
    sel = has & (c >= o_ping) & (c < o_ip)
    code[sel], target[sel] = R_PINGSWEEP, c[sel] - o_ping
    sel = has & (c >= o_ip)
    h = np.clip(c - o_ip, 0, H - 1)
    ip_code = np.where(~tb.ports[rows, h], R_PORTSCAN, np.where(m.web_port[h], R_WEB, R_BRUTE))
    code[sel] = ip_code[sel]
    target[sel] = h[sel]
    return code, target


def _gain_user(tb: TwinBatch, idx: np.ndarray, host: np.ndarray, detected: np.ndarray) -> None:
    """Red lands a user session: a host it did not hold becomes suspicious only if the landing was seen."""
    fresh = tb.level[idx, host] == 0
    tb.sus[idx[fresh], host[fresh]] = detected[fresh]
    tb.level[idx, host] = np.maximum(tb.level[idx, host], 1)


def _insert_owned(tb: TwinBatch, idx: np.ndarray, host: np.ndarray, level: int) -> None:
    """Red learns a session on `host` (dict insertion order kept for new entries)."""
    new = tb.owned[idx, host] == 0
    ni, nh = idx[new], host[new]
    tb.owned_seq[ni, nh] = tb.seq[ni]
    tb.seq[ni] += 1
    upgrade = tb.owned[idx, host] != 2
    tb.owned[idx[upgrade], host[upgrade]] = level


def _pop_owned(tb: TwinBatch, idx: np.ndarray, host: np.ndarray) -> None:
    keep = host != tb.model.home
    tb.owned[idx[keep], host[keep]] = 0
    tb.ready_at[idx[keep], host[keep]] = -1


def _event(tb: TwinBatch, idx: np.ndarray, host: np.ndarray, n: int, mask: int, eph: int = 0,
           alert: bool = False) -> None:
    """Record what the monitor will see on `host` this step: `n` connections on the ports in `mask`, `eph`
    ephemeral ones, and whether one was the local alert port."""
    np.add.at(tb.ev_n, (idx, host), n)
    np.bitwise_or.at(tb.ev_ports, (idx, host), mask)
    if eph:
        np.add.at(tb.ev_eph, (idx, host), eph)
    if alert:
        tb.ev_4444[idx, host] = True


def act(tb: TwinBatch, code: np.ndarray, target: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    m, rng = tb.model, tb.rng
    d = m.detection
    bit = m.port_bit
    success = np.zeros(tb.B, bool)

    def pick(c: int) -> tuple[np.ndarray, np.ndarray]:
        i = np.flatnonzero(code == c)
        return i, target[i]

    def crosses(i: np.ndarray, h: np.ndarray) -> np.ndarray:
        s = m.subnet_of[h]
        return (s != m.home_subnet) & (blocked[i, m.home_subnet] | blocked[i, s])

    # Impact: any red session on the target and the OT service known
    i, h = pick(R_IMPACT)
    if len(i):
        ok = (tb.level[i, h] >= 1) & tb.ot_known[i]
        success[i] = ok
        tb.ot_down[i[ok]] |= m.ot_host[h[ok]]
        _pop_owned(tb, i[~ok], h[~ok])
    # StealthyEscalate
    i, h = pick(R_ESCALATE)
    if len(i):
        ok = tb.level[i, h] >= 1
        success[i] = ok
        i_ok, h_ok = i[ok], h[ok]
        upgraded = tb.level[i_ok, h_ok] == 1
        tb.f_esc[i_ok[upgraded], h_ok[upgraded]] = True
        tb.level[i_ok, h_ok] = 2
        det = rng.random(len(i_ok)) < d
        _event(tb, i_ok[det], h_ok[det], 1, bit[ALERT_LOCAL_PORT], alert=True)
        tb.owned[i_ok, h_ok] = 2
        tb.subnet_known[i_ok, m.subnet_of[h_ok]] = True
        tb.known_ip[i_ok] |= m.reveals[h_ok]
        tb.ot_known[i_ok] |= m.ot_info[h_ok]
        _pop_owned(tb, i[~ok], h[~ok])
    # PortScan
    i, h = pick(R_PORTSCAN)
    if len(i):
        ok = ~crosses(i, h)
        success[i] = ok
        tb.ports[i[ok], h[ok]] = True
        i_ok, h_ok = i[ok], h[ok]
        np.add.at(tb.ev_n, (i_ok, h_ok), m.n_listen[h_ok])
        np.bitwise_or.at(tb.ev_ports, (i_ok, h_ok), m.listen_mask[h_ok])
    # StolenCredentialSSH
    i, h = pick(R_STOLEN)
    if len(i):
        ok = ~crosses(i, h) & tb.cred[i, h] & m.stolen_ok[h]
        success[i] = ok
        i_ok, h_ok = i[ok], h[ok]
        det = rng.random(len(i_ok)) < d
        _gain_user(tb, i_ok, h_ok, det)
        _event(tb, i_ok[det], h_ok[det], 1, bit[ALERT_LOCAL_PORT], alert=True)
        _insert_owned(tb, i_ok, h_ok, 1)
    # ARPSpoof
    i, h = pick(R_ARPSPOOF)
    if len(i):
        ok = tb.level[i, h] == 2
        success[i] = ok
        i_ok, h_ok = i[ok], h[ok]
        caught = m.spoof_targets[m.subnet_of[h_ok]]  # (n, H)
        tb.cred[i_ok] |= caught
        tb.known_ip[i_ok] |= caught
        tb.subnet_known[i_ok] |= (caught[:, None, :] & m.subnet_hosts[None, :, :]).any(axis=2)
        tb.spoofed[i_ok, h_ok] = True
        det = rng.random(len(i_ok)) < d
        _event(tb, i_ok[det], h_ok[det], 1, bit[ALERT_LOCAL_PORT], alert=True)
        _pop_owned(tb, i[~ok], h[~ok])
    # PingSweep (fails only when the swept subnet itself is blocked)
    i, s = pick(R_PINGSWEEP)
    if len(i):
        ok = ~((s != m.home_subnet) & blocked[i, np.clip(s, 0, tb.S - 1)])
        success[i] = ok
        i_ok, s_ok = i[ok], s[ok]
        tb.known_ip[i_ok] |= m.subnet_hosts[s_ok]
        tb.swept[i_ok, s_ok] = True
    # WebExploit (remote file inclusion on port 80)
    i, h = pick(R_WEB)
    if len(i):
        reach = ~crosses(i, h) & m.http80[h]
        _event(tb, i[reach], h[reach], 1, bit[HTTP_PORT])
        ok = reach & m.rfi[h]
        success[i] = ok
        i_ok, h_ok = i[ok], h[ok]
        det = rng.random(len(i_ok)) < d
        _gain_user(tb, i_ok, h_ok, det)
        tb.f_cmd[i_ok, h_ok] = True
        _event(tb, i_ok[det], h_ok[det], 1, 0, eph=1, alert=True)
        _insert_owned(tb, i_ok, h_ok, 1)
    # BruteForceSSH: ten logins on port 22 (plus one on success), never carrying a pid
    i, h = pick(R_BRUTE)
    if len(i):
        reach = ~crosses(i, h) & m.ssh22[h]
        ok = reach & m.bruteforceable[h]
        success[i] = ok
        np.add.at(tb.ev_n, (i[reach], h[reach]), BRUTE_FORCE_ATTEMPTS + ok[reach].astype(np.int64))
        np.bitwise_or.at(tb.ev_ports, (i[reach], h[reach]), bit[SSH_PORT])
        i_ok, h_ok = i[ok], h[ok]
        _gain_user(tb, i_ok, h_ok, np.zeros(len(i_ok), dtype=bool))  # no pid: never suspicious
        _insert_owned(tb, i_ok, h_ok, 1)
    return success
