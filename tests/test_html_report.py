"""`workflow report`: the honesty numbers by hand, and the page in a real browser (headless Chromium, offline)."""

import json
import math
import re
import shutil

import pytest

from tests.conftest import write
from tests.test_campaign import ORACLE, SMILES
from workflow.campaign.config import load_campaign
from workflow.campaign.engine import CampaignRunner, store_path
from workflow.campaign.store import Store
from workflow.dispatch.evaluators import OracleEvaluator
from workflow.results.html_report import honesty, predictions, write_report


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished oracle campaign (refractive index maximised, Cp minimised) and its report."""
    tmp = tmp_path_factory.mktemp("report")
    write(tmp / "pool.csv", "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(SMILES)))
    write(tmp / "oracle.csv", ORACLE)
    camp = load_campaign(write(tmp / "c.yaml", "name: seen\npool: pool.csv\n"
                               "objectives: {refractive_index: maximize, Cp: minimize}\ninitial_size: 6\n"
                               "batch_size: 4\ncycles: 4\nseed: 3\noracle: {table: oracle.csv}\n"))
    CampaignRunner(camp, tmp / "runs").run(OracleEvaluator(camp.oracle))
    store = Store(store_path(tmp / "runs", "seen"), readonly=True)
    return tmp, store, write_report(store, "seen", tmp / "report.html")


def test_honesty_coverage_matches_a_hand_computation_from_the_store(finished):
    _, store, _ = finished
    by_hand = {"refractive_index": [], "Cp": []}
    results = {(r["polymer_id"], r["cycle"]): json.loads(r["objectives"]) for r in store.results()}
    for c in store.cycles():
        if c["predicted_mean"] is None or (c["polymer_id"], c["cycle"]) not in results:
            continue
        mean, sd = json.loads(c["predicted_mean"]), json.loads(c["predicted_std"])
        y = results[(c["polymer_id"], c["cycle"])]
        by_hand["refractive_index"].append((y["refractive_index"] - mean[0]) / sd[0])
        by_hand["Cp"].append((y["Cp"] - -mean[1]) / sd[1])  # minimised: stored in maximisation form
    stats = {h.objective: h for h in honesty(predictions(store))}
    for name, z in by_hand.items():
        assert stats[name].n == len(z) == 16  # 4 model-based cycles of 4
        assert stats[name].inside_68 == pytest.approx(sum(abs(v) <= 1 for v in z) / len(z))
        assert stats[name].inside_95 == pytest.approx(sum(abs(v) <= 1.959963984540054 for v in z) / len(z))
        mean = sum(z) / len(z)
        assert stats[name].z_mean == pytest.approx(mean)
        assert stats[name].z_sd == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in z) / len(z)))


def test_the_report_is_one_file_that_needs_no_network(finished):
    _, store, path = finished
    text = path.read_text()
    assert "<script src=" not in text and "cdn.bokeh.org" not in text  # Bokeh's scripts are inline
    assert text.count("data:image/svg+xml;base64,") >= len(store.results())  # a drawing per evaluated polymer
    for needle in ("The surrogate's honesty", "Jobs", "Provenance", str(store.path)):
        assert needle in text


def chromium_problem() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if shutil.which("chromium") is None:
        return "no chromium here (Debian's chromium package; .ci/run installs it as root)"
    return None


POINT = """() => {
  const doc = Bokeh.documents[0];
  const plot = doc.get_model_by_name('objective-plane');
  const src = doc.get_model_by_name('evaluated');
  function find(v) { if (v.model === plot) return v;
    for (const c of (v.child_views ?? [])) { const f = find(c); if (f) return f; } return null; }
  let pv = null;
  for (const v of Object.values(Bokeh.index)) { pv = find(v); if (pv) break; }
  const i = src.data.label.length - 1;
  const rect = pv.canvas_view.el.getBoundingClientRect();
  return {n: src.get_length(), label: src.data.label[i],
          sx: rect.left + pv.frame.x_scale.compute(src.data.x[i]), sy: rect.top + pv.frame.y_scale.compute(src.data.y[i])};
}"""


@pytest.mark.skipif(chromium_problem() is not None, reason=str(chromium_problem()))
def test_the_report_in_headless_chromium_offline_plots_every_polymer_and_hovers(finished):
    from playwright.sync_api import sync_playwright

    tmp, store, path = finished
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_context(viewport={"width": 1000, "height": 1000}, offline=True).new_page()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && "
                               "Object.keys(Bokeh.index).length > 0")
        point = page.evaluate(POINT)
        job_dir = re.compile(rf"jobs/\d{{5}}_{point['label']}$")  # shown by the hover label only
        before = page.get_by_text(job_dir).count()
        page.mouse.move(point["sx"], point["sy"])
        page.wait_for_timeout(500)
        label = page.get_by_text(job_dir)
        shown = label.count()
        tooltip = label.first.locator("xpath=..").inner_text() if shown else ""
        page.screenshot(path=str(tmp / "report.png"))
        browser.close()
    assert point["n"] == len(store.results())
    assert before == 0 and shown == 1
    assert point["label"] in tooltip and "cycle" in tooltip and "refractive_index" in tooltip
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), requests
    assert (tmp / "report.png").stat().st_size > 10_000


@pytest.mark.slow  # a real driver, a minute
@pytest.mark.skipif(chromium_problem() is not None, reason=str(chromium_problem()))
def test_the_live_report_reloads_in_chromium_and_shows_a_result_ingested_after_it_was_opened(tmp_path):
    """Issue 39, item 2: a running campaign rewrites runs/NAME/report.html after each result (atomically) and the
    page reloads itself; the final page does not."""
    import subprocess
    import sys
    import time

    from playwright.sync_api import sync_playwright

    write(tmp_path / "pool.csv", "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(SMILES)))
    write(tmp_path / "oracle.csv", ORACLE)
    write(tmp_path / "c.yaml", "name: live\npool: pool.csv\nobjectives: {refractive_index: maximize, Cp: maximize}\n"
                               "initial_size: 3\nbatch_size: 2\ncycles: 2\nseed: 3\n"
                               "oracle: {table: oracle.csv, duration_s: [4, 4], threads: 1}\n"
                               "driver: {live_report: true, live_report_reload_s: 1, poll_s: 0.5}\n")
    driver = subprocess.Popen([sys.executable, "-m", "workflow.cli", "run", str(tmp_path / "c.yaml"), "--runs",
                               str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    page_file = tmp_path / "runs" / "live" / "report.html"
    try:
        t0 = time.time()
        while not page_file.exists():
            assert driver.poll() is None and time.time() - t0 < 120, driver.communicate()
            time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                        args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_context(offline=True).new_page()
            page.goto(page_file.as_uri())
            first = int(page.locator("#evaluated").inner_text().split()[0])
            assert "reloads every 1 s" in page.content()
            later, t1 = first, time.time()
            while later <= first and time.time() - t1 < 120:  # the page reloads itself: no goto, no reload call
                page.wait_for_timeout(500)
                shown = page.locator("#evaluated")  # Bokeh renders the Div in a shadow root: a locator pierces it
                later = int(shown.inner_text().split()[0]) if shown.count() else later
            browser.close()
        assert later > first
    finally:
        out, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, out
    final = page_file.read_text()
    assert 'http-equiv="refresh"' not in final and "7 evaluated" in final  # 3 + 2 x 2, written at the end
