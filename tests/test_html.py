"""`lstm-vg report PATH --format html`: one self-contained page with the report's table, the
claims and their verdicts, every figure `plot` draws, the configs and the versions; checked by
parsing it and by loading it in headless Chromium (skipped where Chromium is not installed)."""

import base64
import contextlib
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from helpers import DIAGNOSTICS, TINY, invoke
from test_results import write_single

DESCRIPTION = 'tiny <script>alert("x")</script> & RNN vs LSTM'
CLAIMS = ["max(steps | cell=lstm) == 20", "min(final_eval_loss) > 1000"]  # holds, fails
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    """A tiny experiment reproduced by the real CLI: the LSTM (one cell and one seed: compiling is
    most of the time), every diagnostic, so that every kind of figure is drawn."""
    root = tmp_path_factory.mktemp("html")
    diagnostics = yaml.safe_load(DIAGNOSTICS.split("=", 1)[1])
    (root / "tinyhtml.yaml").write_text(yaml.safe_dump({
        "name": "tinyhtml", "description": DESCRIPTION, "claims": CLAIMS,
        "configs": [{"base": str(TINY), "name": "small", "seeds": 1, "sweep": {"model.cell": ["lstm"]},
                     "log": {"diagnostics": diagnostics}}],
    }))
    result = invoke("reproduce", root / "tinyhtml.yaml", "--out", root / "out")
    assert result.exit_code == 1, result.output  # the second claim fails, on purpose
    return root / "out" / "tinyhtml"


@pytest.fixture(scope="module")
def page(experiment) -> Path:
    out = experiment.parent / "report.html"
    result = invoke("report", experiment, "--format", "html", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    return out


class Elements(HTMLParser):
    """Every element of a page: (tag, attrs, text content, parent index), in document order."""

    VOID = {"meta", "img", "link", "br", "hr", "input", "source"}

    def __init__(self, text: str):
        super().__init__()
        self.elements, self.open = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs), [], self.open[-1] if self.open else None))
        if tag not in self.VOID:
            self.open.append(len(self.elements) - 1)

    def handle_endtag(self, tag):
        while self.open and self.elements[self.open.pop()][0] != tag:
            pass

    def handle_data(self, data):
        for index in self.open:
            self.elements[index][2].append(data)

    def all(self, tag: str) -> list[tuple[int, dict, str]]:
        return [(i, attrs, "".join(text)) for i, (t, attrs, text, _) in enumerate(self.elements) if t == tag]

    def rows(self, table: int) -> list[list[str]]:
        """The cell texts of each row of the table at element index `table`."""
        def inside(i):
            while i is not None and i != table:
                i = self.elements[i][3]
            return i == table
        rows = [i for i, _, _ in self.all("tr") if inside(i)]
        return [["".join(self.elements[c][2]) for c, e in enumerate(self.elements)
                 if e[3] == r and e[0] in ("td", "th")] for r in rows]


def test_the_page_is_one_file_that_loads_nothing(page):
    text = page.read_text()
    elements = Elements(text)
    assert not elements.all("script") and not elements.all("link") and not elements.all("iframe")
    for _, attrs, _ in elements.all("img"):
        assert attrs["src"].startswith("data:image/png;base64,")
    assert all(attrs["href"].startswith("#") for _, attrs, _ in elements.all("a"))
    assert "url(" not in "".join(t for _, _, t in elements.all("style"))
    [policy] = [a["content"] for _, a, _ in elements.all("meta")
                if a.get("http-equiv") == "Content-Security-Policy"]
    assert policy.startswith("default-src 'none'")
    for tag, attrs, _, _ in elements.elements:
        for value in attrs.values():
            assert not (value or "").startswith(("http://", "https://", "//")), (tag, value)


def test_the_page_holds_the_markdown_report_row_for_row(page, experiment):
    markdown = invoke("report", experiment)
    assert markdown.exit_code == 0, markdown.output
    expected = [[c.strip() for c in line.strip().strip("|").split(" | ")]
                for line in markdown.stdout.splitlines() if not line.startswith("| :--")]
    elements = Elements(page.read_text())
    first_table = elements.all("table")[0][0]
    assert elements.rows(first_table) == expected
    assert [row[:2] for row in expected[1:]] == [["small", "lstm"]]


def test_the_page_shows_each_claim_with_its_verdict(page):
    elements = Elements(page.read_text())
    claims = next(i for i, _, _ in elements.all("table")
                  if elements.rows(i)[0] == ["claim", "measured", "verdict"])
    rows = elements.rows(claims)[1:]
    assert [(row[0], row[2]) for row in rows] == [(CLAIMS[0], "holds"), (CLAIMS[1], "FAILS")]
    assert rows[0][1] == "20 == 20" and rows[1][1].endswith("> 1000")
    assert "1 of 2 claims hold." in [t for _, _, t in elements.all("p")]


def test_the_page_embeds_every_figure_plot_writes_with_the_same_pixels(page, experiment, tmp_path):
    plotted = invoke("plot", experiment, "--out", tmp_path)
    assert plotted.exit_code == 0, plotted.output
    files = {p.stem: p.read_bytes() for p in tmp_path.glob("*.png")}
    assert {"small_gradient-decay", "small_spectrum", "small_connectivity", "small_timescales"} <= set(files)
    images = {attrs["alt"]: attrs["src"] for _, attrs, _ in Elements(page.read_text()).all("img")}
    assert set(images) == set(files)
    for name, src in images.items():
        assert base64.b64decode(src.removeprefix("data:image/png;base64,")) == files[name], name


def test_a_clone_without_the_arrays_shows_the_figures_plot_saved(experiment, tmp_path):
    """results/reproduced/ is tracked without gradients.npz and dynamics.npz: the figures drawn
    from them come from the PNGs `plot` saved in plots/, byte for byte, captioned as saved."""
    clone = tmp_path / experiment.name
    shutil.copytree(experiment, clone)
    assert invoke("plot", clone).exit_code == 0
    saved = {p.stem: p.read_bytes() for p in clone.glob("*/plots/*.png")}
    for array in [*clone.rglob("gradients.npz"), *clone.rglob("dynamics.npz")]:
        array.unlink()
    out = tmp_path / "report.html"
    assert invoke("report", clone, "--format", "html", "--out", out).exit_code == 0
    elements = Elements(out.read_text())
    images = {attrs["alt"]: attrs["src"] for _, attrs, _ in elements.all("img")}
    assert set(images) == set(saved)
    captions = {caption for _, _, caption in elements.all("figcaption")}
    assert "small_learning-curves" in captions  # metrics.csv is there: drawn now, as before
    for name in ("small_gradient-decay", "small_spectrum"):
        assert base64.b64decode(images[name].removeprefix("data:image/png;base64,")) == saved[name]
        assert any(c.startswith(f"{name} (saved by lstm-vg plot as plots/{name}.png") for c in captions)


def test_the_page_holds_each_runs_config_and_the_versions(page, experiment):
    elements = Elements(page.read_text())
    configs = [yaml.safe_load(text) for _, _, text in elements.all("pre")]
    for run in sorted(experiment.glob("small/*/config.yaml")):
        assert yaml.safe_load(run.read_text()) in configs, run  # one seed: the group's config is the run's
    summaries = [t for _, _, t in elements.all("summary")]
    assert summaries == ["cell=lstm · seeds [0]"]
    meta = json.loads((experiment / "small" / "cell=lstm,seed=0" / "meta.json").read_text())
    environment = elements.rows(elements.all("table")[-1][0])
    assert environment[0][:3] == ["lstm_vg", "jax", "jaxlib"] and environment[0][-1] == "runs"
    shown = ("lstm_vg", "jax", "jaxlib", "optax", "python", "platform", "device_kind", "host_cpu", "devices")
    assert environment[1] == [str(meta[k]) for k in shown] + ["1"]


def test_text_is_escaped(page):
    text = page.read_text()
    assert "<script>" not in text
    assert "tiny &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; RNN vs LSTM" in text
    assert [t for _, _, t in Elements(text).all("p")][0] == DESCRIPTION


def test_without_out_the_page_goes_to_stdout_and_without_claims_there_is_no_claims_section(tmp_path):
    folder = write_single(tmp_path, seeds=(0,))  # written results, no experiment.yaml
    result = invoke("report", folder, "--format", "html")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<!DOCTYPE html>") and result.stdout.rstrip().endswith("</html>")
    assert 'id="claims"' not in result.stdout and 'alt="single_gradient-decay"' in result.stdout


def test_out_writes_any_format_as_stdout_shows_it(tmp_path):
    folder = write_single(tmp_path, seeds=(0,))
    file = tmp_path / "tables" / "report.csv"  # its folder is made
    written = invoke("report", folder, "--format", "csv", "--out", file)
    assert written.exit_code == 0 and written.stdout.strip() == str(file)
    assert file.read_text() == invoke("report", folder, "--format", "csv").stdout


def test_on_a_terminal_without_out_it_asks_for_out_in_one_line(tmp_path):
    """A page of megabytes is no terminal output: exit 2 before reading anything."""
    leader, follower = pty.openpty()
    command = [sys.executable, "-c", "from lstm_vg.cli import main; main()", "report", str(tmp_path),
               "--format", "html"]
    process = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=subprocess.PIPE)
    _, stderr = process.communicate(timeout=60)
    os.close(follower)
    os.close(leader)
    assert process.returncode == 2
    assert stderr.decode().strip() == ("error: --format html: a whole page, not for a terminal; give --out "
                                       "FILE (e.g. --out report.html) or redirect stdout")


def test_the_html_report_loads_neither_jax_nor_optax(tmp_path):
    folder = write_single(tmp_path, seeds=(0,))
    (folder / "experiment.yaml").write_text("claims:\n  - count(solved) >= 0\n")  # as reproduce saves it
    check = ("import sys; from lstm_vg.cli import app; app(sys.argv[1:], standalone_mode=False); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'optax')))")
    done = subprocess.run([sys.executable, "-c", check, "report", str(folder), "--format", "html",
                           "--out", str(tmp_path / "r.html")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    assert "1 of 1 claims hold." in (tmp_path / "r.html").read_text()


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    folder = write_single(tmp_path, seeds=(0,))
    (tmp_path / "file").write_text("")
    (tmp_path / "nothing").mkdir()
    result = invoke("report", folder, "--format", "html", "--out", tmp_path / "file" / "report.html")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "report.html: cannot write the report" in result.output
    empty = invoke("report", tmp_path / "nothing", "--format", "html", "--out", tmp_path / "r.html")
    assert empty.exit_code == 2 and "no runs found" in empty.output and not (tmp_path / "r.html").exists()


# ---- in a real browser ---------------------------------------------------------------------------

def above_9(fd: int) -> int:
    """The same pipe end as a descriptor ≥ 10 (the one given is closed)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


# argv: FD FD PROGRAM ARGS…: run PROGRAM with the two descriptors as its 3 and 4 (a Python
# trampoline: dash's `3<&N` takes one digit only, and preexec_fn is unsafe once JAX runs threads).
ON_FDS_3_AND_4 = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
                  "os.execv(sys.argv[3], sys.argv[3:])")


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
    JSON messages ending in NUL, commands on its fd 3, replies and events on its fd 4)."""

    FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--remote-debugging-pipe")

    def __init__(self, profile: Path, timeout_seconds: float = 60):
        commands, self.commands = os.pipe()
        self.replies, replies = os.pipe()
        commands, replies = above_9(commands), above_9(replies)  # so that dup2 onto 3, 4 cannot clash
        self.process = subprocess.Popen(
            [sys.executable, "-c", ON_FDS_3_AND_4, str(commands), str(replies), CHROMIUM, *self.FLAGS,
             f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(commands, replies), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        os.close(commands)
        os.close(replies)
        self.deadline = time.monotonic() + timeout_seconds
        self.buffer, self.events, self.last_id = b"", [], 0

    def receive(self) -> dict:
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.replies], [], [], max(0.0, self.deadline - time.monotonic()))
            chunk = os.read(self.replies, 1 << 20) if ready else b""
            assert chunk, "chromium timed out or quit"
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params} | (
            {"sessionId": session} if session else {})
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while (reply := self.receive()).get("id") != self.last_id:
            self.events.append(reply)
        assert "error" not in reply, reply
        return reply["result"]

    def wait_for(self, method: str) -> None:
        while not any(event.get("method") == method for event in self.events):
            self.events.append(self.receive())

    def close(self) -> None:
        """Ask it to quit; kill its process group (renderers included) if it does not."""
        with contextlib.suppress(OSError, AssertionError, subprocess.TimeoutExpired):
            self.send("Browser.close")
            self.process.wait(timeout=10)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        os.close(self.commands)
        os.close(self.replies)


# Each image decoded (its promise rejects on broken data), with its size and its laid-out width.
IMAGES = """Promise.all([...document.images].map(image => image.decode().then(
  () => [image.alt, image.complete, image.naturalWidth, image.getBoundingClientRect().width],
  error => [image.alt, false, 0, String(error)])))"""


def console_errors(events: list[dict]) -> list:
    """Errors the page logged: console.error, uncaught exceptions, blocked or failed loads."""
    return [e["params"] for e in events
            if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install "
                    "chromium); the browser check of the HTML report needs it")
def test_chromium_renders_every_figure_without_console_errors(page, tmp_path):
    figures = [attrs["alt"] for _, attrs, _ in Elements(page.read_text()).all("img")]
    browser = Chromium(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session)
        browser.send("Page.navigate", session, url=page.as_uri())
        browser.wait_for("Page.loadEventFired")
        images = browser.send("Runtime.evaluate", session, expression=IMAGES, awaitPromise=True,
                              returnByValue=True)["result"]["value"]
    finally:
        browser.close()
    assert [alt for alt, *_ in images] == figures and len(figures) >= 6
    for alt, complete, natural_width, width in images:
        assert complete and natural_width > 0 and width > 0, (alt, complete, natural_width, width)
    assert console_errors(browser.events) == []
