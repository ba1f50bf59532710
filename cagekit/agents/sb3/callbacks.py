"""The callbacks of an SB3 run: our learners' progress bar and bits per episode in its log, checkpoints that
Ctrl-C cannot cut in half, and policy snapshots on the schedule of `train(snapshots=K)`."""

from __future__ import annotations

import json
import math
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback

from cagekit.agents.sb3.checkpoints import MODEL_FILE, save_model, save_replay_buffer
from cagekit.scenarios.data_files import write_text_whole

#: the logger key of the mean bits sent per episode (summed over agents), which `ProgressCallback` records
BITS_KEY = "rollout/ep_bits_mean"


class ProgressCallback(BaseCallback):
    """The progress bar of our own learners (`cagekit.agents.training.make_progress_bar`) for an SB3 run, and bits in
    its log.

    The bar counts environment steps up to `total`; its stats column is `cagekit.agents.training.stats_text`
    of the mean episode return over SB3's stats window (`model.ep_info_buffer`, the team reward), the mean bits
    sent per episode over the same window (summed over agents, from the `CentralisedEnv` step infos'
    `bits_sent`; nan for the classic view, which has no channel), DQN's exploration rate (left out for PPO)
    and environment steps per second (over the last ~10 seconds). It is refreshed every `refresh_s`
    seconds. `enabled=False` shows no bar; the mean bits per episode is recorded to the SB3 logger as
    `BITS_KEY` either way, so that `progress.csv` and `cagekit plot` have it.
    Call `close()` if `learn` may end by an exception (`_on_training_end` is then skipped).
    """

    def __init__(self, total: int, enabled: bool = True, refresh_s: float = 0.5, label: str = "train"):
        super().__init__()
        self.total, self.enabled, self.refresh_s = int(total), bool(enabled), float(refresh_s)
        self.label = label  # the bar's name for the run (algorithm and seed)
        self.progress: Any = None  # the rich Progress while training with the bar on
        self.stats_text = ""
        self._episode_bits: deque[float] = deque(maxlen=100)
        self._bits = np.zeros(0)
        self._has_bits = False
        self._marks: deque[tuple[float, int]] = deque(maxlen=20)
        self._last_refresh = -math.inf
        self._closed = False

    def _on_training_start(self) -> None:
        from cagekit.agents.training import make_progress_bar

        self._episode_bits = deque(maxlen=int(getattr(self.model, "_stats_window_size", 100)))
        self._bits = np.zeros(self.training_env.num_envs)
        self._marks.clear()
        self._marks.append((time.perf_counter(), int(self.model.num_timesteps)))
        self._closed = False
        self.progress = make_progress_bar(self.enabled, self.total, min(int(self.model.num_timesteps), self.total),
                                          label=self.label)

    def _on_step(self) -> bool:
        infos = self.locals.get("infos") or ()
        dones = self.locals.get("dones")
        ended = False
        for i, info in enumerate(infos):
            if "bits_sent" in info:
                self._has_bits = True
                self._bits[i] += info["bits_sent"]
            if dones is not None and dones[i]:
                if self._has_bits:
                    self._episode_bits.append(float(self._bits[i]))
                self._bits[i] = 0.0
                ended = True
        if ended:
            self._record_bits()
        if self.progress is not None and time.perf_counter() - self._last_refresh >= self.refresh_s:
            self._refresh()
        return True

    def _on_rollout_end(self) -> None:
        self._record_bits()  # PPO logs once per rollout, after it ends

    def _on_training_end(self) -> None:
        self.close()

    def _record_bits(self) -> None:
        if self._episode_bits:
            self.logger.record(BITS_KEY, float(np.mean(self._episode_bits)))

    def stats(self) -> dict[str, float]:
        """The figures the bar shows: return, bits (per episode), epsilon, steps_per_s."""
        buffer = self.model.ep_info_buffer
        rate = math.nan
        if len(self._marks) > 1 and self._marks[-1][0] > self._marks[0][0]:
            rate = (self._marks[-1][1] - self._marks[0][1]) / (self._marks[-1][0] - self._marks[0][0])
        return {"return": float(np.mean([e["r"] for e in buffer])) if buffer else math.nan,
                "bits": float(np.mean(self._episode_bits)) if self._episode_bits else math.nan,
                "epsilon": float(getattr(self.model, "exploration_rate", math.nan)),
                "steps_per_s": rate}

    def _refresh(self) -> None:
        from cagekit.agents.training import stats_text

        now = time.perf_counter()
        self._last_refresh = now
        steps = int(self.model.num_timesteps)
        self._marks.append((now, steps))
        s = self.stats()
        self.stats_text = stats_text(s["return"], s["bits"], s["epsilon"], s["steps_per_s"])
        if self.progress is not None:
            self.progress.update(self.progress.task_ids[0], completed=min(steps, self.total), stats=self.stats_text)

    def close(self) -> None:
        """Show the final figures and stop the bar (idempotent)."""
        if self.progress is not None and not self._closed:
            self._closed = True
            self._refresh()
            self.progress.stop()


class Checkpoints(CheckpointCallback):
    """SB3's `CheckpointCallback` (its file names; no VecNormalize, which these runs have not), its saves never cut in
    half by Ctrl-C, the model saved by `save_model` (the same run, the same bytes), only the latest replay buffer
    kept."""

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq != 0:
            return True
        from cagekit.agents.training import deferred_interrupt

        with deferred_interrupt():
            save_model(self.model, self._checkpoint_path(extension="zip"))
            model: Any = self.model  # an off-policy one has a replay buffer
            if self.save_replay_buffer and getattr(model, "replay_buffer", None) is not None:
                save_replay_buffer(model, self._checkpoint_path("replay_buffer_", extension="pkl"))
            latest = Path(self._checkpoint_path("replay_buffer_", extension="pkl")).name
            for old in Path(self.save_path).glob(f"{self.name_prefix}_replay_buffer_*_steps.pkl"):
                if old.name != latest:
                    old.unlink()
        return True


class Snapshots(BaseCallback):
    """The policy each time the run passes another K-th of its steps, as `snapshot_dir(out, N)/model.zip`
    (meta.json is added when training ends, `finish_snapshots`): what our learners' `train(snapshots=K)` keeps.

    A snapshot holds the policy of the model's last update, so it waits for one since the last snapshot (or the
    start): PPO learns after each whole rollout and DQN from its learning_starts, and on a run of few rollouts
    several snapshots were the untrained policy, or one policy twice. K-ths passed before an update make one
    snapshot, at the first step after it (none if that is the run's end, whose own model.zip is its last
    policy). Where the K-ths lie rollouts apart, as in runs of thousands of steps, nothing waits."""

    def __init__(self, out: Path, total: int, count: int, start: int):
        super().__init__()
        from cagekit.agents.snapshots import SnapshotSchedule

        self.out = out
        self.schedule = SnapshotSchedule(total, count, start)
        self.updates = 0  # the model's update count at the last snapshot, or at the start

    def _on_training_start(self) -> None:
        self.updates = int(getattr(self.model, "_n_updates", 0))

    def _on_step(self) -> bool:
        from cagekit.agents.snapshots import snapshot_dir
        from cagekit.agents.training import deferred_interrupt

        updates = int(getattr(self.model, "_n_updates", self.updates + 1))
        if updates == self.updates:  # the policy of the last snapshot, or the untrained one: the K-ths wait
            return True
        if self.schedule.due(self.num_timesteps):
            folder = snapshot_dir(self.out, self.num_timesteps)
            folder.mkdir(parents=True, exist_ok=True)
            with deferred_interrupt():
                save_model(self.model, folder / MODEL_FILE)
            self.updates = updates
        return True


def finish_snapshots(out: Path, meta: dict[str, Any]) -> None:
    """Give each snapshot without one the run's meta.json, with its own step count."""
    from cagekit.agents.snapshots import SNAPSHOT_DIR, snapshot_steps

    for folder in sorted((out / SNAPSHOT_DIR).glob("step*")):
        if (folder / MODEL_FILE).exists() and not (folder / "meta.json").exists():
            write_text_whole(folder / "meta.json", json.dumps({**meta, "num_timesteps": snapshot_steps(folder)},
                                                              indent=2, default=str))
