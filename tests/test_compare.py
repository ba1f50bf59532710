"""`cagekit compare` and the benchmark's paired.md: score differences seed by seed, on real engine scores."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cagekit.cli import main
from cagekit.evaluation.benchmark import BenchmarkPlan
from cagekit.evaluation.benchmark_scoring import evaluate_muted
from cagekit.evaluation.compare import compare_all, load_scores, paired

T_975_DF2 = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom (tables)


def _benchmark(out: Path, algos: str, seeds: int, episodes: int = 2, *extra: str) -> None:
    argv = ["benchmark", "--algos", algos, "--seeds", str(seeds), "--episodes", str(episodes), "--lengths", "6",
            "--reds", "KillChainAgent,SleepAgent", "--out", str(out), "--no-progress", *extra]
    assert main(argv) == 0


@pytest.fixture(scope="module")
def heuristics(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "heuristics"
    _benchmark(out, "react,sleep,random", 3)
    return out


def test_paired_difference_is_the_per_seed_difference(heuristics):
    per_seed = pd.read_csv(heuristics / "per_seed.csv").set_index(["algo", "seed"])["score"]
    diffs = [per_seed["react", s] - per_seed["sleep", s] for s in range(3)]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    row = paired(load_scores([heuristics]), "react", "sleep")
    assert row.seeds == (0, 1, 2)
    assert row.mean == pytest.approx(mean)
    assert row.ci95 == pytest.approx(T_975_DF2 * sd / math.sqrt(3))
    low, high = mean - row.ci95, mean + row.ci95
    assert row.verdict == ("react ahead" if low > 0 else "sleep ahead" if high < 0 else "within noise")


@pytest.mark.parametrize(("mean", "ci95", "verdict"), [
    (5.0, 1.0, "a ahead"), (-5.0, 1.0, "b ahead"), (0.5, 1.0, "within noise"), (-0.5, 1.0, "within noise"),
    (1.0, 1.0, "within noise"), (-1.0, 1.0, "within noise"), (0.5, math.nan, "one seed: no interval")])
def test_a_verdict_needs_the_whole_interval_on_one_side(mean, ci95, verdict):
    from cagekit.evaluation.compare import PairedDifference

    assert PairedDifference("a", "b", (0, 1, 2), mean, ci95).verdict == verdict


def test_benchmark_writes_every_pair(heuristics):
    text = (heuristics / "paired.md").read_text()
    pairs = [line for line in text.splitlines() if " - " in line and line.startswith("| ") and "a - b" not in line]
    assert len(pairs) == 3  # react, sleep, random: three pairs, the better mean first in each
    scores = load_scores([heuristics])
    for row in compare_all(scores):
        assert sum(s.score for s in scores[row.a].values()) >= sum(s.score for s in scores[row.b].values())
        assert f"| {row.a} - {row.b} | 3 | {row.mean:+.2f} |" in text


def test_folders_with_the_same_algorithm_are_told_apart_and_pair_exactly(heuristics, tmp_path):
    again = tmp_path / "again"
    _benchmark(again, "react", 2)
    scores = load_scores([heuristics, again])
    assert {"heuristics/react", "again/react", "sleep", "random"} == set(scores)
    row = paired(scores, "again/react", "heuristics/react")
    assert row.seeds == (0, 1)  # the seeds both have
    assert row.mean == 0.0  # the same team on the same protocol seeds scores the same


def test_muted_scores_are_teams_of_their_own(heuristics, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(heuristics, folder)
    plan = BenchmarkPlan(scenario="paper-small", algos=["react"], seeds=[0, 1, 2], steps=0, out=folder, episodes=2,
                         lengths="6", reds="KillChainAgent,SleepAgent", progress=False)
    for seed in plan.seeds:
        evaluate_muted(plan, "react", seed)
    scores = load_scores([folder])
    assert set(scores["react (muted)"]) == {0, 1, 2}
    assert all(s.bits_per_episode == 0.0 for s in scores["react (muted)"].values())
    assert "react (muted)" not in load_scores([folder], muted=False)


def test_benchmark_mute_pairs_each_talking_team_with_itself_muted(tmp_path):
    out = tmp_path / "muted"
    _benchmark(out, "react,sleep", 2, 2, "--mute")
    per_seed = pd.read_csv(out / "per_seed.csv")
    assert per_seed.loc[per_seed.algo == "react", "bits_per_episode"].max() > 0  # react talks, sleep does not
    assert sorted(p.name for p in (out / "eval-muted").iterdir()) == ["react-s0", "react-s1"]
    text = (out / "paired.md").read_text()
    row = paired(load_scores([out]), "react (muted)", "react")
    assert row.seeds == (0, 1)
    assert "react (muted)" in text and f"{row.mean:+.2f}" in text


def test_teams_scored_on_other_episodes_are_refused(heuristics, tmp_path, capsys):
    other = tmp_path / "other"
    _benchmark(other, "react", 1, episodes=3)
    assert main(["compare", str(heuristics), str(other)]) == 2
    err = capsys.readouterr().err
    assert "different episodes" in err and "episodes: 2 vs 3" in err


def test_bad_input_is_named(heuristics, tmp_path, capsys):
    assert main(["compare", str(heuristics), "--baseline", "qmix"]) == 2
    assert "no team 'qmix'" in capsys.readouterr().err
    assert main(["compare", str(tmp_path)]) == 2
    assert "holds no scored teams" in capsys.readouterr().err


def test_cli_prints_and_writes_the_tables(heuristics, tmp_path, capsys):
    out = tmp_path / "reports" / "paired.md"  # a folder not made yet: made, not a failure after the tables
    assert main(["compare", str(heuristics), "--baseline", "sleep", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == out.read_text().strip()
    assert "| react - sleep | 3 |" in printed and "| random - sleep | 3 |" in printed


@pytest.mark.parametrize("text,problem", [
    ("{}", "is not an evaluation summary (no parameters object; no total object; no number at bits_per_episode)"),
    ("[]", "holds a JSON list, not an evaluation summary"),
    ("{garbage", "is not valid JSON (Expecting property name"),
    ('{"parameters": {}, "total": {"score": "x"}, "bits_per_episode": 0}',
     "is not an evaluation summary (no number at total.score)"),
], ids=["empty-object", "list", "not-json", "text-score"])
def test_a_damaged_summary_is_named(heuristics, tmp_path, capsys, text, problem):
    folder = tmp_path / "damaged"
    shutil.copytree(heuristics, folder)
    summary = folder / "eval" / "react-s1" / "summary.json"
    summary.write_text(text)
    assert main(["compare", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"{summary} {problem}" in err and "cagekit evaluate" in err and err.count("\n") == 1


def test_a_missing_seed_is_noted_with_the_seeds_paired(heuristics, tmp_path, capsys):
    folder = tmp_path / "partial"
    shutil.copytree(heuristics, folder)
    (folder / "eval" / "react-s1" / "summary.json").unlink()
    assert main(["compare", str(folder), "--baseline", "sleep"]) == 0
    out = capsys.readouterr().out
    assert "| react | 2 |" in out and "| react - sleep | 2 |" in out
    note = out.strip().splitlines()[-1]
    assert note.startswith("Note: not every team was scored on every seed (0, 1, 2): react lacks seed 1 (no "
                           f"{folder / 'eval' / 'react-s1' / 'summary.json'})")
    assert note.endswith("a difference pairs only the seeds both teams have: react - sleep on seeds 0, 2.")
    assert "Note:" not in (heuristics / "paired.md").read_text()  # all seeds: no note


def test_the_benchmark_folder_holds_what_its_layout_names(heuristics):
    """`compare --out` is refused over, and the study copies, benchmark_layout's names: the very files written."""
    from cagekit.evaluation import benchmark_layout as layout

    assert sorted(p.name for p in heuristics.iterdir() if p.is_file()) == sorted(layout.FILES)
    assert {p.name for p in heuristics.iterdir() if p.is_dir()} == {layout.EVAL}  # heuristics: no runs, none muted
    assert {p.name for p in (heuristics / layout.EVAL).iterdir()} == {
        layout.run_name(algo, seed) for algo in ("react", "sleep", "random") for seed in range(3)}


def test_out_may_not_overwrite_the_benchmark_or_be_empty_or_a_directory(heuristics, tmp_path, capsys):
    before = {p: p.read_bytes() for p in heuristics.rglob("*") if p.is_file()}
    for out in ("table.md", "paired.md", "per_seed.csv", "table.csv", "benchmark.png", "eval/react-s0/summary.json",
                "eval/new.md", "../heuristics/table.md"):
        assert main(["compare", str(heuristics), "--out", str(heuristics / out)]) == 2
        printed, err = capsys.readouterr()
        assert f"is among what `cagekit benchmark` keeps in {heuristics}" in err and "compare.md" in err
        assert printed == ""  # refused before any table is printed
    assert {p: p.read_bytes() for p in heuristics.rglob("*") if p.is_file()} == before
    assert main(["compare", str(heuristics), "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err
    assert main(["compare", str(heuristics), "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a directory" in capsys.readouterr().err
    picture = tmp_path / "mine.png"  # a file of another kind: a slip of the user's, which compare would replace
    picture.write_bytes(b"\x89PNG")
    assert main(["compare", str(heuristics), "--out", str(picture)]) == 2
    assert f"--out {picture} exists and is no markdown file (.md)" in capsys.readouterr().err
    assert picture.read_bytes() == b"\x89PNG"


# evaluation folders: two teams paired episode by episode ----------------------------------------------

T_975_DF3 = 3.182446305284263  # Student's t, 97.5% quantile, 3 degrees of freedom (tables)


def _evaluate(out: Path, team: str, *extra: str) -> Path:
    from cagekit.evaluation.cli import cli_main

    argv = ["--team", team, str(out), "--lengths", "6", "--reds", "KillChainAgent", "--episodes", "4",
            "--no-progress", *extra]
    assert cli_main(argv) == 0
    return out


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaluations")
    for team in ("react", "sleep", "random"):
        _evaluate(root / team, team)
    return root


def _episode_rewards(folder: Path) -> dict[int, float]:
    import json

    records = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()[1:]]
    return {r["index"]: r["reward"] for r in records if r["type"] == "episode"}


def test_two_evaluations_pair_episode_by_episode(evaluations, capsys):
    """One combination of four episodes: the difference is the mean of the per-episode differences and its
    interval Student's t over them, computed here from the journals; the verdict follows the interval."""
    from cagekit.evaluation.compare_episodes import load_evaluations, paired_episodes

    react, rand = _episode_rewards(evaluations / "react"), _episode_rewards(evaluations / "random")
    diffs = [react[i] - rand[i] for i in range(4)]
    mean = sum(diffs) / 4
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 3)
    teams = load_evaluations([evaluations / "react", evaluations / "random"])
    row = paired_episodes(*teams)
    assert (row.a, row.b, row.episodes) == ("react", "random", 4)
    assert row.mean == pytest.approx(mean)
    assert row.ci95 == pytest.approx(T_975_DF3 * sd / 2)  # over the pairs: another pairing gives another sd
    assert row.mean == pytest.approx(teams[0].total.score - teams[1].total.score)
    assert main(["compare", str(evaluations / "react"), str(evaluations / "sleep"), str(evaluations / "random"),
                 "--baseline", "random"]) == 0
    out = capsys.readouterr().out
    assert f"| react - random | 4 | {mean:+.2f} | {T_975_DF3 * sd / 2:.2f} | {row.verdict} |" in out
    assert "| sleep - random | 4 |" in out and "| react - sleep" not in out


def test_evaluations_of_other_episodes_or_unfinished_are_refused(evaluations, tmp_path, capsys):
    other = _evaluate(tmp_path / "react-seed1", "react", "--seed", "1")
    assert main(["compare", str(evaluations / "sleep"), str(other)]) == 2
    err = capsys.readouterr().err
    assert "were scored on different episodes (seed: 0 vs 1)" in err and "another game" not in err
    large = _evaluate(tmp_path / "react-large", "react", "--scenario", "paper-large")
    assert main(["compare", str(evaluations / "react"), str(large)]) == 2
    assert ("(scenario: 'paper-small' vs 'paper-large'); episode pairs need the same protocol (score both with the "
            "same evaluation.py options; teams trained for another scenario or layout play another game and cannot "
            "be paired)") in capsys.readouterr().err
    cut = tmp_path / "cut"
    shutil.copytree(evaluations / "react", cut)
    journal = cut / "journal.jsonl"
    journal.write_text("".join(journal.read_text().splitlines(keepends=True)[:3]))  # config + 2 of 4 episodes
    assert main(["compare", str(evaluations / "sleep"), str(cut)]) == 2
    assert f"{cut} is an unfinished evaluation (2 of 4 episodes): rerun its evaluation" in capsys.readouterr().err
    for argv, message in [([str(evaluations / "react")], "has nothing to be compared with"),
                          ([str(evaluations / "react"), str(tmp_path)], "not a mix"),
                          ([str(evaluations / "react"), str(evaluations / "sleep"), "--out",
                            str(evaluations / "react" / "results.csv")], "is one of the evaluation's own files")]:
        assert main(["compare", *argv]) == 2
        assert message in capsys.readouterr().err


def test_a_journal_damaged_in_a_middle_line_is_named_and_a_rerun_repairs_it(evaluations, tmp_path, capsys):
    """Its reports are complete, so 'unfinished' would mislead: the refusal names the damaged line, and the
    rerun it advises cuts the journal there and plays the rest again, to the same journal and results."""
    damaged = tmp_path / "react"
    shutil.copytree(evaluations / "react", damaged)
    journal = damaged / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:40] + "\n"  # the second episode's record broken, the two after it whole
    journal.write_text("".join(lines))
    assert main(["compare", str(evaluations / "sleep"), str(damaged)]) == 2
    err = capsys.readouterr().err
    assert (f"{journal} is damaged at line 3: only the 1 of 4 episodes before it can be read; rerun its evaluation "
            f"to repair it") in err and "unfinished" not in err
    _evaluate(damaged, "react")
    for name in ("journal.jsonl", "results.csv"):
        assert (damaged / name).read_bytes() == (evaluations / "react" / name).read_bytes()
    assert main(["compare", str(evaluations / "sleep"), str(damaged)]) == 0


def test_the_same_episodes_pair_whatever_order_or_default_spelled_out(tmp_path, capsys, monkeypatch):
    """Reds given in another order, or the scenario's detection given explicitly, play the same episodes (each
    episode's seed is its own): they pair, not refused; a folder given as '.' is labelled by its own name."""
    from cagekit.scenarios import get_scenario

    detection = str(get_scenario("paper-small").detection)
    a = _evaluate(tmp_path / "react", "react", "--reds", "KillChainAgent,SleepAgent", "--episodes", "2")
    b = _evaluate(tmp_path / "sleep", "sleep", "--reds", "SleepAgent,KillChainAgent", "--episodes", "2",
                  "--detection", detection)
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--baseline", "sleep"]) == 0
    assert "| react - sleep | 4 |" in capsys.readouterr().out
    monkeypatch.chdir(a)
    assert main(["compare", ".", "../sleep", "--baseline", "sleep"]) == 0
    assert "| react - sleep | 4 |" in capsys.readouterr().out


def test_one_episode_each_gives_no_interval_and_no_verdict(tmp_path, capsys):
    """One episode per combination has no spread to estimate: the interval is unknown ('-'), not 0, and
    no team is declared ahead on it."""
    a = _evaluate(tmp_path / "react", "react", "--episodes", "1", "--reds", "KillChainAgent,ExplorerAgent")
    b = _evaluate(tmp_path / "sleep", "sleep", "--episodes", "1", "--reds", "KillChainAgent,ExplorerAgent")
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--baseline", "sleep"]) == 0
    out = capsys.readouterr().out
    assert "| react - sleep | 2 |" in out and "| - | one episode each: no interval |" in out
    assert "ahead" not in out


def test_compare_names_a_missing_folder_and_a_journal_of_another_version(evaluations, tmp_path, capsys):
    import json

    assert main(["compare", str(evaluations / "react"), str(tmp_path / "nowhere")]) == 2
    assert f"no such folder: {tmp_path / 'nowhere'}" in capsys.readouterr().err
    newer = tmp_path / "newer"
    shutil.copytree(evaluations / "react", newer)
    lines = (newer / "journal.jsonl").read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["config"].update(cagekit_version="9.9", shiny_new_setting=1)
    (newer / "journal.jsonl").write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    assert main(["compare", str(evaluations / "sleep"), str(newer)]) == 2
    assert "cannot read, written by cagekit 9.9 (TypeError" in capsys.readouterr().err


def test_a_team_of_ones_own_pairs_with_a_benchmarks_teams_which_a_mix_names(heuristics, tmp_path, capsys):
    """Given a benchmark folder beside an evaluation folder, compare said only that the benchmark 'holds no
    journal.jsonl'; it now names the benchmark's teams' evaluation folders, which pair with one's own team
    scored on the benchmark's protocol (seed s of the benchmark is protocol seed s)."""
    mine = _evaluate(tmp_path / "mine", "sleep", "--episodes", "2", "--reds", "KillChainAgent,SleepAgent")
    assert main(["compare", str(mine), str(heuristics)]) == 2
    err = capsys.readouterr().err
    assert "a benchmark's teams are evaluation folders: give them" in err
    assert str(heuristics / "eval" / "react-s0") in err
    teams = heuristics / "eval"
    assert main(["compare", str(mine), str(teams / "react-s0"), str(teams / "sleep-s0")]) == 0
    out = capsys.readouterr().out
    assert "| mine - sleep-s0 | 4 | +0.00 |" in out or "| sleep-s0 - mine | 4 | +0.00 |" in out
