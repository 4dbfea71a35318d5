"""The demo page in headless Chromium: upload a photo, paint a stroke, run, check the result.

Needs Debian's `chromium` and `chromium-driver` packages and the `selenium` pip package; skipped
with the reason otherwise. The server runs `--method telea` in a subprocess on a free loopback
port; Chromium gets a fresh profile and no background networking.
"""

import base64
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install selenium)")
if not (CHROMIUM and CHROMEDRIVER):
  pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver)",
              allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_url():
  proc = subprocess.Popen([sys.executable, "-m", "flowinpaint.serve", "--method", "telea",
                           "--host", "127.0.0.1", "--port", "0"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  try:
    line = proc.stdout.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
    assert m, f"the server did not start: {line!r}"
    yield m.group(1)
  finally:
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
  profile = tempfile.mkdtemp(prefix="flowinpaint-chromium-")
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic",
               f"--user-data-dir={profile}", "--window-size=1200,900"):
    options.add_argument(flag)
  service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
  driver = webdriver.Chrome(service=service, options=options)
  try:
    yield driver
  finally:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _data_url_to_array(url: str) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_paint_run_compare_download(server_url, browser, tmp_path):
  h, w = 240, 320
  yy, xx = np.mgrid[0:h, 0:w]
  rgb = np.stack([xx * 255 // w, yy * 255 // h, ((xx // 16 + yy // 16) % 2) * 255],
                 -1).astype(np.uint8)
  path = tmp_path / "photo.png"
  Image.fromarray(rgb).save(path)

  browser.set_script_timeout(30)
  browser.get(server_url)
  wait = WebDriverWait(browser, 60)
  browser.find_element(By.ID, "file").send_keys(str(path))
  wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") ==
             "ready")
  overlay = browser.find_element(By.ID, "overlay")
  assert (overlay.get_attribute("width"), overlay.get_attribute("height")) == ("320", "240")
  # A horizontal stroke across the middle of the displayed image.
  rect = browser.execute_script(
      "const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", overlay)
  ActionChains(browser).move_to_element_with_offset(overlay, int(-rect[0] * 0.25), 0) \
      .click_and_hold().move_by_offset(int(rect[0] * 0.15), 5) \
      .move_by_offset(int(rect[0] * 0.15), -5).release().perform()
  assert browser.find_element(By.ID, "run").is_enabled()
  mask = _data_url_to_array(browser.execute_script("return window.flowinpaint.maskDataURL()"))
  hole = mask[..., :3].max(-1) > 127
  assert mask.shape[:2] == (h, w) and 500 < hole.sum() < h * w // 4
  assert hole[h // 2, w // 2]  # the stroke passes through the centre
  # Undo removes the stroke, a second stroke-free mask is empty; redraw for the run.
  browser.find_element(By.ID, "undo").click()
  empty = _data_url_to_array(browser.execute_script("return window.flowinpaint.maskDataURL()"))
  assert empty[..., :3].max() == 0 and not browser.find_element(By.ID, "run").is_enabled()
  ActionChains(browser).move_to_element_with_offset(overlay, int(-rect[0] * 0.25), 0) \
      .click_and_hold().move_by_offset(int(rect[0] * 0.15), 5) \
      .move_by_offset(int(rect[0] * 0.15), -5).release().perform()

  browser.find_element(By.ID, "run").click()
  wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in (
      "done", "error"))
  body = browser.find_element(By.TAG_NAME, "body")
  assert body.get_attribute("data-state") == "done", browser.find_element(By.ID, "status").text
  # Fetch what the download link holds (the result PNG) as the page sees it.
  href = browser.find_element(By.ID, "download").get_attribute("href")
  assert href.startswith("blob:")
  data_url = browser.execute_async_script("""
      const done = arguments[arguments.length - 1];
      fetch(arguments[0]).then(r => r.blob()).then(b => {
        const fr = new FileReader(); fr.onload = () => done(fr.result); fr.readAsDataURL(b);
      });""", href)
  out = _data_url_to_array(data_url)[..., :3]
  assert out.shape == rgb.shape
  np.testing.assert_array_equal(out[~hole], rgb[~hole])  # untouched outside the stroke
  diff = np.abs(out.astype(int) - rgb.astype(int)).max(-1)
  assert (diff[hole] > 0).mean() > 0.5  # filled inside it

  if os.environ.get("FLOWINPAINT_SCREENSHOT"):
    browser.save_screenshot(os.environ["FLOWINPAINT_SCREENSHOT"])
  # Compare: the slider clips the result; "show original" hides it entirely.
  compare = browser.find_element(By.ID, "compare")
  assert compare.is_enabled()
  browser.find_element(By.ID, "original").click()
  clip = browser.execute_script("return document.getElementById('result').style.clipPath")
  assert "100%" in clip
  # Clear empties the mask and drops the result.
  browser.find_element(By.ID, "clear").click()
  assert browser.find_element(By.ID, "result").get_attribute("hidden") is not None
