"""Drive the studio in Debian's headless Chromium through Selenium (the browser tests, the latency
benchmark and the README screenshots). The driver is the system's chromedriver, named explicitly,
so Selenium never downloads a browser or a driver."""
from __future__ import annotations

import base64
import os
import shutil
import time
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("FACEGEN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FACEGEN_CHROMEDRIVER", "/usr/bin/chromedriver")
APT_HINT = "apt-get install chromium chromium-driver"


def missing() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)) and not shutil.which(path):
            return f"{path} not found ({APT_HINT})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def chromium(download_dir: Path | None = None, width: int = 1400, height: int = 1000) -> Any:
    """A headless Chromium WebDriver; downloads land in `download_dir`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", "--autoplay-policy=no-user-gesture-required",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    if download_dir:
        options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                                  "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    if download_dir:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    driver.set_script_timeout(60)
    return driver


def wait_for(driver: Any, script: str, timeout: float = 60.0, *args: Any) -> Any:
    """Poll `return ...` JavaScript until it gives something truthy; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for: {script}")
        time.sleep(0.05)


def open_studio(driver: Any, url: str, page: str = "explore") -> None:
    """Load the studio at `page` and wait until it has drawn its first grid."""
    driver.get(f"{url}#{page}")
    wait_for(driver, "return document.body.dataset.ready === '1'")


def image_bytes(driver: Any, element: Any) -> bytes:
    """The bytes behind an <img>'s current src (data:, blob: or an API URL), fetched inside the page."""
    src = element.get_attribute("src")
    if src.startswith("data:"):
        return base64.b64decode(src.split(",", 1)[1])
    encoded = driver.execute_async_script("""
        const [img, done] = arguments;
        fetch(img.src).then((r) => r.arrayBuffer()).then((buf) => {
          let s = ""; for (const b of new Uint8Array(buf)) s += String.fromCharCode(b); done(btoa(s));
        }).catch((e) => done("error:" + e));
    """, element)
    if encoded.startswith("error:"):
        raise RuntimeError(encoded)
    return base64.b64decode(encoded)


def set_slider(driver: Any, element: Any, value: float) -> None:
    """Move a range input the way a drag does: set the value, fire `input`."""
    driver.execute_script("arguments[0].value = arguments[1];"
                          "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", element, value)


def goto(driver: Any, page: str) -> None:
    """Click a page's tab in the navigation and wait until that page shows."""
    driver.find_element("css selector", f"#nav a[data-page={page}]").click()
    wait_for(driver, f"return !document.getElementById('page-{page}').hidden")


def open_seed(driver: Any, seed: int) -> str:
    """Open `seed` from Explore's seed box; returns the new face's id once it is in the tray."""
    goto(driver, "explore")
    count = driver.execute_script("return studio.state.faces.length")
    box = driver.find_element("id", "explore-seed")
    box.clear()
    box.send_keys(str(seed))
    driver.find_element("id", "explore-go").click()
    wait_for(driver, "return studio.state.faces.length > arguments[0]", 120, count)
    return driver.execute_script("return studio.state.current")


def settled(driver: Any, image_id: str, timeout: float = 120.0) -> None:
    """Wait until a live image shows the answer to its newest request."""
    wait_for(driver, "const i = document.getElementById(arguments[0]);"
                     "return i.dataset.want && i.dataset.seq === i.dataset.want", timeout, image_id)
