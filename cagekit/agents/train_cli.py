"""`cagekit train`: our learners through `train`, SB3 baselines through `train_sb3`.

A run's settings are recorded in OUT/run.json, so that `--resume OUT` rebuilds the same run; an option that
contradicts them is refused, as is an --out that holds what a run writes but no run.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cagekit.agents import checkpoint as ckpt
from cagekit.agents.snapshots import SELECTION_DIR, SELECTION_FILE, SNAPSHOT_DIR
from cagekit.agents.torch_threads import limit_torch_threads
from cagekit.agents.training import (
    ALGOS,
    CHECKPOINT_EVERY,
    LOG_FILE,
    SB3_ALGOS,
    check_training,
    default_simulator,
    exploration_note,
    make_learner,
    train,
)
from cagekit.scenarios import get_scenario
from cagekit.scenarios.options import check_folder_path

RUN_FILE = "run.json"
#: run.json's record of the hyperparameters its --config file held when the run started
HYPERPARAMETERS = "hyperparameters"


#: what `cagekit train` writes into a run's folder, ours and SB3's (SB3's TensorBoard files too: `TB_EVENTS`)
RUN_OUTPUTS = (RUN_FILE, LOG_FILE, "tb", ckpt.MODEL_FILE, ckpt.META_FILE, ckpt.TRAINER_FILE, SNAPSHOT_DIR,
               SELECTION_FILE, SELECTION_DIR, "model.zip", "replay_buffer.pkl", "checkpoints", "progress.csv")
TB_EVENTS = "events.out.tfevents.*"


def check_new_run_folder(out: Path) -> None:
    """Refuse `--out` for a new run before anything is written: a file (or a path under one), a run of
    `cagekit train` (its run.json: --resume continues it), or a folder holding what a run writes that no
    run.json vouches for (the user's own files, a benchmark's run), which the run would overwrite. An empty
    folder, or one of other files, is used as it is."""
    check_folder_path(out, "--out", "give the run's folder (new or empty)")
    if (out / RUN_FILE).exists():
        raise ValueError(f"{out} already holds a run; use --resume {out} to continue it or choose --out")
    found = [name for name in RUN_OUTPUTS if (out / name).exists()] + sorted(p.name for p in out.glob(TB_EVENTS))
    if found:
        raise ValueError(f"--out {out} holds files a training run writes ({', '.join(found)}) but no {RUN_FILE}, "
                         f"so it is no run of `cagekit train` to continue: they are your own or another tool's, "
                         f"and are not overwritten; choose another --out (new or empty), or move those files away")


def _refuse_changed_settings(run: dict[str, Any], args: Any, out: Path) -> None:
    """`--resume OUT` continues the run as its run.json records it: an option that says otherwise (another
    scenario, seed, red...) is refused rather than silently dropped. Only --steps and --checkpoint-every
    may change."""
    env = run.get("env", {})
    recorded = {"algo": run.get("algo"), "scenario": run.get("scenario"), "seed": run.get("seed"),
                "config": run.get("config"), "snapshots": run.get("snapshots", 0),
                "message_cost": env.get("message_cost"), "red": env.get("red"),
                "detection": env.get("detection"), "backend": env.get("simulator", "engine"),
                "layout": env.get("layout"),
                "out": str(out)}
    for key, was in recorded.items():
        given = getattr(args, key, None)
        paths = key in ("out", "config") and was is not None
        if key == "red" and given is not None and _same_reds(run.get("scenario"), given, was):
            continue
        if key == "layout" and given is not None and _same_layout(run.get("scenario"), given, was):
            continue
        if key in ("message_cost", "detection") and given is not None and _same_setting(run.get("scenario"), key,
                                                                                          given, was):
            continue
        if key == "config" and given is not None and HYPERPARAMETERS in run:
            _refuse_other_hyperparameters(run[HYPERPARAMETERS], given, out)
            continue
        if given is not None and (Path(given) != Path(was) if paths else given != was):
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"--resume continues {out} with the settings in its {RUN_FILE}: {flag} {given} differs "
                             f"from its {was!r} (only --steps and --checkpoint-every may change; start a new run "
                             f"with --out for other settings)")


def _same_layout(scenario: Any, given: str, was: str | None) -> bool:
    """Whether --layout names the run's layout, a run.json with none meaning the scenario's default (cage2's
    classic): `--resume RUN --layout classic` continues a cage2 run made without --layout."""
    try:
        return given == (was or get_scenario(str(scenario)).default_layout)
    except ValueError:
        return False


def _refuse_other_hyperparameters(recorded: dict[str, Any] | None, given: str, out: Path) -> None:
    """`--resume OUT --config FILE` names the run's hyperparameters when FILE holds what its run.json recorded,
    wherever FILE is and however its path is spelt (a relative path from another folder was refused as another
    config); other contents are refused."""
    from cagekit.agents.config_file import load_mapping

    held = load_mapping(given)
    if held != (recorded or {}):
        raise ValueError(f"--resume continues {out} with the hyperparameters in its {RUN_FILE}: --config {given} "
                         f"holds others ({_config_differences(recorded or {}, held)}); start a new "
                         f"run with --out for other hyperparameters")


def _config_differences(then: dict[str, Any], now: dict[str, Any]) -> str:
    keys = sorted(set(then) | set(now))
    return ", ".join(f"{k}: {then.get(k, 'default')!r} -> {now.get(k, 'default')!r}"
                     for k in keys if then.get(k, "default") != now.get(k, "default"))


def _run_config(run: dict[str, Any]) -> dict[str, Any] | str | None:
    """The hyperparameters a run trains with: those its run.json recorded when it started (a resume continues
    with them, wherever it is run from and whatever became of the file), or, for a run.json from before they
    were recorded, its config file's path. A file that has changed since is said, not read."""
    if HYPERPARAMETERS not in run:
        return run.get("config")
    recorded, path = run[HYPERPARAMETERS], run.get("config")
    if path:
        from cagekit.agents.config_file import load_mapping

        try:
            changed = load_mapping(path) != (recorded or {})
        except ValueError:
            changed = False  # moved, or read from another folder: nothing to say
        if changed:
            print(f"note: {path} has changed since the run started; it continues with the hyperparameters its "
                  f"{RUN_FILE} recorded then")
    return recorded


def _with_hyperparameters(run: dict[str, Any]) -> dict[str, Any]:
    """`run` with what its `--config` file holds recorded (None: the learner's defaults), where JSON keeps it
    as read (a YAML date or an integer key would come back otherwise: then only the path is recorded, as
    before hyperparameters were)."""
    import json

    from cagekit.agents.config_file import load_mapping

    held = load_mapping(run["config"]) if run["config"] else None
    try:
        kept = json.loads(json.dumps(held)) == held
    except (TypeError, ValueError):
        kept = False
    return {**run, HYPERPARAMETERS: held} if kept else run


def _same_setting(scenario: Any, key: str, given: float, was: float | None) -> bool:
    """Whether --message-cost or --detection names the run's value, a run.json with none meaning the scenario's
    own: `--resume RUN --message-cost 0.1` continues a paper-small run made without it (it trains at 0.1)."""
    try:
        return float(given) == get_scenario(str(scenario)).setting(key, was)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False


def _same_reds(scenario: Any, given: str, was: str | None) -> bool:
    """Whether --red names the reds the run trains against however it is spelt: a run.json with no red (runs
    made before training defaulted to all of them) trains against the scenario's default red; 'all' is the
    list of every red; spaces in a list do not count. False where either cannot be read (the caller refuses)."""
    from cagekit.agents.rollout import training_reds

    try:
        spec = get_scenario(str(scenario))
        now, then = ([spec.default_red if n is None else n for n in training_reds(spec.name, red)]
                     for red in (given, was))
    except (ValueError, KeyError):
        return False
    return now == then


def cli_train(args: Any) -> int:
    """`cagekit train`: our learners through `train`, SB3 baselines through `cagekit.agents.sb3`.

    The command line is recorded in OUT/run.json so that `--resume OUT` rebuilds the same learner (for
    SB3 runs: reloads the latest checkpoint, see `train_sb3`). Returns 130 when interrupted (Ctrl-C)."""
    import json

    if args.resume:
        out = Path(args.resume)
        run_file = out / RUN_FILE
        if not run_file.exists():
            raise ValueError(f"cannot resume {out}: no {RUN_FILE} there (was it made by `cagekit train`?)")
        try:
            run = json.loads(run_file.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot resume {out}: its {RUN_FILE} is unreadable ({exc})") from exc
        ckpt.adopt_spec(run, run_file)  # a scenario of the user's own: registered again here
        _refuse_changed_settings(run, args, out)
        if args.steps is not None:
            run["steps"] = args.steps
        if args.checkpoint_every is not None:
            run["checkpoint_every"] = args.checkpoint_every
    else:
        if args.algo is None:
            raise ValueError(f"--algo is required ({', '.join((*ALGOS, *SB3_ALGOS))})")
        if args.red is not None and not args.red.strip():  # not taken for the default, all
            raise ValueError("--red is empty: name a red agent, a comma-separated list, or all")
        # every red agent unless told otherwise: the evaluation scores a team against all of them, and a team
        # trained on one over-defends against the others (docs/dial.md, "One red in training, three in scoring")
        env_kwargs = {k: v for k, v in (("message_cost", args.message_cost), ("red", args.red or "all"),
                                        ("detection", args.detection), ("layout", getattr(args, "layout", None)))
                      if v is not None}
        scenario = args.scenario or "paper-small"
        seed = 0 if args.seed is None else args.seed
        simulator = getattr(args, "backend", None) or default_simulator(scenario)
        if simulator != "engine":
            env_kwargs["simulator"] = simulator
        out = Path(args.out or f"runs/{args.algo}-{scenario}-{seed}")
        steps = 200_000 if args.steps is None else args.steps
        run = _with_hyperparameters({"algo": args.algo, "scenario": scenario, "seed": seed, "steps": steps,
                                     "config": args.config, "env": env_kwargs,
                                     "checkpoint_every": args.checkpoint_every, "snapshots": args.snapshots or 0})
        ckpt.with_spec(run)  # a registered scenario's spec: --resume in a fresh process registers it again
        check_new_run_folder(out)
    algo = run["algo"]
    if algo not in (*ALGOS, *SB3_ALGOS):
        raise ValueError(f"unknown algorithm {algo!r}; valid: {', '.join((*ALGOS, *SB3_ALGOS))}")
    if algo in SB3_ALGOS and args.checkpoint_every is not None:
        raise ValueError(f"--checkpoint-every sets the interval of our learners ({', '.join(ALGOS)}); {algo} is "
                         f"an SB3 run, which checkpoints every tenth of the run into OUT/checkpoints/")
    if algo not in SB3_ALGOS and run.get("checkpoint_every") is None:
        run["checkpoint_every"] = CHECKPOINT_EVERY
    for key, least in (("steps", 1), ("checkpoint_every", 1), ("snapshots", 0), ("seed", 0)):
        if run.get(key) is not None and run[key] < least:
            raise ValueError(f"--{key.replace('_', '-')} must be >= {least}, got {run[key]}")
    spec = get_scenario(run["scenario"])  # an unknown scenario is named here, before any folder is made
    spec.layout(run["env"].get("layout"))  # and an unknown layout, naming the scenario's
    if not args.resume:  # a red list that cannot be read, named as the option typed (a resume's is recorded)
        from cagekit.agents.rollout import training_reds

        try:
            training_reds(spec.name, run["env"].get("red"))
        except ValueError as exc:
            raise ValueError(f"--red: {exc}") from None
    for setting in ("detection", "message_cost"):
        spec.setting(setting, run["env"].get(setting))
    config = _run_config(run)
    check_training(algo, spec.name, config, run["env"])
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    recorded = (out / RUN_FILE).read_bytes() if args.resume else None
    trained = _saved_training(out) if args.resume else None
    (out / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    try:
        return _train_run(run, config, out, args)
    except Exception:
        # refused before anything was trained (a bad scenario, red, config...): leave no run behind that
        # would make the corrected command ask for --resume
        if not args.resume and [p.name for p in out.iterdir()] == [RUN_FILE]:
            (out / RUN_FILE).unlink()
            if created:
                out.rmdir()
        # a resume that failed before it saved any training leaves the run's record as it was (--steps given
        # anew too); one that saved a checkpoint keeps the record it trained under: restored, a run of 100k
        # resumed with --steps 200000 that checkpointed at 150k and then failed was "already trained past the
        # 100,000 steps asked for: nothing to do" on its next --resume, a finished run at 150k
        if recorded is not None and _saved_training(out) == trained:
            (out / RUN_FILE).write_bytes(recorded)
        raise


#: the files a resume continues from (ours: the checkpoint; SB3's: model.zip, or its latest in checkpoints/)
TRAINING_STATE = (ckpt.MODEL_FILE, ckpt.TRAINER_FILE, ckpt.META_FILE, "model.zip", "replay_buffer.pkl")


def _saved_training(out: Path) -> dict[str, tuple[int, int, int]]:
    """Each file a resume of `out` continues from, by (inode, size, modification time): saves write a
    temporary file and move it into place, so a save since shows here as another entry."""
    files = [out / name for name in TRAINING_STATE]
    if (out / "checkpoints").is_dir():
        files += sorted((out / "checkpoints").iterdir())
    stats = {}
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue
        stats[file.name] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return stats


def _train_run(run: dict[str, Any], config: dict[str, Any] | str | None, out: Path, args: Any) -> int:
    algo = run["algo"]
    progress = not getattr(args, "no_progress", False)
    if algo in SB3_ALGOS:
        from cagekit.agents.config_file import load_mapping
        from cagekit.agents.sb3.checkpoints import MODEL_FILE as SB3_MODEL_FILE
        from cagekit.agents.sb3.checkpoints import latest_checkpoint
        from cagekit.agents.sb3.training import stopped_short, train_sb3

        hyper = load_mapping(config) if isinstance(config, str) else config
        resume = bool(args.resume)
        if resume and latest_checkpoint(out) is None and not (out / SB3_MODEL_FILE).exists():
            # killed (SIGTERM, kill -9: Ctrl-C saves model.zip) before its first checkpoint, a tenth of the run:
            # nothing trained is kept, so it starts over, as a benchmark's run does (train_sb3's resume refuses
            # a folder without a checkpoint, and a new run refuses the folder: the run could go neither way)
            print(f"{out} holds no SB3 checkpoint yet (it stopped before the first, at a tenth of the run): "
                  f"training it from the start")
            resume = False
        model = train_sb3(algo, run["scenario"], run["steps"], run["seed"], out, algo_kwargs=hyper,
                          progress_bar=progress, resume=resume, snapshots=run.get("snapshots", 0),
                          **run["env"])
        interrupted = stopped_short(model, run["steps"])
        state = ("interrupted; resume with --resume " + str(out) if interrupted
                 else f"done: {out / 'model.zip'} (score it: python evaluation.py {out})")
        print(f"{algo} on {run['scenario']}: {model.num_timesteps:,} env steps, {state}")
        return 130 if interrupted else 0
    limit_torch_threads()
    learner = make_learner(algo, run["scenario"], seed=run["seed"], config=config, **run["env"])
    note = exploration_note(algo, config, run["steps"])
    if note:
        print(note)
    summary = train(learner, run["steps"], out, checkpoint_every=run["checkpoint_every"],
                    resume=bool(args.resume), progress=progress, snapshots=run.get("snapshots", 0))
    state = "interrupted; resume with --resume " + str(out) if summary["interrupted"] else "done"
    if summary["env_steps"] > run["steps"] and summary["new_updates"] == 0:  # --resume with fewer steps
        state = f"already trained past the {run['steps']:,} steps asked for: nothing to do"
    elif summary["env_steps"] > run["steps"]:  # as SB3's PPO does in whole rollouts
        state += f" ({run['steps']:,} asked for: {algo} learns from whole batches of episodes)"
    if not summary["interrupted"]:  # where the weights are, as the SB3 runs' line says, and how to score them
        state += f"; checkpoint in {out}/ (score it: python evaluation.py {out})"
    print(f"{algo} on {run['scenario']}: {summary['updates']} updates, {summary['env_steps']:,} env steps, {state}")
    return 130 if summary["interrupted"] else 0
