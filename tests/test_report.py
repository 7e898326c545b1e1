"""report.html: built from real smoke runs (GO, INVESTIGATE, DEBUG), parsed back, compared with
comparison.json number by number; escaping, no network, history, errors, a headless screenshot."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import statistics
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from ryot.report.html import ReportError, render_report, render_run_dir
from tests.conftest import CONFIGS, ROOT

# ------------------------------------------------------------------------------------------
# A tiny DOM from the stdlib parser
# ------------------------------------------------------------------------------------------

VOID = {"meta", "br", "img", "hr", "input", "link", "source", "wbr", "area", "base", "col"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None = None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def iter(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for n in self.iter():
            if tag and n.tag != tag:
                continue
            if cls and cls not in n.classes:
                continue
            if any(n.attrs.get(k.replace("_", "-")) != v for k, v in attrs.items()):
                continue
            found.append(n)
        return found

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag}> class={cls} {attrs}"
        return found[0]


class DomBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.current = self.root
        self.start_tags: list[str] = []
        self.all_attrs: list[tuple[str, str, str]] = []  # (tag, name, value)

    def handle_starttag(self, tag, attrs):
        self.start_tags.append(tag)
        self.all_attrs += [(tag, k, v or "") for k, v in attrs]
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.start_tags.append(tag)
        self.all_attrs += [(tag, k, v or "") for k, v in attrs]
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(html: str) -> DomBuilder:
    builder = DomBuilder()
    builder.feed(html)
    builder.close()
    return builder


# ------------------------------------------------------------------------------------------
# Real runs, once per module
# ------------------------------------------------------------------------------------------

EXPECTED_EXIT = {"GO": 0, "INVESTIGATE": 1, "DEBUG": 3}


def _config(tmp: Path, name: str, edit) -> Path:
    data = yaml.safe_load((CONFIGS / "smoke.yaml").read_text(encoding="utf-8"))
    edit(data)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _investigate(cfg):
    cfg["criteria"]["min_speedup_percent"] = 99.0


def _debug(cfg):
    opt = cfg["optimizations"]
    opt["semantic_compressor"]["ratio"] = 0.0
    opt["kernel_optimizer"]["level"] = 0
    opt["inference_scaling"]["warmup_steps"] = 0


def _start(config: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ryot", "stage3a", "--config", str(config), "--out", str(out)]
    return subprocess.Popen(
        [*cmd, "--repeats", "2"],
        cwd=ROOT,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory) -> dict[str, Path]:
    """GO alone (its timing criteria must not suffer from contention), then the other two."""
    configs = tmp_path_factory.mktemp("report-configs")
    base = tmp_path_factory.mktemp("report-runs")
    dirs = {s: base / s.lower() for s in EXPECTED_EXIT}
    plan = [
        [("GO", CONFIGS / "smoke.yaml")],
        [
            ("INVESTIGATE", _config(configs, "investigate", _investigate)),
            ("DEBUG", _config(configs, "debug", _debug)),
        ],
    ]
    for batch in plan:
        procs = [(status, _start(config, dirs[status])) for status, config in batch]
        for status, proc in procs:
            out, _ = proc.communicate(timeout=300)
            text = out.decode("utf-8", "replace")
            assert proc.returncode == EXPECTED_EXIT[status], text[-3000:]
    return dirs


@pytest.fixture(scope="module")
def comparisons(run_dirs) -> dict[str, dict]:
    return {
        s: json.loads((d / "comparison.json").read_text(encoding="utf-8"))
        for s, d in run_dirs.items()
    }


@pytest.fixture(scope="module")
def pages(comparisons) -> dict[str, str]:
    return {s: render_report(c) for s, c in comparisons.items()}


@pytest.fixture(scope="module")
def doms(pages) -> dict[str, Node]:
    return {s: parse(html).root for s, html in pages.items()}


# ------------------------------------------------------------------------------------------
# Expected formats, written independently of the renderer
# ------------------------------------------------------------------------------------------


def measured_text(row: dict, value=None) -> str:
    value = row["measured"] if value is None else value
    if value is None:
        return "n/a"
    signed = row["id"] in ("speedup", "throughput", "loss_match")
    unit = row["unit"]
    if unit == "%":
        return f"{value:+.1f}%" if signed else f"{value:.1f}%"
    if unit == "":
        return f"{value:+.4f}" if signed else f"{value:.4f}"
    if unit.strip() == "MiB":
        return f"{value:.1f}{unit}"
    return f"{value:.0f}{unit}"


def last_result(comparison: dict, arm: str) -> dict:
    return [r for r in comparison["runs"] if r["arm"] == arm and r["result"]][-1]["result"]


# ------------------------------------------------------------------------------------------
# Structure and numbers
# ------------------------------------------------------------------------------------------

STATUSES = ["GO", "INVESTIGATE", "DEBUG"]


@pytest.mark.parametrize("status", STATUSES)
def test_banner_shows_verdict_decision_and_context(status, comparisons, doms):
    c, dom = comparisons[status], doms[status]
    assert c["verdict"]["status"] == status
    banner = dom.find("header", id="verdict")
    assert {"banner", status.lower()} <= banner.classes
    assert banner.find(cls="status").text() == status
    assert banner.find(cls="decision").text() == c["verdict"]["decision"]
    text = banner.text()
    assert c["verdict"]["scenario"] in text
    assert c["created"][:10] in text
    assert c["environment"]["device"] in text and c["environment"]["cpu"] in text
    assert banner.find(cls="config-name").text() == c["config_name"]
    assert banner.find(cls="num-params").text() == f"{c['num_parameters']:,}"
    failed = [r for r in c["criteria"] if not r["passed"]]
    if status == "GO":
        assert f"All {len(c['criteria'])} criteria passed." in text
    else:
        for row in failed:
            assert row["name"] in banner.find("ul", cls="reasons").text()


@pytest.mark.parametrize("status", STATUSES)
def test_criteria_table_has_one_row_per_criterion_with_json_numbers(status, comparisons, doms):
    c, dom = comparisons[status], doms[status]
    rows = dom.find("section", id="criteria").find_all("tr", cls=None)
    rows = [r for r in rows if "data-criterion" in r.attrs]
    assert [r.attrs["data-criterion"] for r in rows] == [row["id"] for row in c["criteria"]]
    for tr, row in zip(rows, c["criteria"], strict=True):
        assert tr.find("td", cls="measured").text() == measured_text(row)
        ci = tr.find("td", cls="ci").text()
        if row["ci_low"] is None:
            assert ci == "n/a"
        else:
            assert (
                ci == f"[{measured_text(row, row['ci_low'])}, {measured_text(row, row['ci_high'])}]"
            )
        assert row["threshold"] in tr.find("td", cls="threshold").text()
        badge = tr.find(cls="badge").text()
        assert ("pass" in badge) == row["passed"] and ("FAIL" in badge) == (not row["passed"])
        test_cell = tr.find("td", cls="test").text()
        assert f"validation/test_stage3a.py::test_criterion[{row['id']}]" in test_cell
        assert "not run under pytest" in test_cell


def test_headline_speedup_and_noise_equal_the_json(comparisons, doms):
    c, dom = comparisons["GO"], doms["GO"]
    metrics = {m.find(cls="metric-label").text(): m for m in dom.find_all(cls="metric")}
    ci = c["confidence_intervals"]
    speed = metrics["Speedup"]
    assert speed.find(cls="metric-value").text() == f"{ci['speedup']['median'] * 100:+.1f}%"
    low, high = ci["speedup"]["low"] * 100, ci["speedup"]["high"] * 100
    assert f"[{low:+.1f}%, {high:+.1f}%]" in speed.text()
    loss = metrics["Val loss delta"].find(cls="metric-value").text()
    assert loss == f"{ci['loss_delta']['median']:+.4f}"
    assert metrics["A/A noise"].find(cls="metric-value").text() == f"{c['noise']['aa'] * 100:.1f}%"
    # The speedup chart carries the same median.
    chart = dom.find("figure", id="chart-speedup").find("svg")
    assert f"median {ci['speedup']['median'] * 100:+.1f}%" in chart.text()


@pytest.mark.parametrize("status", STATUSES)
def test_charts_are_inline_svg(status, comparisons, doms):
    dom = doms[status]
    for fig in ("chart-loss", "chart-step-times", "chart-speedup"):
        svg = dom.find("figure", id=fig).find("svg")
        assert svg.find_all("text"), fig  # tick labels and axis titles
    loss = dom.find("figure", id="chart-loss").text()
    assert "entropy floor (loss floor)" in loss
    assert f"{comparisons[status]['entropy_floor']:.4f}" in loss
    assert "optimizer step" in loss and "training loss (nats)" in loss
    assert "step time (ms)" in dom.find("figure", id="chart-step-times").text()
    ablation = dom.find("figure", id="chart-ablation")
    assert "ablation not run (measurement.ablation: false)" in ablation.text()
    assert not ablation.find_all("svg")


@pytest.mark.parametrize("status", STATUSES)
def test_epoch_tables_and_comparison_table(status, comparisons, doms):
    c, dom = comparisons[status], doms[status]
    section = dom.find("section", id="tables")
    for arm in ("baseline", "optimized"):
        result = last_result(c, arm)
        table = section.find("div", cls="epoch-table", data_arm=arm)
        header = [th.text() for th in table.find_all("th")]
        assert header == ["Epoch", "Loss", "Time (s)", "Throughput (tok/s)", "Status"]
        body = table.find("tbody").find_all("tr")
        assert len(body) == len(result["epochs"])
        for tr, epoch in zip(body, result["epochs"], strict=True):
            cells = [td.text() for td in tr.find_all("td")]
            assert cells[0] == str(epoch["epoch"])
            assert cells[1] == f"{epoch['mean_loss']:.4f}"
            assert cells[2] == f"{epoch['time_s']:.2f}"
            assert cells[3] == f"{epoch['tokens_per_s']:,.0f}"
            assert epoch["status"] in cells[4]
    table = section.find("table", cls="comparison")
    assert [th.text() for th in table.find_all("th")] == [
        "METRIC",
        "BASELINE",
        "OPTIMIZED",
        "IMPROVEMENT",
    ]
    rows = {tr.find_all("td")[0].text(): tr for tr in table.find("tbody").find_all("tr")}
    b, o = c["baseline"], c["optimized"]
    total = [td.text() for td in rows["Total training time (s)"].find_all("td")]
    assert total[1:3] == [f"{b['total_time']:.2f}", f"{o['total_time']:.2f}"]
    val = [td.text() for td in rows["Validation loss"].find_all("td")]
    assert val[1:] == [
        f"{b['val_loss']:.4f}",
        f"{o['val_loss']:.4f}",
        f"{c['comparison']['loss_delta']:+.4f}",
    ]
    tput = [td.text() for td in rows["Average throughput (tok/s)"].find_all("td")]
    diff = o["throughput"] - b["throughput"]
    assert tput[1:] == [
        f"{b['throughput']:,.0f}",
        f"{o['throughput']:,.0f}",
        f"{diff:+.2f} ({100 * diff / b['throughput']:+.1f}%)",
    ]
    for metric in ("Average epoch time (s)", "Final loss value", "Samples/second"):
        assert metric in rows


def test_evidence_cards_show_applied_and_measurements(comparisons, doms):
    c, dom = comparisons["GO"], doms["GO"]
    section = dom.find("section", id="evidence")
    cards = section.find_all("article", cls="card")
    assert [a.attrs["data-optimization"] for a in cards] == [
        e["name"] for e in c["evidence"]["optimized"]
    ]
    by_name = {e["name"]: e for e in c["evidence"]["optimized"]}
    for card in cards:
        ev = by_name[card.attrs["data-optimization"]]
        for applied in ev["applied"]:
            assert applied in card.text()
        assert "effective" in card.find("h4").text()
    compression = by_name["compression"]["measurements"]
    text = section.find("article", data_optimization="compression").text()
    assert f"{compression['flops_per_step']:,} vs baseline" in text
    assert f"{compression['baseline_flops_per_step']:,}" in text
    assert f"{compression['flops_ratio']:.4f}" in text
    scaling = by_name["scaling"]["measurements"]
    text = section.find("article", data_optimization="scaling").text()
    tokens = scaling["tokens_per_step"]
    assert f"min {min(tokens):,}" in text and f"total {sum(tokens):,}" in text
    first_step, first_len = scaling["schedule"][0]
    assert f"from step {first_step}: length {first_len}" in text
    text = section.find("article", data_optimization="kernel").text()
    assert "Fused optimizer yes" in text
    assert "added _safe_softmax" in text or "same as reference" in text


def test_debug_evidence_says_nothing_is_enabled(doms):
    section = doms["DEBUG"].find("section", id="evidence")
    assert "No optimization is enabled in the optimized arm." in section.text()
    for card in section.find_all("article", cls="card"):
        assert "disabled" in card.classes
    row = doms["DEBUG"].find("tr", data_criterion="optimizations_effective")
    assert "FAIL" in row.text() and "critical" in row.text()


def test_environment_section_lists_versions_links_runs_and_config(comparisons, doms):
    c, dom = comparisons["GO"], doms["GO"]
    env = dom.find("section", id="environment")
    kv = {
        tr.find("th").text(): tr.find("td").text()
        for tr in env.find("table", cls="env").find_all("tr")
    }
    assert kv["Python"] == c["environment"]["python"]
    assert kv["PyTorch"] == c["environment"]["torch"]
    assert kv["Device"] == c["environment"]["device"]
    assert kv["CPU"] == c["environment"]["cpu"]
    assert kv["GPU"] == (c["environment"]["gpu"] or "n/a")
    assert kv["Threads (parent process)"] == str(c["environment"]["threads"])
    assert kv["Training seed (config)"] == str(c["config"]["training"]["seed"])
    assert kv["Parameters"] == f"{c['num_parameters']:,}"
    assert env.find("pre", cls="command").text() == c["command"]
    hrefs = [a.attrs["href"] for a in env.find("ul", cls="links").find_all("a")]
    assert {"comparison.json", "monitor.log", "checkpoints/"} <= set(hrefs)
    runs = env.find("table", cls="runs").find("tbody").find_all("tr")
    assert len(runs) == len(c["runs"])
    for tr, run in zip(runs, c["runs"], strict=True):
        cells = [td.text() for td in tr.find_all("td")]
        assert cells[0] == str(run["index"]) and cells[1] == run["arm"]
        assert cells[4] == str(run["seed"]) and cells[5] == run["console_encoding"]
        assert cells[6] == str(run["exit_code"])
        assert cells[7] == f"{run['result']['total_time_s']:.2f}"
        assert cells[9] == f"{run['result']['val_loss']:.4f}"


def test_config_yaml_round_trips(comparisons, pages):
    dom = parse(pages["GO"]).root
    text = "\n".join(
        c if isinstance(c, str) else "" for c in dom.find("pre", cls="config").children
    )
    assert yaml.safe_load(text) == comparisons["GO"]["config"]


# ------------------------------------------------------------------------------------------
# Safety: escaping and no network
# ------------------------------------------------------------------------------------------

EVIL = "<script>alert(1)</script>"


def test_user_strings_are_escaped_everywhere(comparisons):
    c = copy.deepcopy(comparisons["GO"])
    c["config_name"] = EVIL
    c["config"]["name"] = EVIL
    c["command"] = f"ryot {EVIL}"
    c["environment"]["cpu"] = EVIL
    c["criteria"][0]["detail"] = EVIL
    c["evidence"]["optimized"][0]["applied"].append(EVIL)
    c["runs"][0]["arm"] = EVIL  # reaches the SVG charts' labels and a relative link
    html = render_report(c)
    built = parse(html)
    assert "script" not in built.start_tags
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert built.root.find(cls="config-name").text() == EVIL  # shown, as text


def test_no_external_requests(pages):
    for html in pages.values():
        built = parse(html)
        for tag, name, value in built.all_attrs:
            if name in ("src", "href", "xlink:href", "action", "poster", "data"):
                assert not value.lower().startswith(("http:", "https:", "//", "javascript:")), (
                    tag,
                    name,
                    value,
                )
        assert not {"script", "img", "link", "iframe", "object", "embed"} & set(built.start_tags)
        lowered = html.lower()
        assert "@import" not in lowered and "url(" not in lowered
        assert "default-src 'none'" in html  # the page forbids any fetch, should one creep in


# ------------------------------------------------------------------------------------------
# Shapes of input the smoke runs do not produce
# ------------------------------------------------------------------------------------------


def test_single_arm_run_says_no_verdict(comparisons):
    c = copy.deepcopy(comparisons["GO"])
    c["runs"] = [r for r in c["runs"] if r["arm"] == "baseline"][:1]
    c["evidence"] = {"baseline": []}
    c.update(
        verdict=None,
        comparison=None,
        confidence_intervals=None,
        noise=None,
        criteria=[],
        optimized=None,
    )
    dom = parse(render_report(c)).root
    banner = dom.find("header", id="verdict")
    assert "none" in banner.classes and "NO VERDICT" in banner.text()
    assert "single-arm run (baseline)" in banner.text()
    assert "No criteria were judged" in dom.find("section", id="criteria").text()
    assert "No speedup estimate" in dom.find("figure", id="chart-speedup").text()
    assert "No comparison" in dom.find("section", id="tables").text()
    assert dom.find("figure", id="chart-loss").find_all("svg")


def test_one_pair_negative_speedup_nulls_and_ablation(comparisons):
    c = copy.deepcopy(comparisons["GO"])
    c["runs"] = c["runs"][:2]
    for run in c["runs"]:
        run["result"]["step_losses"] = run["result"]["step_losses"][:1]
        run["result"]["step_times"] = run["result"]["step_times"][:1]
    c["confidence_intervals"]["speedup"].update(
        median=-0.4, low=None, high=None, n=1, values=[-0.4]
    )
    c["comparison"]["speedup_percent"] = -40.0
    c["criteria"][0].update(measured=-40.0, ci_low=None, ci_high=None)
    c["criteria"][1]["measured"] = None
    c["ablation"] = {
        "kernel": {"total_time": 1.2, "speedup_percent": -12.5, "val_loss": 4.0,
                   "loss_delta": None, "throughput": 100.0},
        "compression": {"total_time": 0.9, "speedup_percent": 10.0, "val_loss": 4.1,
                        "loss_delta": -0.02, "throughput": 120.0},
    }  # fmt: skip
    c["config"]["measurement"]["ablation"] = True
    dom = parse(render_report(c)).root
    speed = dom.find("figure", id="chart-speedup").text()
    assert "median -40.0%" in speed and "CI n/a" in speed
    row = dom.find("tr", data_criterion="speedup")
    assert row.find("td", cls="measured").text() == "-40.0%"
    assert row.find("td", cls="ci").text() == "n/a"
    assert dom.find("tr", data_criterion="loss_match").find("td", cls="measured").text() == "n/a"
    ablation = dom.find("figure", id="chart-ablation")
    text = ablation.find("svg").text()
    assert "-12.5%" in text and "+10.0%" in text and "-0.0200" in text and "n/a" in text
    assert "optimized (all)" in text


def test_crashed_run_and_null_values_render(comparisons):
    c = copy.deepcopy(comparisons["GO"])
    crashed = c["runs"][1]
    crashed.update(result=None, exit_code=3, error="RuntimeError: boom <b>")
    c["runs"][0]["result"]["step_losses"][3] = None  # a NaN becomes null in comparison.json
    c["entropy_floor"] = None
    c["optimized"]["val_loss"] = None
    dom = parse(render_report(c)).root
    row = dom.find("table", cls="runs").find("tbody").find_all("tr")[1]
    assert "row-fail" in row.classes
    assert "RuntimeError: boom <b>" in row.text()  # as text, escaped
    assert dom.find("figure", id="chart-loss").find("svg")
    assert "entropy floor" not in dom.find("figure", id="chart-loss").text()
    rows = dom.find("table", cls="comparison").find("tbody").find_all("tr")
    val = next(tr for tr in rows if tr.find("td").text() == "Validation loss")
    assert [td.text() for td in val.find_all("td")][2] == "n/a"


def test_compile_break_even_is_computed_from_step_times(comparisons):
    c = copy.deepcopy(comparisons["GO"])
    kernel = next(e for e in c["evidence"]["optimized"] if e["name"] == "kernel")
    kernel["measurements"].update(
        frames_compiled=2, recompiles=1, graph_breaks=0, compile_seconds=12.5
    )

    def median_step(arm):
        return statistics.median(
            t for r in c["runs"] if r["arm"] == arm for t in r["result"]["step_times"]
        )

    saved = median_step("baseline") - median_step("optimized")
    text = parse(render_report(c)).root.find("article", data_optimization="kernel").text()
    assert "Compiled graphs 2" in text and "Recompiles 1" in text and "12.50 s" in text
    if saved > 0:
        assert f"after {math.ceil(12.5 / saved):,} steps" in text
    else:
        assert "never at this step time" in text
    # A slower optimized arm never recovers its compile time.
    for run in c["runs"]:
        if run["arm"] == "optimized":
            run["result"]["step_times"] = [t * 10 for t in run["result"]["step_times"]]
    text = parse(render_report(c)).root.find("article", data_optimization="kernel").text()
    assert "never at this step time" in text


def test_pytest_outcomes_and_benchmarks_are_shown(comparisons):
    c = copy.deepcopy(comparisons["GO"])
    c["tests"] = {
        f"validation/test_stage3a.py::test_criterion[{row['id']}]": "passed"
        for row in c["criteria"]
    }
    c["tests"]["validation/test_stage3a.py::test_criterion[memory]"] = "failed"
    c["tests"]["validation/test_stage3a.py::test_step_speed[optimized]"] = "passed"
    c["benchmarks"] = [
        {
            "name": "test_step_speed[optimized]",
            "group": "step",
            "extra_info": {"arm": "optimized"},
            "stats": {
                "min": 0.00125,
                "max": 0.0031,
                "mean": 0.0015,
                "median": 0.0014,
                "stddev": 0.0002,
                "rounds": 40,
            },
        }
    ]
    dom = parse(render_report(c)).root
    assert "passed" in dom.find("tr", data_criterion="speedup").find("td", cls="test").text()
    assert "failed" in dom.find("tr", data_criterion="memory").find("td", cls="test").text()
    section = dom.find("section", id="criteria")
    assert "outcomes recorded with this run: 1 failed, 8 passed." in section.text()
    others = section.find("table", cls="other-tests").find("tbody").find_all("tr")
    assert [tr.text() for tr in others] == [
        "validation/test_stage3a.py::test_step_speed[optimized] passed"
    ]
    bench = dom.find("section", id="benchmarks").find("tbody").find_all("tr")
    cells = [td.text() for td in bench[0].find_all("td")]
    assert cells == [
        "test_step_speed[optimized]",
        "step",
        "1.25 ms",
        "3.10 ms",
        "1.50 ms",
        "1.40 ms",
        "200.00 µs",
        "40",
        'arm="optimized"',
    ]
    assert not parse(render_report(comparisons["GO"])).root.find_all("section", id="benchmarks")


# ------------------------------------------------------------------------------------------
# Files: render_run_dir, history, errors
# ------------------------------------------------------------------------------------------


def test_cli_run_wrote_its_report(run_dirs):
    for status, folder in run_dirs.items():
        report = folder / "report.html"
        assert report.is_file(), status
        assert status in parse(report.read_text(encoding="utf-8")).root.find(cls="status").text()


def test_render_run_dir_and_history(run_dirs, tmp_path):
    first, second = tmp_path / "a-first", tmp_path / "b-second"
    for folder, status in ((first, "GO"), (second, "INVESTIGATE")):
        folder.mkdir()
        shutil.copy(run_dirs[status] / "comparison.json", folder / "comparison.json")
    lone = tmp_path / "alone" / "run"
    lone.mkdir(parents=True)
    shutil.copy(run_dirs["DEBUG"] / "comparison.json", lone / "comparison.json")

    path = render_run_dir(lone)
    assert path == lone / "report.html" and path.is_file()
    assert not list(lone.glob(".report.html.*"))  # the temp file was renamed, not left behind
    history = parse(path.read_text(encoding="utf-8")).root.find("section", id="history")
    assert "no earlier runs found" in history.text()
    assert not history.find_all("svg")

    render_run_dir(first)
    path = render_run_dir(second)
    history = parse(path.read_text(encoding="utf-8")).root.find("section", id="history")
    assert history.find("figure", id="chart-history").find("svg")
    rows = history.find("tbody").find_all("tr")
    assert len(rows) == 2  # the earlier run, and this one
    assert "../a-first/comparison.json" in history.text()
    assert "current" in rows[-1].classes  # INVESTIGATE ran after GO: it is the newer one

    # history_dirs adds folders that are not siblings.
    path = render_run_dir(lone, history_dirs=[first])
    history = parse(path.read_text(encoding="utf-8")).root.find("section", id="history")
    assert history.find_all("svg") and "1 earlier run(s)" in history.text()


def test_missing_or_invalid_comparison_is_a_one_line_report_error(tmp_path):
    with pytest.raises(ReportError) as info:
        render_run_dir(tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "comparison.json") in message
    assert isinstance(info.value, ValueError)

    (tmp_path / "comparison.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ReportError, match="comparison.json") as info:
        render_run_dir(tmp_path)
    assert "\n" not in str(info.value)

    (tmp_path / "comparison.json").write_text('{"stage": "3a"}', encoding="utf-8")
    with pytest.raises(ReportError, match="missing") as info:
        render_run_dir(tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "report.html").exists()


# ------------------------------------------------------------------------------------------
# A real browser
# ------------------------------------------------------------------------------------------


def _chromium() -> str | None:
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def test_chromium_renders_the_go_report(run_dirs, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    report = render_run_dir(run_dirs["GO"])
    png = tmp_path / "go.png"
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2400",
        "--enable-logging=stderr",
        "--v=0",
        f"--screenshot={png}",
        report.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=120, cwd=tmp_path)
    log = proc.stderr.decode("utf-8", "replace") + proc.stdout.decode("utf-8", "replace")
    assert png.is_file(), log[-3000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2400)
    assert len(data) > 50_000, "the screenshot is nearly empty"
    bad = [line for line in log.splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line]
    assert not bad, bad
