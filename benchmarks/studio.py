"""Studio latency, measured in the browser: from a slider's `input` event to the new face's `load` event.

    python -m benchmarks.studio [--network default] [--changes 60] [--drag 40] [--quick]

Starts `facegen studio` in its own process, opens it in headless Chromium, opens seed 0 in Edit
and moves one SeFa slider: `--changes` single changes (each waits for its face, then 100 ms), then
a drag of `--drag` changes 16 ms apart (a 60 Hz pointer; WebDriver makes them slower), counting the
faces shown, the server's renders and drops, and the positions the page never sent (superseded while
a request was in flight). `--quick`: 3 changes and a drag of 5.
Prints one JSON object; the machine and its load go with it, since the CPU is shared.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np

from benchmarks import harness
from facegen_cli.studio import browser

RUN = [sys.executable, "-c", "from facegen_cli.cli.main import main; main()"]


def quick_needs() -> str | None:
    return browser.missing()


def percentiles(values: list[float]) -> dict:
    arr = np.asarray(values, np.float64)
    return {"median_ms": round(float(np.median(arr)), 1), "p95_ms": round(float(np.percentile(arr, 95)), 1),
            "min_ms": round(float(arr.min()), 1), "max_ms": round(float(arr.max()), 1), "count": len(values)}


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--network", default="default")
    parser.add_argument("--changes", type=int, default=60)
    parser.add_argument("--drag", type=int, default=40)
    args = parser.parse_args()
    if args.quick:
        args.changes, args.drag = 3, 5
    load_before = harness.load_average()
    server = subprocess.Popen([*RUN, "studio", "--network", args.network, "--port", "0"], stdout=subprocess.PIPE,
                              text=True)
    driver = None
    try:
        url = server.stdout.readline().strip()
        if not url:
            raise SystemExit(f"the studio did not start (exit code {server.wait()})")
        driver = browser.chromium()
        browser.open_studio(driver, url)
        driver.find_element("css selector", "#explore-grid img[data-seed='0']").click()
        browser.wait_for(driver, "return studio.state.faces.length === 1")
        browser.goto(driver, "edit")
        browser.wait_for(driver, "return studio.shown === 1")
        slider = driver.find_element("css selector", "#edit-sliders input[data-direction='sefa-00']")
        for warm in (0.5, 0.0):
            shown = driver.execute_script("return studio.shown")
            browser.set_slider(driver, slider, warm)
            browser.wait_for(driver, "return studio.shown > arguments[0]", 60, shown)
        driver.execute_script("studio.latencies = []; studio.serverMs = [];")
        values = [round(v, 1) for v in np.concatenate([np.arange(0.1, 3.01, 0.1), np.arange(2.9, -3.01, -0.1)])]
        for i in range(args.changes):
            shown = driver.execute_script("return studio.shown")
            browser.set_slider(driver, slider, values[i % len(values)])
            browser.wait_for(driver, "return studio.shown > arguments[0]", 60, shown)
            time.sleep(0.1)
        single = driver.execute_script("return [studio.latencies, studio.serverMs]")
        tab = driver.execute_script("return sessionStorage.getItem('facegen-tab')")
        before = driver.execute_async_script(
            "fetch(`/api/t/${arguments[0]}/stats`).then((r) => r.json()).then(arguments[1])", tab)
        shown = driver.execute_script("studio.latencies = []; return studio.shown")
        start = time.perf_counter()
        for i in range(args.drag):
            browser.set_slider(driver, slider, round(-2 + 4 * i / max(1, args.drag - 1), 2))
            time.sleep(0.016)
        drag_s = time.perf_counter() - start
        browser.wait_for(driver, "const img = document.getElementById('edit-img');"
                                 "return img.dataset.seq === img.dataset.want", 120)
        settle_s = time.perf_counter() - start - drag_s
        after = driver.execute_async_script(
            "fetch(`/api/t/${arguments[0]}/stats`).then((r) => r.json()).then(arguments[1])", tab)
        drawn = driver.execute_script("return studio.shown") - shown
        renders, dropped = after["renders"] - before["renders"], after["dropped"] - before["dropped"]
        result = {
            "network": args.network, "load": {"before": load_before, "after": harness.load_average()},
            "single_changes": {"browser": percentiles(single[0]), "server": percentiles(single[1])},
            "drag": {"changes": args.drag, "seconds": round(drag_s, 2), "faces_shown": drawn,
                     "last_face_after_s": round(settle_s, 3),
                     "server_renders": renders, "server_dropped": dropped, "never_sent": args.drag - renders - dropped},
        }
        harness.write([{**result, "machine": harness.machine()}], args.out)
    finally:
        if driver is not None:
            driver.quit()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
