"""Training an SB3 baseline, from scratch or resumed.

`train_sb3` runs on `CentralisedEnv` (every agent's observation in, every agent's action
out) or, for cage2's classic layout, on `ClassicCage2Env` (the single CAGE-2 Blue agent). It writes to
`out_dir`: `model.zip` (the SB3 checkpoint), `meta.json` (algorithm, scenario, environment settings,
agent slots, versions), `progress.csv` and TensorBoard event files, `checkpoints/model_<N>_steps.zip`
every tenth of the run (DQN: with its replay buffer, the latest one kept, and `replay_buffer.pkl`
beside `model.zip`). `train_sb3(..., resume=True)` continues a run from its latest checkpoint, and
`ProgressCallback` gives SB3 runs the progress bar of our own learners.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from cagekit.agents.base import team_slots
from cagekit.agents.checkpoint import torch_settings, with_spec
from cagekit.agents.sb3.callbacks import Checkpoints, ProgressCallback, Snapshots, finish_snapshots
from cagekit.agents.sb3.checkpoints import (
    CHECKPOINT_DIR,
    CHECKPOINT_PREFIX,
    MODEL_FILE,
    REPLAY_BUFFER_FILE,
    latest_checkpoint,
    load_model,
    refuse_trained_folder,
    save_model,
    save_replay_buffer,
    saved_steps,
)
from cagekit.agents.sb3.hyperparameters import DEFAULTS, algo_class, check_hyperparameters
from cagekit.agents.sb3.run_logger import run_logger
from cagekit.scenarios.data_files import write_text_whole


def _env_settings(scenario: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    from cagekit.wrappers.gym_views import is_classic

    settings = {k: v for k, v in env_kwargs.items() if k != "seed"}
    if is_classic(scenario, settings.get("layout")):
        settings.pop("flatten", None)
        return settings
    return settings


def copies_for_reds(n_envs: int, n_reds: int) -> int:
    """The number of environment copies to train on for `n_envs` requested and `n_reds` red agents: with
    several reds, the nearest multiple of `n_reds` (at least `n_reds`), so that each red gets as many copies."""
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    if n_reds <= 1:
        return int(n_envs)
    return max(n_reds, (n_envs + n_reds // 2) // n_reds * n_reds)


def train_sb3(algo: str, scenario: str = "paper-small", steps: int = 100_000, seed: int = 0,
              out_dir: str | Path = "runs/sb3", n_envs: int = 4, *, vec: str = "dummy", progress_bar: bool = True,
              algo_kwargs: dict[str, Any] | None = None, policy_kwargs: dict[str, Any] | None = None,
              verbose: int = 0, torch_threads: int | str | None = "env", resume: bool = False, snapshots: int = 0,
              progress: bool | None = None, **env_kwargs: Any) -> Any:
    """Train `algo` ("ppo", "maskable-ppo", "dqn") on `scenario` for `steps` environment steps.

    `env_kwargs` go to the gymnasium view (`make_env`'s keywords: `red`, `episode_length`, `channel`,
    `sau`, `message_cost`, `layout`, ...); `layout="classic"` on cage2 trains the single CAGE-2 Blue
    agent. `red` may also be a comma-separated list or "all" (`rollout.training_reds`): copy `i` then
    plays `reds[i % len(reds)]`, and `n_envs` becomes a multiple of the number of reds
    (`copies_for_reds`: 1 or 4 copies against 3 reds give 3; meta.json records the copies used).
    DQN needs a flat Discrete action: multi-agent scenarios get the joint action flattened when
    it has at most `MAX_FLAT_ACTIONS` values (paper-small) and are refused otherwise.
    Copies are seeded `seed + i`, so one seed gives one learning curve (`vec` "dummy" or "subproc").
    Writes model.zip, meta.json, progress.csv and TensorBoard logs to `out_dir`, checkpoints every tenth
    of the run and the model on Ctrl-C (which returns the model so far); returns the model.
    `progress_bar` shows our learners' live bar (`ProgressCallback`), not SB3's; `progress`, the name
    `train()` and `evaluate()` use, sets it too. `snapshots=K` keeps the
    policy at every K-th of the run in `snapshots/step<N>/` (as `cagekit.agents.training.train` does), each
    after an update since the last (`Snapshots`: K-ths passed within one PPO rollout, or before DQN's
    learning_starts, make one snapshot, not copies of one policy or the untrained one).
    `torch_threads` sets torch's CPU threads while training, the caller's restored after: "env" (the
    default) takes CAGEKIT_TORCH_THREADS, 1 when unset, as our learners and the CLI do (these MLPs are
    tiny and extra threads only contend, badly so on a busy machine); None leaves torch's setting alone.

    `resume=True` continues the run in `out_dir` from its latest checkpoint (`latest_checkpoint`; a
    ValueError if there is none) until `steps` in all, appending to its progress.csv and TensorBoard log;
    a run already at `steps` is left as it is (the loaded model is returned). The hyperparameters are the
    checkpoint's (`algo_kwargs`/`policy_kwargs` are ignored); DQN reloads the replay buffer saved with
    the checkpoint. Unlike our learners' resume this is not bit-exact: the environment copies are
    reseeded with `seed + resumed step`, torch's random state is not restored, PPO drops the rollout cut
    by Ctrl-C (its steps still count) and DQN may lose the transition of the interrupted step. So a resume
    under other torch threads or CPU kernels than meta.json records (`torch_threads`, `torch_cpu_kernels`, as
    our learners record them) is noted, not refused as our learners' is.
    """
    from cagekit.agents.torch_threads import pinned_torch_threads, training_threads
    from cagekit.agents.training import check_count

    if progress is not None:
        progress_bar = progress
    if torch_threads == "env":
        torch_threads = training_threads()
    elif torch_threads is not None:
        torch_threads = check_count("torch_threads", torch_threads, 1,
                                    "(or \"env\": CAGEKIT_TORCH_THREADS; or None: torch's own setting)")
    with pinned_torch_threads(torch_threads):  # from the model's construction on: its initial weights depend on it
        return _train_sb3(algo, scenario, steps, seed, out_dir, n_envs, vec=vec, progress_bar=progress_bar,
                          algo_kwargs=algo_kwargs, policy_kwargs=policy_kwargs, verbose=verbose, resume=resume,
                          snapshots=snapshots, **env_kwargs)


def _train_sb3(algo: str, scenario: str, steps: int, seed: int, out_dir: str | Path, n_envs: int, *, vec: str,
               progress_bar: bool, algo_kwargs: dict[str, Any] | None, policy_kwargs: dict[str, Any] | None,
               verbose: int, resume: bool, snapshots: int, **env_kwargs: Any) -> Any:
    """`train_sb3` with torch's threads set."""
    import sb3_contrib
    import stable_baselines3

    import cagekit
    from cagekit.agents.rollout import training_reds
    from cagekit.agents.training import check_count, deferred_interrupt
    from cagekit.wrappers.gym_views import CentralisedEnv, is_classic, make_gym_env, make_vec_env
    from cagekit.wrappers.parallel import check_seed

    cls = algo_class(algo)
    steps = check_count("steps", steps, 1, "(environment steps to train)")
    snapshots = check_count("snapshots", snapshots, 0, "(0: none)")
    seed = check_seed(seed) or 0  # as make_learner: str + int fails later saying nothing of the seed
    algo_kwargs = check_hyperparameters(algo, algo_kwargs)
    out = Path(out_dir)
    if not resume:
        refuse_trained_folder(out)
    checkpoint = None
    if resume:
        checkpoint = latest_checkpoint(out)
        unreadable = (out / MODEL_FILE).exists() and saved_steps(out / MODEL_FILE) is None
        if checkpoint is None and unreadable:
            raise ValueError(_nothing_to_resume(out))
        if checkpoint is None:
            raise ValueError(f"cannot resume {out}: no SB3 checkpoint there ({MODEL_FILE} or "
                             f"{CHECKPOINT_DIR}/{CHECKPOINT_PREFIX}_<N>_steps.zip)")
        if unreadable:  # said, not silently passed over: the steps after that checkpoint are trained again
            print(f"{out / MODEL_FILE} is unreadable (corrupt or cut short): continuing from {checkpoint[0]} at "
                  f"{checkpoint[2]:,} steps", file=sys.stderr)
        if checkpoint[2] >= steps:
            print(f"{out}: already trained for {checkpoint[2]:,} of {steps:,} steps; nothing to do")
            return load_model(cls, checkpoint[0])
    reds = training_reds(scenario, env_kwargs.get("red"))  # raises on an unknown red, naming the valid ones
    n_envs = copies_for_reds(n_envs, len(reds))
    classic = is_classic(scenario, env_kwargs.get("layout"))
    if not classic:
        env_kwargs["flatten"] = algo == "dqn"
    copy_kwargs = {k: v for k, v in env_kwargs.items() if k != "red"}  # red="all" etc.: per copy, via `reds`
    first = {} if reds[0] is None else {"red": reds[0]}
    probe = make_gym_env(scenario, **copy_kwargs, **first)  # raises here (not in a worker) on a bad setting
    slots = team_slots(probe.par)
    nvec = [int(n) for n in probe.nvec] if isinstance(probe, CentralisedEnv) else [int(probe.action_space.n)]
    probe.close()

    venv = make_vec_env(n_envs, seed, vec=vec, scenario=scenario, reds=reds, **copy_kwargs)
    kwargs = {**DEFAULTS[algo], **algo_kwargs}
    if algo != "dqn":
        kwargs["batch_size"] = min(kwargs["batch_size"], kwargs["n_steps"] * n_envs)
    previous_meta: dict[str, Any] = {}
    start = 0
    if checkpoint is None:
        try:  # before the run's folder: what `check_hyperparameters` cannot see, SB3 refuses here
            model = cls("MlpPolicy", venv, seed=seed, verbose=verbose, device="cpu", policy_kwargs=policy_kwargs,
                        **kwargs)
        except (AssertionError, TypeError, ValueError) as exc:
            venv.close()
            given = f"hyperparameters {algo_kwargs or kwargs}" + (f" and policy_kwargs {policy_kwargs}"
                                                                  if policy_kwargs else "")
            raise ValueError(f"{algo} refuses its {given}: {exc}") from exc
    else:
        model_file, buffer_file, _ = checkpoint
        model = load_model(cls, model_file, env=venv)
        start = int(model.num_timesteps)
        model.set_random_seed(seed + start)  # the copies' next resets: seed + start + i
        model._last_obs = None  # the saved last observation is not the new copies': learn() resets them
        if hasattr(model, "load_replay_buffer"):
            if buffer_file is None:
                print(f"warning: no replay buffer saved with {model_file}; {algo} continues with an empty one")
            else:
                try:
                    model.load_replay_buffer(buffer_file)
                except (EOFError, pickle.UnpicklingError, ValueError, AttributeError, TypeError) as exc:
                    # a save cut short by a kill: said, and treated as a buffer not saved (SB3 raised a bare
                    # UnpicklingError, a traceback, and the run could not be continued)
                    print(f"warning: the replay buffer {buffer_file} is unreadable ({type(exc).__name__}: {exc}: "
                          f"a save cut short?); {algo} continues with an empty one")
                if model.replay_buffer.n_envs != venv.num_envs:
                    venv.close()
                    raise ValueError(f"the replay buffer of {buffer_file} holds {model.replay_buffer.n_envs} "
                                     f"environment copies, this run has {venv.num_envs}")
        if (out / "meta.json").exists():
            previous_meta = json.loads((out / "meta.json").read_text())
            note = _other_torch_settings(out, previous_meta)
            if note is not None:
                print(note, file=sys.stderr)
        print(f"resuming {out} from {model_file.name} at {start:,} of {steps:,} steps")
    out.mkdir(parents=True, exist_ok=True)
    model.set_logger(run_logger(out, start if checkpoint is not None else None))

    # PPO collects whole rollouts of n_steps per copy, so it trains past a --steps that is not a multiple of one
    rollout = int(model.n_steps) * n_envs if isinstance(model, OnPolicyAlgorithm) else 1
    planned = -(-int(steps) // rollout) * rollout
    if planned != int(steps) and checkpoint is None:
        print(f"note: {algo} trains in rollouts of {rollout:,} env steps, so {int(steps):,} steps become {planned:,}")
    # checkpoints every tenth of the run (as our learners do every K updates), and the model on Ctrl-C
    every = max(planned // 10 // max(n_envs, 1), 1)
    checkpoints = Checkpoints(save_freq=every, save_path=str(out / CHECKPOINT_DIR), name_prefix=CHECKPOINT_PREFIX,
                              save_replay_buffer=True)
    # the bar counts to the steps trained (a resumed PPO's rollouts count on from the step it resumed at)
    progress = ProgressCallback(start + -(-(int(steps) - start) // rollout) * rollout, enabled=progress_bar,
                                label=f"{algo} seed {seed}")
    callbacks = [checkpoints, progress] + ([Snapshots(out, int(steps), snapshots, start)] if snapshots else [])
    try:
        model.learn(total_timesteps=int(steps) - start, reset_num_timesteps=checkpoint is None,
                    progress_bar=False, callback=callbacks)
    except KeyboardInterrupt:
        progress.close()  # the bar's last figures above the message
        # `cagekit train --resume` continues only a run of that command (its run.json): a benchmark's run is
        # continued by rerunning the benchmark (as it says), a Python caller's by resume=True
        how = f" (continue with `cagekit train --resume {out}`)" if (out / "run.json").exists() else ""
        print(f"interrupted at {model.num_timesteps:,} steps: saving the model so far{how}")
    finally:
        progress.close()
        venv.close()
        model.logger.close()
    meta = {"algo": algo, "scenario": scenario, "view": "classic" if classic else "centralised",
            "execution": "centralised", "flatten": bool(env_kwargs.get("flatten", False)),
            "env": _env_settings(scenario, env_kwargs), "nvec": nvec,
            "agents": [s.name for s in slots], "slots": [s.to_json() for s in slots],
            "mask_actions": True, "steps": int(steps), "num_timesteps": int(model.num_timesteps), "seed": seed,
            "n_envs": n_envs,
            "hyperparameters": previous_meta.get("hyperparameters", {
                k: v for k, v in kwargs.items() if isinstance(v, int | float | str | bool)}),
            "policy_kwargs": previous_meta.get("policy_kwargs", policy_kwargs or {}), "model": MODEL_FILE,
            "versions": {"cagekit": cagekit.__version__, "stable_baselines3": stable_baselines3.__version__,
                         "sb3_contrib": sb3_contrib.__version__},
            **torch_settings()}  # as our learners' meta.json: what decides a fresh run's last bits
    with deferred_interrupt():  # a second Ctrl-C waits for these files
        if hasattr(model, "save_replay_buffer"):
            save_replay_buffer(model, out / REPLAY_BUFFER_FILE)
            meta["replay_buffer"] = REPLAY_BUFFER_FILE
        save_model(model, out / MODEL_FILE)
        with_spec(meta)  # a registered scenario's spec, for a fresh process to load the run (snapshots too)
        write_text_whole(out / "meta.json", json.dumps(meta, indent=2, default=str))
        finish_snapshots(out, meta)
    return model


def _other_torch_settings(out: Path, saved_meta: dict[str, Any]) -> str | None:
    """A note when a resume runs under other torch threads or CPU kernels than the run's meta.json records (None
    when it does not, or the run recorded none). Our learners refuse such a resume (`training.train`): theirs is
    bit-exact, and these settings change the weights' last bits. An SB3 resume is not bit-exact in any case
    (the copies are reseeded, torch's random state is not restored), so refusing would only stop a run that
    cannot end as the uninterrupted one would anyway; it goes on, and says so."""
    import cagekit

    now = torch_settings()
    changed = [f"{key} {saved_meta[key]!r} -> {now[key]!r}" for key in ("torch_threads", "torch_cpu_kernels")
               if key in saved_meta and key in now and saved_meta[key] != now[key]]
    if not changed:
        return None
    return (f"note: {out} continues under other torch settings than it trained with ({'; '.join(changed)}; "
            f"CAGEKIT_TORCH_THREADS, {cagekit.KERNELS_ENV}); they change the weights' last bits, which an SB3 "
            f"resume does not keep in any case (see train_sb3); meta.json records this resume's")


def _nothing_to_resume(out: Path) -> str:
    """Why a run whose model.zip is unreadable, with no readable checkpoint, cannot be resumed, and how to train it
    again from the start (a `cagekit train` run by its command, one of Python's by `train_sb3`), the folder as it
    was: its model.zip is kept aside (a copy restored over it resumes the run), its meta.json, which would make
    the new run refuse the folder as a trained one, too."""
    import shlex

    model, meta = out / MODEL_FILE, out / "meta.json"
    moves = [f"mv {shlex.quote(str(model))} {shlex.quote(str(model) + '.unreadable')}"]
    if meta.exists():
        moves.append(f"mv {shlex.quote(str(meta))} {shlex.quote(str(meta) + '.old')}")
    if (out / "run.json").exists():
        then = f"`cagekit train --resume {shlex.quote(str(out))}` trains it from the start"
    else:
        then = "train_sb3(..., resume=False) into the folder trains it from the start"
    return (f"cannot resume {out}: its {MODEL_FILE} is unreadable (corrupt or cut short) and it has no readable "
            f"checkpoint ({CHECKPOINT_DIR}/{CHECKPOINT_PREFIX}_<N>_steps.zip) to continue from; nothing was "
            f"changed. Restore {model} from a copy to resume it, or move it aside ({'; '.join(moves)}): "
            f"then {then}")


def stopped_short(model: Any, steps: int) -> bool:
    """Whether `train_sb3` returned before `steps` env steps, i.e. on Ctrl-C: SB3 otherwise stops at or
    past the target (PPO trains whole rollouts), so this is how its callers tell an interrupted run."""
    return int(model.num_timesteps) < int(steps)
